package interop

import (
	"strings"
	"testing"
	"time"
)

// dpdDaemon makes a dead peer show quickly: the first retransmission after 1s, then every 1s, three
// of them.
const dpdDaemon = "  retransmit_timeout = 1s\n  retransmit_base = 1\n  retransmit_tries = 3\n"

// TestDPDStrongSwan: goipsec runs dead peer detection (dpd_delay) against strongSwan, which is then
// killed (SIGKILL: no Delete reaches goipsec). goipsec must declare the IKE SA down and remove its
// Child SA; with dpd_action = restart it must re-establish once strongSwan is back.
func TestDPDStrongSwan(t *testing.T) {
	for _, action := range []string{"clear", "restart"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			_, left, right := setup(t)
			tc := interopCases[0]
			// strongSwan runs its own liveness checks too, which goipsec must answer.
			conn := swanConn{local: rightOuter, remote: leftOuter, ike: tc.ike, extra: "    dpd_delay = 1s\n",
				children: []swanChild{{name: "net", localTS: rightNet4 + "," + rightNet6, remoteTS: leftNet4 + "," + leftNet6, esp: tc.esp}}}
			c := startCharon(t, right, conn)
			g := startGoipsec(t, left, connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
				ikeProposal: tc.ike, espProposal: tc.esp, localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6,
				startAction: "start", extra: "    dpd_delay = 2s\n", childExtra: "        dpd_action = " + action + "\n",
				daemonExtra: dpdDaemon}.String())
			c.WaitEstablished(t, "gt", 30*time.Second)
			g.waitLog(t, "Child SA established", 10*time.Second)
			if ok, out := left.Ping(t, rightInner4, 2); !ok {
				t.Fatalf("ping through the tunnel failed:\n%s", out)
			}
			// A live peer answers the liveness checks: nothing fails while it is up.
			time.Sleep(5 * time.Second)
			if lines := g.logLines("IKE SA failed"); len(lines) != 0 {
				t.Fatalf("IKE SA failed while the peer was alive:\n%s", strings.Join(lines, "\n"))
			}
			// goipsec answered strongSwan's liveness checks. (Those also keep goipsec's own checks
			// quiet: any message from the peer proves it alive.)
			if !strings.Contains(c.Log(), "parsed INFORMATIONAL response") {
				t.Fatalf("strongSwan's log shows no answered liveness check")
			}
			c.WaitEstablished(t, "gt", time.Second)

			killInNS(t, right, "charon")
			failed := g.waitLogCount(t, 1, 15*time.Second, "IKE SA failed")[0]
			if !strings.Contains(logAttr(failed, "err"), "did not answer") {
				t.Fatalf("IKE SA failed for another reason than the dead peer:\n%s", failed)
			}
			// Its Child SA is gone from the data plane: both ESP SAs deleted.
			g.waitLogCount(t, 2, 5*time.Second, `msg="SA deleted"`)

			if action == "clear" {
				time.Sleep(2 * time.Second)
				if lines := g.logLines("restarting connection"); len(lines) != 0 {
					t.Fatalf("dpd_action = clear restarted the connection:\n%s", strings.Join(lines, "\n"))
				}
				if ok, _ := left.Ping(t, rightInner4, 1); ok {
					t.Fatalf("ping %s passed with the peer dead", rightInner4)
				}
				return
			}
			g.waitLog(t, "restarting connection", 5*time.Second)
			c2 := startCharon(t, right, conn)
			c2.WaitEstablished(t, "gt", 30*time.Second)
			g.waitLogCount(t, 2, 10*time.Second, "Child SA established")
			checkTraffic(t, left, right)
		})
	}
}
