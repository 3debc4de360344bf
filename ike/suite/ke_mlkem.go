package suite

import (
	"crypto/mlkem"
	"fmt"
	"io"

	"github.com/cloudflare/circl/kem/mlkem/mlkem512"
)

type mlkemSizes struct {
	encapKeySize   int
	ciphertextSize int
}

// mlkemParams gives the FIPS 203 sizes of the supported parameter sets.
func mlkemParams(group uint16) mlkemSizes {
	switch group {
	case ML_KEM_512:
		return mlkemSizes{encapKeySize: mlkem512.PublicKeySize, ciphertextSize: mlkem512.CiphertextSize}
	case ML_KEM_1024:
		return mlkemSizes{encapKeySize: mlkem.EncapsulationKeySize1024, ciphertextSize: mlkem.CiphertextSize1024}
	}
	return mlkemSizes{encapKeySize: mlkem.EncapsulationKeySize768, ciphertextSize: mlkem.CiphertextSize768}
}

// mlkemKE is one side of an ML-KEM exchange (draft-ietf-ipsecme-ikev2-mlkem):
// the initiator sends its encapsulation key, the responder encapsulates to
// it and sends the ciphertext. ML-KEM-768 and ML-KEM-1024 come from Go's
// crypto/mlkem; ML-KEM-512, which Go does not implement, from Cloudflare's
// github.com/cloudflare/circl (kem/mlkem/mlkem512, FIPS 203 final).
type mlkemKE struct {
	group uint16
	sizes mlkemSizes
	seed  []byte // FIPS 203 (d, z) seed of the decapsulation key
	dk512 *mlkem512.PrivateKey
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
	switch group {
	case ML_KEM_512:
		// circl's seed is d || z too (64 bytes, mlkem512.KeySeedSize), the
		// input of FIPS 203 ML-KEM.KeyGen_internal, as for crypto/mlkem.
		var ek *mlkem512.PublicKey
		ek, k.dk512 = mlkem512.NewKeyFromSeed(seed)
		k.pub = make([]byte, mlkem512.PublicKeySize)
		ek.Pack(k.pub)
	case ML_KEM_1024:
		if k.dk1k, err = mlkem.NewDecapsulationKey1024(seed); err == nil {
			k.pub = k.dk1k.EncapsulationKey().Bytes()
		}
	default:
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
	switch k.group {
	case ML_KEM_512:
		// The length is checked above: DecapsulateTo panics on any other.
		secret = make([]byte, mlkem512.SharedKeySize)
		k.dk512.DecapsulateTo(secret, peer)
	case ML_KEM_1024:
		secret, err = k.dk1k.Decapsulate(peer)
	default:
		secret, err = k.dk768.Decapsulate(peer)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPublicValue, err)
	}
	return secret, nil
}

// Respond checks the initiator's encapsulation key (FIPS 203 §7.2 type and
// modulus checks: the length here, the modulus check by crypto/mlkem's
// NewEncapsulationKey* and by circl's PublicKey.Unpack, which re-encodes the
// decoded coefficients and refuses a key that differs, i.e. one with a
// coefficient ≥ q) and encapsulates to it. The responder's own decapsulation
// key is never used.
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
	switch k.group {
	case ML_KEM_512:
		var ek mlkem512.PublicKey
		if err := ek.Unpack(peer); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalidPublicValue, err)
		}
		secret, ct = make([]byte, mlkem512.SharedKeySize), make([]byte, mlkem512.CiphertextSize)
		// A nil seed: circl draws the FIPS 203 randomness m from crypto/rand.
		ek.EncapsulateTo(ct, secret, nil)
	case ML_KEM_1024:
		ek, err := mlkem.NewEncapsulationKey1024(peer)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalidPublicValue, err)
		}
		secret, ct = ek.Encapsulate()
	default:
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

// Zero wipes the seed and drops the expanded keys, which neither
// crypto/mlkem nor circl lets a caller wipe.
func (k *mlkemKE) Zero() {
	clear(k.seed)
	k.seed, k.dk512, k.dk768, k.dk1k = nil, nil, nil, nil
}
