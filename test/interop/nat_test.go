package interop

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// The NAT topology: a private host behind a NAT router that masquerades towards the public host.
// Nothing routes to the private prefix from outside, so the public host only ever sees the NAT's
// address, and only the host behind the NAT can initiate.
const (
	privateHost = "192.168.1.2"
	natInside   = "192.168.1.1"
	natOutside  = "198.51.100.1"
	publicHost  = "198.51.100.2"
)

// natSetup builds private -- nat -- public; the NAT masquerades everything it forwards towards
// public. The inner addresses (CIDRs) go on lo of each side. With remap the NAT also moves the UDP
// source ports of IKE and NAT-T into natPortRange (as a NAT does when several hosts behind it use the
// same ports), so the peers must follow a port that is neither 500 nor 4500.
func natSetup(t *testing.T, remap bool, privateInner, publicInner []string) (private, public *testnet.NS) {
	t.Helper()
	private, _, public = natSetup3(t, remap, privateInner, publicInner)
	return private, public
}

// natSetup3 is natSetup that also returns the NAT's namespace.
func natSetup3(t *testing.T, remap bool, privateInner, publicInner []string) (private, nat, public *testnet.NS) {
	t.Helper()
	testnet.Require(t, strongswan.CharonPath, strongswan.SwanctlPath, "ping", "nft")
	n := testnet.New(t)
	private, nat, public = n.Namespace("priv"), n.Namespace("nat"), n.Namespace("pub")
	n.Link(private, nat, []string{privateHost + "/24"}, []string{natInside + "/24"})
	natOutIf, _ := n.Link(nat, public, []string{natOutside + "/24"}, []string{publicHost + "/24"})
	nat.Masquerade(t, natOutIf)
	if remap {
		remapPorts(t, nat, natOutIf)
	}
	private.AddRoute("default", "via", natInside)
	for _, a := range privateInner {
		private.AddAddr("lo", a)
	}
	for _, a := range publicInner {
		public.AddAddr("lo", a)
	}
	return private, nat, public
}

// natPortRange is where remapPorts puts the UDP source ports.
const (
	natPortLow  = 40000
	natPortHigh = 40999
)

// remapPorts adds a source NAT rule that runs before testnet's masquerade (lower priority number)
// and maps UDP from the private side into natPortLow-natPortHigh; a connection NATed by one chain is
// not NATed again by later ones.
func remapPorts(t *testing.T, nat *testnet.NS, outIf string) {
	t.Helper()
	script := fmt.Sprintf(`table ip goipsec_interop_remap {
	chain postrouting {
		type nat hook postrouting priority srcnat - 10; policy accept;
		oifname %q meta l4proto udp masquerade to :%d-%d random
	}
}
`, outIf, natPortLow, natPortHigh)
	path := filepath.Join(t.TempDir(), "remap.nft")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	nat.Run(t, "nft", "-f", path)
}

var (
	goipsecInner = []string{leftInner4 + "/24", leftInner6 + "/64"}
	peerInner    = []string{rightInner4 + "/24", rightInner6 + "/64"}
)

// natCase is the proposal every NAT test uses.
var natCase = interopCases[0]

// swanctl --list-sas: "local  'id' @ addr[port]" and "remote 'id' @ addr[port]".
var (
	reSwanLocal  = regexp.MustCompile(`(?m)^\s+local\s+'[^']*' @ (\S+)\[(\d+)\]`)
	reSwanRemote = regexp.MustCompile(`(?m)^\s+remote\s+'[^']*' @ (\S+)\[(\d+)\]`)
)

// swanEndpoints returns the local and remote IKE endpoints of the first IKE SA in a listing.
func swanEndpoints(t *testing.T, listing string) (local, remote string) {
	t.Helper()
	l, r := reSwanLocal.FindStringSubmatch(listing), reSwanRemote.FindStringSubmatch(listing)
	if l == nil || r == nil {
		t.Fatalf("no local/remote endpoints in swanctl --list-sas:\n%s", listing)
	}
	return l[1] + "[" + l[2] + "]", r[1] + "[" + r[2] + "]"
}

// natModes runs f with the NAT keeping source ports and with it remapping them.
func natModes(t *testing.T, f func(t *testing.T, remap bool)) {
	for _, remap := range []bool{false, true} {
		name := "ports-kept"
		if remap {
			name = "ports-mapped"
		}
		t.Run(name, func(t *testing.T) { f(t, remap) })
	}
}

// checkNATPort checks the port the NAT gave the private side's NAT-T traffic, as the public side
// sees it: 4500 when the NAT keeps ports, one of natPortRange when it remaps them.
func checkNATPort(t *testing.T, who string, remap bool, port string) {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("%s: port %q", who, port)
	}
	if remap && (p < natPortLow || p > natPortHigh) || !remap && p != 4500 {
		t.Errorf("%s sees the NAT-T traffic from the NAT's port %d; want %s", who, p,
			map[bool]string{false: "4500", true: fmt.Sprintf("%d-%d", natPortLow, natPortHigh)}[remap])
	}
}

// assertNATLogged checks that goipsec's "IKE SA established" line says nat=true and that its remote
// endpoint's address is wantRemote, and returns the remote port.
func assertNATLogged(t *testing.T, g *goipsecProc, wantRemote string) string {
	t.Helper()
	lines := g.waitLogCount(t, 1, 10*time.Second, "IKE SA established")
	line := lines[0]
	if logAttr(line, "nat") != "true" {
		t.Fatalf("goipsec did not detect the NAT (want nat=true):\n%s", line)
	}
	host, port, err := net.SplitHostPort(logAttr(line, "remote"))
	if err != nil || host != wantRemote {
		t.Fatalf("goipsec's IKE SA has remote %q, want %s:port:\n%s", logAttr(line, "remote"), wantRemote, line)
	}
	return port
}

