package suite

import (
	"crypto/ecdh"
	"crypto/subtle"
	"fmt"
	"io"
)

// sec1Uncompressed is the SEC 1 point tag crypto/ecdh expects and IKEv2
// leaves off the wire (RFC 5903 §7).
const sec1Uncompressed = 0x04

// x25519Size is the length of an X25519 public value and shared secret
// (RFC 8031, RFC 7748 §5).
const x25519Size = 32

type ecpParams struct {
	curve     ecdh.Curve
	fieldSize int // bytes per coordinate
	// topMask clears the bits of the first scalar byte above the order's
	// bit length, so rejection sampling rarely has to retry (P-521).
	topMask byte
}

func ecpParamsFor(group uint16) ecpParams {
	switch group {
	case ECP_256:
		return ecpParams{curve: ecdh.P256(), fieldSize: 32, topMask: 0xff}
	case ECP_384:
		return ecpParams{curve: ecdh.P384(), fieldSize: 48, topMask: 0xff}
	default: // ECP_521
		return ecpParams{curve: ecdh.P521(), fieldSize: 66, topMask: 0x01}
	}
}

// ecdhKE is one side of an ECP (RFC 5903) or Curve25519 (RFC 8031) exchange.
type ecdhKE struct {
	group  uint16
	params ecpParams
	priv   *ecdh.PrivateKey
	pub    []byte
	role   role
}

// maxScalarTries bounds rejection sampling; a reader that keeps producing
// out-of-range scalars is broken, not unlucky (P-256 rejects one in 2^32).
const maxScalarTries = 64

func newECP(group uint16, rand io.Reader) (*ecdhKE, error) {
	params := ecpParamsFor(group)
	// crypto/ecdh ignores custom readers in GenerateKey, so draw the scalar
	// here and let NewPrivateKey reject 0 and values >= the order.
	d := make([]byte, params.fieldSize)
	defer clear(d)
	for try := 0; ; try++ {
		if try == maxScalarTries {
			return nil, fmt.Errorf("suite: no valid ECP scalar after %d draws", maxScalarTries)
		}
		if _, err := io.ReadFull(rand, d); err != nil {
			return nil, fmt.Errorf("suite: reading ECP private key: %w", err)
		}
		d[0] &= params.topMask
		priv, err := params.curve.NewPrivateKey(d)
		if err == nil {
			return newECPFromKey(group, params, priv), nil
		}
	}
}

func newECPFromKey(group uint16, params ecpParams, priv *ecdh.PrivateKey) *ecdhKE {
	// Drop the SEC 1 tag: the KE payload carries x | y (RFC 5903 §7).
	pub := priv.PublicKey().Bytes()[1:]
	return &ecdhKE{group: group, params: params, priv: priv, pub: pub}
}

func newX25519(rand io.Reader) (*ecdhKE, error) {
	d := make([]byte, x25519Size)
	defer clear(d)
	if _, err := io.ReadFull(rand, d); err != nil {
		return nil, fmt.Errorf("suite: reading X25519 private key: %w", err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(d)
	if err != nil {
		return nil, fmt.Errorf("suite: X25519 private key: %w", err)
	}
	return newX25519FromKey(priv), nil
}

func newX25519FromKey(priv *ecdh.PrivateKey) *ecdhKE {
	return &ecdhKE{group: CURVE25519, params: ecpParams{curve: ecdh.X25519()}, priv: priv, pub: priv.PublicKey().Bytes()}
}

func (k *ecdhKE) Group() uint16       { return k.group }
func (k *ecdhKE) PublicValue() []byte { return k.pub }

func (k *ecdhKE) SharedSecret(peer []byte) ([]byte, error) {
	if err := k.role.claim(roleInitiator); err != nil {
		return nil, err
	}
	return k.compute(peer)
}

func (k *ecdhKE) Respond(peer []byte) ([]byte, []byte, error) {
	if err := k.role.claim(roleResponder); err != nil {
		return nil, nil, err
	}
	secret, err := k.compute(peer)
	if err != nil {
		return nil, nil, err
	}
	return k.pub, secret, nil
}

func (k *ecdhKE) compute(peer []byte) ([]byte, error) {
	if k.priv == nil {
		return nil, ErrZeroed
	}
	peerKey, err := k.parsePeer(peer)
	if err != nil {
		return nil, err
	}
	secret, err := k.priv.ECDH(peerKey)
	if err != nil {
		// crypto/ecdh refuses an X25519 result of all zeros (low-order peer point).
		return nil, fmt.Errorf("%w: %v", ErrInvalidPublicValue, err)
	}
	if k.group == CURVE25519 && subtle.ConstantTimeCompare(secret, make([]byte, x25519Size)) == 1 {
		// RFC 8031 (recipient tests) requires refusing the all-zero value; checked here
		// as well so the rule does not rest on one library's behaviour.
		return nil, fmt.Errorf("%w: X25519 shared secret is all zeros", ErrInvalidPublicValue)
	}
	return secret, nil
}

// parsePeer checks the exact wire length and lets crypto/ecdh check that
// the point is on the curve (and, for NIST curves, that coordinates are
// reduced and the point is not the identity).
func (k *ecdhKE) parsePeer(peer []byte) (*ecdh.PublicKey, error) {
	if k.group == CURVE25519 {
		if len(peer) != x25519Size {
			return nil, fmt.Errorf("%w: X25519 value of %d bytes, want %d", ErrInvalidPublicValue, len(peer), x25519Size)
		}
		pk, err := k.params.curve.NewPublicKey(peer)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPublicValue, err)
		}
		return pk, nil
	}
	want := 2 * k.params.fieldSize
	if len(peer) != want {
		return nil, fmt.Errorf("%w: ECP value of %d bytes, want %d", ErrInvalidPublicValue, len(peer), want)
	}
	var buf [1 + 2*66]byte
	sec1 := append(append(buf[:0], sec1Uncompressed), peer...)
	pk, err := k.params.curve.NewPublicKey(sec1)
	if err != nil {
		return nil, fmt.Errorf("%w: point not on curve", ErrInvalidPublicValue)
	}
	return pk, nil
}

func (k *ecdhKE) Zero() { k.priv = nil }
