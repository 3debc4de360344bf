package kernel

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
)

// swanctlConf is strongSwan's configuration for the guest end of pair().
func swanctlConf(c goipsecConf, proto, proposal string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "connections {\n  gt {\n    local_addrs = %s\n    remote_addrs = %s\n    proposals = aes256gcm16-prfsha256-x25519\n", c.local, c.remote)
	fmt.Fprintf(&b, "    local {\n      auth = psk\n      id = %s\n    }\n    remote {\n      auth = psk\n      id = %s\n    }\n", c.localID, c.remoteID)
	fmt.Fprintf(&b, "    children {\n      net {\n        local_ts = %s\n        remote_ts = %s\n        mode = %s\n        %s_proposals = %s\n      }\n    }\n  }\n}\n",
		c.localTS, c.remoteTS, c.mode, proto, proposal)
	fmt.Fprintf(&b, "secrets {\n  ike-gt {\n    id-1 = %s\n    id-2 = %s\n    secret = \"%s\"\n  }\n}\n", c.localID, c.remoteID, testPSK)
	return b.String()
}

// startCharon runs strongSwan 5.9.8's charon in the guest with its kernel-netlink backend (the
// kernel's ESP) and loads conf.
func (l *lab) startCharon(t *testing.T, conf string) *guestDaemon {
	t.Helper()
	l.writeShare(t, "swanctl.conf", conf)
	l.guest(t, "cp /mnt/host/swanctl.conf /etc/swanctl/swanctl.conf && rm -f /run/charon.*")
	g := l.startGuest(t, "charon", "exec /usr/lib/ipsec/charon")
	// Under emulation on a loaded host charon's start has taken more than 30 s.
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, code := l.guestTry(t, "swanctl --load-all")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("swanctl --load-all: %s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Cleanup(func() { l.guestTry(t, "ip xfrm state flush; ip xfrm policy flush; ip route flush table 220") })
	return g
}

// TestStrongSwanKernel: goipsec (userspace data plane, host side) against strongSwan 5.9.8 with
// the kernel's ESP (guest), tunnel and transport mode, each side initiating; and with the
// kernel's AH negotiated by IKEv2 (ah_proposals on both sides), tunnel and transport, each side
// initiating.
func TestStrongSwanKernel(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	for _, tc := range []struct{ mode, initiator, ah string }{
		{"tunnel", "goipsec", ""}, {"tunnel", "strongswan", ""}, {"transport", "goipsec", ""}, {"transport", "strongswan", ""},
		{"transport", "strongswan", "sha512"}, {"tunnel", "goipsec", "sha256"},
	} {
		name := tc.mode + "/" + tc.initiator + "-initiates"
		if tc.ah != "" {
			name = "ah/" + name
		}
		t.Run(name, func(t *testing.T) {
			l.logConsole(t)
			guest, host := pair(tc.mode, "aes256gcm16")
			host.dataplane = "userspace"
			if tc.initiator == "goipsec" {
				host.startAction = "start"
			}
			proto, props := "esp", "aes256gcm16"
			if tc.ah != "" {
				proto, props, host.ah = "ah", tc.ah, tc.ah
			}
			l.startCharon(t, swanctlConf(guest, proto, props))
			h := l.startHostGoipsec(t, host.String())
			if tc.initiator == "strongswan" {
				l.guest(t, "swanctl --initiate --child net --timeout 30")
			}
			h.waitLog(t, "Child SA established", 30*time.Second)
			assertXfrmProto(t, l.trafficCheck(t, tc.mode), proto)
		})
	}
}

// gwPeer is a kernel-ESP IKE daemon run in the guest's network namespace "gw" (see
// kernelVsKernel): how to configure and start it there, and how to make it initiate.
type gwPeer struct {
	// start writes the peer's configuration for its end c (proto "esp" or "ah", props its
	// proposal) and starts the daemon in gw; it returns when the connection is loaded.
	start func(t *testing.T, l *lab, c goipsecConf, proto, props string) *guestDaemon
	// initiate makes the peer start the connection.
	initiate func(t *testing.T, l *lab)
	// ikeProposal is the IKE proposal goipsec offers it (empty: goipsecConf's default).
	ikeProposal string
	// route, when set, is run in gw for tunnel mode: a route for goipsec's inner address that
	// the peer does not install itself.
	route string
}

// inGW runs cmd in namespace gw with a private /run (and what bind adds), so that a second
// daemon with fixed paths (charon's pid file and VICI socket, pluto's control socket) does not
// meet the files of one in the guest's initial namespace.
func inGW(bind, cmd string) string {
	return "ip netns exec gw unshare -m sh -c 'mount --bind /tmp/gwrun /run" + bind + " && " + cmd + "'"
}

// waitGW retries cmd until it exits 0 (the daemon in gw is up) or fails the test.
func (l *lab) waitGW(t *testing.T, what, cmd string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, code := l.guestTry(t, cmd)
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in gw: %s", what, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// strongSwanGW is strongSwan 5.9.8 (kernel-netlink) in gw.
var strongSwanGW = gwPeer{
	start: func(t *testing.T, l *lab, c goipsecConf, proto, props string) *guestDaemon {
		l.writeShare(t, "swanctl-gw.conf", swanctlConf(c, proto, props))
		// charon 5.9.8 has fixed paths for its pid file and VICI socket: a private /run and
		// /etc/swanctl in the namespace's own mount namespace.
		l.guest(t, "mkdir -p /tmp/gwrun /tmp/gwswan && cp -r /etc/swanctl/. /tmp/gwswan/ && cp /mnt/host/swanctl-gw.conf /tmp/gwswan/swanctl.conf && rm -rf /tmp/gwrun/*")
		sw := l.startGuest(t, "charon-gw", "exec "+inGW(" && mount --bind /tmp/gwswan /etc/swanctl", "exec /usr/lib/ipsec/charon"))
		l.waitGW(t, "swanctl --load-all", inGW(" && mount --bind /tmp/gwswan /etc/swanctl", "swanctl --load-all"), 90*time.Second)
		return sw
	},
	initiate: func(t *testing.T, l *lab) {
		l.guest(t, inGW(" && mount --bind /tmp/gwswan /etc/swanctl", "swanctl --initiate --child net --timeout 30"))
	},
}

// libreswanGW is Libreswan 4.10's pluto (kernel XFRM) in gw. Its configuration is the guest's
// /etc/ipsec.conf (no other pluto runs in the Libreswan VM meanwhile).
var libreswanGW = gwPeer{
	start: func(t *testing.T, l *lab, c goipsecConf, proto, props string) *guestDaemon {
		if proto == "ah" {
			c.ah = props
		}
		l.writeShare(t, "ipsec.conf", libreswanConf(c))
		l.writeShare(t, "ipsec.secrets", fmt.Sprintf("@%s @%s : PSK \"%s\"\n", c.localID, c.remoteID, testPSK))
		l.guest(t, "cp /mnt/host/ipsec.conf /etc/ipsec.conf && cp /mnt/host/ipsec.secrets /etc/ipsec.secrets && chmod 600 /etc/ipsec.secrets && mkdir -p /tmp/gwrun && rm -rf /tmp/gwrun/* && mkdir /tmp/gwrun/pluto")
		g := l.startGuest(t, "pluto-gw", "exec "+inGW("", "exec ipsec pluto --nofork --config /etc/ipsec.conf --nssdir /var/lib/ipsec/nss"))
		l.waitGW(t, "ipsec auto --add gt", inGW("", "ipsec auto --add gt"), 60*time.Second)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := l.guestTry(t, "tail -n 60 /tmp/pluto.log")
				t.Logf("pluto log:\n%s", out)
			}
		})
		return g
	},
	initiate: func(t *testing.T, l *lab) {
		l.guest(t, inGW("", "timeout 40 ipsec auto --up gt"))
	},
	ikeProposal: "aes256gcm16-prfsha256-ecp256",
	// Libreswan installs no route for the remote subnet with a source inside the local one.
	route: "ip -n gw route replace " + guestInner + "/32 via 192.0.2.65 src 203.0.113.66",
}