// TestNATGoipsecBehindNAT: goipsec behind a masquerading NAT initiates to strongSwan. strongSwan must
// see the NAT's address and both must have floated to the NAT-T port.
func TestNATGoipsecBehindNAT(t *testing.T) {
	natModes(t, func(t *testing.T, remap bool) {
		private, public := natSetup(t, remap, goipsecInner, peerInner)
		c := startCharon(t, public, swanConn{local: publicHost, remote: "%any", localID: "sw.example", ike: natCase.ike,
			children: []swanChild{{name: "net", localTS: rightNet4 + "," + rightNet6, remoteTS: leftNet4 + "," + leftNet6, esp: natCase.esp}}})
		g := startGoipsec(t, private, connConf{local: privateHost, remote: publicHost, localID: "gi.example", remoteID: "sw.example",
			ikeProposal: natCase.ike, espProposal: natCase.esp, localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6,
			startAction: "start"}.String())
		c.WaitEstablished(t, "gt", 30*time.Second)
		g.waitLog(t, "Child SA established", 10*time.Second)
		if port := assertNATLogged(t, g, publicHost); port != "4500" {
			t.Errorf("goipsec talks to strongSwan's port %s, want 4500", port)
		}

		sas := c.ListSAs(t)
		local, remote := swanEndpoints(t, sas)
		if local != publicHost+"[4500]" {
			t.Errorf("strongSwan's local endpoint %s, want %s[4500]", local, publicHost)
		}
		host, port, _ := strings.Cut(strings.TrimSuffix(remote, "]"), "[")
		if host != natOutside {
			t.Errorf("strongSwan's remote endpoint %s, want the NAT's address %s", remote, natOutside)
		}
		checkNATPort(t, "strongSwan", remap, port)
		if !strings.Contains(sas, "TUNNEL-in-UDP") {
			t.Errorf("strongSwan's CHILD_SA is not UDP-encapsulated:\n%s", sas)
		}
		checkTraffic(t, private, public)
	})
}

// TestNATStrongSwanBehindNAT: strongSwan behind the NAT initiates to goipsec, which must answer
// at the NAT's address and mapped port.
func TestNATStrongSwanBehindNAT(t *testing.T) {
	natModes(t, func(t *testing.T, remap bool) {
		private, public := natSetup(t, remap, peerInner, goipsecInner)
		c := startCharon(t, private, swanConn{local: privateHost, remote: publicHost, localID: "sw.example", ike: natCase.ike,
			children: []swanChild{{name: "net", localTS: rightNet4 + "," + rightNet6, remoteTS: leftNet4 + "," + leftNet6, esp: natCase.esp}}})
		g := startGoipsec(t, public, connConf{local: publicHost, remote: "%any", localID: "gi.example", remoteID: "sw.example",
			ikeProposal: natCase.ike, espProposal: natCase.esp, localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6}.String())
		c.Initiate(t, "net")
		c.WaitEstablished(t, "gt", 30*time.Second)
		g.waitLog(t, "Child SA established", 10*time.Second)
		checkNATPort(t, "goipsec", remap, assertNATLogged(t, g, natOutside))

		sas := c.ListSAs(t)
		local, remote := swanEndpoints(t, sas)
		if local != privateHost+"[4500]" || remote != publicHost+"[4500]" {
			t.Errorf("strongSwan's endpoints %s - %s, want %s[4500] - %s[4500]", local, remote, privateHost, publicHost)
		}
		checkTraffic(t, public, private)
	})
}

// TestNATGoipsecToGoipsec: two goipsec daemons, the initiator behind the NAT. Here the NAT is
// detected for real (no peer fakes it), and ESP must go in UDP both ways.
func TestNATGoipsecToGoipsec(t *testing.T) {
	natModes(t, func(t *testing.T, remap bool) {
		private, public := natSetup(t, remap, goipsecInner, peerInner)
		resp := startGoipsec(t, public, connConf{local: publicHost, remote: "%any", localID: "pub.example", remoteID: "priv.example",
			ikeProposal: natCase.ike, espProposal: natCase.esp, localTS: rightNet4 + "," + rightNet6, remoteTS: leftNet4 + "," + leftNet6}.String())
		init := startGoipsec(t, private, connConf{local: privateHost, remote: publicHost, localID: "priv.example", remoteID: "pub.example",
			ikeProposal: natCase.ike, espProposal: natCase.esp, localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6,
			startAction: "start"}.String())
		init.waitLog(t, "Child SA established", 20*time.Second)
		resp.waitLog(t, "Child SA established", 10*time.Second)
		if port := assertNATLogged(t, init, publicHost); port != "4500" {
			t.Errorf("the initiator talks to the responder's port %s, want 4500", port)
		}
		checkNATPort(t, "the responder", remap, assertNATLogged(t, resp, natOutside))
		checkTrafficGoipsec(t, private, public)
	})
}

// checkTrafficGoipsec is checkTraffic for two goipsec peers: a holds leftInner*, b rightInner*.
func checkTrafficGoipsec(t *testing.T, a, b *testnet.NS) {
	t.Helper()
	for _, dst := range []string{rightInner4, rightInner6} {
		if ok, out := a.Ping(t, dst, 3); !ok {
			t.Fatalf("ping %s from %s failed:\n%s", dst, a, out)
		}
	}
	for _, dst := range []string{leftInner4, leftInner6} {
		if ok, out := b.Ping(t, dst, 3); !ok {
			t.Fatalf("ping %s from %s failed:\n%s", dst, b, out)
		}
	}
	testnet.TCPTransfer(t, b, a, "["+rightInner6+"]:7001", 512<<10)
	testnet.TCPTransfer(t, a, b, leftInner4+":7002", 512<<10)
}
