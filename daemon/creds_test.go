package daemon

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/credentials/pki"
	"github.com/goipsec/goipsec/vici"
)

// recorder is a vici.EventStreamer that keeps the events.
type recorder struct{ events []*vici.Message }

func (r *recorder) Registered(string) bool { return true }
func (r *recorder) Stream(_ string, m *vici.Message) error {
	r.events = append(r.events, m)
	return nil
}

// The VICI credential commands against the daemon's store, and what status reports, without IKE.
func TestVICICredentials(t *testing.T) {
	d, _ := New(Options{})
	now := time.Now()
	caKey, _ := pki.GenerateKey(pki.ECDSA256, nil)
	ca, err := pki.Issue(pki.Request{Subject: "O=t, CN=CA", CA: true, PathLen: -1}, caKey.Public(), nil, caKey, now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.Ed25519, nil)
	cert, err := pki.Issue(pki.Request{SANs: []string{"gw.example.org"}}, key.Public(), ca, caKey, now)
	if err != nil {
		t.Fatal(err)
	}
	// A credential folder beside the configuration file, with one unreadable file that is only
	// logged.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "x509ca"), 0o700)
	os.WriteFile(filepath.Join(dir, "x509ca", "ca.pem"), pki.CertPEM(ca), 0o600)
	os.WriteFile(filepath.Join(dir, "x509ca", "broken.pem"), []byte("garbage"), 0o600)
	if errs := d.loadCredentials(&config.Config{Files: []string{filepath.Join(dir, "goipsec.conf")}}); len(errs) != 0 {
		t.Fatalf("folder problems reported as configuration errors: %v", errs)
	}
	r := d.VICI()
	call := func(cmd string, req *vici.Message) (*vici.Message, *recorder, error) {
		rec := &recorder{}
		resp, err := r.Command(cmd)(context.Background(), req, rec)
		return resp, rec, err
	}
	if _, _, err := call("load-cert", vici.NewMessage().Set("type", "X509").Set("flag", "NONE").Set("data", string(pki.CertPEM(cert)))); err != nil {
		t.Fatal(err)
	}
	kp, _ := pki.KeyPEM(key)
	resp, _, err := call("load-key", vici.NewMessage().Set("type", "any").Set("data", string(kp)))
	if err != nil || len(resp.Get("id")) != 40 {
		t.Fatalf("load-key: %v %v", resp, err)
	}
	id := resp.Get("id")
	if resp, _, _ := call("get-keys", vici.NewMessage()); len(resp.List("keys")) != 1 || resp.List("keys")[0] != id {
		t.Fatalf("get-keys: %v", resp)
	}
	if _, _, err := call("load-cert", vici.NewMessage().Set("type", "X509_AC").Set("data", "x")); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("X509_AC: %v", err)
	}
	auth := vici.NewMessage()
	auth.AddSection("ca").Set("cacert", string(ca.Raw)).SetList("crl_uris", "http://crl.example.org/ca.crl")
	if _, _, err := call("load-authority", auth); err != nil {
		t.Fatal(err)
	}
	_, rec, err := call("list-authorities", vici.NewMessage())
	if err != nil || len(rec.events) != 1 || rec.events[0].Section("ca").Get("cacert") != "O=t, CN=CA" {
		t.Fatalf("list-authorities: %v %v", rec.events, err)
	}
	_, rec, err = call("list-certs", vici.NewMessage().Set("type", "X509"))
	if err != nil || len(rec.events) != 2 {
		t.Fatalf("list-certs: %d events, %v", len(rec.events), err)
	}
	withKey := 0
	for _, ev := range rec.events {
		if ev.Get("has_privkey") == "yes" {
			withKey++
		}
	}
	if withKey != 1 {
		t.Fatalf("%d certificates with private key, want 1", withKey)
	}
	st := d.CertStatuses()
	if len(st) != 2 || st[0].Subject != "CN=gw.example.org" || !st[0].HasPrivateKey || st[0].ExpiresInSeconds < 824*86400 || st[0].Kind != "end_entity" {
		t.Fatalf("status %+v", st)
	}
	if _, _, err := call("unload-key", vici.NewMessage().Set("id", id)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := call("unload-authority", vici.NewMessage().Set("name", "ca")); err != nil {
		t.Fatal(err)
	}
	if resp, _, _ := call("get-authorities", vici.NewMessage()); len(resp.List("authorities")) != 0 {
		t.Fatalf("authorities after unload: %v", resp)
	}
}

