package mschapv2

import (
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// RFC 2759 §9.2 and RFC 3079 §3.5.3 sample data.
var (
	user          = "User"
	password      = []byte("clientPass")
	authChallenge = unhex("5B5D7C7D7B3F2F3E3C2C602132262628")
	peerChallenge = unhex("21402324255E262A28295F2B3A337C7E")
)

func TestRFC2759Vectors(t *testing.T) {
	ph := NTPasswordHash(password)
	if got := strings.ToUpper(hex.EncodeToString(ph[:])); got != "44EBBA8D5312B8D611474411F56989AE" {
		t.Fatalf("PasswordHash %s", got)
	}
	hh := HashNTPasswordHash(ph)
	if got := strings.ToUpper(hex.EncodeToString(hh[:])); got != "41C00C584BD2D91C4017A2A12FA59F3F" {
		t.Fatalf("PasswordHashHash %s", got)
	}
	if got := strings.ToUpper(hex.EncodeToString(challengeHash(peerChallenge, authChallenge, user))); got != "D02E4386BCE91226" {
		t.Fatalf("Challenge %s", got)
	}
	nt := GenerateNTResponse(authChallenge, peerChallenge, user, password)
	if got := strings.ToUpper(hex.EncodeToString(nt[:])); got != "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF" {
		t.Fatalf("NT-Response %s", got)
	}
	ar := AuthenticatorResponse(authChallenge, peerChallenge, user, password, nt)
	if ar != "S=407A5589115FD0D6209F510FE9C04566932CDA56" {
		t.Fatalf("AuthenticatorResponse %s", ar)
	}
	if !CheckAuthenticatorResponse("S=407a5589115fd0d6209f510fe9c04566932cda56 M=ok", ar) || CheckAuthenticatorResponse("S=407A", ar) {
		t.Fatal("CheckAuthenticatorResponse")
	}
	// A Windows domain prefix does not enter the challenge hash (RFC 2759 §8.2).
	if nt2 := GenerateNTResponse(authChallenge, peerChallenge, `CORP\User`, password); nt2 != nt {
		t.Fatal("domain prefix changed the NT-Response")
	}
}

func TestRFC3079Keys(t *testing.T) {
	nt := GenerateNTResponse(authChallenge, peerChallenge, user, password)
	m := MasterKey(password, nt)
	if got := strings.ToUpper(hex.EncodeToString(m[:])); got != "FDECE3717A8C838CB388E527AE3CDD31" {
		t.Fatalf("MasterKey %s", got)
	}
	// RFC 3079 §3.5.3 prints SendStartKey128 from the server's side (Magic3): the client's
	// receive key.
	ss := AsymmetricStartKey(m, true, true)
	if got := strings.ToUpper(hex.EncodeToString(ss[:])); got != "8B7CDC149B993A1BA118CB153F56DCCB" {
		t.Fatalf("SendStartKey128 %s", got)
	}
	if AsymmetricStartKey(m, false, false) != ss || AsymmetricStartKey(m, true, false) != AsymmetricStartKey(m, false, true) {
		t.Fatal("client and server keys do not mirror each other")
	}
	msk := MSK(password, nt)
	if len(msk) != 32 || hex.EncodeToString(msk[16:]) != "8b7cdc149b993a1ba118cb153f56dccb" ||
		hex.EncodeToString(msk[:16]) != "d5f0e9521e3ea9589645e86051c82226" {
		t.Fatalf("MSK %x", msk)
	}
}
