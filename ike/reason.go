package ike

import "fmt"

// Reason says why an IKE SA or a Child SA went down. It is a typed value so that logs, metrics
// and the restart logic agree on it; String gives the stable label used in both.
type Reason uint8

const (
	ReasonNone              Reason = iota
	ReasonDeletedByPeer            // the peer sent a Delete
	ReasonDeleted                  // we deleted it (terminate, reload, hard lifetime through Delete)
	ReasonRekeyed                  // a rekeyed SA replaced it
	ReasonDeadPeer                 // the peer did not answer our retransmissions
	ReasonPeerRestarted            // the peer answered INVALID_IKE_SPI: it lost its state
	ReasonInitialContact           // a new IKE SA of the same identities carried INITIAL_CONTACT
	ReasonUniqueReplaced           // unique = replace: a new IKE SA of the same remote identity
	ReasonAuthFailed               // authentication failed (either side)
	ReasonNegotiationFailed        // proposals, selectors or another negotiation step failed
	ReasonHalfOpenTimeout          // IKE_AUTH never arrived
	ReasonLifetime                 // a hard lifetime expired
	ReasonInstallFailed            // the data plane refused the SA
	ReasonShutdown                 // the daemon stops
	ReasonCollision                // the redundant SA of a rekey collision (RFC 7296 §2.8.1, §2.8.2)
	ReasonParentGone               // its IKE SA went away
	ReasonTemporaryFailure         // the peer kept answering TEMPORARY_FAILURE
	ReasonRedirected               // a gateway sent the client elsewhere (RFC 5685)
	ReasonReauthenticated          // a new IKE SA re-authenticated the peers and replaced it
	numReasons
)

var reasonNames = [...]string{
	ReasonNone: "none", ReasonDeletedByPeer: "deleted_by_peer", ReasonDeleted: "deleted",
	ReasonRekeyed: "rekeyed", ReasonDeadPeer: "dead_peer", ReasonPeerRestarted: "peer_restarted",
	ReasonInitialContact: "initial_contact", ReasonUniqueReplaced: "unique_replaced",
	ReasonAuthFailed: "authentication_failed", ReasonNegotiationFailed: "negotiation_failed",
	ReasonHalfOpenTimeout: "half_open_timeout", ReasonLifetime: "lifetime", ReasonInstallFailed: "install_failed",
	ReasonShutdown: "shutdown", ReasonCollision: "rekey_collision", ReasonParentGone: "ike_sa_gone",
	ReasonTemporaryFailure: "temporary_failure", ReasonRedirected: "redirected", ReasonReauthenticated: "reauthenticated",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason-%d", uint8(r))
}

// PeerGone reports whether the reason means the peer is unreachable or lost its state, so that a
// connection with dpd_action/close_action = restart should be brought up again.
func (r Reason) PeerGone() bool {
	switch r {
	case ReasonDeadPeer, ReasonPeerRestarted, ReasonDeletedByPeer:
		return true
	}
	return false
}

// Reasons lists every reason, for metrics.
func Reasons() []Reason {
	out := make([]Reason, 0, numReasons)
	for r := Reason(1); r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}
