package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// Addresses: goipsec on the left, charon on the right. Inner subnets sit on lo (kernel-libipsec
// routes only when a local address lies inside local_ts).
const (
	leftOuter   = "192.0.2.1"
	rightOuter  = "192.0.2.2"
	leftNet4    = "10.1.0.0/24"
	rightNet4   = "10.2.0.0/24"
	leftInner4  = "10.1.0.1"
	rightInner4 = "10.2.0.1"
	leftNet6    = "fd01::/64"
	rightNet6   = "fd02::/64"
	leftInner6  = "fd01::1"
	rightInner6 = "fd02::1"
)

func charonConf(local, remote, ike, esp string, initiate bool, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "connections {\n  gt {\n    local_addrs = %s\n    remote_addrs = %s\n    proposals = %s\n    mobike = no\n%s", local, remote, ike, extra)
	fmt.Fprintf(&b, "    local {\n      auth = psk\n      id = %s\n    }\n    remote {\n      auth = psk\n      id = %%any\n    }\n", local)
	fmt.Fprintf(&b, "    children {\n      net {\n        local_ts = %s,%s\n        remote_ts = %s,%s\n        esp_proposals = %s\n      }\n    }\n  }\n}\n",
		rightNet4, rightNet6, leftNet4, leftNet6, esp)
	fmt.Fprintf(&b, "secrets {\n  ike-gt {\n    secret = \"%s\"\n  }\n}\n", testPSK)
	_ = initiate
	return b.String()
}

type interopCase struct {
	ike, esp string
	// Names charon prints in --list-sas for the negotiated algorithms.
	wantIKE, wantESP string
}

var interopCases = []interopCase{
	{"aes256gcm16-prfsha256-x25519", "aes256gcm16", "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-256"},
	{"aes128gcm16-prfsha256-ecp256", "aes128gcm16", "AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256", "AES_GCM_16-128"},
	{"chacha20poly1305-prfsha256-x25519", "chacha20poly1305", "CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519", "CHACHA20_POLY1305"},
	{"aes256-sha256-modp2048", "aes256-sha256", "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048", "AES_CBC-256/HMAC_SHA2_256_128"},
}

// setup builds left (goipsec) and right (charon) namespaces joined by a veth.
func setup(t *testing.T) (n *testnet.Net, left, right *testnet.NS) {
	n, left, right, _, _ = setupOuter(t, leftOuter+"/24", rightOuter+"/24")
	return n, left, right
}

// setupOuter is setup with the given outer addresses (CIDRs); it also returns the veth's names.
func setupOuter(t *testing.T, leftCIDR, rightCIDR string) (n *testnet.Net, left, right *testnet.NS, leftIf, rightIf string) {
	t.Helper()
	testnet.Require(t, strongswan.CharonPath, strongswan.SwanctlPath, "ping")
	n = testnet.New(t)
	left, right = n.Namespace("gi"), n.Namespace("sw")
	leftIf, rightIf = n.Link(left, right, []string{leftCIDR}, []string{rightCIDR})
	left.AddAddr("lo", leftInner4+"/24")
	left.AddAddr("lo", leftInner6+"/64")
	right.AddAddr("lo", rightInner4+"/24")
	right.AddAddr("lo", rightInner6+"/64")
	return n, left, right, leftIf, rightIf
}

// checkTraffic pings and moves byte-checked TCP data both ways, IPv4 and IPv6, through the tunnel.
func checkTraffic(t *testing.T, left, right *testnet.NS) {
	t.Helper()
	for _, dst := range []string{rightInner4, rightInner6} {
		if ok, out := left.Ping(t, dst, 3); !ok {
			t.Fatalf("ping %s from goipsec's side failed:\n%s", dst, out)
		}
	}
	for _, dst := range []string{leftInner4, leftInner6} {
		if ok, out := right.Ping(t, dst, 3); !ok {
			t.Fatalf("ping %s from strongSwan's side failed:\n%s", dst, out)
		}
	}
	testnet.TCPTransfer(t, right, left, "["+rightInner6+"]:7001", 512<<10)
	testnet.TCPTransfer(t, left, right, leftInner4+":7002", 512<<10)
}

func TestStrongSwanInterop(t *testing.T) {
	for _, tc := range interopCases {
		for _, goipsecInitiates := range []bool{true, false} {
			role := "goipsec-responder"
			if goipsecInitiates {
				role = "goipsec-initiator"
			}
			t.Run(tc.ike+"/"+role, func(t *testing.T) {
				_, left, right := setup(t)
				c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: charonConf(rightOuter, leftOuter, tc.ike, tc.esp, !goipsecInitiates, "")})
				cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
					ikeProposal: tc.ike, espProposal: tc.esp,
					localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6}
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
				for _, want := range []string{"ESTABLISHED", "INSTALLED", tc.wantIKE, tc.wantESP} {
					if !strings.Contains(sas, want) {
						t.Fatalf("swanctl --list-sas lacks %q:\n%s", want, sas)
					}
				}
				checkTraffic(t, left, right)
			})
		}
	}
}
