package suite

import (
	"fmt"
	"io"
)

// padLenSize is the one-byte Pad Length field that ends every SK payload
// plaintext (RFC 7296 §3.14).
const padLenSize = 1

// Protector encrypts and authenticates the body of Encrypted (SK) or
// Encrypted Fragment (SKF) payloads for one direction of an IKE SA: keyed
// with SK_ei (+ SK_ai) for messages the initiator sends, SK_er (+ SK_ar)
// for those the responder sends.
//
// The payload body is IV | ciphertext(plaintext | padding | pad length) |
// ICV (RFC 7296 §3.14). aad is the IKE header through the SK/SKF payload
// header, built by the caller with the final lengths (SealedLen gives the
// body length). A Protector may be shared by goroutines.
type Protector interface {
	// IVSize is the length of the IV at the start of the body.
	IVSize() int
	// BlockSize is the alignment the padded plaintext needs (1 for AEAD).
	BlockSize() int
	// ICVSize is the length of the ICV (AEAD tag) at the end of the body.
	ICVSize() int
	// SealedLen is the body length Seal produces for a plaintext of n bytes.
	SealedLen(n int) int
	// Seal appends IV | ciphertext | ICV for plaintext (the inner payload
	// chain) to dst. plaintext must not overlap dst's spare capacity.
	Seal(dst, aad, plaintext []byte) ([]byte, error)
	// Open verifies the ICV (in constant time) of the body ivCipherICV,
	// decrypts it, strips the padding and appends the plaintext to dst.
	Open(dst, aad, ivCipherICV []byte) ([]byte, error)
	// Zero drops the keys; every later call fails with ErrZeroed.
	Zero()
}

// NewProtector builds the Protector for a negotiated encryption and
// integrity transform pair. encrKey is SK_ei or SK_er (salt included for
// AEAD ciphers); integKey is SK_ai or SK_ar, empty for AEAD ciphers. rand
// supplies CBC IVs (crypto/rand.Reader when nil).
func NewProtector(encr uint16, encrKeyBits int, integ uint16, encrKey, integKey []byte, rand io.Reader) (Protector, error) {
	encrLen, integLen, err := cipherKeyLens(encr, encrKeyBits, integ)
	if err != nil {
		return nil, err
	}
	if len(encrKey) != encrLen || len(integKey) != integLen {
		return nil, fmt.Errorf("%w: encryption key %d bytes (want %d), integrity key %d bytes (want %d)",
			ErrInvalidKeyLength, len(encrKey), encrLen, len(integKey), integLen)
	}
	if isAEAD(encr) {
		return NewAEADSealer(encr, encrKey)
	}
	return NewCBCHMAC(integ, encrKey, integKey, rand)
}

// Fit reports whether the keys fit the transforms, that is whether Protector would build both
// directions' Protectors, without building them: an IKE SA builds them per message, and checks
// this once when it derives its keys.
func (k *Keys) Fit(t IKETransforms) error {
	encrLen, integLen, err := cipherKeyLens(t.Encr, t.EncrKeyBits, t.Integ)
	if err != nil {
		return err
	}
	if len(k.SKei) != encrLen || len(k.SKer) != encrLen || len(k.SKai) != integLen || len(k.SKar) != integLen {
		return fmt.Errorf("%w: encryption keys %d and %d bytes (want %d), integrity keys %d and %d bytes (want %d)",
			ErrInvalidKeyLength, len(k.SKei), len(k.SKer), encrLen, len(k.SKai), len(k.SKar), integLen)
	}
	return nil
}

// IVCounter is implemented by Protectors whose IVs are a counter (the AEAD ones): an IKE SA that
// builds a Protector per message carries the counter from one to the next.
type IVCounter interface {
	SetNextIV(uint64)
	NextIV() uint64
}

// Protector returns one direction's Protector of an IKE SA: out for the messages this side sends
// (initiator true: we are the original initiator), in for those it receives.
func (k *Keys) Protector(t IKETransforms, initiator, out bool, rand io.Reader) (Protector, error) {
	e, a := k.SKei, k.SKai
	if initiator != out {
		e, a = k.SKer, k.SKar
	}
	return NewProtector(t.Encr, t.EncrKeyBits, t.Integ, e, a, rand)
}

// Protectors returns the Protectors of an IKE SA: out for the messages this
// side sends, in for those it receives.
func (k *Keys) Protectors(t IKETransforms, initiator bool, rand io.Reader) (out, in Protector, err error) {
	ei, ai, er, ar := k.SKei, k.SKai, k.SKer, k.SKar
	if !initiator {
		ei, ai, er, ar = er, ar, ei, ai
	}
	if out, err = NewProtector(t.Encr, t.EncrKeyBits, t.Integ, ei, ai, rand); err != nil {
		return nil, nil, err
	}
	if in, err = NewProtector(t.Encr, t.EncrKeyBits, t.Integ, er, ar, rand); err != nil {
		out.Zero()
		return nil, nil, err
	}
	return out, in, nil
}

// stripPadding removes padding and the Pad Length byte. Any padding length
// that fits is accepted (RFC 7296 §3.14: the recipient MUST accept any
// length that results in proper alignment); its content is not checked.
func stripPadding(padded []byte) ([]byte, error) {
	if len(padded) < padLenSize {
		return nil, fmt.Errorf("%w: no pad length byte", ErrMalformed)
	}
	padLen := int(padded[len(padded)-1])
	if padLen+padLenSize > len(padded) {
		return nil, fmt.Errorf("%w: pad length %d exceeds plaintext of %d bytes", ErrMalformed, padLen, len(padded))
	}
	return padded[:len(padded)-padLen-padLenSize], nil
}

// grow returns dst with room for n more bytes and the n-byte window.
func grow(dst []byte, n int) (whole, window []byte) {
	total := len(dst) + n
	if cap(dst) < total {
		nd := make([]byte, len(dst), total)
		copy(nd, dst)
		dst = nd
	}
	return dst[:total], dst[len(dst):total]
}
