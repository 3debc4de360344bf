package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

// Known answers from strongSwan: conversations between two charons 5.9.8 authenticating with
// certificates, recorded with their keys and credentials (ike/wire/testdata/strongswan/cert-*,
// internal/testnet/strongswan/record_test.go). Each AUTH payload must verify with our code over
// the signed octets we compute (RFC 7296 §2.15), and where the scheme is deterministic (Ed25519,
// RSASSA-PKCS1-v1_5) our signature with the recorded private key must be the same bytes.

type goldenIndex struct {
	Auth   string `json:"auth"`
	IKESAs []struct {
		SKei string `json:"sk_ei"`
		SKer string `json:"sk_er"`
		SKpi string `json:"sk_pi"`
		SKpr string `json:"sk_pr"`
	} `json:"ike_sas"`
	Messages []struct {
		File     string `json:"file"`
		Exchange string `json:"exchange"`
		Response bool   `json:"response"`
		IKESA    int    `json:"ike_sa"`
	} `json:"messages"`
}

func hexKey(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func prfSHA256(k, d []byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write(d)
	return m.Sum(nil)
}

// goldenAuth is one recorded handshake, opened.
type goldenAuth struct {
	initReq, initResp []byte
	initRespMsg       *wire.Message
	req, resp         []wire.Payload // IKE_AUTH, decrypted and reassembled
	skpi, skpr        []byte
	dir               string
	auth              string
}

func openGolden(t *testing.T, dir string) *goldenAuth {
	t.Helper()
	js, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenIndex
	if err := json.Unmarshal(js, &g); err != nil {
		t.Fatal(err)
	}
	sa := g.IKESAs[0]
	ga := &goldenAuth{dir: dir, auth: g.Auth, skpi: hexKey(t, sa.SKpi), skpr: hexKey(t, sa.SKpr)}
	in, err := suite.NewProtector(proposal.EncrAESGCM16, 256, 0, hexKey(t, sa.SKei), nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out, err := suite.NewProtector(proposal.EncrAESGCM16, 256, 0, hexKey(t, sa.SKer), nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	reqR, respR := wire.NewReassembler(16, 64<<10), wire.NewReassembler(16, 64<<10)
	for _, m := range g.Messages {
		if m.IKESA != 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, m.File))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case m.Exchange == "IKE_SA_INIT" && !m.Response:
			ga.initReq = b
		case m.Exchange == "IKE_SA_INIT":
			ga.initResp = b
			if ga.initRespMsg, err = wire.Decode(b); err != nil {
				t.Fatal(err)
			}
		case m.Exchange == "IKE_AUTH":
			p, r, dst := in, reqR, &ga.req
			if m.Response {
				p, r, dst = out, respR, &ga.resp
			}
			opened, err := wire.Open(b, p)
			if err != nil {
				t.Fatalf("%s: %v", m.File, err)
			}
			if opened.Fragment == nil {
				*dst = opened.Inner
				continue
			}
			inner, done, err := r.Add(1, *opened.Fragment)
			if err != nil {
				t.Fatalf("%s: %v", m.File, err)
			}
			if done {
				*dst = inner
			}
		}
	}
	if ga.req == nil || ga.resp == nil {
		t.Fatal("IKE_AUTH request or response missing")
	}
	return ga
}

func nonceOf(t *testing.T, msg []byte) []byte {
	m, err := wire.Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Payloads {
		if n, ok := p.(*wire.Nonce); ok {
			return n.Data
		}
	}
	t.Fatal("no nonce")
	return nil
}

func payloadOf[T wire.Payload](t *testing.T, ps []wire.Payload) T {
	for _, p := range ps {
		if x, ok := p.(T); ok {
			return x
		}
	}
	var zero T
	t.Fatalf("no %T", zero)
	return zero
}

func TestStrongSwanAuthKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		dir    string
		scheme Scheme
		// deterministic: our signature with the recorded key must equal strongSwan's bytes.
		deterministic bool
	}{
		{"cert-ed25519", Ed25519, true},
		{"cert-rsa-pkcs1", RSAPKCS1SHA256, true},
		{"cert-rsa-pss", RSAPSSSHA256, false},
		{"cert-ecdsa-p256", ECDSASHA256, false},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			ga := openGolden(t, filepath.Join("..", "wire", "testdata", "strongswan", tc.dir))
			ni, nr := nonceOf(t, ga.initReq), nonceOf(t, ga.initResp)
			type side struct {
				name   string
				ps     []wire.Payload
				octets []byte
				key    string
			}
			idi := payloadOf[*wire.IDi](t, ga.req)
			idr := payloadOf[*wire.IDr](t, ga.resp)
			sides := []side{
				{"initiator", ga.req, append(append(append([]byte{}, ga.initReq...), nr...), prfSHA256(ga.skpi, idi.RestOfPayload())...), "left.key"},
				{"responder", ga.resp, append(append(append([]byte{}, ga.initResp...), ni...), prfSHA256(ga.skpr, idr.RestOfPayload())...), "right.key"},
			}
			for _, s := range sides {
				cert, err := x509.ParseCertificate(payloadOf[*wire.CERT](t, s.ps).Data)
				if err != nil {
					t.Fatal(err)
				}
				a := payloadOf[*wire.AUTH](t, s.ps)
				if a.Method != wire.AuthDigitalSignature {
					t.Fatalf("%s: strongSwan used method %d", s.name, a.Method)
				}
				algID, _, err := wire.DigitalSignature(a.Data)
				if err != nil {
					t.Fatal(err)
				}
				// strongSwan's AlgorithmIdentifier is byte for byte ours.
				if !bytes.Equal(algID, tc.scheme.AlgorithmIdentifier()) {
					t.Fatalf("%s: strongSwan's AlgorithmIdentifier %x, ours %x", s.name, algID, tc.scheme.AlgorithmIdentifier())
				}
				got, err := Verify(cert.PublicKey, a.Method, a.Data, s.octets, mustConstraints(t, "pubkey"))
				if err != nil || got != tc.scheme {
					t.Fatalf("%s: strongSwan's AUTH: %v, %v", s.name, got, err)
				}
				if !tc.deterministic {
					continue
				}
				keyPEM, err := os.ReadFile(filepath.Join(ga.dir, s.key))
				if err != nil {
					t.Fatal(err)
				}
				key, err := credentials.ParsePrivateKey(keyPEM, nil)
				if err != nil {
					t.Fatal(err)
				}
				m, data, _, err := Sign(rand.Reader, key, s.octets, mustConstraints(t, ga.auth), SupportedHashes)
				if err != nil {
					t.Fatal(err)
				}
				if m != a.Method || !bytes.Equal(data, a.Data) {
					t.Fatalf("%s: our AUTH differs from strongSwan's:\nours %x\ntheirs %x", s.name, data, a.Data)
				}
			}
			// The responder's CERTREQ names the CA by the SHA-1 of its SubjectPublicKeyInfo, as
			// ours does.
			caPEM, err := os.ReadFile(filepath.Join(ga.dir, "ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			cas, err := credentials.ParseCertificates(caPEM)
			if err != nil {
				t.Fatal(err)
			}
			cr := payloadOf[*wire.CERTREQ](t, ga.initRespMsg.Payloads)
			hashes, err := wire.CAHashes(cr.Data)
			if err != nil || len(hashes) != 1 || hashes[0] != credentials.SPKIHash(cas[0].RawSubjectPublicKeyInfo) {
				t.Fatalf("CERTREQ %x, CA hash %x (%v)", cr.Data, credentials.SPKIHash(cas[0].RawSubjectPublicKeyInfo), err)
			}
		})
	}
}
