package ike

import "net/netip"

// IKE and ESP in TCP (RFC 9329). The driver carries the messages; what the IKE SA needs to know
// is whether it runs over TCP (its Child SAs then carry ESP in the same connection) and whether
// this side opened the connection, which makes it the one that reconnects (RFC 9329 §6.1) — for
// the IKE SAs that rekeying makes out of this one too, whoever initiates them.

// RestartInit sends IKE_SA_INIT again from the start, towards a new destination: the fallback to
// TCP when UDP got no answer (RFC 9329 §6.1: try UDP first, then TCP). It reports false unless
// the SA is still waiting for the IKE_SA_INIT response.
func (sa *SA) RestartInit(local, remote netip.AddrPort, tcp bool) bool {
	if sa.state != StateInitSent || !sa.Initiator || sa.hs == nil {
		return false
	}
	sa.queue = append(append([]initiatorTask(nil), sa.active...), sa.queue...)
	sa.active = nil
	// The same key exchange value and nonce: a responder that answered the earlier request (the
	// answer got lost) replays its cached answer to an identical one, which must still fit.
	sa.hs.keepKE = true
	sa.hs.cookie, sa.hs.initTries = nil, 0
	sa.Local, sa.Remote = local, remote
	sa.TCP, sa.TCPOriginator = tcp, tcp
	return true
}
