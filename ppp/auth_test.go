package ppp

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/ike/eap/mschapv2"
)

func h(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMSCHAPv2Vectors checks every intermediate value of RFC 2759 §9.2's example.
func TestMSCHAPv2Vectors(t *testing.T) {
	const user, password = "User", "clientPass"
	auth := h(t, "5B5D7C7D7B3F2F3E3C2C602132262628")
	peer := h(t, "21402324255E262A28295F2B3A337C7E")
	// ChallengeHash and PasswordHash are checked in ike/eap/mschapv2 (TestRFC2759Vectors), whose
	// functions these are.
	if got := mschapv2.NTPasswordHash([]byte(password)); hex.EncodeToString(got[:]) != "44ebba8d5312b8d611474411f56989ae" {
		t.Errorf("PasswordHash = %x", got)
	}
	nt := generateNTResponse(auth, peer, user, password)
	if hex.EncodeToString(nt) != "82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df" {
		t.Errorf("NT-Response = %x", nt)
	}
	if got := authenticatorResponse(password, nt, peer, auth, user); got != "S=407A5589115FD0D6209F510FE9C04566932CDA56" {
		t.Errorf("AuthenticatorResponse = %s", got)
	}
	// A domain prefix does not enter the challenge hash, hence not the NT-Response.
	if got := generateNTResponse(auth, peer, `EXAMPLE\User`, password); hex.EncodeToString(got) != "82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df" {
		t.Errorf("NT-Response with a domain = %x", got)
	}
}

// TestCHAPMD5 checks RFC 1994's response against a value computed independently (Python's
// hashlib: md5(b'\x01' + b'secret' + bytes(range(16)))).
func TestCHAPMD5(t *testing.T) {
	got := chapMD5Response(1, []byte("secret"), h(t, "000102030405060708090a0b0c0d0e0f"))
	if hex.EncodeToString(got) != "740e86463bda3a4d7017d6e0fba0699d" {
		t.Fatalf("response %x", got)
	}
}
