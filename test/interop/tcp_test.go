package interop

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/status"
)

// IKE and ESP in TCP (RFC 9329), goipsec with goipsec, through a firewall that forwards nothing
// but TCP to port 443 (and the packets of connections it let through): no UDP 500/4500, no ESP.
//
//	tl (192.168.1.2, 10.1.0.1) -- fw (only TCP 443) -- tr (198.51.100.2, 10.2.0.1)

const (
	tcpLeft     = "192.168.1.2"
	tcpFwInside = "192.168.1.1"
	tcpFwOut    = "198.51.100.1"
	tcpRight    = "198.51.100.2"
)

// only443 is the firewall's rule set: new connections to TCP 443, nothing else.
const only443 = "tcp dport 443 ct state new accept"

func tcpSetup(t *testing.T) (left, fw, right *testnet.NS) {
	t.Helper()
	testnet.Require(t, "ping", "nft")
	n := testnet.New(t)
	left, fw, right = n.Namespace("tl"), n.Namespace("fw"), n.Namespace("tr")
	n.Link(left, fw, []string{tcpLeft + "/24"}, []string{tcpFwInside + "/24"})
	n.Link(fw, right, []string{tcpFwOut + "/24"}, []string{tcpRight + "/24"})
	left.AddRoute("default", "via", tcpFwInside)
	right.AddRoute("default", "via", tcpFwOut)
	left.AddAddr("lo", leftInner4+"/24")
	right.AddAddr("lo", rightInner4+"/24")
	fw.Firewall(t, only443)
	return left, fw, right
}

// tcpPair starts the responder (tcp_listen = 443) on the right and the initiator on the left with
// extra lines in its connection and daemon sections.
func tcpPair(t *testing.T, left, right *testnet.NS, initiatorExtra, initiatorDaemon string) (l, r *goipsecProc) {
	t.Helper()
	r = startGoipsec(t, right, connConf{local: tcpRight, remote: tcpLeft, localID: tcpRight, remoteID: tcpLeft,
		ikeProposal: "default", espProposal: "aes256gcm16", localTS: rightNet4, remoteTS: leftNet4,
		daemonExtra: "  tcp_listen = 4500, 443\n"}.String())
	l = startGoipsec(t, left, connConf{local: tcpLeft, remote: tcpRight, localID: tcpLeft, remoteID: tcpRight,
		ikeProposal: "default", espProposal: "aes256gcm16", localTS: leftNet4, remoteTS: rightNet4, startAction: "start",
		extra: initiatorExtra, daemonExtra: initiatorDaemon}.String())
	return l, r
}

// TestTCPThroughFirewall: with encap = tcp and tcp_port = 443 the tunnel comes up through the
// firewall, carrying IKE (with the hybrid ML-KEM default, whose IKE_INTERMEDIATE needs no
// fragmentation in TCP) and ESP in one TCP connection; pings and byte-checked TCP transfers pass
// both ways.
func TestTCPThroughFirewall(t *testing.T) {
	left, _, right := tcpSetup(t)
	l, r := tcpPair(t, left, right, "    encap = tcp\n    tcp_port = 443\n", "")
	l.waitLog(t, "Child SA established", 20*time.Second)
	r.waitLog(t, "Child SA established", 10*time.Second)
	if lines := l.logLines("IKE SA established", "ke1_mlkem768"); len(lines) != 1 {
		t.Fatalf("the IKE SA is not the ML-KEM hybrid: %q", l.logLines("IKE SA established"))
	}
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping through the TCP tunnel failed:\n%s", out)
	}
	testnet.TCPTransfer(t, right, left, rightInner4+":7003", 2<<20)
	testnet.TCPTransfer(t, left, right, leftInner4+":7004", 2<<20)
	if len(l.logLines("opened TCP connection for IKE and ESP", tcpRight+":443")) != 1 {
		t.Fatalf("goipsec opened %d TCP connections, want 1", len(l.logLines("opened TCP connection")))
	}
	// goipsec status shows the connection, on both sides.
	for name, g := range map[string]*goipsecProc{"initiator": l, "responder": r} {
		out, err := exec.Command(goipsecBinary(t), "status", "--json", "--socket", g.vici).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: goipsec status: %v\n%s", name, err, out)
		}
		var st status.Status
		if err := json.Unmarshal(out, &st); err != nil || len(st.Connections) != 1 || len(st.Connections[0].IKESAs) != 1 {
			t.Fatalf("%s: status %v\n%s", name, err, out)
		}
		sa := st.Connections[0].IKESAs[0]
		if sa.Transport != "tcp" || sa.TCP == nil || !sa.TCP.Connected || sa.TCP.Originator != (name == "initiator") || sa.TCP.ESPOut == 0 || sa.TCP.ESPIn == 0 {
			t.Fatalf("%s: IKE SA %+v, TCP %+v", name, sa, sa.TCP)
		}
		text, _ := exec.Command(goipsecBinary(t), "status", "--socket", g.vici).CombinedOutput()
		if !strings.Contains(string(text), "IKE and ESP in TCP") || !strings.Contains(string(text), "ESP in TCP, spis") {
			t.Fatalf("%s: goipsec status text lacks the TCP lines:\n%s", name, text)
		}
	}
}

