package interop

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// Multiple key exchanges (RFC 9370) against strongSwan 6.0.1 from Debian 13. Its openssl plugin
// has no ML-KEM, so the additional key exchanges are classical ones; the protocol is the same:
// IKE_INTERMEDIATE after IKE_SA_INIT (RFC 9242), authenticated in IKE_AUTH, and IKE_FOLLOWUP_KE
// after CREATE_CHILD_SA.

// pqCases are the additional key exchange combinations tested against strongSwan 6.
var pqCases = []struct {
	name, ike, esp string
	// wantIKE and wantESP are what swanctl --list-sas shows for the negotiated proposals.
	wantIKE, wantESP string
	// exchanges is the number of additional key exchanges.
	exchanges int
}{
	{"one", "aes256gcm16-prfsha256-x25519-ke1_ecp256", "aes256gcm16-x25519-ke1_ecp256",
		"AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519/KE1_ECP_256", "AES_GCM_16-256/CURVE_25519/KE1_ECP_256", 1},
	{"two", "aes256gcm16-prfsha384-ecp384-ke1_x25519-ke2_modp3072", "aes128gcm16-ecp256-ke1_x25519-ke2_modp3072",
		"AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384/KE1_CURVE_25519/KE2_MODP_3072", "AES_GCM_16-128/ECP_256/KE1_CURVE_25519/KE2_MODP_3072", 2},
	// Six is the most the two share: RFC 9370 §2.2.1 wants a different method in every round, and
	// the methods common to goipsec and Debian's strongSwan 6.0.1 are these seven (no ML-KEM there,
	// no X448 or Brainpool here).
	{"six", "aes256gcm16-prfsha256-x25519-ke1_ecp256-ke2_ecp384-ke3_ecp521-ke4_modp2048-ke5_modp3072-ke6_modp4096",
		"aes256gcm16-x25519-ke1_ecp256-ke2_ecp384-ke3_ecp521-ke4_modp2048-ke5_modp3072-ke6_modp4096",
		"AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519/KE1_ECP_256/KE2_ECP_384/KE3_ECP_521/KE4_MODP_2048/KE5_MODP_3072/KE6_MODP_4096",
		"AES_GCM_16-256/CURVE_25519/KE1_ECP_256/KE2_ECP_384/KE3_ECP_521/KE4_MODP_2048/KE5_MODP_3072/KE6_MODP_4096", 6},
}

