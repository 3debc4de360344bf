package suite

import "errors"

// Sentinel errors. Functions wrap them with detail (never key material);
// compare with errors.Is.
var (
	// ErrUnsupportedTransform: a PRF, encryption or integrity transform ID
	// (or key length) this package does not implement.
	ErrUnsupportedTransform = errors.New("suite: unsupported transform")
	// ErrUnsupportedGroup: a key exchange method this package does not implement.
	ErrUnsupportedGroup = errors.New("suite: unsupported key exchange method")
	// ErrInvalidPublicValue: the peer's KE data has the wrong length or is
	// not a valid element of the group (RFC 7296 §3.4 answers this with
	// INVALID_SYNTAX; a wrong length for the group with INVALID_KE_PAYLOAD
	// only when the group itself differs).
	ErrInvalidPublicValue = errors.New("suite: invalid key exchange public value")
	// ErrKeyExchangeRole: a KeyExchange was used as initiator after acting
	// as responder, or the other way round.
	ErrKeyExchangeRole = errors.New("suite: key exchange used in the wrong role")
	// ErrInvalidKeyLength: a key handed to a constructor has the wrong size.
	ErrInvalidKeyLength = errors.New("suite: invalid key length")
	// ErrPRFPlusTooLong: more than 255 prf+ blocks were requested (RFC 7296 §2.13).
	ErrPRFPlusTooLong = errors.New("suite: prf+ output too long")
	// ErrInvalidInput: a nonce, SPI or other non-secret input has the wrong size.
	ErrInvalidInput = errors.New("suite: invalid input")
	// ErrMalformed: an SK payload body is too short, misaligned or its pad
	// length points outside the plaintext.
	ErrMalformed = errors.New("suite: malformed encrypted payload")
	// ErrAuthentication: the ICV or AEAD tag did not verify.
	ErrAuthentication = errors.New("suite: integrity check failed")
	// ErrIVExhausted: the per-SA AEAD IV counter would repeat.
	ErrIVExhausted = errors.New("suite: AEAD IV counter exhausted")
	// ErrZeroed: the object was wiped with Zero and cannot be used any more.
	ErrZeroed = errors.New("suite: used after Zero")
)
