package ikev1

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/goipsec/goipsec/ike/suite"
)

// Phase 1 cryptography (RFC 2409 §5 and Appendix B). Everything here is a pure function of its
// inputs; keys live in the SA and are wiped with it.

// keys are an ISAKMP SA's keys.
type keys struct {
	prf                       suite.PRF
	skeyid                    []byte
	skeyidD, skeyidA, skeyidE []byte
	encKey                    []byte
	enc                       encAlg
}

func (k *keys) zero() {
	if k == nil {
		return
	}
	for _, b := range [][]byte{k.skeyid, k.skeyidD, k.skeyidA, k.skeyidE, k.encKey} {
		clear(b)
	}
}

// encAlg is a phase 1 (or ISAKMP message) cipher: AES-CBC, or 3DES-CBC with the weak opt-in.
type encAlg struct {
	id      uint16 // IKEv1 encryption attribute value (RFC 2409 Appendix A)
	keyLen  int    // bytes
	block   int
	newFunc func(key []byte) (cipher.Block, error)
}

// IKEv1 phase 1 encryption algorithm values (RFC 2409 Appendix A, RFC 3602 §5 for AES).
const (
	p1EncDES  = 1
	p1Enc3DES = 5
	p1EncAES  = 7
)

func newEncAlg(id uint16, keyBits int) (encAlg, error) {
	switch id {
	case p1EncAES:
		if keyBits != 128 && keyBits != 192 && keyBits != 256 {
			return encAlg{}, fmt.Errorf("AES key length %d", keyBits)
		}
		return encAlg{id: id, keyLen: keyBits / 8, block: aes.BlockSize, newFunc: aes.NewCipher}, nil
	case p1Enc3DES:
		return encAlg{id: id, keyLen: 24, block: des.BlockSize, newFunc: des.NewTripleDESCipher}, nil
	}
	return encAlg{}, fmt.Errorf("encryption algorithm %d", id)
}

// skeyidPSK is SKEYID for preshared keys: prf(pre-shared-key, Ni_b | Nr_b) (RFC 2409 §5).
func skeyidPSK(p suite.PRF, psk, ni, nr []byte) []byte { return p.Compute(psk, ni, nr) }

// skeyidSig is SKEYID for signatures: prf(Ni_b | Nr_b, g^xy) (RFC 2409 §5).
func skeyidSig(p suite.PRF, ni, nr, gxy []byte) []byte {
	key := append(append([]byte(nil), ni...), nr...)
	defer clear(key)
	return p.Compute(key, gxy)
}

// deriveKeys computes SKEYID_d, SKEYID_a, SKEYID_e and the encryption key from SKEYID (RFC 2409
// §5):
//
//	SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//	SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//	SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
//
// and, when SKEYID_e is shorter than the cipher's key, the expansion of Appendix B: Ka = K1 | K2
// | ..., K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1).
func deriveKeys(p suite.PRF, enc encAlg, skeyid, gxy []byte, ckyI, ckyR uint64) *keys {
	var cky [16]byte
	binary.BigEndian.PutUint64(cky[:8], ckyI)
	binary.BigEndian.PutUint64(cky[8:], ckyR)
	k := &keys{prf: p, skeyid: skeyid, enc: enc}
	k.skeyidD = p.Compute(skeyid, gxy, cky[:], []byte{0})
	k.skeyidA = p.Compute(skeyid, k.skeyidD, gxy, cky[:], []byte{1})
	k.skeyidE = p.Compute(skeyid, k.skeyidA, gxy, cky[:], []byte{2})
	if len(k.skeyidE) >= enc.keyLen {
		k.encKey = append([]byte(nil), k.skeyidE[:enc.keyLen]...)
		return k
	}
	ka := make([]byte, 0, enc.keyLen+p.Size())
	prev := []byte{0}
	for len(ka) < enc.keyLen {
		prev = p.Compute(k.skeyidE, prev)
		ka = append(ka, prev...)
	}
	clear(ka[enc.keyLen:])
	k.encKey = ka[:enc.keyLen:enc.keyLen]
	return k
}

