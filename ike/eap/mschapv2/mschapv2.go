// Package mschapv2 implements MS-CHAPv2 (RFC 2759) and its key derivation (RFC 3079 §3), the
// primitives of EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2) and TTLS' inner MS-CHAPv2. The
// algorithms are legacy (MD4, DES, SHA-1) by definition of the protocol; they protect a password
// exchange inside an IKE SA that is already encrypted and authenticated by the gateway.
package mschapv2

import (
	"crypto/des"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"unicode/utf16"

	//lint:ignore SA1019 MS-CHAPv2's NT password hash is MD4 by definition (RFC 2759 §8.3)
	"golang.org/x/crypto/md4"
)

// Lengths of the protocol's values (RFC 2759 §4, §8).
const (
	ChallengeLen  = 16
	NTResponseLen = 24
	// ResponseLen is the Response field of a Response packet: Peer-Challenge, 8 reserved octets,
	// NT-Response and Flags.
	ResponseLen = ChallengeLen + 8 + NTResponseLen + 1
	// KeyLen is the length of the MPPE master and start keys used here (128-bit, RFC 3079 §3.4).
	KeyLen = 16
)

// NTPasswordHash is MD4 of the password in UTF-16LE (RFC 2759 §8.3).
func NTPasswordHash(password []byte) [16]byte {
	u := utf16.Encode([]rune(string(password)))
	b := make([]byte, 0, 2*len(u))
	for _, r := range u {
		b = append(b, byte(r), byte(r>>8))
	}
	h := md4.New()
	h.Write(b)
	clear(b)
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

// HashNTPasswordHash is MD4 of the NT password hash (RFC 2759 §8.4).
func HashNTPasswordHash(ph [16]byte) [16]byte {
	h := md4.New()
	h.Write(ph[:])
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

// challengeHash is SHA-1(PeerChallenge | AuthenticatorChallenge | UserName)[:8] (§8.2), with
// the user name stripped of a Windows domain ("DOMAIN\user").
func challengeHash(peer, auth []byte, user string) []byte {
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		user = user[i+1:]
	}
	h := sha1.New()
	h.Write(peer)
	h.Write(auth)
	h.Write([]byte(user))
	return h.Sum(nil)[:8]
}

// desKey expands 7 key octets to a DES key with (ignored) parity bits (§8.6).
func desKey(k []byte) []byte {
	return []byte{
		k[0] & 0xfe,
		(k[0]<<7 | k[1]>>1) & 0xfe,
		(k[1]<<6 | k[2]>>2) & 0xfe,
		(k[2]<<5 | k[3]>>3) & 0xfe,
		(k[3]<<4 | k[4]>>4) & 0xfe,
		(k[4]<<3 | k[5]>>5) & 0xfe,
		(k[5]<<2 | k[6]>>6) & 0xfe,
		k[6] << 1,
	}
}

// challengeResponse encrypts the challenge with the three DES keys taken from the zero-padded
// password hash (§8.5).
func challengeResponse(challenge []byte, ph [16]byte) [NTResponseLen]byte {
	var z [21]byte
	copy(z[:], ph[:])
	var out [NTResponseLen]byte
	for i := range 3 {
		c, _ := des.NewCipher(desKey(z[7*i : 7*i+7]))
		c.Encrypt(out[8*i:], challenge)
	}
	return out
}

// GenerateNTResponse computes the NT-Response (§8.1).
func GenerateNTResponse(authChallenge, peerChallenge []byte, user string, password []byte) [NTResponseLen]byte {
	return challengeResponse(challengeHash(peerChallenge, authChallenge, user), NTPasswordHash(password))
}

// Magic constants of §8.7 and RFC 3079 §3.4.
var (
	magic1 = []byte("Magic server to client signing constant")
	magic2 = []byte("Pad to make it do more than one iteration")

	mppeMagic1 = []byte("This is the MPPE Master Key")
	mppeMagic2 = []byte("On the client side, this is the send key; on the server side, it is the receive key.")
	mppeMagic3 = []byte("On the client side, this is the receive key; on the server side, it is the send key.")
)

// AuthenticatorResponse computes the "S=<40 hex digits>" the server returns to prove it knows the
// password (§8.7).
func AuthenticatorResponse(authChallenge, peerChallenge []byte, user string, password []byte, nt [NTResponseLen]byte) string {
	hh := HashNTPasswordHash(NTPasswordHash(password))
	h := sha1.New()
	h.Write(hh[:])
	h.Write(nt[:])
	h.Write(magic1)
	digest := h.Sum(nil)
	h = sha1.New()
	h.Write(digest)
	h.Write(challengeHash(peerChallenge, authChallenge, user))
	h.Write(magic2)
	return "S=" + strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

// CheckAuthenticatorResponse compares a received "S=..." with the expected one in constant time.
func CheckAuthenticatorResponse(got, want string) bool {
	if len(got) < len(want) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.ToUpper(got[:len(want)])), []byte(want)) == 1
}

// MasterKey is GetMasterKey of RFC 3079 §3.4.
func MasterKey(password []byte, nt [NTResponseLen]byte) [KeyLen]byte {
	hh := HashNTPasswordHash(NTPasswordHash(password))
	h := sha1.New()
	h.Write(hh[:])
	h.Write(nt[:])
	h.Write(mppeMagic1)
	var out [KeyLen]byte
	copy(out[:], h.Sum(nil))
	return out
}

// AsymmetricStartKey is GetAsymmetricStartKey of RFC 3079 §3.4 for 128-bit keys.
func AsymmetricStartKey(master [KeyLen]byte, send, server bool) [KeyLen]byte {
	// Client send and server receive use Magic2; client receive and server send Magic3.
	s := mppeMagic2
	if send == server {
		s = mppeMagic3
	}
	var pad1, pad2 [40]byte
	for i := range pad2 {
		pad2[i] = 0xf2
	}
	h := sha1.New()
	h.Write(master[:])
	h.Write(pad1[:])
	h.Write(s)
	h.Write(pad2[:])
	var out [KeyLen]byte
	copy(out[:], h.Sum(nil))
	return out
}

// MSK is the EAP-MSCHAPv2 master session key as both ends compute it: the client's send key, then
// its receive key (the server's receive, then send key), 32 octets. As an HMAC key it equals the
// 64-octet form padded with zeros that some implementations use.
func MSK(password []byte, nt [NTResponseLen]byte) []byte {
	m := MasterKey(password, nt)
	send := AsymmetricStartKey(m, true, false)
	recv := AsymmetricStartKey(m, false, false)
	return append(send[:], recv[:]...)
}
