package strongswan

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/credentials/pki"
	"github.com/goipsec/goipsec/internal/testnet"
)

// The two-charon fixture: left initiates, right responds, over one veth pair. The inner prefixes sit
// on lo, because kernel-libipsec only installs routes when a local address lies inside local_ts and
// the test kernels have no dummy interfaces.
const (
	leftOuter  = "192.0.2.1"
	rightOuter = "192.0.2.2"
	leftInner  = "10.1.0.1"
	rightInner = "10.2.0.1"
	leftNet    = "10.1.0.0/24"
	rightNet   = "10.2.0.0/24"
	testPSK    = "goipsec-lab-psk-not-secret"
	connName   = "gt"
	childName  = "net"

	establishTimeout = 30 * time.Second
)

type pairConfig struct {
	ikeProposal string // swanctl syntax, e.g. "aes256gcm16-prfsha256-x25519"
	espProposal string
	dpdDelay    string // the initiator's (left's) dpd_delay, e.g. "2s"; empty for none
	charonConf  string // extra strongswan.conf text for both instances
	// extraLeftTS/extraRightTS are added to the traffic selectors, to make IKE_AUTH big.
	extraLeftTS, extraRightTS []string
	// certKey, when set, makes both sides authenticate with certificates of this key type from
	// one CA (pair_certs_test.go), with auth as the auth value on both sides.
	certKey pki.KeyType
	auth    string
}

type pair struct {
	net             *testnet.Net
	left, right     *testnet.NS
	leftIf, rightIf string
	l, r            *Charon
	capture         *testnet.Capture
	// credentials are the PEM files of a certificate scenario, by file name.
	credentials map[string][]byte
}

// newPair builds the namespaces, starts a UDP capture on right's veth end, and starts both charons
// with their configuration loaded; nothing is initiated yet.
func newPair(t *testing.T, cfg pairConfig) *pair {
	t.Helper()
	testnet.Require(t, CharonPath, SwanctlPath, "tcpdump")
	p := &pair{net: testnet.New(t)}
	p.left = p.net.Namespace("left")
	p.right = p.net.Namespace("right")
	p.leftIf, p.rightIf = p.net.Link(p.left, p.right, []string{leftOuter + "/24"}, []string{rightOuter + "/24"})
	p.left.AddAddr("lo", leftInner+"/24")
	p.right.AddAddr("lo", rightInner+"/24")
	// kernel-libipsec refuses to install a CHILD_SA when a local selector holds no local address.
	for _, ts := range cfg.extraLeftTS {
		p.left.AddAddr("lo", firstHost(t, ts))
	}
	for _, ts := range cfg.extraRightTS {
		p.right.AddAddr("lo", firstHost(t, ts))
	}
	p.capture = p.right.Capture(t, p.rightIf, "udp")
	leftTS := append([]string{leftNet}, cfg.extraLeftTS...)
	rightTS := append([]string{rightNet}, cfg.extraRightTS...)
	lconf := swanctlConf(leftOuter, rightOuter, leftTS, rightTS, cfg.ikeProposal, cfg.espProposal, cfg.dpdDelay)
	rconf := swanctlConf(rightOuter, leftOuter, rightTS, leftTS, cfg.ikeProposal, cfg.espProposal, "")
	var lfiles, rfiles map[string][]byte
	if cfg.certKey != "" {
		lconf, rconf = certConf(lconf, cfg.auth, leftOuter, rightOuter), certConf(rconf, cfg.auth, rightOuter, leftOuter)
		p.credentials, lfiles, rfiles = pairCredentials(t, cfg.certKey)
	}
	p.l = Start(t, p.left, Config{SwanctlConf: lconf, CharonConf: cfg.charonConf, Files: lfiles})
	p.r = Start(t, p.right, Config{SwanctlConf: rconf, CharonConf: cfg.charonConf, Files: rfiles})
	return p
}

// establish initiates the child from left and waits until both sides have the IKE SA.
func (p *pair) establish(t *testing.T) {
	t.Helper()
	p.l.Initiate(t, childName)
	p.l.WaitEstablished(t, connName, establishTimeout)
	p.r.WaitEstablished(t, connName, establishTimeout)
}

// firstHost turns "10.11.3.0/24" into "10.11.3.1/24".
func firstHost(t *testing.T, prefix string) string {
	t.Helper()
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return netip.PrefixFrom(p.Masked().Addr().Next(), p.Bits()).String()
}

func swanctlConf(local, remote string, localTS, remoteTS []string, ikeProposal, espProposal, dpdDelay string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "connections {\n  %s {\n", connName)
	fmt.Fprintf(&b, "    local_addrs = %s\n    remote_addrs = %s\n", local, remote)
	fmt.Fprintf(&b, "    proposals = %s\n", ikeProposal)
	// Without MOBIKE the responder sends no address update after an IKE rekey, so every exchange is
	// started by left and recordings come out in the same order each time.
	fmt.Fprintf(&b, "    mobike = no\n")
	if dpdDelay != "" {
		fmt.Fprintf(&b, "    dpd_delay = %s\n", dpdDelay)
	}
	fmt.Fprintf(&b, "    local {\n      auth = psk\n      id = %s\n    }\n", local)
	fmt.Fprintf(&b, "    remote {\n      auth = psk\n      id = %s\n    }\n", remote)
	fmt.Fprintf(&b, "    children {\n      %s {\n", childName)
	fmt.Fprintf(&b, "        local_ts = %s\n        remote_ts = %s\n", strings.Join(localTS, ","), strings.Join(remoteTS, ","))
	fmt.Fprintf(&b, "        esp_proposals = %s\n      }\n    }\n  }\n}\n", espProposal)
	fmt.Fprintf(&b, "secrets {\n  ike-lab {\n    id-1 = %s\n    id-2 = %s\n    secret = \"%s\"\n  }\n}\n", local, remote, testPSK)
	return b.String()
}
