package ppp

import (
	"crypto/des"
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"unicode/utf16"

	//lint:ignore SA1019 MS-CHAPv2 is defined over MD4 (RFC 2759 §8.3); nothing else uses it
	"golang.org/x/crypto/md4"
)

// Auth is an authentication protocol.
type Auth uint8

// Authentication protocols, in the order goipsec prefers them by default.
const (
	AuthNone Auth = iota
	AuthMSCHAPv2
	AuthCHAPMD5
	AuthPAP
)

func (a Auth) String() string {
	switch a {
	case AuthMSCHAPv2:
		return "mschapv2"
	case AuthCHAPMD5:
		return "chap"
	case AuthPAP:
		return "pap"
	}
	return "none"
}

// ParseAuth reads "pap", "chap" (CHAP-MD5) or "mschapv2".
func ParseAuth(s string) (Auth, bool) {
	switch s {
	case "pap":
		return AuthPAP, true
	case "chap", "chap-md5":
		return AuthCHAPMD5, true
	case "mschapv2", "ms-chapv2", "mschap-v2":
		return AuthMSCHAPv2, true
	}
	return AuthNone, false
}

// lcpOption is the Authentication-Protocol option's data (RFC 1661 §6.2, RFC 1994 §3).
func (a Auth) lcpOption() []byte {
	switch a {
	case AuthPAP:
		return []byte{0xc0, 0x23}
	case AuthCHAPMD5:
		return []byte{0xc2, 0x23, chapMD5}
	case AuthMSCHAPv2:
		return []byte{0xc2, 0x23, chapMSv2}
	}
	return nil
}

func authFromOption(d []byte) Auth {
	switch {
	case len(d) == 2 && binary.BigEndian.Uint16(d) == ProtoPAP:
		return AuthPAP
	case len(d) == 3 && binary.BigEndian.Uint16(d) == ProtoCHAP && d[2] == chapMD5:
		return AuthCHAPMD5
	case len(d) == 3 && binary.BigEndian.Uint16(d) == ProtoCHAP && d[2] == chapMSv2:
		return AuthMSCHAPv2
	}
	return AuthNone
}

// chapMD5Response is MD5(Identifier | secret | Challenge) (RFC 1994 §4.1).
func chapMD5Response(id byte, secret, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	return h.Sum(nil)
}

// --- MS-CHAPv2 (RFC 2759 §8) ---

// ntPasswordHash is MD4(UTF-16LE(password)) (RFC 2759 §8.3).
func ntPasswordHash(password string) []byte {
	u := utf16.Encode([]rune(password))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	h := md4.New()
	h.Write(b)
	clear(b)
	return h.Sum(nil)
}

// challengeHash is the first 8 bytes of SHA1(PeerChallenge | AuthenticatorChallenge | UserName)
// (RFC 2759 §8.2). The user name is without any domain ("DOMAIN\user" → "user").
func challengeHash(peerChallenge, authChallenge []byte, user string) []byte {
	h := sha1.New()
	h.Write(peerChallenge)
	h.Write(authChallenge)
	h.Write([]byte(stripDomain(user)))
	return h.Sum(nil)[:8]
}

func stripDomain(user string) string {
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		return user[i+1:]
	}
	return user
}

// challengeResponse DES-encrypts the 8-byte challenge with three 7-byte slices of the zero-padded
// 21-byte password hash (RFC 2759 §8.5).
func challengeResponse(challenge, passwordHash []byte) []byte {
	z := make([]byte, 21)
	copy(z, passwordHash)
	out := make([]byte, 24)
	for i := range 3 {
		c, _ := des.NewCipher(desKey(z[7*i : 7*i+7]))
		c.Encrypt(out[8*i:], challenge)
	}
	clear(z)
	return out
}

// desKey spreads 56 key bits over 8 bytes, leaving the parity bits (RFC 2759 §8.6).
func desKey(k []byte) []byte {
	out := make([]byte, 8)
	out[0] = k[0]
	out[1] = k[0]<<7 | k[1]>>1
	out[2] = k[1]<<6 | k[2]>>2
	out[3] = k[2]<<5 | k[3]>>3
	out[4] = k[3]<<4 | k[4]>>4
	out[5] = k[4]<<3 | k[5]>>5
	out[6] = k[5]<<2 | k[6]>>6
	out[7] = k[6] << 1
	return out
}

// generateNTResponse is RFC 2759 §8.1.
func generateNTResponse(authChallenge, peerChallenge []byte, user, password string) []byte {
	ph := ntPasswordHash(password)
	defer clear(ph)
	return challengeResponse(challengeHash(peerChallenge, authChallenge, user), ph)
}

// Magic constants of RFC 2759 §8.7.
var (
	magic1 = []byte("Magic server to client signing constant")
	magic2 = []byte("Pad to make it do more than one iteration")
)

// authenticatorResponse is RFC 2759 §8.7: "S=" and 40 upper-case hex digits.
func authenticatorResponse(password string, ntResponse, peerChallenge, authChallenge []byte, user string) string {
	ph := ntPasswordHash(password)
	hh := md4.New()
	hh.Write(ph)
	phh := hh.Sum(nil)
	clear(ph)
	h := sha1.New()
	h.Write(phh)
	h.Write(ntResponse)
	h.Write(magic1)
	digest := h.Sum(nil)
	h = sha1.New()
	h.Write(digest)
	h.Write(challengeHash(peerChallenge, authChallenge, user))
	h.Write(magic2)
	return "S=" + strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

func constantEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
