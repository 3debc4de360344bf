package vici

// govici against the real thing: charon 5.9.8 in a network namespace (internal/testnet), driven
// over its VICI socket. This checks that the layouts swanctl_test.go replays against goipsec's
// server are the shapes charon itself sends, and that messages built with this package's Message
// type (through the test adapter) are what charon accepts.

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

const charonSwanctlConf = `connections {
  home {
    remote_addrs = 192.0.2.1
    local_addrs = 192.0.2.2
    version = 2
    proposals = aes256-sha256-x25519
    local {
      auth = psk
      id = moon@example.org
    }
    remote {
      auth = psk
      id = sun@example.org
    }
    children {
      net2 {
        local_ts = 10.1.0.0/16,10.5.0.0/24
        remote_ts = 10.6.0.0/16[tcp/443]
        mode = transport
      }
      net {
        local_ts = 10.1.0.0/16
        remote_ts = 10.2.0.0/16
        esp_proposals = aes256gcm16
        start_action = trap
      }
    }
  }
}
secrets {
  ike-1 {
    id-1 = moon@example.org
    id-2 = sun@example.org
    secret = "s3cr3t"
  }
}
`

// shape lists a message's item names and kinds recursively, ignoring values.
func shape(m *Message) []string {
	var out []string
	for _, it := range m.Items() {
		out = append(out, it.Key+":"+it.Kind.String())
		if it.Kind == KindSection {
			for _, s := range shape(it.Section) {
				out = append(out, it.Key+"."+s)
			}
		}
	}
	return out
}

func TestLayoutsAgainstCharon(t *testing.T) {
	n := testnet.New(t)
	ns := n.Namespace("vici")
	// The trap policy of "net" needs a local address inside its local_ts (kernel-libipsec routes).
	ns.AddAddr("lo", "10.1.0.1/16")
	charon := strongswan.Start(t, ns, strongswan.Config{SwanctlConf: charonSwanctlConf})
	c := dial(t, filepath.Join(charon.Dir(), "charon.vici"))
	ctx := context.Background()

	v, err := c.Call(ctx, "version", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("daemon") != "charon" || v.Get("version") != swanctlVersion {
		t.Fatalf("version: %s", v)
	}

	// The list-conn layout swanctl_test.go replays is the one charon streams. (Streams go through
	// the packet layer: govici 0.8.0 may drop an event that waits beside the response.)
	raw := dialRaw(t, filepath.Join(charon.Dir(), "charon.vici"))
	conns, _ := raw.stream("list-conns", "list-conn", nil)
	if len(conns) != 1 {
		t.Fatalf("%d list-conn events", len(conns))
	}
	if got, want := shape(conns[0]), shape(homeConn()); !slices.Equal(got, want) {
		t.Fatalf("charon's list-conn layout:\n%q\nreplayed layout:\n%q", got, want)
	}
	if got := conns[0].Section("home").Section("children").Section("net2").List("remote-ts"); !slices.Equal(got, []string{"10.6.0.0/16[tcp/https]"}) {
		t.Fatalf("net2 remote-ts %q", got)
	}

	// The trap policy of start_action = trap, in the layout TestSwanctlListPols replays.
	req := NewMessage().Set("trap", "yes").Set("drop", "yes").Set("pass", "yes")
	pols, _ := raw.stream("list-policies", "list-policy", req)
	if len(pols) != 1 || !slices.Equal(shape(pols[0]), []string{"home/net:section", "home/net.child:value",
		"home/net.ike:value", "home/net.mode:value", "home/net.local-ts:list", "home/net.remote-ts:list"}) {
		t.Fatalf("list-policy events %v", pols)
	}

	// A connection encoded by this package is accepted by charon's parser and shows up again.
	conn := NewMessage()
	viaClient := conn.AddSection("via-client")
	viaClient.SetList("remote_addrs", "192.0.2.9").SetList("proposals", "aes128gcm16-prfsha256-ecp256")
	viaClient.AddSection("local").Set("auth", "psk").Set("id", "a@example.org")
	viaClient.AddSection("remote").Set("auth", "psk").Set("id", "b@example.org")
	viaClient.AddSection("children").AddSection("c").SetList("remote_ts", "10.9.0.0/16")
	resp, err := c.Call(ctx, "load-conn", conn)
	if err != nil || resp.Err() != nil {
		t.Fatalf("load-conn: %v %v", err, resp)
	}
	resp, err = c.Call(ctx, "get-conns", nil)
	if err != nil || !slices.Equal(resp.List("conns"), []string{"home", "via-client"}) {
		t.Fatalf("get-conns: %v %s", err, resp)
	}
	resp, err = c.Call(ctx, "unload-conn", NewMessage().Set("name", "via-client"))
	if err != nil || resp.Err() != nil {
		t.Fatalf("unload-conn: %v %v", err, resp)
	}
	// charon's failures come back as success = no with errmsg.
	resp, err = c.Call(ctx, "unload-conn", NewMessage().Set("name", "via-client"))
	if err != nil || !errors.Is(resp.Err(), ErrCommandFailed) {
		t.Fatalf("second unload-conn: %v %s", err, resp)
	}
	resp, err = c.Call(ctx, "load-shared", NewMessage().Set("id", "k").Set("type", "ike").
		Set("data", "\x00binary\xffpsk").SetList("owners", "a@example.org"))
	if err != nil || resp.Err() != nil {
		t.Fatalf("load-shared: %v %v", err, resp)
	}

	// charon answers CMD_UNKNOWN and EVENT_UNKNOWN as this package's server does.
	if _, err := c.Call(ctx, "no-such-command", nil); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}
	if err := c.CallStreaming(ctx, "list-sas", "no-such-event", nil, func(*Message) {}); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("unknown event: %v", err)
	}
	// The client is still in step with the server after both.
	stats, err := c.Call(ctx, "stats", nil)
	if err != nil || stats.Section("ikesas").Get("total") != "0" || len(stats.List("plugins")) == 0 {
		t.Fatalf("stats: %v %s", err, stats)
	}
}
