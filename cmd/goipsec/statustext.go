package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/status"
)

// printStatus writes the snapshot for people: one block per connection, a line per fact, never
// wider than the longest traffic selector list. now makes the relative times testable.
func printStatus(w io.Writer, st *status.Status, now time.Time) {
	if len(st.Connections) == 0 && len(st.Manual) == 0 {
		fmt.Fprintln(w, "no connections or manual SAs are configured")
		return
	}
	for i, c := range st.Connections {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printConnection(w, &c, now)
	}
	for i, m := range st.Manual {
		if i > 0 || len(st.Connections) > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: manual SA pair, %s %s <=> %s\n", m.Name, m.Mode, m.Local, m.Remote)
		line(w, "spis", m.SPIIn+"_i "+m.SPIOut+"_o")
		line(w, "selectors", strings.Join(m.LocalTS, ",")+" === "+strings.Join(m.RemoteTS, ","))
		line(w, "proposal", m.Proposal)
		line(w, "traffic", trafficText(m.In, m.Out))
	}
	printUsers(w, st, now)
	printCertificates(w, st.Certificates, now) // certs.go
}

// printUsers lists remote-access clients and the pools' use.
func printUsers(w io.Writer, st *status.Status, now time.Time) {
	if len(st.Users) > 0 {
		fmt.Fprintf(w, "\nusers (%d):\n", len(st.Users))
		for _, u := range st.Users {
			who := u.Identity
			if u.EAPIdentity != "" && u.EAPIdentity != u.Identity {
				who += " (EAP " + u.EAPIdentity + ")"
			}
			nat := ""
			if u.NAT {
				nat = ", behind NAT"
			}
			fmt.Fprintf(w, "  %-28s %-16s %s via %s%s, %s, in %s, out %s\n", who, strings.Join(u.VirtualIPs, ","), u.Connection, u.Remote, nat,
				"since "+ago(now, u.Since), humanBytes(u.BytesIn), humanBytes(u.BytesOut))
		}
	}
	for _, p := range st.Pools {
		fmt.Fprintf(w, "\npool %s: %s-%s, %d of %d leased, %d reserved offline\n", p.Name, p.First, p.Last, p.Online, p.Size, p.Offline)
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func line(w io.Writer, label, text string) {
	fmt.Fprintf(w, "  %-12s %s\n", label, text)
}

func printConnection(w io.Writer, c *status.Connection, now time.Time) {
	head := c.Name + ": " + c.State
	if c.StateReason != "" {
		head += " (" + c.StateReason + ")"
	}
	fmt.Fprintln(w, head)
	line(w, "config", fmt.Sprintf("%s:%d", c.File, c.Line))
	if len(c.IKESAs) == 0 {
		line(w, "peer", fmt.Sprintf("%s[%s] <=> %s[%s]", strings.Join(c.LocalAddrs, ","), orDefault(c.LocalID, "%any"),
			strings.Join(c.RemoteAddrs, ","), orDefault(c.RemoteID, "%any")))
		line(w, "proposals", compactProposals(c.Proposals, "default", proposal.ParseIKE))
		for _, ch := range c.Children {
			line(w, "child "+ch.Name, fmt.Sprintf("%s === %s, %s, start_action %s", strings.Join(ch.LocalTS, ","),
				strings.Join(ch.RemoteTS, ","), ch.Mode, ch.StartAction))
		}
	}
	for _, sa := range c.IKESAs {
		role := "responder"
		if sa.Initiator {
			role = "initiator"
		}
		line(w, "ike sa", sa.State+", we are "+role)
		line(w, "endpoints", fmt.Sprintf("%s[%s] <=> %s[%s]", sa.Local, sa.LocalID, sa.Remote, sa.RemoteID))
		i, r := sa.SPIInitiator+"_i", sa.SPIResponder+"_r"
		if sa.Initiator {
			i += "*"
		} else {
			r += "*"
		}
		line(w, "spis", i+" "+r)
		line(w, "proposal", sa.Proposal)
		line(w, "nat", natText(sa.NATLocal, sa.NATRemote))
		if t := sa.TCP; t != nil {
			line(w, "tcp", tcpText(t))
		}
		if sa.PPK {
			line(w, "ppk", "a post-quantum preshared key is in the keys (RFC 9867 or RFC 8784)")
		}
		var timers []string
		if !sa.EstablishedAt.IsZero() {
			timers = append(timers, "established "+since(now, sa.EstablishedAt)+" ago")
		}
		if !sa.RekeyAt.IsZero() {
			timers = append(timers, "rekey in "+until(now, sa.RekeyAt))
		}
		if !sa.LastReceivedAt.IsZero() {
			timers = append(timers, "last heard from the peer "+since(now, sa.LastReceivedAt)+" ago")
		}
		if len(timers) > 0 {
			line(w, "timers", strings.Join(timers, ", "))
		}
		for _, ch := range sa.Children {
			carriage := "ESP"
			if ch.Protocol == "ah" {
				carriage = "AH"
			}
			if ch.UDPEncap {
				carriage = "ESP in UDP"
			}
			if sa.Transport == "tcp" {
				carriage = "ESP in TCP"
			}
			line(w, "child "+ch.Name, fmt.Sprintf("%s, %s, spis %s_i %s_o", ch.Mode, carriage, ch.SPIIn, ch.SPIOut))
			line(w, "", strings.Join(ch.LocalTS, ",")+" === "+strings.Join(ch.RemoteTS, ","))
			t := ch.Proposal
			if !ch.RekeyAt.IsZero() {
				t += ", rekey in " + until(now, ch.RekeyAt)
			}
			if !ch.ExpireAt.IsZero() {
				t += ", expires in " + until(now, ch.ExpireAt)
			}
			line(w, "", t)
			line(w, "", trafficText(ch.In, ch.Out))
		}
	}
	if len(c.IKESAs) > 0 && len(c.Children) > 0 && !hasChildSA(c) {
		for _, ch := range c.Children {
			line(w, "child "+ch.Name, "no Child SA ("+strings.Join(ch.LocalTS, ",")+" === "+strings.Join(ch.RemoteTS, ",")+")")
		}
	}
	if f := c.LastFailure; f != nil && c.State != status.StateUp {
		line(w, "last failure", since(now, f.At)+" ago: "+f.Message)
	}
}

func hasChildSA(c *status.Connection) bool {
	return slices.ContainsFunc(c.IKESAs, func(sa status.IKESA) bool { return len(sa.Children) > 0 })
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func natText(local, remote bool) string {
	switch {
	case local && remote:
		return "both sides are behind a NAT"
	case local:
		return "we are behind a NAT"
	case remote:
		return "the peer is behind a NAT"
	}
	return "none detected"
}

func trafficText(in, out status.Traffic) string {
	s := fmt.Sprintf("in %s (%s", humanBytes(in.Bytes), plural(int(in.Packets), "packet"))
	if in.Drops > 0 {
		s += fmt.Sprintf(", %d dropped", in.Drops)
	}
	return s + fmt.Sprintf("), out %s (%s)", humanBytes(out.Bytes), plural(int(out.Packets), "packet"))
}

// compactProposals prints a proposal list for a status line: "default" when it is exactly the
// default set (which expands to dozens of proposals), else at most two and a count.
func compactProposals(list []string, def string, parse func(string) ([]proposal.Proposal, error)) string {
	if defs, err := parse(def); err == nil && len(defs) == len(list) {
		same := true
		for i, p := range defs {
			same = same && p.String() == list[i]
		}
		if same {
			return def
		}
	}
	if len(list) > 2 {
		return fmt.Sprintf("%s, %s (and %d more)", list[0], list[1], len(list)-2)
	}
	return strings.Join(list, ", ")
}

func since(now, t time.Time) string { return roundDuration(now.Sub(t)) }

func until(now, t time.Time) string {
	if d := t.Sub(now); d > 0 {
		return roundDuration(d)
	}
	return "0s"
}

// roundDuration prints a duration the way people read it: 3h54m, 2h, 5m3s, 50m, 42s.
func roundDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d >= time.Hour {
		d = d.Round(time.Minute)
	} else {
		d = d.Round(time.Second)
	}
	s := d.String() // 1h2m0s, 59m20s, 42s
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// tcpText describes the TCP connection of an IKE SA in TCP (RFC 9329).
func tcpText(t *status.TCPState) string {
	who := "the peer opened it"
	if t.Originator {
		who = "we opened it"
	}
	if !t.Connected {
		if t.Originator {
			return "IKE and ESP in TCP, not connected (reconnecting to " + t.Remote + ")"
		}
		return "IKE and ESP in TCP, not connected (waiting for the peer to reconnect)"
	}
	return fmt.Sprintf("IKE and ESP in TCP %s <=> %s, %s; %d/%d ESP packets in/out, %d/%d bytes", t.Local, t.Remote, who, t.ESPIn, t.ESPOut, t.BytesIn, t.BytesOut)
}
