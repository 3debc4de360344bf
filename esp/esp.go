// Package esp implements the IP Encapsulating Security Payload (RFC 4303) as pure transforms on
// byte slices: Seal builds an ESP packet from a payload, Open authenticates, decrypts and checks
// one. There is no I/O; the data plane owns sockets, SA lookup by SPI, counters and
// tunnel/transport framing around the payload.
//
// Algorithms are the IKEv2 transform IDs (RFC 7296 §3.3.2, IANA "Transform Type 1/3"), AES with
// 128-, 192- or 256-bit keys throughout: the combined modes AES-GCM with a 12- or 16-byte ICV
// (RFC 4106; the standard library refuses GCM tags shorter than 12 bytes, so ENCR_AES_GCM_8 is
// not offered), AES-CCM with an 8-, 12- or 16-byte ICV (RFC 4309), ChaCha20-Poly1305 (RFC 7634)
// and AES-GMAC (ENCR_NULL_AUTH_AES_GMAC, RFC 4543: integrity only, the payload travels in the
// clear); and AES-CBC (RFC 3602), AES-CTR (RFC 3686) and NULL encryption (RFC 2410) with an
// integrity algorithm: HMAC-SHA-256-128, -384-192 or -512-256 (RFC 4868), AES-XCBC-MAC-96 (RFC
// 3566) or AES-CMAC-96 (RFC 4494). Weak algorithms (3DES, HMAC-SHA1-96, ...) are deliberately not
// offered, and ESP without integrity protection cannot be configured.
//
// The ESP framing, padding, extended sequence number handling and trailer checks are written by
// hand here because no maintained Go library implements ESP; the ciphers themselves come from the
// standard library and golang.org/x/crypto.
//
// # Hot path
//
// An SA builds its cipher and HMAC key schedules once. Seal and Open allocate nothing when dst
// has capacity: per-call state (nonce, AAD, HMAC state, CBC mode) comes from a per-SA sync.Pool,
// so any number of workers may Seal and Open on one SA concurrently.
//
// # IVs
//
// AES-GCM and ChaCha20-Poly1305 send the 64-bit sequence number as their 8-byte explicit IV.
// RFC 4106 §3.1 allows a counter and RFC 7634 §2 only demands that an IV never repeat under one
// key; a sequence number never repeats within an SA because NextSeq refuses to wrap (the SA must
// be rekeyed first), and every SA has its own key.
//
// AES-CBC needs an unpredictable IV (RFC 3602 §2.1). Each SA draws a separate random 256-bit key
// at creation and uses the AES encryption of the packet's sequence number under that key as the
// IV: the method NIST SP 800-38A Appendix C describes for generating unpredictable CBC IVs. It is
// unique because sequence numbers are, unpredictable without the IV key, costs one block
// encryption, takes no lock and makes no system call. crypto/rand would also do: it is
// allocation-free and on Linux 6.11+ served from the vDSO (about 50 ns per IV against 25 ns here,
// see BenchmarkIVSource), but on older kernels it costs a getrandom system call per packet.
package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/goipsec/goipsec/internal/aesmac"
	"github.com/goipsec/goipsec/internal/ccm"
	"github.com/goipsec/goipsec/internal/vaesgcm"
	"github.com/goipsec/goipsec/replay"
)

// Encryption is an IKEv2 Transform Type 1 (encryption algorithm) ID.
type Encryption uint16

// Supported encryption transforms.
const (
	// Encr3DES is legacy (64-bit blocks: at most a few GB per key before block collisions,
	// RFC 8221 §5 "MUST NOT"); it exists for IKEv1 peers such as L2TP/IPsec clients, behind an
	// explicit opt-in (weak_algorithms) in the configuration.
	Encr3DES             Encryption = 3  // ENCR_3DES, RFC 2451
	EncrNULL             Encryption = 11 // ENCR_NULL, RFC 2410
	EncrAESCBC           Encryption = 12 // ENCR_AES_CBC, RFC 3602
	EncrAESCTR           Encryption = 13 // ENCR_AES_CTR, RFC 3686
	EncrAESCCM8          Encryption = 14 // ENCR_AES_CCM_8, RFC 4309
	EncrAESCCM12         Encryption = 15 // ENCR_AES_CCM_12, RFC 4309
	EncrAESCCM16         Encryption = 16 // ENCR_AES_CCM_16, RFC 4309
	EncrAESGCM12         Encryption = 19 // ENCR_AES_GCM_12, RFC 4106
	EncrAESGCM16         Encryption = 20 // ENCR_AES_GCM_16, RFC 4106
	EncrNullAESGMAC      Encryption = 21 // ENCR_NULL_AUTH_AES_GMAC, RFC 4543
	EncrChaCha20Poly1305 Encryption = 28 // ENCR_CHACHA20_POLY1305, RFC 7634
)

