package interop

import (
	"strings"
	"testing"
	"time"
)

// TestTrapStrongSwan: a start_action = trap child negotiates nothing until traffic needs it; the first
// packets trigger one IKE_SA_INIT (acquire), and once the Child SA is up traffic passes both ways.
func TestTrapStrongSwan(t *testing.T) {
	_, left, right := setup(t)
	tc := interopCases[0]
	c := startCharon(t, right, swanConn{local: rightOuter, remote: leftOuter, ike: tc.ike,
		children: []swanChild{{name: "net", localTS: rightNet4 + "," + rightNet6, remoteTS: leftNet4 + "," + leftNet6, esp: tc.esp}}})
	g := startGoipsec(t, left, connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
		ikeProposal: tc.ike, espProposal: tc.esp, localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6,
		startAction: "trap", daemonExtra: "  retransmit_timeout = 1s\n  retransmit_base = 1\n"}.String())
	time.Sleep(time.Second)
	if lines := g.logLines("initiating IKE_SA_INIT"); len(lines) != 0 {
		t.Fatalf("a trap child initiated without traffic:\n%s", strings.Join(lines, "\n"))
	}

	// Packets keep hitting the trap while the IKE SA is being negotiated: they may be lost, but they
	// must not start more than one IKE SA. strongSwan's side drops everything for a while, so the
	// handshake waits for a retransmission (1s) while the pings go on.
	right.DropRandom(t, 100)
	left.Output("ping", "-4", "-n", "-c", "5", "-i", "0.1", "-W", "1", rightInner4)
	g.waitLog(t, "acquire: traffic needs an SA", 5*time.Second)
	right.DropRandom(t, 0)
	c.WaitEstablished(t, "gt", 30*time.Second)
	g.waitLog(t, "Child SA established", 10*time.Second)
	checkTraffic(t, left, right)
	if n := len(g.logLines("initiating IKE_SA_INIT")); n != 1 {
		t.Errorf("goipsec initiated %d IKE SAs for the trapped traffic, want 1:\n%s", n, strings.Join(g.logLines("initiating IKE_SA_INIT"), "\n"))
	}
	if ike, child := swanSPIs(c.ListSAs(t)); len(ike) != 1 || len(child) != 2 {
		t.Errorf("strongSwan has IKE SAs %q, Child SPIs %q; want one IKE SA with one Child SA", ike, child)
	}
}

// TestSeveralChildrenStrongSwan: one connection with two children, IPv4 and IPv6 selectors; the first
// comes with IKE_AUTH, the second with CREATE_CHILD_SA on the same IKE SA. Both carry traffic.
func TestSeveralChildrenStrongSwan(t *testing.T) {
	for _, goipsecInitiates := range []bool{true, false} {
		role := "goipsec-responder"
		if goipsecInitiates {
			role = "goipsec-initiator"
		}
		t.Run(role, func(t *testing.T) {
			_, left, right := setup(t)
			tc := interopCases[0]
			c := startCharon(t, right, swanConn{local: rightOuter, remote: leftOuter, ike: tc.ike, children: []swanChild{
				{name: "net", localTS: rightNet4, remoteTS: leftNet4, esp: tc.esp},
				{name: "net6", localTS: rightNet6, remoteTS: leftNet6, esp: tc.esp},
			}})
			cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
				ikeProposal: tc.ike, espProposal: tc.esp, localTS: leftNet4, remoteTS: rightNet4,
				moreChildren: []childConf{{name: "net6", localTS: leftNet6, remoteTS: rightNet6, espProposal: tc.esp}}}
			if goipsecInitiates {
				cc.startAction = "start"
				cc.moreChildren[0].extra = "        start_action = start\n"
			}
			g := startGoipsec(t, left, cc.String())
			if !goipsecInitiates {
				c.Initiate(t, "net")
				c.Initiate(t, "net6")
			}
			c.WaitEstablished(t, "gt", 30*time.Second)
			lines := g.waitLogCount(t, 2, 10*time.Second, "Child SA established")
			children := map[string]bool{}
			for _, l := range lines {
				children[logAttr(l, "child")] = true
			}
			if len(lines) != 2 || !children["net"] || !children["net6"] {
				t.Fatalf("goipsec's Child SAs: want net and net6 once each:\n%s", strings.Join(lines, "\n"))
			}
			if n := len(g.logLines("IKE SA established")); n != 1 {
				t.Fatalf("goipsec established %d IKE SAs, want 1", n)
			}
			if !strings.Contains(c.Log(), "CREATE_CHILD_SA request") {
				t.Errorf("strongSwan's log shows no CREATE_CHILD_SA exchange")
			}
			sas := c.ListSAs(t)
			if ike, child := swanSPIs(sas); len(ike) != 1 || len(child) != 4 || strings.Count(sas, "INSTALLED") != 2 {
				t.Fatalf("strongSwan: want one IKE SA with two installed Child SAs:\n%s", sas)
			}
			checkTraffic(t, left, right)
		})
	}
}
