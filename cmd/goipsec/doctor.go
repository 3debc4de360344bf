package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/goipsec/goipsec/daemon"
)

// doctorReport explains a connection's state in plain words: what is configured on our side, what
// the last negotiation failure said (which names the peer's offer when we were the responder), and
// whether the peer's IKE ports answer.
func doctorReport(w io.Writer, st *daemon.Status, name string) error {
	var c *daemon.ConnStatus
	for i := range st.Connections {
		if st.Connections[i].Name == name {
			c = &st.Connections[i]
		}
	}
	if c == nil {
		var names []string
		for _, x := range st.Connections {
			names = append(names, x.Name)
		}
		return fmt.Errorf("no connection named %q (configured: %s)", name, strings.Join(names, ", "))
	}
	fmt.Fprintf(w, "connection %s (%s:%d)\n", c.Name, c.File, c.Line)
	switch c.State {
	case "up":
		fmt.Fprintf(w, "  state: UP")
		for _, sa := range c.IKESAs {
			fmt.Fprintf(w, ", IKE SA with %s since %s ago, %d Child SA(s)", sa.Remote, ago(sa.Established), len(sa.Children))
		}
		fmt.Fprintln(w)
	case "connecting":
		fmt.Fprint(w, "  state: CONNECTING")
		for _, sa := range c.IKESAs {
			fmt.Fprintf(w, ", IKE SA with %s in state %s", sa.Remote, sa.State)
		}
		fmt.Fprintln(w, " (waiting for the peer; `goipsec log` shows retransmissions)")
	default:
		fmt.Fprintln(w, "  state: DOWN (no IKE SA)")
	}
	fmt.Fprintf(w, "  we are %s at %s, expecting peer %s at %s\n", orAddr(c.LocalID), c.LocalAddrs, orAny(c.RemoteID), c.RemoteAddrs)
	fmt.Fprintf(w, "  our IKE proposals: %s\n", c.Proposals)
	for _, ch := range c.Children {
		fmt.Fprintf(w, "  child %s: %s <=> %s, %s mode, ESP %s, start_action %s\n", ch.Name, ch.LocalTS, ch.RemoteTS, ch.Mode, ch.ESPProposals, ch.StartAction)
	}
	doctorCertificates(w, st, c.Name) // certs.go
	if c.LastFailure != "" {
		fmt.Fprintf(w, "  last failure (%s ago): %s\n", ago(c.LastFailureAt), c.LastFailure)
		if hint := failureHint(c.LastFailure); hint != "" {
			fmt.Fprintf(w, "  hint: %s\n", hint)
		}
	} else if c.State == "down" {
		fmt.Fprintln(w, "  no negotiation has failed yet: nothing initiated it? (start_action none/trap: run `goipsec up "+c.Name+"` or send traffic)")
	}
	for _, addr := range strings.Split(c.RemoteAddrs, ",") {
		if addr == "%any" || strings.Contains(addr, "/") {
			continue
		}
		for _, port := range []int{500, 4500} {
			fmt.Fprintf(w, "  peer %s udp/%d: %s\n", addr, port, probeUDP(addr, port))
		}
	}
	return nil
}

func orAddr(id string) string {
	if id == "" || id == "%any" {
		return "(our IP address)"
	}
	return id
}

func orAny(id string) string {
	if id == "" {
		return "%any"
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

// probeUDP sends a datagram and reports whether the port is refused (ICMP port unreachable).
func probeUDP(host string, port int) string {
	conn, err := net.DialTimeout("udp", net.JoinHostPort(host, fmt.Sprint(port)), 2*time.Second)
	if err != nil {
		return "no route: " + err.Error()
	}
	defer conn.Close()
	// Not a valid IKE message: an IKE daemon drops it silently, a closed port answers with ICMP.
	conn.Write([]byte("goipsec doctor probe"))
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 64))
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "CLOSED (port unreachable: no IKE daemon listens there)"
	case err != nil:
		return "open or filtered (no refusal within 1s)"
	}
	return "answered"
}