var encrNames = map[Encryption]string{
	Encr3DES: "ENCR_3DES", EncrNULL: "ENCR_NULL", EncrAESCBC: "ENCR_AES_CBC", EncrAESCTR: "ENCR_AES_CTR",
	EncrAESCCM8: "ENCR_AES_CCM_8", EncrAESCCM12: "ENCR_AES_CCM_12", EncrAESCCM16: "ENCR_AES_CCM_16",
	EncrAESGCM12: "ENCR_AES_GCM_12", EncrAESGCM16: "ENCR_AES_GCM_16",
	EncrNullAESGMAC: "ENCR_NULL_AUTH_AES_GMAC", EncrChaCha20Poly1305: "ENCR_CHACHA20_POLY1305",
}

func (e Encryption) String() string {
	if n, ok := encrNames[e]; ok {
		return n
	}
	return fmt.Sprintf("ENCR(%d)", uint16(e))
}

// IsAEAD reports whether e is a combined mode that protects integrity itself (and so takes no
// integrity algorithm).
func (e Encryption) IsAEAD() bool {
	switch e {
	case EncrAESGCM12, EncrAESGCM16, EncrAESCCM8, EncrAESCCM12, EncrAESCCM16, EncrNullAESGMAC,
		EncrChaCha20Poly1305:
		return true
	}
	return false
}

// Integrity is an IKEv2 Transform Type 3 (integrity algorithm) ID.
type Integrity uint16

// Supported integrity transforms.
const (
	IntegNone Integrity = 0 // NONE: only with an AEAD
	// IntegHMACSHA1_96 is AUTH_HMAC_SHA1_96 (RFC 2404): legacy, only for IKEv1 connections with
	// weak_algorithms = yes (the L2TP/IPsec clients built into Windows offer nothing else).
	IntegHMACSHA1_96      Integrity = 2
	IntegAESXCBC96        Integrity = 5  // AUTH_AES_XCBC_96, RFC 3566
	IntegAESCMAC96        Integrity = 8  // AUTH_AES_CMAC_96, RFC 4494
	IntegHMACSHA2_256_128 Integrity = 12 // AUTH_HMAC_SHA2_256_128, RFC 4868
	IntegHMACSHA2_384_192 Integrity = 13 // AUTH_HMAC_SHA2_384_192, RFC 4868
	IntegHMACSHA2_512_256 Integrity = 14 // AUTH_HMAC_SHA2_512_256, RFC 4868
)

func (i Integrity) String() string {
	switch i {
	case IntegNone:
		return "NONE"
	case IntegHMACSHA1_96:
		return "AUTH_HMAC_SHA1_96"
	case IntegAESXCBC96:
		return "AUTH_AES_XCBC_96"
	case IntegAESCMAC96:
		return "AUTH_AES_CMAC_96"
	case IntegHMACSHA2_256_128:
		return "AUTH_HMAC_SHA2_256_128"
	case IntegHMACSHA2_384_192:
		return "AUTH_HMAC_SHA2_384_192"
	case IntegHMACSHA2_512_256:
		return "AUTH_HMAC_SHA2_512_256"
	}
	return fmt.Sprintf("AUTH(%d)", uint16(i))
}

// Errors returned by NewSA, Seal, NextSeq and Open. Open's drop reasons are distinct so the data
// plane can count them by kind.
var (
	ErrAlgorithm    = errors.New("esp: unsupported algorithm combination")
	ErrKeyLength    = errors.New("esp: wrong key length")
	ErrSeqExhausted = errors.New("esp: sequence number space exhausted, SA must be rekeyed")
	ErrSeq          = errors.New("esp: sequence number out of range for this SA")
	ErrTFCPad       = errors.New("esp: negative TFC padding")
	ErrZeroed       = errors.New("esp: SA has been zeroed")
	ErrOutbound     = errors.New("esp: SA is outbound only (Params.Outbound) and opens no packets")

	ErrTooShort    = errors.New("esp: packet too short")
	ErrMalformed   = errors.New("esp: malformed packet")
	ErrSPIMismatch = errors.New("esp: packet SPI does not belong to this SA")
	ErrReplay      = errors.New("esp: replayed or stale sequence number")
	ErrAuth        = errors.New("esp: integrity check failed")
	ErrPadding     = errors.New("esp: invalid padding")
)

