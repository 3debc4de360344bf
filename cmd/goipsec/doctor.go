package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/goipsec/goipsec/status"
)

// probeLine is one port probe's outcome, as the daemon reported it.
type probeLine struct {
	Target, Verdict, Detail string
}

// doctorReport explains a connection's state in plain words: what is configured on our side, what
// the last negotiation failure said (which names the peer's offer when we were the responder),
// and whether the peer's IKE ports answer, as seen from the daemon.
func doctorReport(w io.Writer, st *status.Status, name string, probes []probeLine, now time.Time) error {
	c := st.Connection(name)
	if c == nil {
		return fmt.Errorf("no such connection %q (configured: %s)", name, strings.Join(st.Names(), ", "))
	}
	fmt.Fprintf(w, "connection %s (%s:%d)\n", c.Name, c.File, c.Line)
	switch c.State {
	case status.StateUp, status.StateDegraded:
		fmt.Fprintf(w, "  state: %s", strings.ToUpper(c.State))
		for _, sa := range c.IKESAs {
			if sa.State != "established" {
				continue
			}
			fmt.Fprintf(w, ", IKE SA with %s since %s ago, %d Child SA(s)", sa.Remote, since(now, sa.EstablishedAt), len(sa.Children))
			if !sa.LastReceivedAt.IsZero() {
				fmt.Fprintf(w, ", last heard from the peer %s ago", since(now, sa.LastReceivedAt))
			}
		}
		fmt.Fprintln(w)
		if c.StateReason != "" {
			fmt.Fprintf(w, "  %s\n", c.StateReason)
		}
		if c.DPDDelay == 0 {
			fmt.Fprintln(w, "  note: dpd_delay is not set, so a dead peer goes unnoticed until a rekey fails: set dpd_delay = 30s")
		}
	case status.StateConnecting:
		fmt.Fprint(w, "  state: CONNECTING")
		for _, sa := range c.IKESAs {
			fmt.Fprintf(w, ", IKE SA with %s in state %s", sa.Remote, sa.State)
		}
		fmt.Fprintln(w, " (waiting for the peer; `goipsec log` shows retransmissions)")
	default:
		fmt.Fprintln(w, "  state: DOWN (no IKE SA)")
	}
	fmt.Fprintf(w, "  we are %s at %s, expecting peer %s at %s\n", orAddr(c.LocalID), strings.Join(c.LocalAddrs, ","),
		orDefault(c.RemoteID, "%any"), strings.Join(c.RemoteAddrs, ","))
	fmt.Fprintf(w, "  our IKE proposals: %s\n", strings.Join(c.Proposals, ", "))
	for _, ch := range c.Children {
		props := "ESP " + orDefault(strings.Join(ch.ESPProposals, ", "), "default")
		switch {
		case len(ch.AHProposals) > 0 && len(ch.ESPProposals) > 0:
			props += " or AH " + strings.Join(ch.AHProposals, ", ")
		case len(ch.AHProposals) > 0:
			props = "AH " + strings.Join(ch.AHProposals, ", ")
		}
		fmt.Fprintf(w, "  child %s: %s <=> %s, %s mode, %s, start_action %s\n", ch.Name, strings.Join(ch.LocalTS, ","),
			strings.Join(ch.RemoteTS, ","), ch.Mode, props, ch.StartAction)
	}
	doctorCertificates(w, st, c.Name, now) // certs.go
	if f := c.LastFailure; f != nil {
		fmt.Fprintf(w, "  last failure (%s ago): %s\n", since(now, f.At), f.Message)
		if hint := failureHint(f.Message); hint != "" {
			fmt.Fprintf(w, "  hint: %s\n", hint)
		}
	} else if c.State == status.StateDown {
		fmt.Fprintln(w, "  no negotiation has failed yet: nothing initiated it? (start_action none/trap: run `goipsec up "+c.Name+"` or send traffic)")
	}
	if len(probes) == 0 {
		fmt.Fprintln(w, "  peer probe: no remote address to probe (remote_addrs is %any or a range)")
	}
	for _, p := range probes {
		fmt.Fprintf(w, "  peer %s: %s: %s\n", p.Target, strings.ToUpper(p.Verdict), p.Detail)
	}
	return nil
}

func orAddr(id string) string {
	if id == "" || id == "%any" {
		return "(our IP address)"
	}
	return id
}

// failureHint turns common failure texts into advice.
func failureHint(msg string) string {
	if h := certFailureHint(msg); h != "" { // certs.go
		return h
	}
	switch {
	case strings.Contains(msg, "IKE proposal"):
		return "make proposals overlap: add one of the peer's proposals to `proposals`, or ask the peer to accept one of ours"
	case strings.Contains(msg, "ESP proposal"):
		return "make esp_proposals overlap on both sides (and PFS groups, if any, match)"
	case strings.Contains(msg, "preshared key") || strings.Contains(msg, "AUTHENTICATION_FAILED") || strings.Contains(msg, "does not verify"):
		return "check that both sides use the same secret for this pair of identities (secrets { ike-... { id-... } })"
	case strings.Contains(msg, "identif") || strings.Contains(msg, "expects"):
		return "local.id on one side must match remote.id on the other"
	case strings.Contains(msg, "traffic selectors") || strings.Contains(msg, "selectors"):
		return "local_ts/remote_ts must mirror each other (ours local = theirs remote)"
	case strings.Contains(msg, "did not answer"):
		return "the peer is unreachable or not running IKE: check routes, firewalls (udp/500, udp/4500) and remote_addrs"
	}
	return ""
}
