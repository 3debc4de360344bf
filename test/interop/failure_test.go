package interop

import (
	"strings"
	"testing"
	"time"
)

// failureCase is a misconfiguration between goipsec and strongSwan and what goipsec's one-line
// explanation must name in each role.
type failureCase struct {
	name string
	// swan and goipsec change the working configuration of each side.
	swan    func(*swanConn)
	goipsec func(*connConf)
	// asResponder and asInitiator are substrings the "why" must contain. As responder goipsec has
	// seen the peer's offer (proposals, selectors, identity) and names both sides'; as initiator
	// answered with a bare error Notify it can only name its own.
	asResponder, asInitiator []string
}

const (
	failIKE      = "aes256gcm16-prfsha256-x25519"
	failESP      = "aes256gcm16"
	otherIKE     = "aes128gcm16-prfsha384-ecp384"
	otherESP     = "aes128gcm16"
	strangerNet4 = "10.9.0.0/24"
)

var failureCases = []failureCase{
	{
		name:        "wrong-psk",
		swan:        func(c *swanConn) { c.psk = "not-the-same-psk" },
		asResponder: []string{"does not verify", "preshared keys", leftOuter, rightOuter},
		asInitiator: []string{"AUTHENTICATION_FAILED", leftOuter, rightOuter},
	},
	{
		name:        "identity-mismatch",
		goipsec:     func(c *connConf) { c.remoteID = "gw.example" },
		asResponder: []string{"identity " + rightOuter, "expects gw.example"},
		// strongSwan refuses an IDr that is not its identity with a bare AUTHENTICATION_FAILED.
		asInitiator: []string{"AUTHENTICATION_FAILED", "we are " + leftOuter, "expecting gw.example"},
	},
	{
		name:        "no-common-ike-proposal",
		swan:        func(c *swanConn) { c.ike = otherIKE },
		asResponder: []string{"IKE proposal", "peer offered aes128gcm16", "ecp384", "we accept", failIKE},
		asInitiator: []string{"IKE proposals", "we offered " + failIKE},
	},
	{
		name:        "no-common-esp-proposal",
		swan:        func(c *swanConn) { c.children[0].esp = otherESP },
		asResponder: []string{"ESP proposal", "peer offered aes128gcm16", "we accept", "aes256gcm16"},
		asInitiator: []string{"ESP proposals", "we offered aes256gcm16"},
	},
	{
		name: "disjoint-traffic-selectors",
		// strongSwan wants goipsec's side to be 10.9.0.0/24; goipsec offers 10.1.0.0/24.
		swan:        func(c *swanConn) { c.children[0].remoteTS = strangerNet4 },
		asResponder: []string{"traffic selectors", "peer proposed", strangerNet4, rightNet4, leftNet4},
		asInitiator: []string{"traffic selectors", "we proposed local " + leftNet4, "remote " + rightNet4},
	},
}

// TestFailureMessages: each misconfiguration makes goipsec log exactly one WARN line "negotiation
// failed" whose why explains it, naming the offers of both sides where goipsec knows them, as
// responder and as initiator against strongSwan.
func TestFailureMessages(t *testing.T) {
	for _, fc := range failureCases {
		for _, goipsecInitiates := range []bool{true, false} {
			role := "goipsec-responder"
			want := fc.asResponder
			if goipsecInitiates {
				role, want = "goipsec-initiator", fc.asInitiator
			}
			t.Run(fc.name+"/"+role, func(t *testing.T) {
				t.Parallel()
				_, left, right := setup(t)
				sc := swanConn{local: rightOuter, remote: leftOuter, ike: failIKE,
					children: []swanChild{{name: "net", localTS: rightNet4, remoteTS: leftNet4, esp: failESP}}}
				gc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
					ikeProposal: failIKE, espProposal: failESP, localTS: leftNet4, remoteTS: rightNet4}
				if fc.swan != nil {
					fc.swan(&sc)
				}
				if fc.goipsec != nil {
					fc.goipsec(&gc)
				}
				if goipsecInitiates {
					gc.startAction = "start"
				}
				c := startCharon(t, right, sc)
				g := startGoipsec(t, left, gc.String())
				if !goipsecInitiates {
					if out, err := c.SwanctlOutput("--initiate", "--child", "net", "--timeout", "15"); err == nil {
						t.Fatalf("strongSwan's initiation succeeded despite the misconfiguration:\n%s", out)
					}
				}
				g.waitLogCount(t, 1, 15*time.Second, `msg="negotiation failed"`)
				// Give a duplicate time to show up: a retransmission, a second report of the same failure.
				time.Sleep(time.Second)
				lines := g.logLines(`msg="negotiation failed"`)
				if len(lines) != 1 {
					t.Fatalf("goipsec logged %d \"negotiation failed\" lines, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
				}
				line := lines[0]
				t.Logf("%s", line)
				if logAttr(line, "level") != "WARN" {
					t.Errorf("not at level WARN:\n%s", line)
				}
				why := logAttr(line, "why")
				for _, s := range want {
					if !strings.Contains(why, s) {
						t.Errorf("why %q does not name %q", why, s)
					}
				}
			})
		}
	}
}
