package interop

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
)

// pingPattern fills the echo payloads of the transport test, so the decrypted packets can be told
// from garbage (tshark does not check ESP AES-GCM ICVs; a wrong key would decrypt to noise).
const pingPattern = "c0ffee5a"

// TestTransportModeGoipsecToGoipsec: mode = transport with dynamic selectors between two goipsec
// daemons (strongSwan's libipsec has no transport mode). Traffic between the outer addresses goes
// through the Child SA; a capture of the wire, decrypted by tshark with the keys goipsec logged,
// shows the inner ICMP echoes and TCP segments between those addresses.
func TestTransportModeGoipsecToGoipsec(t *testing.T) {
	testnet.Require(t, "ping", "tcpdump", "tshark")
	n := testnet.New(t)
	a, b := n.Namespace("gia"), n.Namespace("gib")
	aIf, _ := n.Link(a, b, []string{leftOuter + "/24"}, []string{rightOuter + "/24"})
	capture := a.Capture(t, aIf, "esp or udp")
	keylogA := filepath.Join(t.TempDir(), "a.keys")
	proposal := interopCases[0]
	resp := startGoipsec(t, b, connConf{local: rightOuter, remote: leftOuter, localID: rightOuter, remoteID: leftOuter,
		ikeProposal: proposal.ike, espProposal: proposal.esp, localTS: "dynamic", remoteTS: "dynamic", mode: "transport"}.String())
	init := startGoipsec(t, a, connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
		ikeProposal: proposal.ike, espProposal: proposal.esp, localTS: "dynamic", remoteTS: "dynamic", mode: "transport",
		startAction: "start", keylog: keylogA}.String())
	line := init.waitLogCount(t, 1, 20*time.Second, "Child SA established")[0]
	resp.waitLog(t, "Child SA established", 10*time.Second)
	if m := logAttr(line, "mode"); m != "transport" {
		t.Fatalf("Child SA mode %q, want transport:\n%s", m, line)
	}

	if out, err := a.Output("ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-p", pingPattern, rightOuter); err != nil {
		t.Fatalf("ping %s through the transport-mode SA failed: %v\n%s", rightOuter, err, out)
	}
	testnet.TCPTransfer(t, b, a, rightOuter+":7003", 256<<10)
	pcap := capture.Stop()

	keys := readKeylog(t, keylogA)
	sas := keys.espSAs(t)
	if len(sas) != 2 {
		t.Fatalf("key log has %d ESP SAs, want 2 (one Child SA):\n%q", len(sas), keys.espRows)
	}
	out := testnet.TsharkDecryptESP(t, pcap, sas, "-Y", "esp", "-T", "fields", "-E", "separator=|",
		"-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "icmp.type", "-e", "data.data", "-e", "tcp.srcport", "-e", "tcp.dstport")
	var requests, replies, tcpAB, tcpBA, other int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "|")
		if len(f) != 7 {
			t.Fatalf("tshark line %q", l)
		}
		src, dst, proto, icmpType, data, sport, dport := f[0], f[1], f[2], f[3], f[4], f[5], f[6]
		switch {
		case proto != "50":
			// Without a NAT, ESP goes as IP protocol 50, not in UDP.
			other++
		case icmpType == "8" && src == leftOuter && dst == rightOuter && strings.Contains(data, strings.Repeat(pingPattern, 4)):
			requests++
		case icmpType == "0" && src == rightOuter && dst == leftOuter && strings.Contains(data, strings.Repeat(pingPattern, 4)):
			replies++
		case sport != "" && dport == "7003" && src == leftOuter && dst == rightOuter:
			tcpAB++
		case sport == "7003" && dport != "" && src == rightOuter && dst == leftOuter:
			tcpBA++
		default:
			other++
		}
	}
	if requests < 3 || replies < 3 || tcpAB == 0 || tcpBA == 0 || other != 0 {
		t.Fatalf("decrypted ESP: %d echo requests, %d echo replies, %d TCP segments to port 7003, %d from it, %d others; "+
			"want >= 3, >= 3, > 0, > 0, 0:\n%s", requests, replies, tcpAB, tcpBA, other, testnet.Tail(out, 40))
	}
}