// TestTCPFallback: without encap = tcp the initiator tries UDP first; the firewall drops it, and
// after two unanswered retransmissions the initiator falls back to TCP 443 by itself.
func TestTCPFallback(t *testing.T) {
	left, _, right := tcpSetup(t)
	start := time.Now()
	l, _ := tcpPair(t, left, right, "    tcp_port = 443\n", "  retransmit_timeout = 1s\n")
	l.waitLog(t, "Child SA established", 30*time.Second)
	t.Logf("up over TCP after %s", time.Since(start).Round(100*time.Millisecond))
	if len(l.logLines("no answer over UDP: trying IKE in TCP")) != 1 {
		t.Fatal("goipsec did not log the fallback")
	}
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping after the fallback failed:\n%s", out)
	}
}

// TestTCPReset: the firewall resets the TCP connection in the middle of traffic; the initiator
// reconnects at once and the same IKE and Child SAs carry on in the new connection (RFC 9329
// §6.1): no new IKE SA, pings pass again.
func TestTCPReset(t *testing.T) {
	left, fw, right := tcpSetup(t)
	l, r := tcpPair(t, left, right, "    encap = tcp\n    tcp_port = 443\n", "")
	l.waitLog(t, "Child SA established", 20*time.Second)
	r.waitLog(t, "Child SA established", 10*time.Second)
	if ok, out := left.Ping(t, rightInner4, 2); !ok {
		t.Fatalf("ping before the reset failed:\n%s", out)
	}
	// The next packet of the connection (a ping in it) meets a TCP reset.
	fw.Firewall(t, "tcp dport 443 reject with tcp reset\n"+only443)
	left.Ping(t, rightInner4, 1)
	l.waitLog(t, "TCP connection closed: reconnecting", 10*time.Second)
	fw.Firewall(t, only443)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ok, _ := left.Ping(t, rightInner4, 1); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ping passed within 20s of the reconnect:\n%s", testnet.Tail(l.p.Output(), 40))
		}
	}
	if ok, out := right.Ping(t, leftInner4, 2); !ok {
		t.Fatalf("ping from the responder after the reconnect failed:\n%s", out)
	}
	for name, g := range map[string]*goipsecProc{"initiator": l, "responder": r} {
		if n := len(g.logLines("IKE SA established")); n != 1 {
			t.Fatalf("%s established %d IKE SAs, want the one it had", name, n)
		}
	}
	if n := len(l.logLines("opened TCP connection for IKE and ESP")); n < 2 {
		t.Fatalf("the initiator opened %d TCP connections, want a second one", n)
	}
	if strings.Contains(r.p.Output(), "negotiation failed") {
		t.Fatal("the responder reported a failure")
	}
}
