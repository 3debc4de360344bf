package engine

import "fmt"

// DropReason says why the engine dropped an IKE message. Every drop is counted by reason.
type DropReason uint8

const (
	DropMalformed          DropReason = iota // the header or a payload does not decode
	DropGrammar                              // the payloads do not fit the exchange (RFC 7296 §3)
	DropUnknownSPI                           // no IKE SA has the SPI
	DropAuth                                 // the ICV does not verify
	DropMessageID                            // a message ID outside the window
	DropUnexpectedResponse                   // a response to no request of ours
	DropUnexpectedExchange                   // an exchange the SA's state does not allow
	DropZeroSPI                              // IKE_SA_INIT with a zero initiator SPI
	DropCookie                               // IKE_SA_INIT without the cookie we asked for
	DropOverload                             // the SA's queue is full
	DropFragment                             // a fragment that does not fit its message
	DropClosed                               // the engine is shutting down
	DropNoLocalAddr                          // a new IKE SA's request, but the transport did not tell our address
	DropHeld                                 // a retransmitted request whose answer waits for blocking work (RADIUS, a certificate check)
	numDropReasons
)

var dropNames = [...]string{
	DropMalformed: "malformed", DropGrammar: "bad_payloads", DropUnknownSPI: "unknown_spi", DropAuth: "auth_failed",
	DropMessageID: "bad_message_id", DropUnexpectedResponse: "unexpected_response",
	DropUnexpectedExchange: "unexpected_exchange", DropZeroSPI: "zero_spi", DropCookie: "no_cookie",
	DropOverload: "overload", DropFragment: "bad_fragment", DropClosed: "shutting_down",
	DropNoLocalAddr: "no_local_address", DropHeld: "awaiting_aaa",
}

func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("drop-%d", uint8(r))
}

// DropReasons lists every reason, for metrics.
func DropReasons() []DropReason {
	out := make([]DropReason, numDropReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}

// DropCounts holds one counter per DropReason.
type DropCounts [numDropReasons]uint64

// Total is the sum of all drop counters.
func (d DropCounts) Total() uint64 {
	var t uint64
	for _, v := range d {
		t += v
	}
	return t
}