// swanctlGoipsec runs the host's swanctl against goipsec's VICI socket.
func swanctlGoipsec(t *testing.T, g *goipsecProc, args ...string) string {
	t.Helper()
	out, err := exec.Command("swanctl", append(args, "--uri", "unix://"+g.vici)...).CombinedOutput()
	if err != nil {
		t.Fatalf("swanctl %s against goipsec: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestStrongSwan6AdditionalKE: goipsec and strongSwan 6 in both roles with one and with two
// additional key exchanges: IKE_INTERMEDIATE exchanges before IKE_AUTH (whose AUTH covers them),
// traffic both ways, then the initiator rekeys the Child SA (CREATE_CHILD_SA with PFS and
// IKE_FOLLOWUP_KE) and the IKE SA (likewise), and traffic still flows.
func TestStrongSwan6AdditionalKE(t *testing.T) {
	root := strongswan.Trixie(t)
	for _, tc := range pqCases {
		for _, goipsecInitiates := range []bool{true, false} {
			role := "goipsec-responder"
			if goipsecInitiates {
				role = "goipsec-initiator"
			}
			t.Run(tc.name+"/"+role, func(t *testing.T) {
				t.Parallel()
				_, left, right := setup(t)
				c := strongswan.Start(t, right, strongswan.Config{Root: root, SwanctlConf: swanConn{local: rightOuter, remote: leftOuter, ike: tc.ike,
					children: []swanChild{{name: "net", localTS: rightNet4 + "," + rightNet6, remoteTS: leftNet4 + "," + leftNet6, esp: tc.esp}}}.String()})
				cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
					ikeProposal: tc.ike, espProposal: tc.esp, localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6}
				if goipsecInitiates {
					cc.startAction = "start"
				}
				g := startGoipsec(t, left, cc.String())
				if !goipsecInitiates {
					c.Initiate(t, "net")
				}
				c.WaitEstablished(t, "gt", 30*time.Second)
				g.waitLog(t, "Child SA established", 10*time.Second)
				sas := c.ListSAs(t)
				if !strings.Contains(sas, tc.wantIKE) {
					t.Fatalf("swanctl --list-sas lacks %q:\n%s", tc.wantIKE, sas)
				}
				if n := len(g.logLines("exchange=IKE_INTERMEDIATE", "response=true")); n != tc.exchanges {
					t.Fatalf("goipsec logged %d IKE_INTERMEDIATE responses, want %d", n, tc.exchanges)
				}
				checkPings(t, left, right)

				// Rekeys from the side that initiated: CREATE_CHILD_SA followed by IKE_FOLLOWUP_KE.
				rekey := func(what, name string) {
					if goipsecInitiates {
						swanctlGoipsec(t, g, "--rekey", "--"+what, name)
					} else {
						c.Swanctl(t, "--rekey", "--"+what, name)
					}
				}
				rekey("child", "net")
				g.waitLogCount(t, 2, 20*time.Second, "Child SA established")
				g.waitLogCount(t, tc.exchanges, 10*time.Second, "exchange=IKE_FOLLOWUP_KE", "response=true")
				if sas := c.ListSAs(t); !strings.Contains(sas, tc.wantESP) {
					t.Fatalf("after the Child SA rekey, swanctl --list-sas lacks %q:\n%s", tc.wantESP, sas)
				}
				rekey("ike", "gt")
				g.waitLogCount(t, 1, 20*time.Second, "IKE SA rekeyed")
				g.waitLogCount(t, 2*tc.exchanges, 10*time.Second, "exchange=IKE_FOLLOWUP_KE", "response=true")
				c.WaitEstablished(t, "gt", 10*time.Second)
				checkPings(t, left, right)
				// strongSwan saw the same exchanges.
				log := c.Log()
				for _, want := range []string{"IKE_INTERMEDIATE request 1 [ KE ]", "IKE_FOLLOWUP_KE request"} {
					if !strings.Contains(log, want) {
						t.Fatalf("charon's log lacks %q", want)
					}
				}
				if f := g.logLines("negotiation failed"); len(f) != 0 {
					t.Fatalf("goipsec reported failures: %q", f)
				}
			})
		}
	}
}

// TestStrongSwan6AdditionalKEMismatch: strongSwan 6 requires an additional key exchange that
// goipsec does not offer, in both roles; goipsec explains the refusal in one line naming the
// offers: as responder both sides' proposals, as initiator its own (strongSwan answers only
// NO_PROPOSAL_CHOSEN) while charon's log names what it would have accepted.
func TestStrongSwan6AdditionalKEMismatch(t *testing.T) {
	root := strongswan.Trixie(t)
	for _, goipsecInitiates := range []bool{false, true} {
		role := "goipsec-responder"
		if goipsecInitiates {
			role = "goipsec-initiator"
		}
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			_, left, right := setup(t)
			c := strongswan.Start(t, right, strongswan.Config{Root: root, SwanctlConf: swanConn{local: rightOuter, remote: leftOuter,
				ike:      "aes256gcm16-prfsha256-x25519-ke1_ecp256",
				children: []swanChild{{name: "net", localTS: rightNet4, remoteTS: leftNet4, esp: "aes256gcm16"}}}.String()})
			cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
				ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16", localTS: leftNet4, remoteTS: rightNet4}
			if goipsecInitiates {
				cc.startAction = "start"
			}
			g := startGoipsec(t, left, cc.String())
			if goipsecInitiates {
				lines := g.waitLogCount(t, 1, 10*time.Second, "negotiation failed", "peer accepted none of our IKE proposals")
				if !strings.Contains(lines[0], "we offered aes256gcm16-prfsha256-x25519") {
					t.Fatalf("goipsec's failure line does not name its offer:\n%s", lines[0])
				}
				c.WaitLog(t, regexp.MustCompile(`configured proposals: .*KE1_ECP_256`), 5*time.Second)
				if n := len(g.logLines("IKE SA established")); n != 0 {
					t.Fatalf("goipsec established %d IKE SAs", n)
				}
				return
			}
			if out, err := c.SwanctlOutput("--initiate", "--child", "net", "--timeout", "10"); err == nil {
				t.Fatalf("strongSwan's initiation succeeded:\n%s", out)
			}
			lines := g.waitLogCount(t, 1, 10*time.Second, "negotiation failed", "no IKE proposal chosen")
			for _, want := range []string{"peer offered aes256gcm16-prfsha256-x25519-ke1_ecp256", "we accept gt: aes256gcm16-prfsha256-x25519"} {
				if !strings.Contains(lines[0], want) {
					t.Fatalf("goipsec's failure line lacks %q:\n%s", want, lines[0])
				}
			}
		})
	}
}

