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

// TestPPK: RFC 8784 in IKE_AUTH with every combination that matters: matching keys (used),
// mismatching keys (AUTH fails, so the PPK is in the AUTH keys), a responder without the key
// (NO_PPK_AUTH when optional), and required keys that are missing on either side.
func TestPPK(t *testing.T) {
	for _, tc := range []struct {
		name    string
		i, r    ppkSide
		wantPPK bool
		wantErr string
	}{
		{name: "matching", i: ppkSide{"ppk1", "0123456789abcdef0123456789abcdef", false}, r: ppkSide{"ppk1", "0123456789abcdef0123456789abcdef", false}, wantPPK: true},
		{name: "matching required", i: ppkSide{"ppk1", "k", true}, r: ppkSide{"ppk1", "k", true}, wantPPK: true},
		{name: "mismatching", i: ppkSide{"ppk1", "key-one", false}, r: ppkSide{"ppk1", "key-two", false}, wantErr: "does not verify"},
		{name: "responder lacks it", i: ppkSide{"ppk1", "k", false}, r: ppkSide{"", "", false}, wantPPK: false},
		{name: "responder has another id", i: ppkSide{"ppk1", "k", false}, r: ppkSide{"ppk2", "k", false}, wantPPK: false},
		{name: "initiator requires, responder lacks", i: ppkSide{"ppk1", "k", true}, r: ppkSide{"ppk2", "k", false}, wantErr: "requires its post-quantum preshared key \"ppk1\", which we do not have"},
		{name: "responder requires, initiator has none", i: ppkSide{"", "", false}, r: ppkSide{"ppk1", "k", true}, wantErr: "requires a post-quantum preshared key, but peer 192.0.2.1:500 offered none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, cr := defaultPair().build(t)
			tc.i.apply(ci)
			tc.r.apply(cr)
			i, r, ic, rc, err := runHandshake(t, ci, cr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if i.PPK != tc.wantPPK || r.PPK != tc.wantPPK {
				t.Fatalf("PPK used: initiator %v, responder %v; want %v", i.PPK, r.PPK, tc.wantPPK)
			}
			if !bytes.Equal(ic.EncrOut, rc.EncrIn) || !bytes.Equal(ic.EncrIn, rc.EncrOut) {
				t.Fatal("Child SA keys do not pair up")
			}
		})
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
		{"peer does not support PPK", ppkSide{"ppk1", "k", true}, ppkSide{"", "", false}, "does not support them (no USE_PPK in IKE_SA_INIT"},
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
