// Package ah implements the IP Authentication Header (RFC 4302) as pure transforms on whole IP
// packets: Seal appends an IPv4 or IPv6 packet carrying an AH header, Open verifies one. AH
// protects the outer IP header too, so unlike ESP it cannot work on the payload alone: the ICV
// covers the immutable and predictable header fields, with mutable ones (TOS/traffic class, TTL/
// hop limit, flags, flow label, mutable IPv4 options and IPv6 option data marked "may change en
// route") counted as zeros (RFC 4302 §3.3.3.1 and Appendix A).
//
// Integrity algorithms are the IKEv2 Transform Type 3 IDs for HMAC-SHA-256-128, -384-192 and
// -512-256 (RFC 4868), AES-XCBC-MAC-96 (RFC 3566) and AES-CMAC-96 (RFC 4494); weaker ones are not
// offered. Extended sequence numbers, the anti-replay
// window (package replay) and the no-allocation, many-worker hot path follow package esp.
//
// The mutable-field handling and header walking are written by hand: no Go library implements AH.
package ah

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/goipsec/goipsec/internal/aesmac"
	"github.com/goipsec/goipsec/replay"
)

// Integrity is an IKEv2 Transform Type 3 (integrity algorithm) ID.
type Integrity uint16

// Supported integrity transforms.
const (
	IntegAESXCBC96        Integrity = 5  // RFC 3566
	IntegAESCMAC96        Integrity = 8  // RFC 4494
	IntegHMACSHA2_256_128 Integrity = 12 // RFC 4868
	IntegHMACSHA2_384_192 Integrity = 13
	IntegHMACSHA2_512_256 Integrity = 14
)

