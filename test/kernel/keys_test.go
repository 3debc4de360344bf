package kernel

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
)

// xfrmBlock is one state or policy as `ip xfrm state` / `ip xfrm policy` prints it.
type xfrmBlock struct {
	text                 string
	spi, dir             string // states: SPI (0x%08x); policies: in, out or fwd
	mark, outMark, ifID  string // "0xV/0xM", "0xV/0xM" (output-mark), "0xN"; "" when absent
	dev                  string // policies: the selector's interface
	tmpl, packets, bytes string // policies: whether a template follows; states: counters
}

var (
	blockSPI     = regexp.MustCompile(`proto (?:esp|ah) spi (0x[0-9a-f]+)`)
	blockDir     = regexp.MustCompile(`(?m)^\s+dir (\w+)`)
	blockMark    = regexp.MustCompile(`(?m)^\s+mark (0x[0-9a-f]+/0x[0-9a-f]+)`)
	blockOutMark = regexp.MustCompile(`output-mark (0x[0-9a-f]+(?:/0x[0-9a-f]+)?)`)
	blockIfID    = regexp.MustCompile(`if_id (0x[0-9a-f]+)`)
	blockDev     = regexp.MustCompile(`^[^\n]* dev (\S+)`)
)

// xfrmBlocks parses `ip [-s] xfrm state|policy` output; states without algorithms (larval, see
// larvalRe) and policies without a template (the IKE bypass policies) are left out.
func xfrmBlocks(out string, states bool) []xfrmBlock {
	var res []xfrmBlock
	for _, text := range stateHead.Split(out, -1) {
		if strings.TrimSpace(text) == "" {
			continue
		}
		text = "src " + text
		b := xfrmBlock{text: text}
		if m := blockSPI.FindStringSubmatch(text); m != nil {
			b.spi = m[1]
		}
		if m := blockDir.FindStringSubmatch(text); m != nil {
			b.dir = m[1]
		}
		if m := blockMark.FindStringSubmatch(text); m != nil {
			b.mark = m[1]
		}
		if m := blockOutMark.FindStringSubmatch(text); m != nil {
			b.outMark = m[1]
		}
		if m := blockIfID.FindStringSubmatch(text); m != nil {
			b.ifID = m[1]
		}
		if m := blockDev.FindStringSubmatch(text); m != nil {
			b.dev = m[1]
		}
		if m := countRe.FindStringSubmatch(text); m != nil {
			b.bytes, b.packets = m[1], m[2]
		}
		if strings.Contains(text, "tmpl ") {
			b.tmpl = "yes"
		}
		if states && !larvalRe.MatchString(text) || !states && b.tmpl == "" {
			continue
		}
		res = append(res, b)
	}
	return res
}

// guestSAs returns the guest's SAs by direction: the outbound one has the host as destination.
func (l *lab) guestSAs(t *testing.T) (in, out xfrmBlock) {
	t.Helper()
	raw := l.guest(t, "ip -s xfrm state")
	sas := xfrmBlocks(raw, true)
	if len(sas) != 2 {
		t.Fatalf("expected two SAs:\n%s", raw)
	}
	for _, sa := range sas {
		if strings.HasPrefix(sa.text, "src "+guestOuter+" dst "+hostOuter) {
			out = sa
		} else {
			in = sa
		}
	}
	if in.spi == "" || out.spi == "" {
		t.Fatalf("no inbound and outbound SA:\n%s", raw)
	}
	return in, out
}

// guestPolicies returns the guest's IPsec policies (those with a template) by direction.
func (l *lab) guestPolicies(t *testing.T) map[string][]xfrmBlock {
	t.Helper()
	res := map[string][]xfrmBlock{}
	for _, p := range xfrmBlocks(l.guest(t, "ip xfrm policy"), false) {
		res[p.dir] = append(res[p.dir], p)
	}
	return res
}