// checkPings pings both ways through the tunnel, IPv4 and IPv6.
func checkPings(t *testing.T, left, right interface {
	Ping(testing.TB, string, int) (bool, string)
}) {
	t.Helper()
	for _, dst := range []string{rightInner4, rightInner6} {
		if ok, out := left.Ping(t, dst, 2); !ok {
			t.Fatalf("ping %s from goipsec's side failed:\n%s", dst, out)
		}
	}
	for _, dst := range []string{leftInner4, leftInner6} {
		if ok, out := right.Ping(t, dst, 2); !ok {
			t.Fatalf("ping %s from strongSwan's side failed:\n%s", dst, out)
		}
	}
}

// TestPPKStrongSwan: post-quantum preshared keys (RFC 8784) with strongSwan 5.9.8 in both roles:
// the same PPK on both sides is used (strongSwan logs it, the tunnel carries traffic); a different
// PPK under the same identity fails authentication; a PPK that one side requires and the other
// lacks fails, and goipsec says why in one line. With strongSwan 6.0.1, which knows IKE_INTERMEDIATE
// but not RFC 9867, goipsec offers USE_PPK_INT and USE_PPK, strongSwan answers USE_PPK, and the PPK
// goes into IKE_AUTH the RFC 8784 way, also after an additional key exchange in IKE_INTERMEDIATE.
func TestPPKStrongSwan(t *testing.T) {
	const ppkA, ppkB = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "0x1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
	for _, tc := range []struct {
		name                   string
		goKey, swanKey         string // "" : no PPK secret
		goRequired, swRequired bool
		goipsecInitiates       bool
		wantUp                 bool
		wantLog                string // a goipsec log line part when it fails
		swan6                  bool   // strongSwan 6.0.1 instead of 5.9.8
		ike                    string // "" : aes256gcm16-prfsha256-x25519
	}{
		{name: "matching/strongswan6/goipsec-initiator", goKey: ppkA, swanKey: ppkA, goRequired: true, swRequired: true, goipsecInitiates: true, wantUp: true,
			swan6: true, ike: "aes256gcm16-prfsha256-x25519-ke1_ecp256"},
		{name: "matching/strongswan6/goipsec-responder", goKey: ppkA, swanKey: ppkA, goRequired: true, swRequired: true, wantUp: true, swan6: true},
		{name: "matching/goipsec-initiator", goKey: ppkA, swanKey: ppkA, goRequired: true, swRequired: true, goipsecInitiates: true, wantUp: true},
		{name: "matching/goipsec-responder", goKey: ppkA, swanKey: ppkA, goRequired: true, swRequired: true, wantUp: true},
		{name: "mismatching/goipsec-initiator", goKey: ppkA, swanKey: ppkB, goRequired: true, swRequired: true, goipsecInitiates: true,
			wantLog: "peer refused our authentication (AUTHENTICATION_FAILED)"},
		{name: "mismatching/goipsec-responder", goKey: ppkA, swanKey: ppkB, goRequired: true, swRequired: true, wantLog: "does not verify"},
		{name: "required-missing/goipsec-responder", goKey: "", swanKey: ppkA, goRequired: false, swRequired: true,
			wantLog: `which we do not have`},
		{name: "required-missing/goipsec-initiator", goKey: ppkA, swanKey: "", goRequired: true, swRequired: false, goipsecInitiates: true,
			// strongSwan without the PPK does not even announce USE_PPK.
			wantLog: `does not support them (neither USE_PPK_INT nor USE_PPK in IKE_SA_INIT`},
	} {
		if tc.ike == "" {
			tc.ike = "aes256gcm16-prfsha256-x25519"
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := ""
			if tc.swan6 {
				root = strongswan.Trixie(t)
			}
			_, left, right := setup(t)
			swExtra := "    ppk_id = ppk-interop\n"
			if tc.swRequired {
				swExtra += "    ppk_required = yes\n"
			}
			conf := swanConn{local: rightOuter, remote: leftOuter, ike: tc.ike, extra: swExtra,
				children: []swanChild{{name: "net", localTS: rightNet4, remoteTS: leftNet4, esp: "aes256gcm16"}}}.String()
			if tc.swanKey != "" {
				conf += "secrets {\n  ppk-1 {\n    id = ppk-interop\n    secret = " + tc.swanKey + "\n  }\n}\n"
			}
			c := strongswan.Start(t, right, strongswan.Config{Root: root, SwanctlConf: conf})
			goExtra := "    ppk_id = ppk-interop\n"
			if tc.goRequired {
				goExtra += "    ppk_required = yes\n"
			}
			cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter, extra: goExtra,
				ikeProposal: tc.ike, espProposal: "aes256gcm16", localTS: leftNet4, remoteTS: rightNet4}
			if tc.goipsecInitiates {
				cc.startAction = "start"
			}
			goConf := cc.String()
			if tc.goKey != "" {
				goConf += "secrets {\n  ppk-1 {\n    id = ppk-interop\n    secret = " + tc.goKey + "\n  }\n}\n"
			}
			g := startGoipsec(t, left, goConf)
			if !tc.goipsecInitiates {
				out, err := c.SwanctlOutput("--initiate", "--child", "net", "--timeout", "10")
				if (err == nil) != tc.wantUp {
					t.Fatalf("strongSwan's initiation: %v\n%s", err, out)
				}
			}
			if !tc.wantUp {
				lines := g.waitLogCount(t, 1, 15*time.Second, "negotiation failed")
				if !strings.Contains(strings.Join(lines, "\n"), tc.wantLog) {
					t.Fatalf("goipsec's failure does not say %q:\n%s", tc.wantLog, strings.Join(lines, "\n"))
				}
				return
			}
			c.WaitEstablished(t, "gt", 30*time.Second)
			g.waitLog(t, "Child SA established", 10*time.Second)
			c.WaitLog(t, regexp.MustCompile(`using PPK for PPK_ID 'ppk-interop'`), 5*time.Second)
			if ok, out := left.Ping(t, rightInner4, 2); !ok {
				t.Fatalf("ping through the tunnel failed:\n%s", out)
			}
		})
	}
}