// NextHeaderNone is the "no next header" protocol number (59): a dummy packet (RFC 4303 §2.6)
// that the receiver drops silently.
const NextHeaderNone = 59

// Layout of the ESP header (RFC 4303 §2).
const (
	offSPI    = 0
	offSeq    = 4
	headerLen = 8
	saltLen   = 4  // RFC 4106 §8.1, RFC 7634 §2, RFC 4543 §8.1; RFC 3686 §5.1 calls it the nonce
	ccmSalt   = 3  // RFC 4309 §7.1
	aeadIVLen = 8  // RFC 4106 §3.1, RFC 4309 §3.1, RFC 4543 §3.1, RFC 7634 §2, RFC 3686 §3.1
	aeadICV   = 16 // ENCR_AES_GCM_16, GMAC and Poly1305 tag
	cbcIVLen  = aes.BlockSize
	// trailerLen is Pad Length + Next Header.
	trailerLen = 2
	// aeadAlign is the 4-byte alignment the ESP trailer must end on (RFC 4303 §2.4) when the
	// cipher has no block size of its own.
	aeadAlign = 4
)

// Params configures one direction of an ESP SA.
type Params struct {
	SPI        uint32
	Encryption Encryption
	// EncKey is copied: the AES key (16, 24 or 32 bytes), followed for AES-GCM, AES-GMAC and
	// AES-CTR by a 4-byte salt (the CTR nonce) and for AES-CCM by a 3-byte salt; for
	// ChaCha20-Poly1305 a 32-byte key and a 4-byte salt; for NULL nothing. These are the KEYMAT
	// layouts of RFC 4106 §8.1, RFC 4309 §7.1, RFC 4543 §8.1, RFC 3686 §5.1 and RFC 7634 §2, and
	// of `ip xfrm`.
	EncKey    []byte
	Integrity Integrity
	// IntegKey is copied; 32, 48 or 64 bytes for the three SHA-2 transforms (RFC 4868 §2.1.1),
	// 16 for AES-XCBC-MAC-96 and AES-CMAC-96 (RFC 3566 §2.1, RFC 4494 §2.1).
	IntegKey []byte
	// ESN selects 64-bit extended sequence numbers (RFC 4303 §2.2.1).
	ESN bool
	// ReplayWindow is the inbound anti-replay window in packets: 0 selects 1024, a negative value
	// disables the replay check (RFC 4303 §3.4.3 lets the receiver choose). With ESN the window
	// is still kept, because the high-order bits are estimated from it.
	ReplayWindow int
	// Outbound marks an SA that only seals: it keeps no replay window (which costs about 200
	// bytes per SA, and a gateway holds an outbound SA per tunnel), and Open refuses packets.
	Outbound bool
}

// SA is one direction of an ESP security association. The same type serves outbound (NextSeq,
// Seal) and inbound (Open).
//
// A gateway holds two SAs per tunnel for hundreds of thousands of tunnels, so the SA is kept
// small: lengths in bytes, AEAD state apart from the state of other transforms.
type SA struct {
	spi       uint32
	enc       Encryption
	integ     Integrity
	ivLen     uint8
	icvLen    uint8
	align     uint8
	esn       bool
	checkSeen bool           // replay protection enabled
	outbound  bool           // Params.Outbound: Open refuses
	window    *replay.Window // nil when neither replay check nor ESN needs it

	outSeq replay.Counter // outbound sequence numbers
	keys   atomic.Pointer[saKeys]
	// keysMem is where keys points while the SA lives: part of the SA's own allocation, one
	// object less per SA for the garbage collector of a gateway holding 100,000 of them.
	keysMem saKeys
}

