package suite

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// maxPRFPlusBlocks is the prf+ limit: the block counter is one octet and
// starts at 0x01 (RFC 7296 §2.13).
const maxPRFPlusBlocks = 255

// PRF is a negotiated IKEv2 pseudo-random function. All supported PRFs are
// HMAC-SHA2 (RFC 4868 §2.1.2): keys of any length are accepted (HMAC hashes
// keys longer than the block size), and the preferred key length equals the
// output length. The zero value is not usable; get one from NewPRF.
type PRF struct {
	id      uint16
	newHash func() hash.Hash
	mac     *hmacHash // hmac.go
	size    int
}

// NewPRF returns the PRF with the given IANA transform ID.
func NewPRF(id uint16) (PRF, error) {
	switch id {
	case PRF_HMAC_SHA2_256:
		return PRF{id: id, newHash: sha256.New, mac: hmacSHA256, size: sha256.Size}, nil
	case PRF_HMAC_SHA2_384:
		return PRF{id: id, newHash: sha512.New384, mac: hmacSHA384, size: sha512.Size384}, nil
	case PRF_HMAC_SHA2_512:
		return PRF{id: id, newHash: sha512.New, mac: hmacSHA512, size: sha512.Size}, nil
	}
	return PRF{}, fmt.Errorf("%w: PRF %d", ErrUnsupportedTransform, id)
}

// ID is the IANA transform ID.
func (p PRF) ID() uint16 { return p.id }

// Size is the output length in bytes, which is also the preferred key
// length used for SK_d, SK_pi and SK_pr (RFC 7296 §2.14, RFC 4868 §2.1.2).
func (p PRF) Size() int { return p.size }

// Compute returns prf(key, data[0] | data[1] | ...). Passing the data in
// parts saves the caller a concatenation.
func (p PRF) Compute(key []byte, data ...[]byte) []byte {
	return p.AppendCompute(make([]byte, 0, p.size), key, data...)
}

// AppendCompute appends prf(key, data[0] | data[1] | ...) to dst.
func (p PRF) AppendCompute(dst, key []byte, data ...[]byte) []byte {
	s := p.mac.keyed(key)
	defer s.release()
	s.begin()
	for _, d := range data {
		s.write(d)
	}
	return s.finish(dst)
}

// Plus returns the first n bytes of prf+(key, seed[0] | seed[1] | ...)
// (RFC 7296 §2.13):
//
//	prf+ (K,S) = T1 | T2 | T3 | ...
//	T1 = prf (K, S | 0x01)
//	Tk = prf (K, Tk-1 | S | k)
//
// n may be at most 255 times Size.
func (p PRF) Plus(key []byte, n int, seed ...[]byte) ([]byte, error) {
	if n < 0 || n > maxPRFPlusBlocks*p.size {
		return nil, fmt.Errorf("%w: %d bytes requested, at most %d", ErrPRFPlusTooLong, n, maxPRFPlusBlocks*p.size)
	}
	return p.plusAppend(make([]byte, 0, (n+p.size-1)/p.size*p.size), key, n, seed...)
}

// plusAppend is Plus writing into out's spare capacity (out is empty) when it holds whole blocks
// for n bytes, into a new buffer otherwise.
func (p PRF) plusAppend(out, key []byte, n int, seed ...[]byte) ([]byte, error) {
	if n < 0 || n > maxPRFPlusBlocks*p.size {
		return nil, fmt.Errorf("%w: %d bytes requested, at most %d", ErrPRFPlusTooLong, n, maxPRFPlusBlocks*p.size)
	}
	blocks := (n + p.size - 1) / p.size
	if cap(out) < blocks*p.size {
		out = make([]byte, 0, blocks*p.size)
	}
	h := p.mac.keyed(key)
	defer h.release()
	for k := 1; k <= blocks; k++ {
		h.begin()
		if k > 1 {
			h.write(out[len(out)-p.size:])
		}
		for _, s := range seed {
			h.write(s)
		}
		h.counter[0] = byte(k)
		h.write(h.counter[:])
		out = h.finish(out)
	}
	// The tail of the last block is key material nobody asked for: wipe it
	// rather than leave it behind the returned slice's length.
	clear(out[n:])
	return out[:n:n], nil
}