// TestDefaultProposalsWithClassicStrongSwan: goipsec's default proposals start with the X25519 +
// ML-KEM-768 hybrid; strongSwan 5.9.8 (no RFC 9370) and strongSwan 6.0.1 (RFC 9370 but no ML-KEM in
// Debian's build), configured for X25519, choose a classic proposal in the first round trip: no
// INVALID_KE_PAYLOAD, no IKE_INTERMEDIATE, traffic flows. With goipsec as responder they simply
// find their proposal among goipsec's defaults.
func TestDefaultProposalsWithClassicStrongSwan(t *testing.T) {
	for _, peer := range []string{"strongswan-5.9.8", "strongswan-6.0.1"} {
		for _, goipsecInitiates := range []bool{true, false} {
			role := "goipsec-responder"
			if goipsecInitiates {
				role = "goipsec-initiator"
			}
			t.Run(peer+"/"+role, func(t *testing.T) {
				root := ""
				if peer == "strongswan-6.0.1" {
					root = strongswan.Trixie(t)
				}
				t.Parallel()
				_, left, right := setup(t)
				c := strongswan.Start(t, right, strongswan.Config{Root: root, SwanctlConf: swanConn{local: rightOuter, remote: leftOuter,
					ike: "aes256gcm16-prfsha256-x25519", children: []swanChild{{name: "net", localTS: rightNet4, remoteTS: leftNet4, esp: "aes256gcm16"}}}.String()})
				cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
					ikeProposal: "default", espProposal: "default", localTS: leftNet4, remoteTS: rightNet4}
				if goipsecInitiates {
					cc.startAction = "start"
				}
				g := startGoipsec(t, left, cc.String())
				if !goipsecInitiates {
					c.Initiate(t, "net")
				}
				c.WaitEstablished(t, "gt", 30*time.Second)
				g.waitLog(t, "Child SA established", 10*time.Second)
				if sas := c.ListSAs(t); !strings.Contains(sas, "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519") {
					t.Fatalf("swanctl --list-sas:\n%s", sas)
				}
				if l := g.logLines("prefers key exchange group"); len(l) != 0 {
					t.Fatalf("an INVALID_KE_PAYLOAD round trip: %q", l)
				}
				if l := g.logLines("exchange=IKE_INTERMEDIATE"); len(l) != 0 {
					t.Fatalf("IKE_INTERMEDIATE with a classic peer: %q", l)
				}
				if ok, out := left.Ping(t, rightInner4, 2); !ok {
					t.Fatalf("ping through the tunnel failed:\n%s", out)
				}
			})
		}
	}
}