// TestKernelChildKeys: strongSwan's XFRM child keys with goipsec's kernel data plane, checked in
// the guest's `ip xfrm state` / `ip xfrm policy` and with traffic:
//   - marks: mark_in = %unique, mark_out = %unique-dir (two values: outbound packets must carry
//     mark_out's to meet the policy), set_mark_in = %same (decrypted packets get mark_in's value,
//     so they match the marked inbound policy), set_mark_out with a mask, mark_in only on the
//     policies (no mark_in_sa); a rekey keeps the unique values (the same policies);
//   - interface and policies_fwd_out: the outbound policies restricted to eth0, a forward policy
//     each way;
//     and the kernel's SA counters equal in `goipsec status` and in the metrics after traffic;
//   - if_id_in/out = %unique: one interface ID on both SAs and all policies and in the updown
//     script's PLUTO_IF_ID_IN/OUT, no route; traffic flows through an xfrm interface made with it;
//   - policies = no: SAs only; traffic flows once the operator adds policies and a route.
func TestKernelChildKeys(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	t.Run("marks", func(t *testing.T) {
		l.logConsole(t)
		l.logXfrmOnFailure(t)
		g := l.kernelPair(t, func(c *goipsecConf) {
			c.childExtra = "        mark_in = %unique\n        mark_out = %unique-dir\n        set_mark_in = %same\n" +
				"        set_mark_out = 0x500/0xf00\n        rekey_packets = 30\n        life_packets = 100000\n"
		})
		g.waitOutput(t, "Child SA established", 30*time.Second)
		in, out := l.guestSAs(t)
		pol := l.guestPolicies(t)
		if len(pol["out"]) != 1 || len(pol["in"]) != 1 || len(pol["fwd"]) != 1 {
			t.Fatalf("policies %+v", pol)
		}
		markOut, markIn := pol["out"][0].mark, pol["in"][0].mark
		if markOut == "" || markIn == "" || markOut == markIn || pol["fwd"][0].mark != markIn {
			t.Fatalf("mark_out %q and mark_in %q must be set and differ (%%unique-dir), the fwd policy has mark_in:\n%+v", markOut, markIn, pol)
		}
		if out.mark != markOut || in.mark != "" {
			t.Fatalf("the outbound SA has mark %q (want %s), the inbound SA %q (want none without mark_in_sa)", out.mark, markOut, in.mark)
		}
		if in.outMark != markIn || out.outMark != "0x500/0xf00" {
			t.Fatalf("output marks: inbound SA %q (want %%same = %s), outbound SA %q (want 0x500/0xf00)", in.outMark, markIn, out.outMark)
		}
		// Only packets with mark_out's value meet the outbound policy; the replies meet the
		// inbound policy because the inbound SA marks what it decrypted.
		v, _, _ := strings.Cut(markOut, "/")
		n, _ := strconv.ParseUint(v, 0, 32)
		l.guest(t, fmt.Sprintf("ping -c 3 -i 0.3 -W 3 -m %d -I %s %s", n, guestInner, hostInner))
		_, out2 := l.guestSAs(t)
		if out2.packets == "0" {
			t.Fatalf("marked pings did not use the outbound SA:\n%s", out2.text)
		}
		// rekey_packets: the soft limit starts a rekey; the new Child SA keeps the unique marks.
		l.guest(t, fmt.Sprintf("ping -c 35 -i 0.05 -W 2 -m %d -I %s %s >/dev/null || true", n, guestInner, hostInner))
		g.waitOutput(t, "Child SA reached a soft limit: rekeying it", 20*time.Second)
		deadline := time.Now().Add(30 * time.Second)
		for {
			sas := xfrmBlocks(l.guest(t, "ip xfrm state"), true)
			if len(sas) == 2 && sas[0].spi != in.spi && sas[0].spi != out.spi && sas[1].spi != in.spi && sas[1].spi != out.spi {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no rekey: SAs %+v", sas)
			}
			time.Sleep(500 * time.Millisecond)
		}
		newIn, newOut := l.guestSAs(t)
		pol = l.guestPolicies(t)
		if newOut.mark != markOut || newIn.outMark != markIn || len(pol["out"]) != 1 || pol["out"][0].mark != markOut || pol["in"][0].mark != markIn {
			t.Fatalf("after the rekey: outbound SA mark %q, inbound output mark %q, policies %+v; want the unique values %s and %s kept",
				newOut.mark, newIn.outMark, pol, markOut, markIn)
		}
		l.guest(t, fmt.Sprintf("ping -c 2 -i 0.3 -W 3 -m %d -I %s %s", n, guestInner, hostInner))
		g.stop(t)
		l.assertNoXfrm(t)
	})
	t.Run("interface-fwd-out-counters", func(t *testing.T) {
		l.logConsole(t)
		l.logXfrmOnFailure(t)
		g := l.kernelPair(t, func(c *goipsecConf) {
			c.childExtra = "        interface = eth0\n        policies_fwd_out = yes\n"
			c.daemonExtra = "  metrics_listen = 127.0.0.1:9477\n"
		})
		g.waitOutput(t, "Child SA established", 30*time.Second)
		pol := l.guestPolicies(t)
		if len(pol["out"]) != 1 || len(pol["in"]) != 1 || len(pol["fwd"]) != 2 {
			t.Fatalf("want one out, one in and two fwd policies (policies_fwd_out): %+v", pol)
		}
		// The outbound policies (out, fwd-out) are restricted to eth0, the inbound ones (in,
		// fwd-in) not: their selectors would meet the loopback device for the host's own traffic.
		for _, ps := range pol {
			for _, p := range ps {
				outbound := strings.HasPrefix(p.text, "src "+guestInner+"/32 dst "+hostInner+"/32")
				if outbound != (p.dev == "eth0") {
					t.Fatalf("interface = eth0: want dev eth0 on the outbound policies only, have:\n%s", p.text)
				}
			}
		}
		l.trafficCheck(t, "tunnel")
		assertCountersReported(t, l)
		g.stop(t)
		l.assertNoXfrm(t)
	})
	t.Run("unique-if-id", func(t *testing.T) {
		l.logConsole(t)
		l.logXfrmOnFailure(t)
		// The updown script records its environment: it must see the chosen ID.
		l.guest(t, `printf '#!/bin/sh\nenv | grep ^PLUTO_ >> /tmp/updown.env\n' > /tmp/updown.sh && chmod +x /tmp/updown.sh && rm -f /tmp/updown.env`)
		g := l.kernelPair(t, func(c *goipsecConf) {
			c.childExtra = "        if_id_in = %unique\n        if_id_out = %unique\n        updown = /tmp/updown.sh\n"
		})
		g.waitOutput(t, "Child SA established", 30*time.Second)
		in, out := l.guestSAs(t)
		pol := l.guestPolicies(t)
		id := in.ifID
		if id == "" || out.ifID != id || len(pol["out"]) != 1 || pol["out"][0].ifID != id || pol["in"][0].ifID != id || pol["fwd"][0].ifID != id {
			t.Fatalf("%%unique: want one interface ID on both SAs and all policies, have SAs %q/%q, policies %+v", in.ifID, out.ifID, pol)
		}
		n, _ := strconv.ParseUint(id, 0, 32)
		var env string
		for range 50 {
			if env, _ = l.guestTry(t, "cat /tmp/updown.env"); strings.Contains(env, "PLUTO_VERB=up-client") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(env, fmt.Sprintf("PLUTO_IF_ID_IN=%d\n", n)) || !strings.Contains(env, fmt.Sprintf("PLUTO_IF_ID_OUT=%d\n", n)) {
			t.Fatalf("the updown script did not see interface ID %d:\n%s", n, env)
		}
		if r := l.guest(t, "ip route show table all "+hostInner); strings.TrimSpace(r) != "" {
			t.Fatalf("if_id_out set, but a route for the remote selector was installed: %s", r)
		}
		// A route-based VPN over the ID goipsec chose: an xfrm interface with it carries the
		// traffic.
		l.guest(t, "ip link add ipsecu type xfrm dev eth0 if_id "+id+" && ip link set ipsecu up && ip route add "+hostInner+"/32 dev ipsecu src "+guestInner)
		t.Cleanup(func() { l.guestTry(t, "ip link del ipsecu") })
		l.pingFromGuest(t, guestInner, hostInner)
		g.stop(t)
		l.guest(t, "ip link del ipsecu")
		l.assertNoXfrm(t)
	})
	t.Run("policies-no", func(t *testing.T) {
		l.logConsole(t)
		l.logXfrmOnFailure(t)
		g := l.kernelPair(t, func(c *goipsecConf) { c.childExtra = "        policies = no\n" })
		g.waitOutput(t, "Child SA established", 30*time.Second)
		in, out := l.guestSAs(t)
		if pol := l.guestPolicies(t); len(pol) != 0 {
			t.Fatalf("policies = no, but goipsec installed policies: %+v", pol)
		}
		if r := l.guest(t, "ip route show table all "+hostInner); strings.TrimSpace(r) != "" {
			t.Fatalf("policies = no, but a route for the remote selector was installed: %s", r)
		}
		// The operator's own policies and route put traffic on the SAs.
		tmplOut := "tmpl src " + guestOuter + " dst " + hostOuter + " proto esp mode tunnel"
		tmplIn := "tmpl src " + hostOuter + " dst " + guestOuter + " proto esp mode tunnel"
		l.guest(t, strings.Join([]string{
			"ip xfrm policy add src " + guestInner + "/32 dst " + hostInner + "/32 dir out " + tmplOut,
			"ip xfrm policy add src " + hostInner + "/32 dst " + guestInner + "/32 dir in " + tmplIn,
			"ip xfrm policy add src " + hostInner + "/32 dst " + guestInner + "/32 dir fwd " + tmplIn,
			"ip route add " + hostInner + "/32 via " + hostOuter + " src " + guestInner,
		}, " && "))
		t.Cleanup(func() { l.guestTry(t, "ip route del "+hostInner+"/32; ip xfrm policy flush") })
		l.pingFromGuest(t, guestInner, hostInner)
		in2, out2 := l.guestSAs(t)
		if in2.spi != in.spi || out2.spi != out.spi || in2.packets == "0" || out2.packets == "0" {
			t.Fatalf("traffic did not use goipsec's SAs:\n%s\n%s", in2.text, out2.text)
		}
		g.stop(t)
		if sas := xfrmBlocks(l.guest(t, "ip xfrm state"), true); len(sas) != 0 {
			t.Fatalf("goipsec left SAs behind: %+v", sas)
		}
		l.guest(t, "ip route del "+hostInner+"/32; ip xfrm policy flush")
		l.assertNoXfrm(t)
	})
}

// assertCountersReported compares the kernel's counters of the guest's two SAs (ip -s xfrm
// state) with what `goipsec status --json` and the Prometheus metrics report for the Child SA:
// with the traffic over they must be equal, bytes and packets, each way.
func assertCountersReported(t *testing.T, l *lab) {
	t.Helper()
	in, out := l.guestSAs(t)
	st, raw := l.goipsecStatus(t)
	if len(st.Connections) != 1 || len(st.Connections[0].IKESAs) != 1 || len(st.Connections[0].IKESAs[0].ChildSAs) != 1 {
		t.Fatalf("want one Child SA in goipsec status:\n%s", raw)
	}
	ch := st.Connections[0].IKESAs[0].ChildSAs[0]
	hex := func(s string) string { return "0x" + strings.TrimPrefix(strings.ToLower(s), "0x") }
	if hex(ch.SPIIn) != in.spi || hex(ch.SPIOut) != out.spi {
		t.Fatalf("goipsec status shows SPIs %s/%s, the kernel %s/%s", ch.SPIIn, ch.SPIOut, in.spi, out.spi)
	}
	kernel := map[string]string{"in bytes": in.bytes, "in packets": in.packets, "out bytes": out.bytes, "out packets": out.packets}
	status := map[string]string{"in bytes": fmt.Sprint(ch.In.Bytes), "in packets": fmt.Sprint(ch.In.Packets),
		"out bytes": fmt.Sprint(ch.Out.Bytes), "out packets": fmt.Sprint(ch.Out.Packets)}
	metrics := l.guest(t, `printf 'GET /metrics HTTP/1.0\r\n\r\n' | nc -N -w 10 127.0.0.1 9477`)
	for k, want := range kernel {
		if n, _ := strconv.ParseUint(want, 10, 64); n < 100 {
			t.Fatalf("the kernel counted only %s %s after 1 MiB each way", want, k)
		}
		if status[k] != want {
			t.Errorf("goipsec status: %s %s, the kernel counted %s", k, status[k], want)
		}
		dir, kind, _ := strings.Cut(k, " ")
		re := regexp.MustCompile(`(?m)^goipsec_child_sa_` + kind + `_total\{child="net",conn="gt",direction="` + dir + `"\} (\S+)$`)
		m := re.FindStringSubmatch(metrics)
		if m == nil {
			t.Errorf("metrics: no goipsec_child_sa_%s_total for direction %s:\n%s", kind, dir, metrics)
			continue
		}
		if f, err := strconv.ParseFloat(m[1], 64); err != nil || strconv.FormatFloat(f, 'f', 0, 64) != want {
			t.Errorf("metrics: goipsec_child_sa_%s_total{direction=%q} = %s, the kernel counted %s", kind, dir, m[1], want)
		}
	}
}

// guestStatus is the part of `goipsec status --json` (docs/status-json.md) the lab tests read.
type guestStatus struct {
	Connections []struct {
		IKESAs []struct {
			ChildSAs []struct {
				SPIIn  string       `json:"spi_in"`
				SPIOut string       `json:"spi_out"`
				In     trafficCount `json:"in"`
				Out    trafficCount `json:"out"`
			} `json:"child_sas"`
		} `json:"ike_sas"`
	} `json:"connections"`
}

type trafficCount struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
}

// goipsecStatus runs `goipsec status --json` in the guest; it returns the parsed and raw output.
func (l *lab) goipsecStatus(t *testing.T) (guestStatus, string) {
	t.Helper()
	var st guestStatus
	raw := l.guest(t, "/mnt/host/goipsec status --json")
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("goipsec status --json: %v\n%s", err, raw)
	}
	return st, raw
}