// kernelCase is one scenario of kernelVsKernel: mode, AH proposal ("" for ESP) and who
// initiates ("goipsec" or the peer).
type kernelCase struct{ mode, ah, initiator string }

// kernelVsKernel runs goipsec with the kernel data plane against a kernel-ESP peer, both in the
// guest: goipsec in the guest's initial network namespace, the peer in namespace gw, joined by
// a veth pair. Each case pings both ways, moves 1 MiB each way over TCP with SHA-256 sums
// compared, checks both kernels' XFRM counters moved and that goipsec's SIGTERM left nothing.
func kernelVsKernel(t *testing.T, l *lab, peer gwPeer, cases []kernelCase) {
	l.logConsole(t)
	l.guest(t, strings.Join([]string{
		"ip netns add gw", "ip link add vgw0 type veth peer name vgw1 netns gw",
		"ip addr add 192.0.2.65/26 dev vgw0", "ip link set vgw0 up",
		"ip -n gw addr add 192.0.2.66/26 dev vgw1", "ip -n gw link set vgw1 up", "ip -n gw link set lo up",
		"ip -n gw addr add 203.0.113.66/32 dev lo",
	}, " && "))
	t.Cleanup(func() {
		l.guestTry(t, "ip netns pids gw | xargs -r kill; sleep 0.5; ip netns del gw; ip link del vgw0")
	})
	for _, tc := range cases {
		mode := tc.mode
		name, proto, props := mode+"/"+tc.initiator+"-initiates", "esp", "aes256gcm16"
		if tc.ah != "" {
			name, proto, props = "ah/"+name, "ah", tc.ah
		}
		t.Run(name, func(t *testing.T) {
			l.logXfrmOnFailure(t)
			g := goipsecConf{dataplane: "kernel", local: "192.0.2.65", remote: "192.0.2.66", localID: "goipsec.lab", remoteID: "swan.lab",
				mode: mode, esp: "aes256gcm16", ah: tc.ah, ikeProposal: peer.ikeProposal}
			if tc.initiator == "goipsec" {
				g.startAction = "start"
			}
			s := goipsecConf{local: "192.0.2.66", remote: "192.0.2.65", localID: "swan.lab", remoteID: "goipsec.lab", mode: mode}
			src, dst := guestInner, "203.0.113.66"
			if mode == "transport" {
				g.localTS, g.remoteTS = "192.0.2.65/32", "192.0.2.66/32"
				src, dst = "192.0.2.65", "192.0.2.66"
			} else {
				g.localTS, g.remoteTS = guestInner+"/32", "203.0.113.66/32"
			}
			s.localTS, s.remoteTS = g.remoteTS, g.localTS
			// Phase times go to the log: under emulation on a loaded host they vary a lot.
			start := time.Now()
			phase := func(what string) {
				t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
			}
			sw := peer.start(t, l, s, proto, props)
			phase("peer loaded")
			gp := l.startGuestGoipsec(t, "goipsec", g)
			if tc.initiator != "goipsec" {
				peer.initiate(t, l)
			}
			gp.waitOutput(t, "Child SA established", 60*time.Second)
			phase("Child SA up")
			if mode == "tunnel" && peer.route != "" {
				l.guest(t, peer.route)
			}
			l.pingFromGuest(t, src, dst)
			l.guest(t, "ip netns exec gw ping -c 2 -i 0.3 -W 3 -I "+dst+" "+src)
			phase("pings done")
			l.nsTransfer(t, "", src, "gw", dst, 1<<20)
			l.nsTransfer(t, "gw", dst, "", src, 1<<20)
			phase("1 MiB each way")
			for _, cmd := range []string{"ip -s xfrm state", "ip netns exec gw ip -s xfrm state"} {
				out := l.guest(t, cmd)
				c := parseXfrmCounters(out)
				if len(c) != 2 {
					t.Fatalf("%s: expected an inbound and an outbound state:\n%s", cmd, out)
				}
				assertXfrmProto(t, c, proto)
				for spi, n := range c {
					// 1 MiB each way is hundreds of packets on each SA; a ping alone is not.
					if n < 100 {
						t.Fatalf("%s: state %s counted %d packets after 1 MiB each way:\n%s", cmd, spi, n, out)
					}
				}
			}
			gp.stop(t)
			l.assertNoXfrm(t)
			sw.stop(t)
			l.guestTry(t, "ip netns exec gw ip xfrm state flush; ip netns exec gw ip xfrm policy flush")
		})
	}
}

