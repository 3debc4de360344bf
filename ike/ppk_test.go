package ike

import (
	"bytes"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
)

// ppkSide configures one side's post-quantum preshared key.
type ppkSide struct {
	id       string
	key      string // "" : no PPK secret at all
	required bool
}

func (s ppkSide) apply(c *PeerConfig) {
	c.PPKID, c.PPKRequired = []byte(s.id), s.required
	if s.key != "" {
		c.PPK = func(id []byte) ([]byte, bool) {
			if string(id) != s.id {
				return nil, false
			}
			return []byte(s.key), true
		}
	}
}

// TestPPK: RFC 8784 in IKE_AUTH (the initiator keeps to it, as a peer without RFC 9867 does)
// and RFC 9867 in IKE_INTERMEDIATE (both sides announce USE_PPK_INT) with every combination that
// matters: matching keys (used), mismatching keys (RFC 8784: AUTH fails, so the PPK is in the
// AUTH keys; RFC 9867: the PPK Confirmation tells the responder, which goes on without the PPK or
// refuses when it requires one), a responder without the key (NO_PPK_AUTH or no PPK_IDENTITY
// when optional), and required keys that are missing on either side.
func TestPPK(t *testing.T) {
	const (
		mismatch9867 = `offered "ppk1" and our PPK of that id is a different key (the PPK Confirmation does not match) (RFC 9867)`
		notAccepted  = `does not accept our post-quantum preshared key "ppk1" (no PPK_IDENTITY in the IKE_INTERMEDIATE response, RFC 9867)`
	)
	for _, tc := range []struct {
		name        string
		i, r        ppkSide
		wantPPK8784 bool
		wantErr8784 string
		wantPPK9867 bool
		wantErr9867 string
	}{
		{name: "matching", i: ppkSide{"ppk1", "0123456789abcdef0123456789abcdef", false}, r: ppkSide{"ppk1", "0123456789abcdef0123456789abcdef", false}, wantPPK8784: true, wantPPK9867: true},
		{name: "matching required", i: ppkSide{"ppk1", "k", true}, r: ppkSide{"ppk1", "k", true}, wantPPK8784: true, wantPPK9867: true},
		{name: "mismatching", i: ppkSide{"ppk1", "key-one", false}, r: ppkSide{"ppk1", "key-two", false}, wantErr8784: "does not verify"},
		{name: "mismatching, responder requires", i: ppkSide{"ppk1", "key-one", false}, r: ppkSide{"ppk1", "key-two", true}, wantErr8784: "does not verify", wantErr9867: mismatch9867},
		{name: "mismatching, initiator requires", i: ppkSide{"ppk1", "key-one", true}, r: ppkSide{"ppk1", "key-two", false}, wantErr8784: "does not verify", wantErr9867: notAccepted},
		{name: "responder lacks it", i: ppkSide{"ppk1", "k", false}, r: ppkSide{"", "", false}},
		{name: "responder has another id", i: ppkSide{"ppk1", "k", false}, r: ppkSide{"ppk2", "k", false}},
		{name: "initiator requires, responder lacks", i: ppkSide{"ppk1", "k", true}, r: ppkSide{"ppk2", "k", false},
			wantErr8784: "requires its post-quantum preshared key \"ppk1\", which we do not have", wantErr9867: notAccepted},
		{name: "responder requires, initiator has none", i: ppkSide{"", "", false}, r: ppkSide{"ppk1", "k", true},
			wantErr8784: "requires a post-quantum preshared key, but peer 192.0.2.1:500 offered none", wantErr9867: "requires a post-quantum preshared key, but peer 192.0.2.1:500 offered none"},
	} {
		for _, rfc := range []string{"RFC 8784", "RFC 9867"} {
			t.Run(tc.name+", "+rfc, func(t *testing.T) {
				ci, cr := defaultPair().build(t)
				tc.i.apply(ci)
				tc.r.apply(cr)
				wantPPK, wantErr := tc.wantPPK9867, tc.wantErr9867
				if rfc == "RFC 8784" {
					ci.PPKNoIntermediate = true
					wantPPK, wantErr = tc.wantPPK8784, tc.wantErr8784
				}
				i, r, ic, rc, err := runHandshake(t, ci, cr)
				if wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), wantErr) {
						t.Fatalf("error %v, want %q", err, wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if i.PPK != wantPPK || r.PPK != wantPPK {
					t.Fatalf("PPK used: initiator %v, responder %v; want %v", i.PPK, r.PPK, wantPPK)
				}
				if !bytes.Equal(ic.EncrOut, rc.EncrIn) || !bytes.Equal(ic.EncrIn, rc.EncrOut) {
					t.Fatal("Child SA keys do not pair up")
				}
			})
		}
	}
}