// saKeys is everything derived from key material. It is immutable after NewSA except that the
// AEAD is built once, on first use, and that Zero wipes the keys after detaching them from the SA.
type saKeys struct {
	// aead is the AES-GCM, AES-CCM or ChaCha20-Poly1305 state (for GMAC the GCM that makes its
	// ICV), built from aeadKey when the SA first seals or opens a packet. A gateway holds two
	// SAs per tunnel and many tunnels carry no traffic for long stretches; Go's AES-GCM state is
	// a 768-byte object (and building it throws a 512-byte key schedule away), half the data
	// plane's memory per idle tunnel. Nil until then, and for the other transforms.
	aead       atomic.Pointer[aeadState]
	aeadKey    [chacha20poly1305.KeySize]byte // AES-128/192/256 or ChaCha20 key, aeadKeyLen bytes
	aeadKeyLen uint8
	salt       [saltLen]byte
	nsalt      uint8 // salt bytes in the nonce: 4, or 3 for CCM
	gmac       bool  // ENCR_NULL_AUTH_AES_GMAC: the payload is authenticated, not encrypted
	// macKeys holds the state of transforms with a separate integrity algorithm; nil for AEADs.
	*macKeys
}

// macKeys is the state of a cipher (or NULL) with a separate integrity algorithm.
type macKeys struct {
	block cipher.Block // the AES-CBC or AES-CTR cipher
	ctr   bool         // block runs in counter mode (RFC 3686), salt holding the nonce
	// ctrGCM is AES-GCM under the CTR key, used only for its counter-mode key stream (see ctrXOR).
	ctrGCM cipher.AEAD
	ivGen  cipher.Block // AES-CBC: AES-256 under a random key, CBC IV = E(seq)
	mac    hash.Hash    // HMAC or AES MAC template, keyed once; cloned per worker
	// pool holds scratch with this SA's MAC clone and CBC modes. AEADs' scratch holds no key
	// material and comes from the shared aeadScratch.
	pool sync.Pool
}

// aeadScratch is the scratch of AEAD SAs: a nonce and AAD buffer, the same for every SA, so that
// a gateway holding many SAs does not keep a pool per SA. It holds no key material and no state
// between calls.
var aeadScratch = sync.Pool{New: func() any { return new(scratch) }}

func (k *saKeys) getScratch() *scratch {
	if k.macKeys != nil {
		return k.pool.Get().(*scratch)
	}
	return aeadScratch.Get().(*scratch)
}

func (k *saKeys) putScratch(s *scratch) {
	if k.macKeys != nil {
		k.pool.Put(s)
		return
	}
	aeadScratch.Put(s)
}

// scratch is the per-call state of one Seal or Open, pooled so that the hot path allocates
// nothing and concurrent workers never share a hash state or CBC mode.
type scratch struct {
	nonce  [saltLen + aeadIVLen]byte
	aad    [12]byte
	seqHi  [4]byte
	sum    [sha512.Size]byte
	mac    hash.Hash
	cbcEnc ivBlockMode
	cbcDec ivBlockMode
	// AES-CTR's counter block, a key stream block, and the last plaintext block (see ctrXOR).
	ctr, ks, tail [aes.BlockSize]byte
	// gmacAAD holds the AAD of GMAC with extended sequence numbers, which the packet does not
	// hold in one piece (RFC 4543 §3.2).
	gmacAAD []byte
}

// ivBlockMode is a CBC mode whose IV can be reset, which the standard library's CBC modes offer
// (crypto/tls relies on the same method); it lets one mode object serve many packets.
type ivBlockMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// NewSA validates p and builds the SA's cipher state.
func NewSA(p Params) (*SA, error) {
	return newSA(new(SA), p, false)
}

// InitSA is NewSA building the SA in dst, a zero SA that is part of the caller's own allocation
// (the data plane's SA record: one object less per SA for the garbage collector of a gateway
// holding many). dst must not be used when it fails.
func InitSA(dst *SA, p Params) error {
	_, err := newSA(dst, p, false)
	return err
}