// nsTransfer sends size random bytes over TCP from fromAddr in guest namespace fromNS to toAddr
// in toNS ("" is the guest's initial namespace) and compares SHA-256 sums of what was sent and
// what arrived.
func (l *lab) nsTransfer(t *testing.T, fromNS, fromAddr, toNS, toAddr string, size int) {
	t.Helper()
	in := func(ns string) string {
		if ns == "" {
			return ""
		}
		return "ip netns exec " + ns + " "
	}
	const port = 5202
	rx := l.startGuest(t, "nc-nsrx", fmt.Sprintf("exec %snc -l %s %d > /tmp/nsrx", in(toNS), toAddr, port))
	l.guest(t, fmt.Sprintf("head -c %d /dev/urandom > /tmp/nstx", size))
	var out string
	sent := false
	for range 20 {
		o, code := l.guestTry(t, fmt.Sprintf("%snc -N -w 60 -s %s %s %d < /tmp/nstx", in(fromNS), fromAddr, toAddr, port))
		if code == 0 {
			sent = true
			break
		}
		out = o
		time.Sleep(250 * time.Millisecond)
	}
	if !sent {
		t.Fatalf("TCP %s -> %s: nc failed: %s", fromAddr, toAddr, out)
	}
	if res, running, err := l.vm.Wait(context.Background(), rx.name, 60*time.Second); err != nil || running || res.Exit != 0 {
		t.Fatalf("TCP %s -> %s: the receiver did not finish (running %v, %v, %+v)", fromAddr, toAddr, running, err, res)
	}
	sums := strings.Fields(l.guest(t, "sha256sum /tmp/nstx /tmp/nsrx"))
	if len(sums) != 4 || sums[0] != sums[2] {
		t.Fatalf("TCP %s -> %s: sent and received bytes differ: %v", fromAddr, toAddr, sums)
	}
}

