package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/vici"
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

func TestVICISectionToConfigText(t *testing.T) {
	m := vici.NewMessage()
	c := m.AddSection("home")
	c.SetList("remote_addrs", "192.0.2.1").SetList("local_addrs", "192.0.2.2").Set("version", "2")
	c.SetList("proposals", "aes256-sha256-x25519")
	c.AddSection("local").Set("auth", "psk").Set("id", "moon.example")
	c.AddSection("remote").Set("auth", "psk").Set("id", `odd "quoted" id`)
	ch := c.AddSection("children").AddSection("net")
	ch.SetList("local_ts", "10.1.0.0/16").SetList("remote_ts", "10.2.0.0/16", "10.3.0.0/16").SetList("esp_proposals", "aes256gcm16")
	var b strings.Builder
	b.WriteString("connections {\n")
	if err := sectionToText(&b, m, "    "); err != nil {
		t.Fatal(err)
	}
	b.WriteString("}\n")
	tree, err := config.Parse("vici", []byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	cfg, err := config.FromTree(tree)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	conn := cfg.Connections[0]
	if conn.Name != "home" || conn.Remote.ID.Text != `odd "quoted" id` || len(conn.Children[0].RemoteTS) != 2 {
		t.Fatalf("round trip lost something: %+v\n%s", conn, b.String())
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

// FuzzVICILoadConn feeds arbitrary load-conn messages through the VICI-to-config path: it must
// never panic, whatever a client sends.
func FuzzVICILoadConn(f *testing.F) {
	seed := vici.NewMessage()
	seed.AddSection("home").SetList("remote_addrs", "192.0.2.1").AddSection("local").Set("auth", "psk")
	b, _ := seed.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := vici.UnmarshalMessage(data)
		if err != nil {
			return
		}
		var sb strings.Builder
		sb.WriteString("connections {\n")
		if sectionToText(&sb, m, "    ") != nil {
			return
		}
		sb.WriteString("}\n")
		if tree, err := config.Parse("vici", []byte(sb.String())); err == nil {
			config.FromTree(tree)
		}
	})
}

func TestVICIRejectsInjectedNames(t *testing.T) {
	m := vici.NewMessage()
	m.AddSection("home").Set("x = 1\n}\nsecrets {", "y")
	var b strings.Builder
	if err := sectionToText(&b, m, ""); err == nil {
		t.Fatal("a key with configuration syntax in it was accepted")
	}
}

func TestRetransmitBudget(t *testing.T) {
	d, _ := New(Options{})
	// 4s, 7.2s, 12.96s, 23.3s, 42s, 75.6s: 165s for one exchange; two exchanges and a margin.
	if got := d.retransmitBudget(); got < 335*time.Second || got > 336*time.Second {
		t.Fatalf("default budget %v", got)
	}
	d.opts.Daemon = config.Daemon{RetransmitTimeout: time.Second, RetransmitBase: 2, RetransmitTries: 2, RetransmitLimit: 3 * time.Second}
	// 1s, 2s, 3s (4s capped): 6s, twice, plus 5s.
	if got := d.retransmitBudget(); got != 17*time.Second {
		t.Fatalf("capped budget %v", got)
	}
}
