package daemon

import (
	"testing"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
)

func fqdn(s string) config.Identity {
	return config.Identity{Type: config.IDFQDN, Data: []byte(s), Text: s}
}

func TestLookupPSKPrefersTheMostSpecificSecret(t *testing.T) {
	d, _ := New(Options{})
	d.peers.Store(newPeerSnapshot(nil, []*config.PSK{
		{Name: "any", Secret: []byte("wildcard")},
		{Name: "remote", IDs: []config.Identity{fqdn("sun")}, Secret: []byte("for-sun")},
		{Name: "both", IDs: []config.Identity{fqdn("moon"), fqdn("sun")}, Secret: []byte("moon-sun")},
		{Name: "other", IDs: []config.Identity{fqdn("venus")}, Secret: []byte("for-venus")},
	}))
	id := func(s string) ike.Identity { return ike.Identity{Type: wire.IDFQDN, Data: []byte(s)} }
	for _, tc := range []struct{ local, remote, want string }{
		{"moon", "sun", "moon-sun"},
		{"earth", "sun", "for-sun"},
		{"earth", "mars", "wildcard"},
		{"earth", "venus", "for-venus"},
	} {
		got, ok := d.lookupPSK(id(tc.local), id(tc.remote))
		if !ok || string(got) != tc.want {
			t.Errorf("PSK for %s-%s = %q, want %q", tc.local, tc.remote, got, tc.want)
		}
	}
}

func TestFailureReason(t *testing.T) {
	for msg, want := range map[string]string{
		"no IKE proposal chosen for 192.0.2.1:500: peer offered x; we accept y":      "no_ike_proposal",
		"child net: peer accepted none of our ESP proposals: we offered aes256gcm16": "no_esp_proposal",
		"AUTH of peer sun does not verify: the preshared keys for sun - moon differ": "authentication",
		"traffic selectors unacceptable: peer proposed ...":                          "ts_unacceptable",
		"peer 192.0.2.2:500 did not answer 5 retransmissions":                        "timeout",
		"something else": "other",
	} {
		if got := failureReason(msg); got != want {
			t.Errorf("failureReason(%q) = %s, want %s", msg, got, want)
		}
	}
}

func TestRetransmitBudget(t *testing.T) {
	// 4s, 7.2s, 12.96s, 23.3s, 42s, 75.6s: 165s for one exchange; two exchanges and a margin.
	if got := retransmitBudget(config.Daemon{}); got < 335*time.Second || got > 336*time.Second {
		t.Fatalf("default budget %v", got)
	}
	// 1s, 2s, 3s (4s capped): 6s, twice, plus 5s.
	if got := retransmitBudget(config.Daemon{RetransmitTimeout: time.Second, RetransmitBase: 2, RetransmitTries: 2, RetransmitLimit: 3 * time.Second}); got != 17*time.Second {
		t.Fatalf("capped budget %v", got)
	}
}