// TestGoipsecKernelVsStrongSwanKernel: goipsec's kernel data plane against strongSwan's (both in
// the guest): ESP and AH, tunnel and transport, each side initiating.
func TestGoipsecKernelVsStrongSwanKernel(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	kernelVsKernel(t, l, strongSwanGW, []kernelCase{
		{"tunnel", "", "strongswan"}, {"transport", "", "goipsec"},
		{"tunnel", "sha256", "goipsec"}, {"transport", "sha384", "strongswan"},
	})
}

// TestGoipsecKernelVsLibreswanKernel: goipsec's kernel data plane against Libreswan 4.10's (both
// in the guest): ESP tunnel and transport, each side initiating, and AH (tunnel mode).
func TestGoipsecKernelVsLibreswanKernel(t *testing.T) {
	l := needLab(t, labvm.Libreswan())
	kernelVsKernel(t, l, libreswanGW, []kernelCase{
		{"tunnel", "", "goipsec"}, {"transport", "", "libreswan"}, {"tunnel", "sha256", "libreswan"},
	})
}

// libreswanConf is Libreswan's ipsec.conf for the guest end of pair(). Libreswan's default
// proposals are left alone (they include AES-GCM-256 with SHA2-256 and ECP-256 for IKE and
// AES-GCM-256 for ESP, which goipsec is configured to offer).
func libreswanConf(c goipsecConf) string {
	return fmt.Sprintf(`config setup
	logfile=/tmp/pluto.log
	logappend=no
	plutodebug=none
	virtual-private=
conn gt
	ikev2=yes
	authby=secret
	left=%s
	leftid=@%s
	leftsubnet=%s
	right=%s
	rightid=@%s
	rightsubnet=%s
	type=%s
	auto=add
`, c.local, c.localID, c.localTS, c.remote, c.remoteID, c.remoteTS, c.mode) + libreswanAH(c.ah)
}

