package suite

import (
	"crypto/rand"
	"fmt"
	"io"
)

// KeyExchange is one side of one key exchange. It fits both Diffie-Hellman
// groups, where both peers send a public value, and KEMs, where the
// initiator sends an encapsulation key and the responder a ciphertext.
//
// The initiator sends PublicValue and completes with SharedSecret(peer).
// The responder completes with Respond(peer), which validates the
// initiator's KE data and returns what to send back together with the
// shared secret. A KeyExchange serves one role only; the other role's
// method then fails with ErrKeyExchangeRole.
//
// Shared secrets are returned in their IKEv2 form (g^ir of RFC 7296 §2.14):
// MODP values left-padded to the prime length, the ECP x coordinate
// (RFC 5903 §7), the X25519 output (RFC 8031), the ML-KEM shared key.
// The caller wipes them after use.
type KeyExchange interface {
	// Group is the IANA Key Exchange Method ID.
	Group() uint16
	// PublicValue is the Key Exchange Data this side sends: the public
	// value for DH groups; the encapsulation key (initiator) or, after
	// Respond, the ciphertext (responder) for KEMs. The slice must not be
	// modified.
	PublicValue() []byte
	// SharedSecret validates the responder's KE data and returns the shared secret.
	SharedSecret(peer []byte) ([]byte, error)
	// Respond validates the initiator's KE data and returns the responder's
	// KE data and the shared secret.
	Respond(peer []byte) (pub, secret []byte, err error)
	// Zero wipes the private key material this value owns; the value
	// cannot be used afterwards.
	Zero()
}

// NewKeyExchange creates the local side of a key exchange, drawing private
// keys from rand (crypto/rand.Reader when nil).
func NewKeyExchange(group uint16, rand io.Reader) (KeyExchange, error) {
	rand = orDefaultRand(rand)
	switch group {
	case MODP_2048, MODP_3072, MODP_4096:
		return newMODP(group, rand)
	case ECP_256, ECP_384, ECP_521:
		return newECP(group, rand)
	case CURVE25519:
		return newX25519(rand)
	case ML_KEM_512, ML_KEM_768, ML_KEM_1024:
		return newMLKEM(group, rand)
	}
	return nil, fmt.Errorf("%w: %d", ErrUnsupportedGroup, group)
}

// PublicValueSize is the exact Key Exchange Data length the given side
// sends for the group, so a decoder can reject a KE payload before any
// arithmetic.
func PublicValueSize(group uint16, initiator bool) (int, error) {
	switch group {
	case MODP_2048, MODP_3072, MODP_4096:
		return modpGroups[group].size, nil
	case ECP_256:
		return 2 * 32, nil
	case ECP_384:
		return 2 * 48, nil
	case ECP_521:
		return 2 * 66, nil
	case CURVE25519:
		return x25519Size, nil
	case ML_KEM_512, ML_KEM_768, ML_KEM_1024:
		p := mlkemParams(group)
		if initiator {
			return p.encapKeySize, nil
		}
		return p.ciphertextSize, nil
	}
	return 0, fmt.Errorf("%w: %d", ErrUnsupportedGroup, group)
}

// IsKEM reports whether the group is a key encapsulation mechanism, whose
// initiator and responder send different kinds of data.
func IsKEM(group uint16) bool {
	return group == ML_KEM_512 || group == ML_KEM_768 || group == ML_KEM_1024
}

func orDefaultRand(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// role tracks which side a KeyExchange has acted as.
type role uint8

const (
	roleUnset role = iota
	roleInitiator
	roleResponder
)

// claim fixes the role on first use and refuses the other one afterwards.
func (r *role) claim(want role) error {
	if *r == roleUnset {
		*r = want
		return nil
	}
	if *r != want {
		return ErrKeyExchangeRole
	}
	return nil
}
