package suite

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"sync"
)

// HMAC (RFC 2104) composed by hand from the stdlib hashes, for the PRF only: crypto/hmac.New
// allocates two hash states, both pads and (on its first Reset) their marshalled copies for
// every key, about 700 bytes a time, and an IKEv2 handshake computes a dozen PRFs under as many
// keys (SKEYSEED, prf+, AUTH). Here the two hash states and the pads are scratch space taken
// from a pool, so a PRF computation allocates nothing and leaves no garbage for the collector,
// which matters to a responder holding 100,000 SAs (docs/performance.md). The result is checked
// against crypto/hmac and the RFC 4231 / RFC 4868 vectors (prf_test.go).
//
//	HMAC(K, text) = H(K XOR opad, H(K XOR ipad, text))
//
// with K padded with zeros to the hash's block size B, or first hashed when longer than B.

const (
	hmacMaxBlock = sha512.BlockSize
	hmacMaxSize  = sha512.Size
)

// hmacHash is one hash function and its pool of scratch states. The pools are the package's
// only shared variables: they hold no state between calls (every scratch is wiped and its
// hashes reset before it goes back), only reusable memory.
type hmacHash struct {
	newHash     func() hash.Hash
	size, block int
	pool        sync.Pool // *hmacScratch
}

var (
	hmacSHA1   = newHMACHash(sha1.New, sha1.Size, sha1.BlockSize)
	hmacSHA256 = newHMACHash(sha256.New, sha256.Size, sha256.BlockSize)
	hmacSHA384 = newHMACHash(sha512.New384, sha512.Size384, sha512.BlockSize)
	hmacSHA512 = newHMACHash(sha512.New, sha512.Size, sha512.BlockSize)
)

func newHMACHash(newHash func() hash.Hash, size, block int) *hmacHash {
	h := &hmacHash{newHash: newHash, size: size, block: block}
	h.pool.New = func() any { return &hmacScratch{h: h, inner: newHash(), outer: newHash()} }
	return h
}

// hmacScratch computes HMACs under one key at a time: keyed sets the key, then begin, write and
// finish compute one value (prf+ computes several under one key).
type hmacScratch struct {
	h            *hmacHash
	inner, outer hash.Hash
	ipad, opad   [hmacMaxBlock]byte
	sum          [hmacMaxSize]byte
	counter      [1]byte // prf+'s block counter, here so that it does not escape per block
}

// keyed takes a scratch from the pool, keyed with key. Give it back with release.
func (h *hmacHash) keyed(key []byte) *hmacScratch {
	s := h.pool.Get().(*hmacScratch)
	k := key
	if len(k) > h.block {
		s.inner.Reset()
		s.inner.Write(k)
		k = s.inner.Sum(s.sum[:0])
	}
	ipad, opad := s.ipad[:h.block], s.opad[:h.block]
	clear(ipad)
	copy(ipad, k)
	for i, b := range ipad {
		ipad[i] = b ^ 0x36
		opad[i] = b ^ 0x5c
	}
	clear(s.sum[:])
	return s
}

func (s *hmacScratch) begin() {
	s.inner.Reset()
	s.inner.Write(s.ipad[:s.h.block])
}

func (s *hmacScratch) write(b []byte) { s.inner.Write(b) }

// finish appends the HMAC of what was written since begin to dst.
func (s *hmacScratch) finish(dst []byte) []byte {
	in := s.inner.Sum(s.sum[:0])
	s.outer.Reset()
	s.outer.Write(s.opad[:s.h.block])
	s.outer.Write(in)
	return s.outer.Sum(dst)
}

// release wipes the key-derived pads and hash states and returns the scratch to its pool.
func (s *hmacScratch) release() {
	clear(s.ipad[:])
	clear(s.opad[:])
	clear(s.sum[:])
	s.inner.Reset()
	s.outer.Reset()
	s.h.pool.Put(s)
}
