package interop

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/status"
)

// statusOf reads a daemon's `goipsec status --json`.
func (g *goipsecProc) statusOf(t *testing.T) status.Status {
	t.Helper()
	out, err := exec.Command(goipsecBinary(t), "status", "--json", "--socket", g.vici).CombinedOutput()
	var st status.Status
	if err != nil || json.Unmarshal(out, &st) != nil {
		t.Fatalf("goipsec status: %v\n%s", err, out)
	}
	return st
}

// noSADrops is how many packets arrived for an SA the data plane did not have.
func (g *goipsecProc) noSADrops(t *testing.T) uint64 { return g.statusOf(t).DataPlane.Drops["no_sa"] }

// iperf runs iperf3 between the inner addresses, both directions at once, for d, and returns its
// summary; it fails the test when the transfer breaks off.
func iperf(t *testing.T, client, server *testnet.NS, dst string, d time.Duration) string {
	t.Helper()
	testnet.Require(t, "iperf3")
	srv := server.Start(t, "iperf3", "-s", "-1", "-p", "5299")
	time.Sleep(300 * time.Millisecond)
	out, err := client.Output("timeout", fmt.Sprint(int(d.Seconds())+30), "iperf3", "-c", dst, "-p", "5299", "--bidir", "-t", fmt.Sprint(int(d.Seconds())), "-i", "0")
	srv.Stop()
	if err != nil {
		t.Fatalf("iperf3 through the tunnel failed: %v\n%s", err, out)
	}
	return out
}

// TestRekeyUnderLoadWithoutLoss: iperf3 in both directions through a tunnel whose Child SA one side
// rekeys every 5 s. goipsec moves its traffic to a new Child SA only once the peer can receive on
// it (make-before-break), and keeps both inbound SAs meanwhile: no packet may reach goipsec for an
// SA it does not have, whichever side rekeys, against goipsec and against strongSwan 5.9.8.
func TestRekeyUnderLoadWithoutLoss(t *testing.T) {
	tc := interopCases[0]
	rekeys := "        rekey_time = 5s\n        life_time = 30s\n"
	for _, peer := range []string{"goipsec", "strongswan"} {
		for _, who := range []string{"left", "right"} {
			t.Run(peer+"/"+who+"-rekeys", func(t *testing.T) {
				t.Parallel()
				_, left, right := setup(t)
				leftChild, rightChild := "", ""
				if who == "left" {
					leftChild = rekeys
				} else {
					rightChild = rekeys
				}
				g := startGoipsec(t, left, connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
					ikeProposal: tc.ike, espProposal: tc.esp, localTS: leftNet4, remoteTS: rightNet4, startAction: "start",
					encap: true, childExtra: leftChild}.String())
				var peerG *goipsecProc
				if peer == "goipsec" {
					peerG = startGoipsec(t, right, connConf{local: rightOuter, remote: leftOuter, localID: rightOuter, remoteID: leftOuter,
						ikeProposal: tc.ike, espProposal: tc.esp, localTS: rightNet4, remoteTS: leftNet4, childExtra: rightChild}.String())
				} else {
					extra := strings.ReplaceAll(rightChild, "life_time = 30s", "life_time = 30s\n        rand_time = 1s")
					startCharonConf(t, right, swanConn{local: rightOuter, remote: leftOuter, ike: tc.ike,
						children: []swanChild{{name: "net", localTS: rightNet4, remoteTS: leftNet4, esp: tc.esp, extra: extra}}},
						"delete_rekeyed_delay = 0")
				}
				g.waitLog(t, "Child SA established", 20*time.Second)
				out := iperf(t, left, right, rightInner4, 22*time.Second)
				if n := len(g.logLines("Child SA established")); n < 4 {
					t.Fatalf("only %d Child SAs in 22 s: the rekeys did not happen", n)
				}
				for _, d := range []*goipsecProc{g, peerG} {
					if d == nil {
						continue
					}
					if drops := d.noSADrops(t); drops != 0 {
						t.Errorf("%d packets met a missing SA at a goipsec side", drops)
					}
				}
				t.Logf("iperf3 during the rekeys:\n%s", testnet.Tail(out, 6))
			})
		}
	}
}

