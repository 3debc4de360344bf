package engine

import (
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike"
)

// Re-authentication (reauth_time), make-before-break: the initiator negotiates a new IKE SA with
// IKE_SA_INIT and IKE_AUTH — fresh keys and a fresh authentication of both sides — carrying the
// same Child SAs and asking for the virtual IPs it has; only when the new one is up is the old IKE
// SA deleted, so traffic moves to the new Child SAs without a gap (RFC 7296 §2.8.3 allows
// re-authentication this way; strongSwan's make_before_break). No INITIAL_CONTACT is sent, as
// another IKE SA of the same identities exists, so the peer keeps the old one until our Delete.

// reauthRetry is how long a failed re-authentication waits before it is tried again.
const reauthRetry = time.Minute

// reauthenticate starts the new IKE SA for s (as s's owner).
func (e *Engine) reauthenticate(s *ikeSA, now time.Time) {
	s.reauthAt = e.ep.at(now).Add(reauthRetry)
	cfg := *s.Config
	if len(s.LocalVIPs) > 0 {
		// Ask for the addresses we have: the gateway gives them again (the same lease).
		cfg.VIPs = append([]netip.Addr(nil), s.LocalVIPs...)
	}
	var children []*ike.ChildConfig
	seen := map[*ike.ChildConfig]bool{}
	for _, c := range s.Children {
		if c.Config != nil && !seen[c.Config] && c.State().Live() {
			seen[c.Config] = true
			children = append(children, c.Config)
		}
	}
	sa, err := ike.NewInitiator(&cfg, children, s.Local, s.Remote, e.deps)
	if err != nil {
		e.logSA(s).Warn("cannot start re-authentication", "err", err)
		return
	}
	// The peer's identity as the old IKE SA knows it: the uniqueness check then sees that IKE SA
	// and leaves INITIAL_CONTACT out (IKE_AUTH sets the identity again from IDr).
	sa.RemoteID = s.RemoteID
	en, ns := e.newEntry(sa)
	ns.reauthOf = s.en
	if !e.table.add(en) {
		return
	}
	e.idx.addConn(ns, s.connName())
	e.logSA(s).Info("re-authenticating: a new IKE SA replaces this one once it is up (make-before-break)")
	e.post(en, work{kind: workFunc, fn: func(*ikeSA) {}})
}

// reauthDone marks a newly established IKE SA that re-authenticated another: finish queues the
// old one's deletion behind the new one's effects (its Child SA installs), so that the old Child
// SAs go only after the new ones carry the traffic — the appliers of two IKE SAs are independent.
func (e *Engine) reauthDone(s *ikeSA) {
	if s.reauthOf != nil {
		s.reauthUp = true
	}
}

// reauthHandover returns the effect that deletes the re-authenticated IKE SA, once the new one's
// Child SAs are installed (nil when there is none to delete yet).
func (e *Engine) reauthHandover(s *ikeSA) effect {
	if !s.reauthUp || s.HasWork() || s.Busy() {
		return nil
	}
	old := s.reauthOf
	s.reauthOf, s.reauthUp = nil, false
	return postEffect{en: old, fn: func(o *ikeSA) {
		e.logSA(o).Info("re-authenticated by a new IKE SA: deleting this one")
		o.QueueDeleteIKE(ike.ReasonReauthenticated)
	}}
}

// postEffect gives work to another IKE SA's owner once the effects before it are applied.
type postEffect struct {
	en *entry
	fn func(*ikeSA)
}
