package ppp

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"

	"github.com/goipsec/goipsec/ike/eap/mschapv2"
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

// --- MS-CHAPv2 (RFC 2759 §8): the computations are ike/eap/mschapv2's (EAP-MSCHAPv2 runs the
// same ones) ---

// generateNTResponse is RFC 2759 §8.1 (the user name without a domain enters the hash).
func generateNTResponse(authChallenge, peerChallenge []byte, user, password string) []byte {
	nt := mschapv2.GenerateNTResponse(authChallenge, peerChallenge, user, []byte(password))
	return nt[:]
}

// authenticatorResponse is RFC 2759 §8.7: "S=" and 40 upper-case hex digits.
func authenticatorResponse(password string, ntResponse, peerChallenge, authChallenge []byte, user string) string {
	var nt [mschapv2.NTResponseLen]byte
	copy(nt[:], ntResponse)
	return mschapv2.AuthenticatorResponse(authChallenge, peerChallenge, user, []byte(password), nt)
}

func constantEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
