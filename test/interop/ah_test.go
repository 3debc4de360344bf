package interop

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
)

// TestAHGoipsecToGoipsec: two goipsec daemons (userspace data plane) whose child has only
// ah_proposals negotiate AH with IKEv2, in tunnel and in transport mode; the initiator's child
// rekeys (REKEY_SA and Delete name protocol AH) while the test runs. Pings with a pattern and a
// byte-checked TCP transfer go both ways. A capture of the wire, dissected by tshark (AH needs no
// keys: it does not encrypt), must show only AH — IP protocol 51, no ESP, no UDP 4500 — on the
// SPIs `goipsec status` lists with protocol "ah", with the 32-byte ICV of HMAC-SHA-512-256 (RFC
// 4868 §2.3: AH's Payload Length is (12 + 32) / 4 - 2 = 9, RFC 4302 §2.2), carrying the inner
// echoes and TCP segments between the addresses the mode implies. AH authenticates the outer
// header, so nothing on the way may rewrite it: the peers are on one veth.
func TestAHGoipsecToGoipsec(t *testing.T) {
	for _, mode := range []string{"tunnel", "transport"} {
		t.Run(mode, func(t *testing.T) {
			testnet.Require(t, "ping", "tcpdump", "tshark")
			n := testnet.New(t)
			a, b := n.Namespace("aha"), n.Namespace("ahb")
			aIf, _ := n.Link(a, b, []string{leftOuter + "/24"}, []string{rightOuter + "/24"})
			src, dst, lts, rts := leftOuter, rightOuter, "dynamic", "dynamic"
			if mode == "tunnel" {
				a.AddAddr("lo", leftInner4+"/24")
				b.AddAddr("lo", rightInner4+"/24")
				src, dst, lts, rts = leftInner4, rightInner4, leftNet4, rightNet4
			}
			capture := a.Capture(t, aIf, "ip proto 51 or ip proto 50 or udp port 4500")
			child := "        ah_proposals = sha512-x25519\n        mode = " + mode + "\n"
			resp := startGoipsec(t, b, connConf{local: rightOuter, remote: leftOuter, localID: rightOuter, remoteID: leftOuter,
				ikeProposal: interopCases[0].ike, localTS: rts, remoteTS: lts, childExtra: child}.String())
			init := startGoipsec(t, a, connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
				ikeProposal: interopCases[0].ike, localTS: lts, remoteTS: rts, startAction: "start",
				childExtra: child + "        rekey_time = 6s\n        life_time = 30s\n"}.String())
			line := init.waitLogCount(t, 1, 20*time.Second, "Child SA established")[0]
			resp.waitLog(t, "Child SA established", 10*time.Second)
			if p, m := logAttr(line, "protocol"), logAttr(line, "mode"); p != "AH" || m != mode {
				t.Fatalf("Child SA %s in %s mode, want AH in %s mode:\n%s", p, m, mode, line)
			}
			traffic := func() {
				t.Helper()
				for _, p := range []struct {
					from *testnet.NS
					to   string
				}{{a, dst}, {b, src}} {
					if out, err := p.from.Output("ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-p", pingPattern, p.to); err != nil {
						t.Fatalf("ping %s through the AH SA failed: %v\n%s", p.to, err, out)
					}
				}
				testnet.TCPTransfer(t, b, a, dst+":7004", 256<<10)
			}
			traffic()
			// The rekey (after 6 s less up to 10%): a new AH pair, the old one deleted.
			init.waitLogCount(t, 2, 20*time.Second, "Child SA established", "protocol=AH")
			init.waitLog(t, "Child SA deleted", 10*time.Second)
			traffic()
			var spis []string
			for _, g := range []*goipsecProc{init, resp} {
				st := g.statusOf(t)
				if len(st.Connections) != 1 || len(st.Connections[0].IKESAs) != 1 || len(st.Connections[0].Children) != 1 ||
					strings.Join(st.Connections[0].Children[0].AHProposals, ",") != "sha512-x25519-noesn" {
					t.Fatalf("status: %+v", st.Connections)
				}
				for _, ch := range st.Connections[0].IKESAs[0].Children {
					if ch.Protocol != "ah" || ch.UDPEncap || ch.In.Packets == 0 || ch.Out.Packets == 0 {
						t.Fatalf("status lists Child SA %+v, want AH that carried traffic both ways", ch)
					}
					spis = append(spis, ch.SPIIn, ch.SPIOut)
				}
			}
			pcap := capture.Stop()

			out := testnet.Tshark(t, pcap, "-T", "fields", "-E", "separator=|", "-E", "occurrence=l",
				"-e", "ip.proto", "-e", "ah.spi", "-e", "ah.length", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type", "-e", "data.data",
				"-e", "tcp.srcport", "-e", "tcp.dstport")
			seen := map[string]int{}
			var requests, replies, tcpAB, tcpBA, other int
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Split(l, "|")
				if len(f) != 9 {
					t.Fatalf("tshark line %q", l)
				}
				proto, spi, ahLen, isrc, idst, icmpType, data, sport, dport := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]
				if spi == "" {
					t.Fatalf("a packet that is not AH on the wire (last IP protocol %s): %q", proto, l)
				}
				v, err := strconv.ParseUint(strings.TrimPrefix(spi, "0x"), 16, 32)
				if err != nil {
					t.Fatalf("tshark AH SPI %q", spi)
				}
				seen[fmt.Sprintf("%08x", v)]++
				if ahLen != "9" {
					t.Fatalf("AH length %s: not the header of HMAC-SHA-512-256's 32-byte ICV: %q", ahLen, l)
				}
				switch {
				case icmpType == "8" && isrc == src && idst == dst && strings.Contains(data, strings.Repeat(pingPattern, 4)):
					requests++
				case icmpType == "0" && isrc == dst && idst == src && strings.Contains(data, strings.Repeat(pingPattern, 4)):
					replies++
				case icmpType == "8" && isrc == dst && idst == src, icmpType == "0" && isrc == src && idst == dst:
					// b's pings to a
				case dport == "7004" && isrc == src && idst == dst:
					tcpAB++
				case sport == "7004" && isrc == dst && idst == src:
					tcpBA++
				default:
					other++
				}
			}
			if requests < 6 || replies < 6 || tcpAB == 0 || tcpBA == 0 || other != 0 {
				t.Fatalf("AH on the wire: %d echo requests, %d replies from %s to %s, %d TCP segments to port 7004, %d from it, %d others; "+
					"want >= 6, >= 6, > 0, > 0, 0:\n%s", requests, replies, src, dst, tcpAB, tcpBA, other, testnet.Tail(out, 40))
			}
			for _, spi := range spis {
				if seen[spi] == 0 {
					t.Fatalf("no AH packet on the wire with SPI %s (seen %v)", spi, seen)
				}
			}
			if len(seen) < 4 {
				t.Fatalf("AH SPIs on the wire %v: want the first pair and the rekeyed one", seen)
			}
		})
	}
}