// newSA is NewSA with the one exception tests need: RFC 3602's test packets are AES-CBC without
// integrity, which the public API refuses.
func newSA(sa *SA, p Params, allowUnauthenticated bool) (*SA, error) {
	sa.spi, sa.enc, sa.integ, sa.esn, sa.outbound = p.SPI, p.Encryption, p.Integrity, p.ESN, p.Outbound
	if err := sa.checkAlgorithms(p, allowUnauthenticated); err != nil {
		return nil, err
	}
	k, err := newKeys(p, &sa.keysMem)
	if err != nil {
		return nil, err
	}
	if !p.Outbound && (p.ReplayWindow >= 0 || p.ESN) {
		size := p.ReplayWindow
		if size < 0 {
			size = 0
		}
		if sa.window, err = replay.New(size); err != nil {
			return nil, fmt.Errorf("esp: %w", err)
		}
	}
	sa.checkSeen = p.ReplayWindow >= 0 && !p.Outbound
	if k.macKeys != nil {
		m := k.macKeys
		m.pool.New = func() any { return m.newScratch() }
	}
	sa.keys.Store(k)
	return sa, nil
}

func (sa *SA) checkAlgorithms(p Params, allowUnauthenticated bool) error {
	if p.Encryption.IsAEAD() {
		if p.Integrity != IntegNone {
			return fmt.Errorf("%w: %v is an AEAD and takes no integrity algorithm, got %v", ErrAlgorithm, p.Encryption, p.Integrity)
		}
		sa.ivLen, sa.icvLen, sa.align = aeadIVLen, uint8(aeadTagLen(p.Encryption)), aeadAlign
		return nil
	}
	switch p.Encryption {
	case EncrAESCBC:
		sa.ivLen, sa.align = cbcIVLen, aes.BlockSize
	case Encr3DES:
		// RFC 2451 §3: the IV is one 8-byte block; the payload aligns to the block.
		sa.ivLen, sa.align = des.BlockSize, des.BlockSize
	case EncrAESCTR:
		// RFC 3686 §3.2: counter mode needs no padding; ESP still aligns to 4 bytes.
		sa.ivLen, sa.align = aeadIVLen, aeadAlign
	case EncrNULL:
		sa.ivLen, sa.align = 0, aeadAlign
	default:
		return fmt.Errorf("%w: encryption %v", ErrAlgorithm, p.Encryption)
	}
	switch p.Integrity {
	case IntegHMACSHA1_96, IntegHMACSHA2_256_128, IntegHMACSHA2_384_192, IntegHMACSHA2_512_256, IntegAESXCBC96, IntegAESCMAC96:
		sa.icvLen = uint8(icvLen(p.Integrity))
	case IntegNone:
		if !allowUnauthenticated {
			return fmt.Errorf("%w: %v without integrity protection", ErrAlgorithm, p.Encryption)
		}
	default:
		return fmt.Errorf("%w: integrity %v", ErrAlgorithm, p.Integrity)
	}
	return nil
}

// aeadTagLen is the ICV length of a combined mode: in the name of GCM and CCM (RFC 4106 §6, RFC
// 4309 §3.2), 16 for GMAC (RFC 4543 §3.3) and ChaCha20-Poly1305 (RFC 7634 §2).
func aeadTagLen(e Encryption) int {
	switch e {
	case EncrAESCCM8:
		return 8
	case EncrAESGCM12, EncrAESCCM12:
		return 12
	}
	return aeadICV
}

// aesKeySplit splits key into an AES key of 16, 24 or 32 bytes and a salt of salt bytes.
func aesKeySplit(e Encryption, key []byte, salt int) (aesKey, rest []byte, err error) {
	n := len(key) - salt
	if n != 16 && n != 24 && n != 32 {
		if salt == 0 {
			return nil, nil, fmt.Errorf("%w: %v key must be 16, 24 or 32 bytes, got %d", ErrKeyLength, e, len(key))
		}
		return nil, nil, fmt.Errorf("%w: %v key must be %d, %d or %d bytes (AES-128/192/256 key + %d-byte salt), got %d",
			ErrKeyLength, e, 16+salt, 24+salt, 32+salt, salt, len(key))
	}
	return key[:n], key[n:], nil
}

// aesKeyWithSalt is aesKeySplit with the AES cipher built.
func aesKeyWithSalt(e Encryption, key []byte, salt int) (cipher.Block, []byte, error) {
	aesKey, rest, err := aesKeySplit(e, key, salt)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, nil, fmt.Errorf("esp: %v: %w", e, err)
	}
	return block, rest, nil
}

// aeadState holds a built AEAD (an atomic.Pointer needs a pointer type; the interface value
// itself cannot be swapped atomically).
type aeadState struct{ cipher.AEAD }

