package eap

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"
)

// testPKI makes a CA, a server certificate (gw.example.org) and a client one (carol).
func testPKI(t *testing.T) (server, client *tls.Certificate, verify func(name string) func([][]byte) error) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, serial int64) *tls.Certificate {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	verify = func(name string) func([][]byte) error {
		return func(chain [][]byte) error {
			if len(chain) == 0 {
				return errors.New("no certificate")
			}
			leaf, err := x509.ParseCertificate(chain[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		}
	}
	return issue("gw.example.org", 2), issue("carol", 3), verify
}

func TestTLSMethods(t *testing.T) {
	srvCert, cliCert, verify := testPKI(t)
	pw := func(u string) ([]byte, bool) { return []byte("carol-pw"), u == "carol" }
	for _, tc := range []struct {
		name     string
		method   Type
		inner    string
		frag     int
		password string
		wantOK   bool
	}{
		{"tls", TypeTLS, "", 0, "", true},
		{"tls small fragments", TypeTLS, "", 100, "", true},
		{"ttls mschapv2", TypeTTLS, "mschapv2", 0, "carol-pw", true},
		{"ttls pap", TypeTTLS, "pap", 0, "carol-pw", true},
		{"ttls wrong password", TypeTTLS, "mschapv2", 0, "nope", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := NewServer(ServerConfig{Methods: []Type{tc.method}, Identity: "carol", Password: pw,
				TLS: &TLSConfig{Certificate: srvCert, VerifyPeer: verify("carol"), FragmentSize: tc.frag}})
			c := NewClient(ClientConfig{Identity: "carol", Methods: []Type{tc.method}, TTLSInner: tc.inner,
				Password: func() ([]byte, bool) { return []byte(tc.password), true },
				TLS:      &TLSConfig{Certificate: cliCert, VerifyPeer: verify("gw.example.org"), FragmentSize: tc.frag}})
			res := converse(t, s, c)
			if res.Success != tc.wantOK {
				t.Fatalf("result %+v", res)
			}
			if !tc.wantOK {
				return
			}
			if len(res.MSK) != 64 || !bytes.Equal(res.MSK, c.Result().MSK) || !c.Mutual() {
				t.Fatalf("MSK %x / %x, mutual %v", res.MSK, c.Result().MSK, c.Mutual())
			}
		})
	}
}

// A client certificate for another name is refused by the server, and a server certificate
// for another name by the client.
func TestTLSIdentityChecked(t *testing.T) {
	srvCert, cliCert, verify := testPKI(t)
	s, _ := NewServer(ServerConfig{Methods: []Type{TypeTLS}, Identity: "dave",
		TLS: &TLSConfig{Certificate: srvCert, VerifyPeer: verify("dave")}})
	c := NewClient(ClientConfig{Identity: "carol", TLS: &TLSConfig{Certificate: cliCert, VerifyPeer: verify("gw.example.org")}})
	if res := converseTolerant(s, c); res == nil || res.Success {
		t.Fatalf("server accepted carol's certificate for dave: %+v", res)
	}
	s2, _ := NewServer(ServerConfig{Methods: []Type{TypeTLS}, Identity: "carol",
		TLS: &TLSConfig{Certificate: srvCert, VerifyPeer: verify("carol")}})
	c2 := NewClient(ClientConfig{Identity: "carol", TLS: &TLSConfig{Certificate: cliCert, VerifyPeer: verify("vpn.example.com")}})
	if res := converseTolerant(s2, c2); res != nil && res.Success {
		t.Fatal("client accepted a server certificate for another name")
	}
}

// converseTolerant runs a conversation that may fail on either side; it returns the server's
// result (nil when the client gave up first).
func converseTolerant(s *Server, c *Client) *Result {
	req, err := s.Start()
	if err != nil {
		return nil
	}
	for range 30 {
		resp, err := c.Process(req)
		if err != nil {
			return nil
		}
		out, res, err := s.Process(resp)
		if err != nil {
			return nil
		}
		if res != nil {
			c.Process(out)
			return res
		}
		req = out
	}
	return nil
}

// The exporter computed from the master secret and the randoms agrees with crypto/tls's own
// (where it allows one: with Extended Master Secret), so the fallback strongSwan needs is right.
func TestExporterFallbackMatches(t *testing.T) {
	srvCert, _, verify := testPKI(t)
	sp, cp := newPump(), newPump()
	scfg := baseTLSConfig(&TLSConfig{VerifyPeer: verify("x")})
	scfg.Certificates = []tls.Certificate{*srvCert}
	scfg.KeyLogWriter = &sp.master
	ccfg := baseTLSConfig(&TLSConfig{VerifyPeer: verify("gw.example.org")})
	ccfg.KeyLogWriter = &cp.master
	server := startTLS(tls.Server(sp, scfg), sp, nil, 0)
	client := startTLS(tls.Client(cp, ccfg), cp, nil, 0)
	out, _, err := client.step(nil)
	for i := 0; i < 10 && err == nil && !(server.ended && client.ended); i++ {
		var back []byte
		back, _, err = server.step(out)
		if err != nil || client.ended {
			break
		}
		out, _, err = client.step(back)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{labelTLS, labelTTLS, labelChallenge} {
		st := client.conn.ConnectionState()
		want, err := st.ExportKeyingMaterial(label, nil, 64)
		if err != nil {
			t.Fatal(err)
		}
		cp.master.mu.Lock()
		cr, ms := cp.master.clientRandom, cp.master.master
		cp.master.mu.Unlock()
		if cp.serverRandom == nil || sp.serverRandom == nil || !bytes.Equal(cp.serverRandom, sp.serverRandom) {
			t.Fatal("server random not seen by both pumps")
		}
		// With Extended Master Secret crypto/tls's exporter uses the same PRF over the randoms;
		// only the master secret differs in how it was made.
		got := prf12(sha256.New, ms, []byte(label), append(append([]byte(nil), cr...), cp.serverRandom...), 64)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: fallback %x, crypto/tls %x", label, got, want)
		}
	}
}
