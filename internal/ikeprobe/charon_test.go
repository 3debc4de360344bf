package ikeprobe

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// TestProbeAgainstCharon probes strongSwan 5.9.8 in a namespace: offering its proposal, charon
// answers INVALID_KE_PAYLOAD (it would negotiate, and keeps nothing); offering none of its
// proposals, NO_PROPOSAL_CHOSEN. Both are what doctor reports about a strongSwan peer.
func TestProbeAgainstCharon(t *testing.T) {
	n := testnet.New(t)
	a, b := n.Namespace("probe"), n.Namespace("charon")
	n.Link(a, b, []string{"192.0.2.1/24"}, []string{"192.0.2.2/24"})
	strongswan.Start(t, b, strongswan.Config{SwanctlConf: `connections {
  any {
    remote_addrs = %any
    proposals = aes256gcm16-prfsha256-x25519
    local { auth = psk }
    remote { auth = psk }
    children { net { esp_proposals = aes256gcm16 } }
  }
}
secrets {
  ike-1 { secret = "probe-test-secret" }
}
`})
	for _, tc := range []struct {
		offer, want string
	}{
		{"aes256gcm16-prfsha256-x25519", "accepts one of our IKE proposals"},
		{"aes128-sha256-modp3072", "accepts none of our IKE proposals"},
	} {
		var r Result
		err := a.Do(func() error {
			r = Probe(context.Background(), netip.MustParseAddrPort("192.0.2.2:500"), Options{Proposals: mustIKE(t, tc.offer), Timeout: 3 * time.Second})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Verdict != Answered || !strings.Contains(r.Detail, tc.want) {
			t.Errorf("probe offering %s: %+v, want %q", tc.offer, r, tc.want)
		}
	}
}
