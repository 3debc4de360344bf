package interop

import (
	"strings"
	"testing"
	"time"
)

// IPv6 outer addresses (RFC 3849 documentation prefix).
const (
	leftOuter6  = "2001:db8::1"
	rightOuter6 = "2001:db8::2"
)

// TestIPv6OuterStrongSwan: IKE and ESP (in UDP, as libipsec forces) over IPv6 between goipsec and
// strongSwan, IPv4 and IPv6 inside, both roles.
func TestIPv6OuterStrongSwan(t *testing.T) {
	tc := interopCases[0]
	for _, goipsecInitiates := range []bool{true, false} {
		role := "goipsec-responder"
		if goipsecInitiates {
			role = "goipsec-initiator"
		}
		t.Run(role, func(t *testing.T) {
			_, left, right, _, _ := setupOuter(t, leftOuter6+"/64", rightOuter6+"/64")
			c := startCharon(t, right, swanConn{local: rightOuter6, remote: leftOuter6, ike: tc.ike,
				children: []swanChild{{name: "net", localTS: rightNet4 + "," + rightNet6, remoteTS: leftNet4 + "," + leftNet6, esp: tc.esp}}})
			cc := connConf{local: leftOuter6, remote: rightOuter6, localID: leftOuter6, remoteID: rightOuter6,
				ikeProposal: tc.ike, espProposal: tc.esp, localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6}
			if goipsecInitiates {
				cc.startAction = "start"
			}
			g := startGoipsec(t, left, cc.String())
			if !goipsecInitiates {
				c.Initiate(t, "net")
			}
			c.WaitEstablished(t, "gt", 30*time.Second)
			line := g.waitLogCount(t, 1, 10*time.Second, "IKE SA established")[0]
			g.waitLog(t, "Child SA established", 10*time.Second)
			if r := logAttr(line, "remote"); r != "["+rightOuter6+"]:4500" {
				t.Errorf("goipsec's IKE SA remote endpoint %q, want [%s]:4500", r, rightOuter6)
			}
			sas := c.ListSAs(t)
			local, remote := swanEndpoints(t, sas)
			if local != rightOuter6+"[4500]" || remote != leftOuter6+"[4500]" {
				t.Errorf("strongSwan's endpoints %s - %s, want %s[4500] - %s[4500]", local, remote, rightOuter6, leftOuter6)
			}
			for _, want := range []string{"INSTALLED", "TUNNEL-in-UDP", tc.wantESP} {
				if !strings.Contains(sas, want) {
					t.Errorf("swanctl --list-sas lacks %q:\n%s", want, sas)
				}
			}
			checkTraffic(t, left, right)
		})
	}
}