func (k *saKeys) setAEADKey(key []byte) {
	k.aeadKeyLen = uint8(copy(k.aeadKey[:], key))
}

// isAEAD reports a combined-mode transform (AES-GCM, AES-CCM, ChaCha20-Poly1305, AES-GMAC).
func (k *saKeys) isAEAD() bool { return k.macKeys == nil }

// getAEAD returns the SA's AEAD, building it on the SA's first packet. Workers that race to
// build it agree on the first one stored; the others' copies are garbage.
func (k *saKeys) getAEAD(e Encryption) (cipher.AEAD, error) {
	if st := k.aead.Load(); st != nil {
		return st.AEAD, nil
	}
	a, err := newAEAD(e, k.aeadKey[:k.aeadKeyLen])
	if err != nil {
		return nil, err
	}
	if !k.aead.CompareAndSwap(nil, &aeadState{a}) {
		return k.aead.Load().AEAD, nil
	}
	return a, nil
}

// newAEAD builds the AEAD of e under key, whose length newKeys has checked.
func newAEAD(e Encryption, key []byte) (cipher.AEAD, error) {
	var (
		a   cipher.AEAD
		err error
	)
	switch e {
	case EncrChaCha20Poly1305:
		a, err = chacha20poly1305.New(key)
	case EncrAESCCM8, EncrAESCCM12, EncrAESCCM16:
		var block cipher.Block
		if block, err = aes.NewCipher(key); err == nil {
			// RFC 4309 §4: an 11-byte nonce (salt and IV), so a 4-byte length field.
			a, err = ccm.New(block, ccmSalt+aeadIVLen, aeadTagLen(e))
		}
	default: // AES-GCM and AES-GMAC
		if vaesgcm.Available() {
			// The same AES-GCM on the processor's 512-bit AES and carry-less multiply: about
			// twice as fast for a full-sized packet (internal/vaesgcm).
			a, err = vaesgcm.NewWithTagSize(key, aeadTagLen(e))
			break
		}
		var block cipher.Block
		if block, err = aes.NewCipher(key); err == nil {
			a, err = cipher.NewGCMWithTagSize(block, aeadTagLen(e))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %w", ErrAlgorithm, e, err)
	}
	return a, nil
}

// newKeys fills k (the SA's keysMem) and returns it.
func newKeys(p Params, k *saKeys) (*saKeys, error) {
	*k = saKeys{nsalt: saltLen}
	key := append([]byte(nil), p.EncKey...)
	defer clear(key)
	var err error
	switch e := p.Encryption; e {
	case EncrAESGCM12, EncrAESGCM16, EncrNullAESGMAC:
		aesKey, salt, err := aesKeySplit(e, key, saltLen)
		if err != nil {
			return nil, err
		}
		k.setAEADKey(aesKey)
		copy(k.salt[:], salt)
		k.gmac = e == EncrNullAESGMAC
	case EncrAESCCM8, EncrAESCCM12, EncrAESCCM16:
		aesKey, salt, err := aesKeySplit(e, key, ccmSalt)
		if err != nil {
			return nil, err
		}
		k.setAEADKey(aesKey)
		copy(k.salt[:], salt)
		k.nsalt = ccmSalt
	case EncrChaCha20Poly1305:
		if len(key) != chacha20poly1305.KeySize+saltLen {
			return nil, fmt.Errorf("%w: %v key must be 36 bytes (32-byte key + 4-byte salt), got %d", ErrKeyLength, e, len(key))
		}
		k.setAEADKey(key[:chacha20poly1305.KeySize])
		copy(k.salt[:], key[chacha20poly1305.KeySize:])
	case EncrAESCTR:
		block, nonce, err := aesKeyWithSalt(e, key, saltLen)
		if err != nil {
			return nil, err
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("esp: %v: %w", e, err)
		}
		k.macKeys = &macKeys{block: block, ctr: true, ctrGCM: gcm}
		copy(k.salt[:], nonce)
	case EncrAESCBC:
		block, _, err := aesKeyWithSalt(e, key, 0)
		if err != nil {
			return nil, err
		}
		k.macKeys = &macKeys{block: block}
		var ivKey [32]byte
		rand.Read(ivKey[:])
		k.ivGen, err = aes.NewCipher(ivKey[:])
		clear(ivKey[:])
		if err != nil {
			return nil, fmt.Errorf("esp: IV generator: %w", err)
		}
		probe := cipher.NewCBCEncrypter(k.block, make([]byte, aes.BlockSize))
		if _, ok := probe.(ivBlockMode); !ok {
			return nil, fmt.Errorf("%w: this crypto backend's CBC mode cannot reset its IV", ErrAlgorithm)
		}
	case Encr3DES:
		// RFC 2451 §2.3: three DES keys, 24 bytes (parity bits ignored).
		if len(key) != 24 {
			return nil, fmt.Errorf("%w: %v key must be 24 bytes, got %d", ErrKeyLength, e, len(key))
		}
		block, err := des.NewTripleDESCipher(key)
		if err != nil {
			return nil, fmt.Errorf("esp: %v: %w", e, err)
		}
		k.macKeys = &macKeys{block: block}
		// IVs are the sequence number encrypted under a random key of their own, as for AES-CBC:
		// unpredictable (RFC 2451 §3 wants random IVs) and never repeated within the SA.
		var ivKey [24]byte
		rand.Read(ivKey[:])
		k.ivGen, err = des.NewTripleDESCipher(ivKey[:])
		clear(ivKey[:])
		if err != nil {
			return nil, fmt.Errorf("esp: IV generator: %w", err)
		}
		probe := cipher.NewCBCEncrypter(k.block, make([]byte, des.BlockSize))
		if _, ok := probe.(ivBlockMode); !ok {
			return nil, fmt.Errorf("%w: this crypto backend's CBC mode cannot reset its IV", ErrAlgorithm)
		}
	case EncrNULL:
		if len(key) != 0 {
			return nil, fmt.Errorf("%w: %v takes no key, got %d bytes", ErrKeyLength, e, len(key))
		}
		k.macKeys = &macKeys{}
	}
	mac, err := newMAC(p.Integrity, p.IntegKey)
	if err != nil {
		return nil, err
	}
	if k.macKeys != nil {
		k.mac = mac
	}
	return k, nil
}

// icvLen is the ICV length of an integrity algorithm: half the hash output for the HMACs (RFC
// 4868 §2.3), 96 bits for the AES MACs (RFC 3566 §2.3, RFC 4494 §2.3).
func icvLen(i Integrity) int {
	switch i {
	case IntegHMACSHA2_256_128:
		return 16
	case IntegHMACSHA2_384_192:
		return 24
	case IntegHMACSHA2_512_256:
		return 32
	case IntegAESXCBC96, IntegAESCMAC96, IntegHMACSHA1_96:
		return 12 // RFC 2404 §2: HMAC-SHA-1 truncated to 96 bits
	}
	return 0
}

// macKeyLen is the key length an integrity algorithm requires: the hash output length for the
// HMACs (RFC 4868 §2.1.1), 16 bytes for the AES MACs.
func macKeyLen(i Integrity) int {
	switch i {
	case IntegAESXCBC96, IntegAESCMAC96:
		return aesmac.KeySize
	case IntegHMACSHA1_96:
		return sha1.Size // RFC 2404 §3
	}
	return 2 * icvLen(i)
}

// newMAC returns a keyed MAC template (nil for IntegNone) after checking the key length.
func newMAC(i Integrity, key []byte) (hash.Hash, error) {
	if i == IntegNone {
		if len(key) != 0 {
			return nil, fmt.Errorf("%w: integrity NONE takes no key, got %d bytes", ErrKeyLength, len(key))
		}
		return nil, nil
	}
	if want := macKeyLen(i); len(key) != want {
		return nil, fmt.Errorf("%w: %v key must be %d bytes, got %d", ErrKeyLength, i, want, len(key))
	}
	switch i {
	case IntegAESXCBC96:
		return aesmac.NewXCBC(key)
	case IntegAESCMAC96:
		return aesmac.NewCMAC(key)
	}
	return newHMACAnyKey(i, key)
}

// newHMACAnyKey builds the template without the RFC 4868 key length rule, so the RFC's PRF test
// vectors (other key lengths) can exercise the same code.
func newHMACAnyKey(i Integrity, key []byte) (hash.Hash, error) {
	var h func() hash.Hash
	switch i {
	case IntegHMACSHA1_96:
		h = sha1.New
	case IntegHMACSHA2_256_128:
		h = sha256.New
	case IntegHMACSHA2_384_192:
		h = sha512.New384
	case IntegHMACSHA2_512_256:
		h = sha512.New
	default:
		return nil, fmt.Errorf("%w: integrity %v", ErrAlgorithm, i)
	}
	mac := hmac.New(h, key)
	// The first Reset replaces the key pads with saved hash states (crypto/hmac precomputation),
	// after which the template is only read: clones share those states and never write them.
	mac.Reset()
	if _, ok := mac.(hash.Cloner); !ok {
		return nil, fmt.Errorf("%w: this crypto backend's HMAC cannot be cloned", ErrAlgorithm)
	}
	return mac, nil
}

func (k *macKeys) newScratch() *scratch {
	s := &scratch{}
	if k.mac != nil {
		c, err := k.mac.(hash.Cloner).Clone()
		if err != nil {
			// NewSA checked that the template is a Cloner; its Clone fails only for hashes
			// that are not cloneable, which SHA-2 always is.
			panic("esp: cloning HMAC state: " + err.Error())
		}
		s.mac = c
	}
	if k.block != nil && !k.ctr {
		zeroIV := make([]byte, k.block.BlockSize())
		s.cbcEnc = cipher.NewCBCEncrypter(k.block, zeroIV).(ivBlockMode)
		s.cbcDec = cipher.NewCBCDecrypter(k.block, zeroIV).(ivBlockMode)
	}
	return s
}

// SPI returns the SA's Security Parameters Index.
func (sa *SA) SPI() uint32 { return sa.spi }

// ciphertextLen is the length of payload|TFC|padding|Pad Length|Next Header.
func (sa *SA) ciphertextLen(plainLen int) int {
	n := plainLen + trailerLen
	a := int(sa.align)
	return (n + a - 1) / a * a
}

// Overhead returns the exact number of bytes Seal adds to a payload of payloadLen bytes with no
// TFC padding: header, IV, padding, trailer and ICV. With TFC padding t the packet is
// Overhead(payloadLen+t) + payloadLen + t bytes long.
func (sa *SA) Overhead(payloadLen int) int {
	return headerLen + int(sa.ivLen) + sa.ciphertextLen(payloadLen) - payloadLen + int(sa.icvLen)
}

// HeaderLen is the number of bytes before the ciphertext: SPI, sequence number and IV. A caller
// that has the payload at offset p of a buffer can Seal in place into buf[p-HeaderLen():p-HeaderLen()].
func (sa *SA) HeaderLen() int { return headerLen + int(sa.ivLen) }

// NextSeq atomically takes the next outbound sequence number. Sequence numbers never wrap: after
// 2^32-1 (or 2^64-1 with ESN) has been handed out it returns ErrSeqExhausted and the SA must be
// replaced (RFC 4303 §3.3.3).
func (sa *SA) NextSeq() (uint64, error) {
	seq, ok := sa.outSeq.Next(sa.esn)
	if !ok {
		return 0, ErrSeqExhausted
	}
	return seq, nil
}

// NextSeqs atomically takes n consecutive outbound sequence numbers and returns the first. It
// fails with ErrSeqExhausted, taking none, when fewer than n are left.
func (sa *SA) NextSeqs(n int) (uint64, error) {
	seq, ok := sa.outSeq.NextN(uint64(n), sa.esn)
	if !ok {
		return 0, ErrSeqExhausted
	}
	return seq, nil
}

// setOutSeq sets the last used outbound sequence number (tests of exhaustion).
func (sa *SA) setOutSeq(seq uint64) { sa.outSeq.Set(seq) }

// Zero makes the SA unusable (later Seal and Open return ErrZeroed) and wipes the key material it
// holds. Call it once the SA is out of every lookup table and no Seal or Open on it is still
// running. Go's cipher and HMAC objects offer no way to erase their internal key schedules; Zero
// drops every reference to them so the garbage collector reclaims them.
func (sa *SA) Zero() {
	k := sa.keys.Swap(nil)
	if k == nil {
		return
	}
	clear(k.salt[:])
	clear(k.aeadKey[:])
	k.aead.Store(nil)
	if m := k.macKeys; m != nil {
		m.block, m.ivGen, m.mac = nil, nil, nil
		m.pool.New = nil
	}
}
