package ike

import (
	"net/netip"
)

// saRare is the part of an IKE SA that few IKE SAs need, or need only while an exchange or two
// runs: the addresses of a MOBIKE move, EAP and RADIUS results, the virtual IP lease identity,
// an IKE_AUTH response held for verification off the SA, deferred tasks, the results of an IKE
// rekey on their way to the driver, and IKE_FOLLOWUP_KE state. It is allocated when first
// written (SA.rareState) and dropped by Tidy when nothing in it is in use any more.
//
// Why: a gateway holds its IKE SAs for hours and the garbage collector visits every one of them
// in each cycle. The Green Tea collector scans objects of up to 512 bytes a span at a time and
// larger ones one by one; with this state inline the SA was 848 bytes (docs/performance.md,
// "IKE SA under 512 bytes"). TestSASize keeps it within 512.
type saRare struct {
	// reqLocal and reqRemote are the addresses of the request being processed when they are not
	// the IKE SA's (SetRequestAddresses), movedFrom where the peer moved from with it
	// (task_mobike.go).
	reqLocal, reqRemote, movedFrom netip.AddrPort
	// vipID is the identity the virtual IP leases are held under (task_cp.go).
	vipID string
	// eapID is the EAP identity authenticated in this IKE SA (either role); authResp a
	// responder's state between IKE_AUTH requests (task_eap.go).
	eapID    string
	authResp *authResponder
	// aaaClass are the RADIUS Class values of the client's authentication (echoed in
	// accounting).
	aaaClass [][]byte
	// heldResp is our IKE_AUTH response from the peer while its AUTH is verified off the SA
	// (verify.go); verdict is that verification's result while the response is processed.
	heldResp *Message
	verdict  *authVerdict
	// deferredList holds tasks that wait before they are tried again (TEMPORARY_FAILURE).
	deferredList []deferred
	// spawned are IKE SAs a rekey created, handoff Child SAs for one that runs already.
	spawned []*SA
	handoff *Handoff
	// IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): our exchange's follow-ups, the peer's exchange waiting
	// for its follow-ups, and the additional secrets of the exchange being completed.
	fuInit *followupInit
	fuResp *followupResponder
	fuThen func(*ChildInstall)
	addKE  [][]byte
}

// rareState returns the SA's rare part for writing, allocating it when there is none. Readers
// use sa.rare and treat nil as all fields zero.
func (sa *SA) rareState() *saRare {
	if sa.rare == nil {
		sa.rare = &saRare{}
	}
	return sa.rare
}

// inUse reports whether any field of r holds something.
func (r *saRare) inUse() bool {
	var none netip.AddrPort
	return r.reqLocal != none || r.reqRemote != none || r.movedFrom != none ||
		r.vipID != "" || r.eapID != "" || r.authResp != nil || len(r.aaaClass) > 0 ||
		r.heldResp != nil || r.verdict != nil || len(r.deferredList) > 0 ||
		len(r.spawned) > 0 || r.handoff != nil ||
		r.fuInit != nil || r.fuResp != nil || r.fuThen != nil || len(r.addKE) > 0
}

// Tidy drops the SA's rare part when nothing in it is in use. The driver calls it after each
// piece of work on the SA.
func (sa *SA) Tidy() {
	if sa.rare != nil && !sa.rare.inUse() {
		sa.rare = nil
	}
}
