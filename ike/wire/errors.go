package wire

import "fmt"

// Error is a decoding or grammar failure. Notify is the Notify message type
// the receiver should report to the peer (RFC 7296 §2.21, §3.10.1), and Data
// the Notification Data to send with it (the one-octet payload type for
// UNSUPPORTED_CRITICAL_PAYLOAD, RFC 7296 §2.5).
type Error struct {
	Notify NotifyType
	Data   []byte
	// Offset is the byte offset in the decoded buffer where the problem was
	// found, or -1 when the problem is not tied to a position (grammar,
	// encoding). For DecodePayloads it is relative to the plaintext given.
	Offset int
	Msg    string
}

func (e *Error) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("ike/wire: %s (offset %d, %v)", e.Msg, e.Offset, e.Notify)
	}
	return fmt.Sprintf("ike/wire: %s (%v)", e.Msg, e.Notify)
}

// syntaxError reports malformed input at offset off; the peer is told
// INVALID_SYNTAX.
func syntaxError(off int, format string, args ...any) *Error {
	return &Error{Notify: InvalidSyntax, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// encodeError reports a Message or Payload that cannot be put on the wire.
// It is a local programming or configuration error, so it names no position;
// INVALID_SYNTAX is the closest Notify if it ever reaches a peer.
func encodeError(format string, args ...any) *Error {
	return &Error{Notify: InvalidSyntax, Offset: -1, Msg: fmt.Sprintf(format, args...)}
}

// FragmentError is why the Reassembler dropped an Encrypted Fragment. None
// of them is reported to the peer (RFC 7383 §2.6 says to discard); the
// engine counts them.
type FragmentError string

func (e FragmentError) Error() string { return "ike/wire: " + string(e) }

// Reasons the Reassembler drops a fragment.
const (
	// ErrDuplicateFragment: a fragment with this number is already held.
	ErrDuplicateFragment FragmentError = "duplicate fragment"
	// ErrStaleFragment: Total Fragments is smaller than that of the
	// fragments being collected (RFC 7383 §2.6), so it belongs to an
	// earlier transmission.
	ErrStaleFragment FragmentError = "fragment from an earlier transmission (smaller Total Fragments)"
	// ErrTooManyFragments: Total Fragments exceeds the configured bound.
	ErrTooManyFragments FragmentError = "too many fragments"
	// ErrReassemblyTooLarge: the collected data would exceed the configured
	// bound; everything collected so far is dropped.
	ErrReassemblyTooLarge FragmentError = "reassembled message too large"
	// ErrBadFragmentNumber: Fragment Number is zero or above Total
	// Fragments, or Total Fragments is zero.
	ErrBadFragmentNumber FragmentError = "fragment number out of range"
)