// libreswanAH is the phase 2 lines of an AH connection with integrity algorithm ah (goipsec's
// keyword; "" for ESP, Libreswan's default): Libreswan names the HMAC-SHA2 algorithms
// sha2_256/384/512.
func libreswanAH(ah string) string {
	if ah == "" {
		return ""
	}
	return "\tphase2=ah\n\tphase2alg=" + strings.Replace(ah, "sha", "sha2_", 1) + "\n"
}

// startPluto runs Libreswan 4.10's pluto in the guest (kernel XFRM) with conf.
func (l *lab) startPluto(t *testing.T, c goipsecConf) *guestDaemon {
	t.Helper()
	l.writeShare(t, "ipsec.conf", libreswanConf(c))
	l.writeShare(t, "ipsec.secrets", fmt.Sprintf("@%s @%s : PSK \"%s\"\n", c.localID, c.remoteID, testPSK))
	l.guest(t, "cp /mnt/host/ipsec.conf /etc/ipsec.conf && cp /mnt/host/ipsec.secrets /etc/ipsec.secrets && chmod 600 /etc/ipsec.secrets && mkdir -p /run/pluto && rm -f /run/pluto/*")
	g := l.startGuest(t, "pluto", "exec ipsec pluto --nofork --config /etc/ipsec.conf --nssdir /var/lib/ipsec/nss")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := l.guestTry(t, "ipsec auto --add gt")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipsec auto --add gt: %s\npluto log:\n%s", out, l.guest(t, "cat /tmp/pluto.log || true"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := l.guestTry(t, "tail -n 60 /tmp/pluto.log")
			t.Logf("pluto log:\n%s", out)
		}
		g.stop(t)
		l.guestTry(t, "ip xfrm state flush; ip xfrm policy flush")
	})
	return g
}

// TestLibreswanKernel: goipsec (userspace data plane, host side) against Libreswan 4.10 with the
// kernel's ESP (guest), tunnel and transport mode, each side initiating.
func TestLibreswanKernel(t *testing.T) {
	l := needLab(t, labvm.Libreswan())
	for _, tc := range []struct{ mode, initiator string }{
		{"tunnel", "goipsec"}, {"tunnel", "libreswan"}, {"transport", "goipsec"}, {"transport", "libreswan"},
	} {
		t.Run(tc.mode+"/"+tc.initiator+"-initiates", func(t *testing.T) {
			l.logConsole(t)
			guest, host := pair(tc.mode, "aes256gcm16")
			host.dataplane = "userspace"
			host.ikeProposal = "aes256gcm16-prfsha256-ecp256"
			if tc.initiator == "goipsec" {
				host.startAction = "start"
			}
			l.startPluto(t, guest)
			h := l.startHostGoipsec(t, host.String())
			if tc.initiator == "libreswan" {
				l.guest(t, "timeout 40 ipsec auto --up gt")
			}
			h.waitLog(t, "Child SA established", 30*time.Second)
			if tc.mode == "tunnel" {
				// Libreswan installs no route for the remote subnet with a source inside the
				// local one: the lab adds it.
				l.guest(t, "ip route replace "+hostInner+"/32 via "+hostOuter+" src "+guestInner)
				defer l.guestTry(t, "ip route del "+hostInner+"/32")
			}
			l.trafficCheck(t, tc.mode)
		})
	}
}