// flush-certs and clear-creds through the daemon's VICI handlers, on its real store: flush-certs
// empties only the caches its type names (a cached CRL is fetched again, loaded certificates
// stay); clear-creds removes the certificates, keys, raw public keys, CRLs and PSKs loaded over
// VICI and keeps authorities and what the configuration's own folders hold.
func TestVICIFlushAndClearCreds(t *testing.T) {
	var fetches atomic.Int32
	var crlDER atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Write(*crlDER.Load())
	}))
	defer srv.Close()
	now := time.Now()
	issueCA := func(name string) (*x509.Certificate, crypto.Signer) {
		k, _ := pki.GenerateKey(pki.ECDSA256, nil)
		c, err := pki.Issue(pki.Request{Subject: "O=t, CN=" + name, CA: true, PathLen: -1}, k.Public(), nil, k, now)
		if err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	ca, caKey := issueCA("CA")
	authCA, _ := issueCA("Authority CA")
	folderCA, _ := issueCA("Folder CA")
	otherCA, otherKey := issueCA("Other CA")
	key, _ := pki.GenerateKey(pki.Ed25519, nil)
	cert, err := pki.Issue(pki.Request{SANs: []string{"gw.example.org"}, CRLURIs: []string{srv.URL + "/ca.crl"}}, key.Public(), ca, caKey, now)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := pki.CRL(ca, caKey, nil, 1, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crlDER.Store(&crl)
	otherCRL, _ := pki.CRL(otherCA, otherKey, nil, 1, now, 24*time.Hour)

	d, _ := New(Options{})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "x509ca"), 0o700)
	os.WriteFile(filepath.Join(dir, "x509ca", "folder.pem"), pki.CertPEM(folderCA), 0o600)
	if err := d.Apply(&config.Config{Files: []string{filepath.Join(dir, "goipsec.conf")}}); err != nil {
		t.Fatal(err)
	}
	r := d.VICI()
	call := func(cmd string, req *vici.Message) (*vici.Message, *recorder) {
		t.Helper()
		rec := &recorder{}
		resp, err := r.Command(cmd)(context.Background(), req, rec)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return resp, rec
	}
	listed := func(typ string) []string {
		t.Helper()
		_, rec := call("list-certs", vici.NewMessage().Set("type", typ))
		var out []string
		for _, ev := range rec.events {
			if ev.Get("type") == "X509_CRL" {
				c, _ := x509.ParseRevocationList([]byte(ev.Get("data")))
				out = append(out, "CRL of "+dn.String(c.RawIssuer))
				continue
			}
			c, _ := x509.ParseCertificate([]byte(ev.Get("data")))
			out = append(out, ev.Get("flag")+" "+dn.String(c.RawSubject))
		}
		sort.Strings(out)
		return out
	}
	call("load-cert", vici.NewMessage().Set("type", "X509").Set("flag", "CA").Set("data", string(pki.CertPEM(ca))))
	call("load-cert", vici.NewMessage().Set("type", "X509").Set("flag", "NONE").Set("data", string(pki.CertPEM(cert))))
	call("load-cert", vici.NewMessage().Set("type", "X509_CRL").Set("data", string(otherCRL)))
	kp, _ := pki.KeyPEM(key)
	call("load-key", vici.NewMessage().Set("type", "any").Set("data", string(kp)))
	auth := vici.NewMessage()
	auth.AddSection("auth").Set("cacert", string(authCA.Raw))
	call("load-authority", auth)
	call("load-shared", vici.NewMessage().Set("type", "IKE").Set("data", "a secret of 20 bytes").SetList("owners", "gw.example.org"))
	pub, err := d.Credentials().AddPublicKey(key.Public(), "vici")
	if err != nil {
		t.Fatal(err)
	}

	st := d.Credentials()
	verify := func() error {
		_, err := st.VerifyPeer(context.Background(), credentials.Identity{Type: credentials.IDFQDN, Data: []byte("gw.example.org")}, [][]byte{cert.Raw}, credentials.Policy{Revocation: credentials.RevocationIfURI})
		return err
	}
	for i, tc := range []struct {
		flush   string // flush-certs type before verifying; "-" for no flush
		fetches int32
	}{
		{"-", 1}, {"-", 1}, // fetched once, then cached
		{"OCSP_RESPONSE", 1}, {"X509", 1}, {"PUBKEY", 1}, // the CRL cache stays
		{"X509_CRL", 2}, {"", 3}, {"ANY", 4}, {"x509crl", 5},
	} {
		if tc.flush != "-" {
			call("flush-certs", vici.NewMessage().Set("type", tc.flush))
		}
		if err := verify(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := fetches.Load(); got != tc.fetches {
			t.Fatalf("step %d, after flush-certs type %q: %d CRL fetches, want %d", i, tc.flush, got, tc.fetches)
		}
	}
	if _, err := r.Command("flush-certs")(context.Background(), vici.NewMessage().Set("type", "BOGUS"), &recorder{}); err == nil || !strings.Contains(err.Error(), `invalid certificate type "BOGUS"`) {
		t.Fatalf("flush-certs BOGUS: %v", err)
	}
	want := []string{"CA O=t, CN=Authority CA", "CA O=t, CN=CA", "CA O=t, CN=Folder CA", "CRL of O=t, CN=Other CA", "NONE CN=gw.example.org"}
	if got := listed("ANY"); !slices.Equal(got, want) {
		t.Fatalf("after flush-certs: %q, want %q", got, want)
	}

	call("clear-creds", vici.NewMessage())
	want = []string{"CA O=t, CN=Authority CA", "CA O=t, CN=Folder CA"}
	if got := listed("ANY"); !slices.Equal(got, want) {
		t.Fatalf("after clear-creds: %q, want %q", got, want)
	}
	if resp, _ := call("get-keys", vici.NewMessage()); len(resp.List("keys")) != 0 {
		t.Fatalf("keys after clear-creds: %q", resp.List("keys"))
	}
	if resp, _ := call("get-shared", vici.NewMessage()); len(resp.List("keys")) != 0 {
		t.Fatalf("shared secrets after clear-creds: %q", resp.List("keys"))
	}
	if resp, _ := call("get-authorities", vici.NewMessage()); !slices.Equal(resp.List("authorities"), []string{"auth"}) {
		t.Fatalf("authorities after clear-creds: %q", resp.List("authorities"))
	}
	if st.PublicKeyByID(pub.ID) != nil {
		t.Fatal("raw public key kept by clear-creds")
	}
	if err := verify(); !strings.Contains(fmt.Sprint(err), "no path to a trusted CA") {
		t.Fatalf("peer certificate under the cleared CA: %v", err)
	}
}
