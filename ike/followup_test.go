package ike

import (
	"testing"

	"github.com/goipsec/goipsec/ike/wire"
)

// TestFollowupKEUnknownLink: an IKE_FOLLOWUP_KE for an exchange the responder does not wait for
// is answered STATE_NOT_FOUND (RFC 9370 §2.2.4) and changes nothing.
func TestFollowupKEUnknownLink(t *testing.T) {
	ci, cr := defaultPair().build(t)
	i, r, _, _, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	r.TakeEffects()
	resp := exchange(t, i, r, &Message{Exchange: wire.ExchangeIKEFollowupKE, Payloads: []wire.Payload{
		&wire.KE{Group: 31, Data: make([]byte, 32)}, &wire.Notify{NotifyType: wire.AdditionalKeyExchange, Data: []byte("no-link")}}}, 2)
	if n := findNotify(resp.Payloads, wire.StateNotFound); n == nil || len(resp.Payloads) != 1 {
		t.Fatalf("response %v, want N(STATE_NOT_FOUND)", resp.Payloads)
	}
	if r.State() != StateEstablished || len(r.Children) != 1 {
		t.Fatalf("responder changed: %s, %d children", r.State(), len(r.Children))
	}
}