// TestPPKRequiredBeforeAuth: an initiator that requires a PPK gives up before IKE_AUTH when the
// responder did not announce PPK support, or when it has no PPK secret of its ppk_id.
func TestPPKRequiredBeforeAuth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		i, r    ppkSide
		wantErr string
	}{
		{"peer does not support PPK", ppkSide{"ppk1", "k", true}, ppkSide{"", "", false}, "does not support them (neither USE_PPK_INT nor USE_PPK in IKE_SA_INIT"},
		{"no secret", ppkSide{"ppk1", "", true}, ppkSide{"ppk1", "k", false}, `there is no ppk secret with id "ppk1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, cr := defaultPair().build(t)
			tc.i.apply(ci)
			tc.r.apply(cr)
			i, err := NewInitiator(ci, ci.Children[:1], addrI, addrR, nil)
			if err != nil {
				t.Fatal(err)
			}
			req, err := i.NextRequest()
			if err != nil {
				t.Fatal(err)
			}
			m, err := wire.Decode(req.Raw)
			if err != nil {
				t.Fatal(err)
			}
			_, resp, err := RespondInit(m, req.Raw, addrR, addrI, []*PeerConfig{cr}, nil)
			if err != nil {
				t.Fatal(err)
			}
			rm, _ := wire.Decode(resp)
			if _, err := i.ProcessResponse(&Message{Exchange: wire.ExchangeIKESAInit, Payloads: rm.Payloads, Raw: resp}); err != nil {
				t.Fatal(err)
			}
			if _, err := i.NextRequest(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("IKE_AUTH request: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestPPKMixesKeys checks the RFC 8784 §3 derivation against a direct computation: SK_d, SK_pi and
// SK_pr become prf+(PPK, key) and the other keys stay.
func TestPPKMixesKeys(t *testing.T) {
	ci, cr := defaultPair().build(t)
	i, _, _, _, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	i.hs = &handshake{Ni: make([]byte, 32), Nr: make([]byte, 32)}
	before := *i.keys
	d, pi, pr, ei := bytes.Clone(before.SKd), bytes.Clone(before.SKpi), bytes.Clone(before.SKpr), bytes.Clone(before.SKei)
	ppk := []byte("a post-quantum preshared key")
	if err := i.mixPPK(i.ppk(), ppk); err != nil {
		t.Fatal(err)
	}
	prf, _ := suite.NewPRF(suite.PRF_HMAC_SHA2_256)
	for name, pair := range map[string][2][]byte{"SK_d": {d, i.keys.SKd}, "SK_pi": {pi, i.keys.SKpi}, "SK_pr": {pr, i.keys.SKpr}} {
		want, _ := prf.Plus(ppk, len(pair[0]), pair[0])
		if !bytes.Equal(pair[1], want) {
			t.Errorf("%s = %x, want prf+(PPK, %s') = %x", name, pair[1], name, want)
		}
	}
	if !bytes.Equal(i.keys.SKei, ei) {
		t.Error("SK_ei changed")
	}
	i.unmixPPK(i.hs.ppk)
	if !bytes.Equal(i.keys.SKd, d) || !bytes.Equal(i.keys.SKpi, pi) {
		t.Error("unmix did not restore the keys")
	}
}

// FuzzPPKIdentityKey: the PPK_IDENTITY_KEY data of any peer (RFC 9867) is split without a panic
// into an identity of at least one octet and an 8-octet confirmation that rebuild it exactly, or
// refused.
func FuzzPPKIdentityKey(f *testing.F) {
	f.Add(append([]byte{ppkIDFixed, 's', 'i', 't', 'e'}, make([]byte, suite.PPKConfirmationSize)...))
	f.Add([]byte{ppkIDFixed})
	f.Add(append([]byte{1, 'x'}, make([]byte, suite.PPKConfirmationSize)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, conf, ok := parsePPKIdentityKey(data)
		if !ok {
			if len(data) >= 2+suite.PPKConfirmationSize && data[0] == ppkIDFixed {
				t.Fatalf("refused %x", data)
			}
			return
		}
		if len(id) == 0 || len(conf) != suite.PPKConfirmationSize {
			t.Fatalf("id %d bytes, confirmation %d bytes", len(id), len(conf))
		}
		if again := append(append([]byte{ppkIDFixed}, id...), conf...); !bytes.Equal(again, data) {
			t.Fatalf("%x does not rebuild %x", again, data)
		}
	})
}
