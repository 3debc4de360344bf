package suite

import (
	"crypto/mlkem"
	"fmt"
	"io"
)

type mlkemSizes struct {
	encapKeySize   int
	ciphertextSize int
}

// mlkemParams gives the FIPS 203 sizes of the supported parameter sets.
func mlkemParams(group uint16) mlkemSizes {
	if group == ML_KEM_1024 {
		return mlkemSizes{encapKeySize: mlkem.EncapsulationKeySize1024, ciphertextSize: mlkem.CiphertextSize1024}
	}
	return mlkemSizes{encapKeySize: mlkem.EncapsulationKeySize768, ciphertextSize: mlkem.CiphertextSize768}
}

// mlkemKE is one side of an ML-KEM exchange (draft-ietf-ipsecme-ikev2-mlkem):
// the initiator sends its encapsulation key, the responder encapsulates to
// it and sends the ciphertext.
type mlkemKE struct {
	group uint16
	sizes mlkemSizes
	seed  []byte // FIPS 203 (d, z) seed of the decapsulation key
	dk768 *mlkem.DecapsulationKey768
	dk1k  *mlkem.DecapsulationKey1024
	pub   []byte
	role  role
}

func newMLKEM(group uint16, rand io.Reader) (*mlkemKE, error) {
	seed := make([]byte, mlkem.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("suite: reading ML-KEM seed: %w", err)
	}
	k := &mlkemKE{group: group, sizes: mlkemParams(group), seed: seed}
	var err error
	if group == ML_KEM_1024 {
		if k.dk1k, err = mlkem.NewDecapsulationKey1024(seed); err == nil {
			k.pub = k.dk1k.EncapsulationKey().Bytes()
		}
	} else {
		if k.dk768, err = mlkem.NewDecapsulationKey768(seed); err == nil {
			k.pub = k.dk768.EncapsulationKey().Bytes()
		}
	}
	if err != nil {
		clear(seed)
		return nil, fmt.Errorf("suite: ML-KEM key generation: %w", err)
	}
	return k, nil
}

func (k *mlkemKE) Group() uint16       { return k.group }
func (k *mlkemKE) PublicValue() []byte { return k.pub }

// SharedSecret decapsulates the responder's ciphertext. ML-KEM uses
// implicit rejection: a well-formed but forged ciphertext yields an
// unrelated secret, and the exchange then fails at AUTH.
func (k *mlkemKE) SharedSecret(peer []byte) ([]byte, error) {
	if err := k.role.claim(roleInitiator); err != nil {
		return nil, err
	}
	if k.seed == nil {
		return nil, ErrZeroed
	}
	if len(peer) != k.sizes.ciphertextSize {
		return nil, fmt.Errorf("%w: ML-KEM ciphertext of %d bytes, want %d", ErrInvalidPublicValue, len(peer), k.sizes.ciphertextSize)
	}
	var secret []byte
	var err error
	if k.group == ML_KEM_1024 {
		secret, err = k.dk1k.Decapsulate(peer)
	} else {
		secret, err = k.dk768.Decapsulate(peer)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPublicValue, err)
	}
	return secret, nil
}

// Respond checks the initiator's encapsulation key (FIPS 203 §7.2 type and
// modulus checks, done by crypto/mlkem) and encapsulates to it. The
// responder's own decapsulation key is never used.
func (k *mlkemKE) Respond(peer []byte) ([]byte, []byte, error) {
	if err := k.role.claim(roleResponder); err != nil {
		return nil, nil, err
	}
	if k.seed == nil {
		return nil, nil, ErrZeroed
	}
	if len(peer) != k.sizes.encapKeySize {
		return nil, nil, fmt.Errorf("%w: ML-KEM encapsulation key of %d bytes, want %d", ErrInvalidPublicValue, len(peer), k.sizes.encapKeySize)
	}
	var secret, ct []byte
	if k.group == ML_KEM_1024 {
		ek, err := mlkem.NewEncapsulationKey1024(peer)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalidPublicValue, err)
		}
		secret, ct = ek.Encapsulate()
	} else {
		ek, err := mlkem.NewEncapsulationKey768(peer)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalidPublicValue, err)
		}
		secret, ct = ek.Encapsulate()
	}
	// From now on this side sends the ciphertext.
	k.pub = ct
	return ct, secret, nil
}

func (k *mlkemKE) Zero() {
	clear(k.seed)
	k.seed, k.dk768, k.dk1k = nil, nil, nil
}
