package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/config"
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