// phase1IV is the first IV of phase 1: hash(g^xi | g^xr), cut to the block size (RFC 2409
// Appendix B).
func phase1IV(p suite.PRF, enc encAlg, gxi, gxr []byte) []byte {
	h := p.NewHash()
	h.Write(gxi)
	h.Write(gxr)
	return h.Sum(nil)[:enc.block]
}

// exchangeIV is the first IV of a phase 2 or informational exchange: hash(last phase 1 CBC block
// | M-ID), cut to the block size (RFC 2409 Appendix B).
func exchangeIV(p suite.PRF, enc encAlg, lastP1 []byte, msgID uint32) []byte {
	h := p.NewHash()
	h.Write(lastP1)
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], msgID)
	h.Write(id[:])
	return h.Sum(nil)[:enc.block]
}

var errCiphertext = errors.New("encrypted body is not a whole number of cipher blocks")

// encrypt CBC-encrypts a payload chain with iv, padding it with zeros to the block size (RFC 2408
// §3.1: the receiver finds the end of the chain by its last Next Payload). It returns the
// ciphertext; its last block is the next IV.
func encrypt(enc encAlg, key, iv, plain []byte) ([]byte, error) {
	c, err := enc.newFunc(key)
	if err != nil {
		return nil, err
	}
	n := len(plain)
	if r := n % enc.block; r != 0 || n == 0 {
		n += enc.block - r
	}
	out := make([]byte, n)
	copy(out, plain)
	cipher.NewCBCEncrypter(c, iv).CryptBlocks(out, out)
	return out, nil
}

// decrypt CBC-decrypts an encrypted body with iv. The last ciphertext block is the next IV; the
// caller takes it before the buffer is reused.
func decrypt(enc encAlg, key, iv, ct []byte) ([]byte, error) {
	if len(ct) == 0 || len(ct)%enc.block != 0 {
		return nil, errCiphertext
	}
	c, err := enc.newFunc(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(c, iv).CryptBlocks(out, ct)
	return out, nil
}

// lastBlock returns a copy of the last cipher block of ct.
func lastBlock(enc encAlg, ct []byte) []byte {
	return append([]byte(nil), ct[len(ct)-enc.block:]...)
}

// keymat computes the keying material of one direction of a phase 2 SA (RFC 2409 §5.5):
//
//	KEYMAT = K1 | K2 | K3 | ...
//	K1 = prf(SKEYID_d, [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
//	Kn = prf(SKEYID_d, Kn-1 | [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
//
// spi is the SPI the SA's receiver chose.
func keymat(p suite.PRF, skeyidD, gqm []byte, protocol uint8, spi uint32, ni, nr []byte, n int) []byte {
	var sp [4]byte
	binary.BigEndian.PutUint32(sp[:], spi)
	out := make([]byte, 0, n+p.Size())
	var prev []byte
	for len(out) < n {
		h := p.HMAC(skeyidD)
		h.Write(prev)
		if gqm != nil {
			h.Write(gqm)
		}
		h.Write([]byte{protocol})
		h.Write(sp[:])
		h.Write(ni)
		h.Write(nr)
		prev = h.Sum(nil)
		out = append(out, prev...)
	}
	clear(out[n:])
	return out[:n:n]
}

// natdHash is a NAT-D hash: HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash (RFC 3947
// §3.2).
func natdHash(p suite.PRF, ckyI, ckyR uint64, ip []byte, port uint16) []byte {
	h := p.NewHash()
	var b [18]byte
	binary.BigEndian.PutUint64(b[:8], ckyI)
	binary.BigEndian.PutUint64(b[8:16], ckyR)
	h.Write(b[:16])
	h.Write(ip)
	binary.BigEndian.PutUint16(b[16:], port)
	h.Write(b[16:])
	return h.Sum(nil)
}
