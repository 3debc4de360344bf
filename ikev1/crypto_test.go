package ikev1

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/suite"
)

// TestKeyDerivation checks RFC 2409 §5's SKEYID_d/a/e, Appendix B's expansion of the encryption
// key (HMAC-SHA-1's 20 bytes are short of 3DES's 24) and §5.5's KEYMAT expansion against values
// computed independently with Python's hmac module.
func TestKeyDerivation(t *testing.T) {
	prf, err := suite.NewLegacyPRF(suite.PRF_HMAC_SHA1)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := newEncAlg(p1Enc3DES, 0)
	k := deriveKeys(prf, enc, bytes.Repeat([]byte{1}, 20), bytes.Repeat([]byte{2}, 128), 0x0102030405060708, 0x1112131415161718)
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"SKEYID_d", k.skeyidD, "68c0a57a33976f3f51bf7ef334c393704bf2490f"},
		{"SKEYID_a", k.skeyidA, "39678c3b40ec0f6794bb0aafbb29ac4c70f83f36"},
		{"SKEYID_e", k.skeyidE, "96264a51c73309b283ce4ba7e155c97774030b3d"},
		{"3DES key (Appendix B)", k.encKey, "70b66bc34a4f7c988f09184d623ecd5744c7399670f9949c"},
		{"KEYMAT", keymat(prf, k.skeyidD, nil, 3, 0x1000, bytes.Repeat([]byte{3}, 16), bytes.Repeat([]byte{4}, 16), 36),
			"5b1a27eb923271002f2738107344c247b717bd885a6f319cefdd0810094519d72348a1d5"},
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s = %x, want %s", c.name, c.got, c.want)
		}
	}
	// CBC round trip with the phase 1 cipher; a body that is not whole blocks is refused.
	iv := bytes.Repeat([]byte{9}, enc.block)
	ct, err := encrypt(enc, k.encKey, iv, []byte("payloads"))
	if err != nil || len(ct) != 8 {
		t.Fatalf("encrypt: %x %v", ct, err)
	}
	pt, err := decrypt(enc, k.encKey, iv, ct)
	if err != nil || string(pt) != "payloads" {
		t.Fatalf("decrypt: %q %v", pt, err)
	}
	if _, err := decrypt(enc, k.encKey, iv, ct[:5]); !errors.Is(err, errCiphertext) {
		t.Fatalf("short ciphertext: %v", err)
	}
}

// TestStateTable: moves outside the phase 1 table are refused and reported, the state kept.
func TestStateTable(t *testing.T) {
	var refused []error
	sa := New(ike.Deps{Illegal: func(err error) { refused = append(refused, err) }}.WithDefaults(), Timing{Timeout: 1, Base: 1, Tries: 1}, 4500)
	if sa.setState(StateEstablished) || sa.State() != StateStart || len(refused) != 1 {
		t.Fatalf("START -> ESTABLISHED allowed (state %s, reports %v)", sa.State(), refused)
	}
	for _, next := range []Phase1State{StateSASent, StateKESent, StateAuthSent, StateEstablished, StateDeleting, StateDead} {
		if !sa.setState(next) {
			t.Fatalf("legal move to %s refused", next)
		}
	}
	if sa.setState(StateSASent) || len(refused) != 2 {
		t.Fatal("DEAD -> SA_SENT allowed")
	}
}