// TestStrongSwan6IntermediateFragmented: an IKE_INTERMEDIATE larger than the fragment size leaves
// in IKEv2 fragments (RFC 7383) both ways, with goipsec in both roles: strongSwan reassembles
// goipsec's and goipsec strongSwan's, IntAuth covers the messages as if unfragmented (RFC 9242 §3.3),
// so AUTH verifies and traffic flows. Debian's strongSwan 6.0.1 has no ML-KEM, so the large key
// share is MODP-4096's 512 bytes with both fragment sizes lowered to 400 (strongSwan counts the IP
// and UDP headers in its charon.fragment_size, goipsec's daemon.fragment_size does not).
func TestStrongSwan6IntermediateFragmented(t *testing.T) {
	root := strongswan.Trixie(t)
	const ikeP = "aes256gcm16-prfsha256-x25519-ke1_modp4096"
	for _, goipsecInitiates := range []bool{true, false} {
		role := "goipsec-responder"
		if goipsecInitiates {
			role = "goipsec-initiator"
		}
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			_, left, right := setup(t)
			c := strongswan.Start(t, right, strongswan.Config{Root: root, CharonConf: "  fragment_size = 400\n",
				SwanctlConf: swanConn{local: rightOuter, remote: leftOuter, ike: ikeP,
					children: []swanChild{{name: "net", localTS: rightNet4, remoteTS: leftNet4, esp: "aes256gcm16"}}}.String()})
			cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
				ikeProposal: ikeP, espProposal: "aes256gcm16", localTS: leftNet4, remoteTS: rightNet4, daemonExtra: "  fragment_size = 400\n"}
			if goipsecInitiates {
				cc.startAction = "start"
			}
			g := startGoipsec(t, left, cc.String())
			if !goipsecInitiates {
				c.Initiate(t, "net")
			}
			c.WaitEstablished(t, "gt", 30*time.Second)
			g.waitLog(t, "Child SA established", 10*time.Second)
			log := c.Log()
			// charon reassembled goipsec's IKE_INTERMEDIATE and split its own (a line or two apart in its log).
			reassembled := regexp.MustCompile(`reassembled fragmented IKE message \(\d+ bytes\)(?:\n.*){1,3}?parsed IKE_INTERMEDIATE (request|response) 1 \[ KE \]`)
			split := regexp.MustCompile(`generating IKE_INTERMEDIATE (request|response) 1 \[ KE \](?:\n.*){1,3}?splitting IKE message \(\d+ bytes\) into \d+ fragments`)
			if !reassembled.MatchString(log) || !split.MatchString(log) {
				t.Fatalf("charon's log does not show IKE_INTERMEDIATE fragmented both ways:\n%s", grepLines(log, "IKE"))
			}
			// bytes= is the IKE message, without the non-ESP marker on port 4500.
			for _, line := range g.logLines("sending packet") {
				if m := regexp.MustCompile(`bytes=(\d+)`).FindStringSubmatch(line); m != nil {
					if n, _ := strconv.Atoi(m[1]); n > 400 {
						t.Fatalf("goipsec sent a datagram over its fragment size: %s", line)
					}
				}
			}
			if ok, out := left.Ping(t, rightInner4, 2); !ok {
				t.Fatalf("ping through the tunnel failed:\n%s", out)
			}
		})
	}
}
