package ike

import "github.com/goipsec/goipsec/ike/wire"

// Blocking work. An IKE SA's processing never blocks (its owner would hold it, and a worker, for
// the duration). What must block — a RADIUS round trip — is recorded as an Async effect: the
// driver runs Run outside the SA, then hands its result back to the SA's owner through Resume,
// which builds the response the request was waiting for. Meanwhile the request is held: the
// driver sends nothing for it and ignores the peer's retransmissions (there is no response to
// replay yet; the peer retransmits until there is one).

// Async is work the driver runs outside the SA; its result goes to SA.Resume.
type Async struct {
	Run func() any
}

func (Async) isEffect() {}

// asyncResume continues a held request with the result of its Async work, filling in resp.
type asyncResume func(sa *SA, result any, resp *Message)

type heldRequest struct {
	exchange wire.ExchangeType
	resume   asyncResume
}

// holdRequest records blocking work for the request being processed: ProcessRequest returns nil,
// and Resume answers the request later.
func (sa *SA) holdRequest(exchange wire.ExchangeType, run func() any, resume asyncResume) {
	sa.held = &heldRequest{exchange: exchange, resume: resume}
	sa.emit(Async{Run: run})
}

// Held reports whether a request of the peer waits for Async work.
func (sa *SA) Held() bool { return sa.held != nil }

// Resume hands the result of Async work to the held request and returns its response (nil when
// nothing is held, e.g. the SA died meanwhile). The SA may be closing afterwards (Closing).
func (sa *SA) Resume(result any) *Message {
	h := sa.held
	if h == nil || sa.state == StateDead {
		return nil
	}
	sa.held = nil
	resp := &Message{Exchange: h.exchange}
	h.resume(sa, result, resp)
	return resp
}
