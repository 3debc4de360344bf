package suite

import (
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// modpGroup is one of the RFC 3526 MODP groups. All use generator 2 and a
// safe prime p = 2q + 1.
type modpGroup struct {
	prime *big.Int
	size  int // prime length in bytes = public value length
	// expSize is the private exponent length in bytes: twice the upper
	// strength estimate of RFC 3526 §8, rounded up to whole bytes.
	expSize int
}

// RFC 3526 primes, transcribed from §3 (2048-bit, group 14), §4 (3072-bit,
// group 15) and §5 (4096-bit, group 16). TestMODPPrimes recomputes each from
// the formula the RFC gives with them and checks p and (p-1)/2 are prime.
const (
	modp2048Hex = "" +
		"FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1" +
		"29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD" +
		"EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245" +
		"E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED" +
		"EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D" +
		"C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F" +
		"83655D23 DCA3AD96 1C62F356 208552BB 9ED52907 7096966D" +
		"670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B" +
		"E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9" +
		"DE2BCBF6 95581718 3995497C EA956AE5 15D22618 98FA0510" +
		"15728E5A 8AACAA68 FFFFFFFF FFFFFFFF"
	modp3072Hex = "" +
		"FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1" +
		"29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD" +
		"EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245" +
		"E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED" +
		"EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D" +
		"C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F" +
		"83655D23 DCA3AD96 1C62F356 208552BB 9ED52907 7096966D" +
		"670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B" +
		"E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9" +
		"DE2BCBF6 95581718 3995497C EA956AE5 15D22618 98FA0510" +
		"15728E5A 8AAAC42D AD33170D 04507A33 A85521AB DF1CBA64" +
		"ECFB8504 58DBEF0A 8AEA7157 5D060C7D B3970F85 A6E1E4C7" +
		"ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B" +
		"F12FFA06 D98A0864 D8760273 3EC86A64 521F2B18 177B200C" +
		"BBE11757 7A615D6C 770988C0 BAD946E2 08E24FA0 74E5AB31" +
		"43DB5BFC E0FD108E 4B82D120 A93AD2CA FFFFFFFF FFFFFFFF"
	modp4096Hex = "" +
		"FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1" +
		"29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD" +
		"EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245" +
		"E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED" +
		"EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D" +
		"C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F" +
		"83655D23 DCA3AD96 1C62F356 208552BB 9ED52907 7096966D" +
		"670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B" +
		"E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9" +
		"DE2BCBF6 95581718 3995497C EA956AE5 15D22618 98FA0510" +
		"15728E5A 8AAAC42D AD33170D 04507A33 A85521AB DF1CBA64" +
		"ECFB8504 58DBEF0A 8AEA7157 5D060C7D B3970F85 A6E1E4C7" +
		"ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B" +
		"F12FFA06 D98A0864 D8760273 3EC86A64 521F2B18 177B200C" +
		"BBE11757 7A615D6C 770988C0 BAD946E2 08E24FA0 74E5AB31" +
		"43DB5BFC E0FD108E 4B82D120 A9210801 1A723C12 A787E6D7" +
		"88719A10 BDBA5B26 99C32718 6AF4E23C 1A946834 B6150BDA" +
		"2583E9CA 2AD44CE8 DBBBC2DB 04DE8EF9 2E8EFC14 1FBECAA6" +
		"287C5947 4E6BC05D 99B2964F A090C3A2 233BA186 515BE7ED" +
		"1F612970 CEE2D7AF B81BDD76 2170481C D0069127 D5B05AA9" +
		"93B4EA98 8D8FDDC1 86FFB7DC 90A6C08F 4DF435C9 34063199" +
		"FFFFFFFF FFFFFFFF"
)

// modpGenerator is g = 2 for every RFC 3526 group.
const modpGenerator = 2

// modpGroups is a constant table built once at package initialisation.
var modpGroups = map[uint16]modpGroup{
	MODP_2048: mustMODP(modp2048Hex, 2048, 40), // strength up to 160 bits -> 320-bit exponent
	MODP_3072: mustMODP(modp3072Hex, 3072, 53), // up to 210 bits -> 420-bit exponent
	MODP_4096: mustMODP(modp4096Hex, 4096, 60), // up to 240 bits -> 480-bit exponent
}

func mustMODP(spaced string, bits, expSize int) modpGroup {
	b, err := hex.DecodeString(strings.ReplaceAll(spaced, " ", ""))
	if err != nil || len(b)*8 != bits {
		panic("suite: bad MODP prime constant")
	}
	return modpGroup{prime: new(big.Int).SetBytes(b), size: len(b), expSize: expSize}
}

type modpKE struct {
	group  uint16
	params modpGroup
	x      *big.Int // private exponent
	pub    []byte
	role   role
}

func newMODP(group uint16, rand io.Reader) (*modpKE, error) {
	return newMODPParams(group, modpGroups[group], rand)
}

func newMODPParams(group uint16, params modpGroup, rand io.Reader) (*modpKE, error) {
	raw := make([]byte, params.expSize)
	defer clear(raw)
	x := new(big.Int)
	// An exponent below 2 would give a public value of 1 or 2, which the
	// peer's range check treats as hostile or which reveals the key.
	for x.BitLen() < 2 {
		if _, err := io.ReadFull(rand, raw); err != nil {
			return nil, fmt.Errorf("suite: reading MODP private key: %w", err)
		}
		x.SetBytes(raw)
	}
	y := new(big.Int).Exp(big.NewInt(modpGenerator), x, params.prime)
	return &modpKE{group: group, params: params, x: x, pub: y.FillBytes(make([]byte, params.size))}, nil
}

func (k *modpKE) Group() uint16       { return k.group }
func (k *modpKE) PublicValue() []byte { return k.pub }

func (k *modpKE) SharedSecret(peer []byte) ([]byte, error) {
	if err := k.role.claim(roleInitiator); err != nil {
		return nil, err
	}
	return k.compute(peer)
}

func (k *modpKE) Respond(peer []byte) ([]byte, []byte, error) {
	if err := k.role.claim(roleResponder); err != nil {
		return nil, nil, err
	}
	secret, err := k.compute(peer)
	if err != nil {
		return nil, nil, err
	}
	return k.pub, secret, nil
}

// compute checks the peer value and returns y^x mod p, left-padded to the
// prime length (RFC 7296 §2.14).
func (k *modpKE) compute(peer []byte) ([]byte, error) {
	if k.x == nil {
		return nil, ErrZeroed
	}
	y, err := checkMODPPublic(k.params, peer)
	if err != nil {
		return nil, err
	}
	z := new(big.Int).Exp(y, k.x, k.params.prime)
	out := z.FillBytes(make([]byte, k.params.size))
	clear(z.Bits())
	return out, nil
}

// checkMODPPublic enforces the exact length and 1 < y < p-1. For a safe
// prime that range check is sufficient (RFC 6989 §2): the only small
// subgroup is {1, p-1}, and the subgroup check y^q = 1 would add a full
// exponentiation without excluding anything an attacker can exploit.
func checkMODPPublic(params modpGroup, peer []byte) (*big.Int, error) {
	if len(peer) != params.size {
		return nil, fmt.Errorf("%w: MODP value of %d bytes, want %d", ErrInvalidPublicValue, len(peer), params.size)
	}
	y := new(big.Int).SetBytes(peer)
	pMinus1 := new(big.Int).Sub(params.prime, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pMinus1) >= 0 {
		return nil, fmt.Errorf("%w: MODP value outside 1 < y < p-1", ErrInvalidPublicValue)
	}
	return y, nil
}

func (k *modpKE) Zero() {
	if k.x != nil {
		clear(k.x.Bits())
		k.x = nil
	}
}