func (i Integrity) String() string {
	switch i {
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

// icvLen is the truncated MAC length: half the hash for the HMACs (RFC 4868 §2.3, their key is
// twice as long, §2.1.1), 96 bits for the AES MACs (RFC 3566 §2.3, RFC 4494 §2.3; 16-byte keys).
func (i Integrity) icvLen() int {
	switch i {
	case IntegAESXCBC96, IntegAESCMAC96:
		return 12
	case IntegHMACSHA2_256_128:
		return 16
	case IntegHMACSHA2_384_192:
		return 24
	case IntegHMACSHA2_512_256:
		return 32
	}
	return 0
}

// Errors. Open's drop reasons are distinct so the data plane can count them by kind.
var (
	ErrAlgorithm    = errors.New("ah: unsupported integrity algorithm")
	ErrKeyLength    = errors.New("ah: wrong key length")
	ErrSeqExhausted = errors.New("ah: sequence number space exhausted, SA must be rekeyed")
	ErrSeq          = errors.New("ah: sequence number out of range for this SA")
	ErrZeroed       = errors.New("ah: SA has been zeroed")
	ErrAddress      = errors.New("ah: address family does not match the header")
	ErrTooLong      = errors.New("ah: packet exceeds 65535 bytes")
	ErrOptions      = errors.New("ah: unsupported or malformed IPv4 options")

	ErrTooShort      = errors.New("ah: packet too short")
	ErrMalformed     = errors.New("ah: malformed packet")
	ErrNoAH          = errors.New("ah: protocol chain does not reach an AH header")
	ErrFragment      = errors.New("ah: packet is a fragment; reassemble before AH processing")
	ErrRoutingHeader = errors.New("ah: IPv6 routing header not handled (only types 0 and 2 with no segments left)")
	ErrSPIMismatch   = errors.New("ah: packet SPI does not belong to this SA")
	ErrReplay        = errors.New("ah: replayed or stale sequence number")
	ErrAuth          = errors.New("ah: integrity check failed")
)

// ProtocolAH is the IP protocol number of AH.
const ProtocolAH = 51

// Layout of the AH header (RFC 4302 §2).
const (
	ahOffNextHeader = 0
	ahOffPayloadLen = 1
	ahOffSPI        = 4
	ahOffSeq        = 8
	ahFixedLen      = 12 // up to the ICV
)

// Params configures one direction of an AH SA.
type Params struct {
	SPI       uint32
	Integrity Integrity
	IntegKey  []byte // copied; 32, 48 or 64 bytes for HMAC-SHA-2 (RFC 4868 §2.1.1), 16 for the AES MACs
	ESN       bool   // 64-bit extended sequence numbers
	// ReplayWindow is the inbound window in packets: 0 selects 1024, negative disables the check
	// (the window is still kept with ESN, which estimates the high bits from it).
	ReplayWindow int
}

// SA is one direction of an AH security association.
type SA struct {
	spi       uint32
	integ     Integrity
	icvLen    int
	esn       bool
	checkSeen bool
	window    *replay.Window

	outSeq replay.Counter // outbound sequence numbers
	keys   atomic.Pointer[saKeys]
}

type saKeys struct {
	mac  hash.Hash // keyed template, cloned per worker
	pool sync.Pool // *scratch
}

// scratch is the per-call state of one Seal or Open, pooled so the hot path allocates nothing.
type scratch struct {
	mac   hash.Hash
	sum   [sha512.Size]byte
	hdr   [ipv4MaxHeader]byte // copy of an IP base header with its mutable fields zeroed
	zeros [ahFixedLen + sha512.Size/2 + 8]byte
	seqHi [4]byte
}

// NewSA validates p and builds the SA.
func NewSA(p Params) (*SA, error) {
	sa := &SA{spi: p.SPI, integ: p.Integrity, icvLen: p.Integrity.icvLen(), esn: p.ESN, checkSeen: p.ReplayWindow >= 0}
	var h func() hash.Hash
	want := 2 * sa.icvLen
	switch p.Integrity {
	case IntegHMACSHA2_256_128:
		h = sha256.New
	case IntegHMACSHA2_384_192:
		h = sha512.New384
	case IntegHMACSHA2_512_256:
		h = sha512.New
	case IntegAESXCBC96, IntegAESCMAC96:
		want = aesmac.KeySize
	default:
		return nil, fmt.Errorf("%w: %v", ErrAlgorithm, p.Integrity)
	}
	if len(p.IntegKey) != want {
		return nil, fmt.Errorf("%w: %v key must be %d bytes, got %d", ErrKeyLength, p.Integrity, want, len(p.IntegKey))
	}
	key := append([]byte(nil), p.IntegKey...)
	var mac hash.Hash
	switch p.Integrity {
	case IntegAESXCBC96:
		mac, _ = aesmac.NewXCBC(key)
	case IntegAESCMAC96:
		mac, _ = aesmac.NewCMAC(key)
	default:
		mac = hmac.New(h, key)
		// The first Reset swaps the key pads for precomputed hash states; from then on the
		// template is only read, so clones can be made concurrently.
		mac.Reset()
	}
	clear(key)
	if _, ok := mac.(hash.Cloner); !ok {
		return nil, fmt.Errorf("%w: this crypto backend's HMAC cannot be cloned", ErrAlgorithm)
	}
	if p.ReplayWindow >= 0 || p.ESN {
		var err error
		if sa.window, err = replay.New(max(p.ReplayWindow, 0)); err != nil {
			return nil, fmt.Errorf("ah: %w", err)
		}
	}
	k := &saKeys{mac: mac}
	k.pool.New = func() any {
		c, err := k.mac.(hash.Cloner).Clone()
		if err != nil {
			// SHA-2 states always clone; NewSA checked the template is a Cloner.
			panic("ah: cloning HMAC state: " + err.Error())
		}
		return &scratch{mac: c}
	}
	sa.keys.Store(k)
	return sa, nil
}

// SPI returns the SA's Security Parameters Index.
func (sa *SA) SPI() uint32 { return sa.spi }

// ahLen is the AH header length with the ICV padded to the IP version's alignment: 32 bits for
// IPv4, 64 bits for IPv6 (RFC 4302 §3.3.3.2.1), and no more than that.
func (sa *SA) ahLen(ipv6 bool) int {
	n := ahFixedLen + sa.icvLen
	align := 4
	if ipv6 {
		align = 8
	}
	return (n + align - 1) / align * align
}

// Overhead returns the bytes AH adds to an IPv4 or IPv6 packet: the AH header with ICV and
// padding (plus, in tunnel mode, the outer IP header, which the caller counts).
func (sa *SA) Overhead(ipv6 bool) int { return sa.ahLen(ipv6) }

// NextSeq atomically takes the next outbound sequence number; it never wraps (RFC 4302 §3.3.2)
// and returns ErrSeqExhausted after 2^32-1 (2^64-1 with ESN) has been used.
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

// Zero makes the SA unusable (Seal and Open then return ErrZeroed) and drops its keyed HMAC
// state. Call it once no Seal or Open on the SA is running. Go's HMAC offers no way to erase its
// precomputed key states; dropping every reference lets the garbage collector reclaim them.
func (sa *SA) Zero() {
	k := sa.keys.Swap(nil)
	if k == nil {
		return
	}
	k.mac = nil
	k.pool.New = nil
}