// TestHandshakeUnderLoss: 30% loss each way between two goipsec daemons; the tunnel comes up
// within 30 s, ten times out of ten. (The retransmission schedule is tuned for a lossy link: the
// first retransmission after 1 s, growing by 1.4 up to 2 s between tries.)
func TestHandshakeUnderLoss(t *testing.T) {
	testnet.Require(t, "nft")
	n := testnet.New(t)
	left, mid, right := n.Namespace("gl"), n.Namespace("lossy"), n.Namespace("gr")
	n.Link(left, mid, []string{leftOuter + "/24"}, []string{"192.0.2.254/24"})
	n.Link(mid, right, []string{"198.51.100.254/24"}, []string{"198.51.100.2/24"})
	mid.EnableForwarding()
	left.AddRoute("default", "via", "192.0.2.254")
	right.AddRoute("default", "via", "198.51.100.254")
	left.AddAddr("lo", leftInner4+"/24")
	right.AddAddr("lo", rightInner4+"/24")
	daemon := "  retransmit_timeout = 1s\n  retransmit_base = 1.4\n  retransmit_limit = 2s\n  retransmit_tries = 20\n"
	resp := startGoipsec(t, right, connConf{local: "198.51.100.2", remote: leftOuter, localID: "198.51.100.2", remoteID: leftOuter,
		ikeProposal: natCase.ike, espProposal: natCase.esp, localTS: rightNet4, remoteTS: leftNet4, daemonExtra: daemon}.String())
	init := startGoipsec(t, left, connConf{local: leftOuter, remote: "198.51.100.2", localID: leftOuter, remoteID: "198.51.100.2",
		ikeProposal: natCase.ike, espProposal: natCase.esp, localTS: leftNet4, remoteTS: rightNet4, daemonExtra: daemon}.String())
	mid.DropRandom(t, 30)
	var took []time.Duration
	for try := range 10 {
		start := time.Now()
		out, err := exec.Command(goipsecBinary(t), "up", "gt", "--socket", init.vici, "--timeout", "30s").CombinedOutput()
		if err != nil {
			t.Fatalf("try %d: not up within 30 s under 30%% loss: %v\n%s", try+1, err, out)
		}
		took = append(took, time.Since(start).Round(10*time.Millisecond))
		// Tear down for the next try; under loss the Delete exchange may take a while (the CLI
		// may stop waiting first): wait until both sides have forgotten the IKE SA.
		exec.Command(goipsecBinary(t), "down", "gt", "--socket", init.vici).Run()
		deadline := time.Now().Add(60 * time.Second)
		for len(init.statusOf(t).Connections[0].IKESAs) > 0 || len(resp.statusOf(t).Connections[0].IKESAs) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("try %d: the IKE SAs did not go away after down", try+1)
			}
			if len(init.statusOf(t).Connections[0].IKESAs) == 0 {
				exec.Command(goipsecBinary(t), "down", "gt", "--socket", resp.vici).Run()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("time to up under 30%% loss each way: %v", took)
}

// TestPeerKilledAndRestarted: the responder dies (SIGKILL: no Delete) and comes back; with
// dpd_delay = 5s and dpd_action = restart the tunnel is back within dpd_delay + 10 s of the
// restart: the new responder answers the liveness check INVALID_IKE_SPI, and goipsec starts over
// at once instead of retransmitting for minutes.
func TestPeerKilledAndRestarted(t *testing.T) {
	_, left, right := setup(t)
	tc := interopCases[0]
	respConf := connConf{local: rightOuter, remote: leftOuter, localID: rightOuter, remoteID: leftOuter,
		ikeProposal: tc.ike, espProposal: tc.esp, localTS: rightNet4, remoteTS: leftNet4}.String()
	resp := startGoipsec(t, right, respConf)
	init := startGoipsec(t, left, connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
		ikeProposal: tc.ike, espProposal: tc.esp, localTS: leftNet4, remoteTS: rightNet4, startAction: "start",
		extra: "    dpd_delay = 5s\n", childExtra: "        dpd_action = restart\n"}.String())
	init.waitLog(t, "Child SA established", 20*time.Second)
	if ok, out := left.Ping(t, rightInner4, 2); !ok {
		t.Fatalf("ping before the crash:\n%s", out)
	}
	resp.p.Signal(syscall.SIGKILL)
	resp.p.Wait()
	restarted := time.Now()
	resp2 := startGoipsec(t, right, respConf)
	deadline := restarted.Add(15 * time.Second)
	for {
		if ok, _ := left.Ping(t, rightInner4, 1); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tunnel is not back 15 s after the peer restarted:\n%s", testnet.Tail(init.p.Output(), 40))
		}
	}
	t.Logf("tunnel back %v after the restart", time.Since(restarted).Round(100*time.Millisecond))
	if lines := init.logLines("INVALID_IKE_SPI"); len(lines) == 0 {
		t.Errorf("goipsec did not learn of the restart from INVALID_IKE_SPI")
	}
	resp2.waitLog(t, "Child SA established", 5*time.Second)
}
