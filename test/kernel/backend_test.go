package kernel

import (
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
)

// guestSPIs lists the SPIs of the guest's XFRM SAs, sorted, without larval states (larvalRe).
func (l *lab) guestSPIs(t *testing.T) []string {
	t.Helper()
	var spis []string
	for _, block := range stateHead.Split(l.guest(t, "ip xfrm state"), -1) {
		m := regexp.MustCompile(`spi (0x[0-9a-f]+)`).FindStringSubmatch(block)
		if m == nil || !larvalRe.MatchString(block) {
			continue
		}
		spis = append(spis, m[1])
	}
	sort.Strings(spis)
	return spis
}

// kernelPair starts goipsec with the kernel data plane in the guest (configured by guestEdit) and
// a userspace responder on the host side, in tunnel mode.
func (l *lab) kernelPair(t *testing.T, guestEdit func(*goipsecConf)) *guestDaemon {
	t.Helper()
	guest, host := pair("tunnel", "aes256gcm16")
	guest.dataplane, host.dataplane = "kernel", "userspace"
	guest.startAction = "start"
	guestEdit(&guest)
	l.startHostGoipsec(t, host.String())
	return l.startGuestGoipsec(t, "goipsec", guest)
}

// TestKernelTrapAcquire: a trap policy in the kernel raises an acquire on the first packet, which
// starts IKE; the SA is installed and the traffic then flows.
func TestKernelTrapAcquire(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	l.logConsole(t)
	g := l.kernelPair(t, func(c *goipsecConf) { c.startAction = "trap" })
	if spis := l.guestSPIs(t); len(spis) != 0 {
		t.Fatalf("SAs installed before any traffic: %v", spis)
	}
	if !strings.Contains(l.guest(t, "ip xfrm policy"), "dir out") {
		t.Fatal("no outbound trap policy in the kernel")
	}
	// The first packet only triggers the acquire (the kernel drops it).
	l.guestTry(t, "ping -c1 -W1 -I "+guestInner+" "+hostInner)
	g.waitOutput(t, "acquire: traffic needs an SA", 20*time.Second)
	g.waitOutput(t, "Child SA established", 30*time.Second)
	l.pingFromGuest(t, guestInner, hostInner)
	l.assertCountersMoved(t)
}

// TestKernelSoftExpiryRekeys: the kernel's soft packet limit raises an expire event, the daemon
// rekeys the Child SA, and traffic moves to the new SAs.
func TestKernelSoftExpiryRekeys(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	l.logConsole(t)
	g := l.kernelPair(t, func(c *goipsecConf) { c.childExtra = "        rekey_packets = 20\n        life_packets = 100000\n" })
	g.waitOutput(t, "Child SA established", 30*time.Second)
	before := l.guestSPIs(t)
	l.guest(t, "ping -c 25 -i 0.05 -W 2 -I "+guestInner+" "+hostInner+" >/dev/null || true")
	g.waitOutput(t, "Child SA reached a soft limit: rekeying it", 20*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		after := l.guestSPIs(t)
		if len(after) == 2 && !overlap(before, after) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SAs before the soft expiry %v, now %v: no rekey", before, after)
		}
		time.Sleep(500 * time.Millisecond)
	}
	l.pingFromGuest(t, guestInner, hostInner)
}

// TestKernelHardExpiryDeletes: at the hard packet limit the kernel deletes the SA and the daemon
// closes the Child SA.
func TestKernelHardExpiryDeletes(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	l.logConsole(t)
	g := l.kernelPair(t, func(c *goipsecConf) { c.childExtra = "        life_packets = 10\n" })
	g.waitOutput(t, "Child SA established", 30*time.Second)
	before := l.guestSPIs(t)
	if len(before) != 2 {
		t.Fatalf("expected two SAs, have %v", before)
	}
	l.guest(t, "ping -c 15 -i 0.05 -W 1 -I "+guestInner+" "+hostInner+" >/dev/null || true")
	g.waitOutput(t, "Child SA reached a hard limit: deleting it", 20*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for overlap(before, l.guestSPIs(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("SAs %v still installed after their hard limit:\n%s", before, l.guest(t, "ip -s xfrm state"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestKernelReloadKeepsSAs: a reload that leaves the connection unchanged keeps its kernel SAs.
func TestKernelReloadKeepsSAs(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	l.logConsole(t)
	guest, host := pair("tunnel", "aes256gcm16")
	guest.dataplane, host.dataplane = "kernel", "userspace"
	guest.startAction = "start"
	l.startHostGoipsec(t, host.String())
	g := l.startGuestGoipsec(t, "goipsec", guest)
	g.waitOutput(t, "Child SA established", 30*time.Second)
	before := l.guestSPIs(t)
	// The same file with one more (unrelated, idle) connection.
	conf := guest.String()
	conf = strings.Replace(conf, "connections {\n", "connections {\n  other {\n    remote_addrs = 192.0.2.99\n    local { auth = psk }\n    remote { auth = psk }\n    children { c { local_ts = 10.9.0.0/24\n remote_ts = 10.8.0.0/24 } }\n  }\n", 1)
	l.writeShare(t, "goipsec.conf", conf)
	l.guest(t, "/mnt/host/goipsec reload")
	g.waitOutput(t, "configuration reloaded", 10*time.Second)
	if after := l.guestSPIs(t); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatalf("SAs before the reload %v, after %v", before, after)
	}
	l.pingFromGuest(t, guestInner, hostInner)
	kernel := l.assertCountersMoved(t)
	// goipsec status reports the kernel's counters.
	st, raw := l.goipsecStatus(t)
	var got uint64
	for _, c := range st.Connections {
		for _, ike := range c.IKESAs {
			for _, ch := range ike.ChildSAs {
				got += ch.In.Packets
			}
		}
	}
	if got == 0 {
		t.Fatalf("goipsec status shows no inbound packets while the kernel counted %v:\n%s", kernel, raw)
	}
}

func overlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// TestKernelXfrmInterface: a route-based VPN. The Child SA's states and policies carry XFRM
// interface ID 7 (if_id_in/out); traffic routed into an xfrm interface with that ID is protected,
// and the interface counts it.
func TestKernelXfrmInterface(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	l.logConsole(t)
	l.logXfrmOnFailure(t)
	l.guest(t, "ip link add ipsec7 type xfrm dev eth0 if_id 7 && ip link set ipsec7 up && ip route replace "+hostInner+"/32 dev ipsec7 src "+guestInner)
	t.Cleanup(func() { l.guestTry(t, "ip link del ipsec7") })
	g := l.kernelPair(t, func(c *goipsecConf) {
		c.childExtra = "        if_id_in = 7\n        if_id_out = 7\n        priority = 4242\n"
	})
	g.waitOutput(t, "Child SA established", 30*time.Second)
	pol := l.guest(t, "ip xfrm policy")
	if !strings.Contains(pol, "if_id 0x7") || !strings.Contains(pol, "priority 4242") {
		t.Fatalf("policies without if_id 7 or priority 4242:\n%s", pol)
	}
	l.trafficCheck(t, "tunnel")
	if st := l.guest(t, "ip xfrm state"); strings.Count(st, "if_id 0x7") != 2 {
		t.Fatalf("states without if_id 7:\n%s", st)
	}
	link := l.guest(t, "ip -s -o link show ipsec7")
	if m := regexp.MustCompile(`RX:[^\\]*\\\s*(\d+)\s+(\d+)`).FindStringSubmatch(link); m == nil || m[2] == "0" {
		t.Fatalf("the xfrm interface counted nothing received:\n%s", link)
	}
}
