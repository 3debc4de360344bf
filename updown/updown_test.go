package updown

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ts"
)

func sel(s string) ts.Selector {
	x, err := ts.Parse(s)
	if err != nil {
		panic(err)
	}
	return x
}

// recorder writes a script that appends its PLUTO_* environment (one call per line) to a file.
func recorder(t *testing.T, extra string) (script, log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	script = filepath.Join(dir, "updown.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n"+extra+"env | grep '^PLUTO_' | sort | tr '\\n' ' ' >> "+log+"\necho >> "+log+"\n"), 0o755)
	return script, log
}

func TestEnvironmentAndOrder(t *testing.T) {
	script, log := recorder(t, "")
	r := &Runner{Timeout: 5 * time.Second}
	e := &Event{Up: true, Script: script, Conn: "rw", Child: "net", Interface: "goipsec0", Reqid: 7, UniqueID: 3,
		Me: netip.MustParseAddr("192.0.2.1"), Peer: netip.MustParseAddr("192.0.2.2"), MyID: "gw", PeerID: "carol@example.org", PeerEAPID: "carol",
		Local: []ts.Selector{sel("10.1.0.0/24"), sel("fd01::/64")}, Remote: []ts.Selector{sel("10.3.0.1/32"), sel("fd00:3::1/128")},
		PeerSourceIPs: []netip.Addr{netip.MustParseAddr("10.3.0.1")}, Encap: true, PeerPort: 4500, HostAccess: true,
		MarkIn: "0x10/0xffffffff", SPIIn: 0xc0ffee01, SPIOut: 0xc0ffee02, Key: "k"}
	r.Run(e)
	down := *e
	down.Up = false
	r.Run(&down)
	r.Wait()
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d calls, want 4 (two selector pairs, up and down):\n%s", len(lines), b)
	}
	for _, want := range []string{"PLUTO_VERB=up-client ", "PLUTO_CONNECTION=net ", "PLUTO_ME=192.0.2.1 ", "PLUTO_PEER=192.0.2.2 ",
		"PLUTO_MY_CLIENT=10.1.0.0/24 ", "PLUTO_PEER_CLIENT=10.3.0.1/32 ", "PLUTO_PEER_SOURCEIP=10.3.0.1 ", "PLUTO_UNIQUEID=3 ",
		"PLUTO_REQID=7 ", "PLUTO_PEER_ID=carol@example.org ", "PLUTO_XAUTH_ID=carol ", "PLUTO_UDP_ENC=4500 ", "PLUTO_HOST_ACCESS=1 ",
		"PLUTO_MARK_IN=0x10/0xffffffff ", "PLUTO_INTERFACE=goipsec0 ", "PLUTO_PROTO=esp ", "PLUTO_INBOUND_SPI=0xc0ffee01 "} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first call lacks %q:\n%s", want, lines[0])
		}
	}
	if !strings.Contains(lines[1], "PLUTO_VERB=up-client-v6 ") || !strings.Contains(lines[1], "PLUTO_PEER_CLIENT=fd00:3::1/128 ") {
		t.Errorf("second call: %s", lines[1])
	}
	if !strings.Contains(lines[2], "PLUTO_VERB=down-client ") || !strings.Contains(lines[3], "PLUTO_VERB=down-client-v6 ") {
		t.Errorf("down calls: %s / %s", lines[2], lines[3])
	}
}

func TestHostVerb(t *testing.T) {
	e := &Event{Up: true, Me: netip.MustParseAddr("192.0.2.1"), Local: []ts.Selector{sel("192.0.2.1/32")}, Remote: []ts.Selector{sel("192.0.2.2/32")}}
	if v := envValue(e.Calls()[0], "PLUTO_VERB"); v != "up-host" {
		t.Fatalf("verb %s", v)
	}
}

func TestTimeoutAndFailureLogged(t *testing.T) {
	var buf bytes.Buffer
	dir := t.TempDir()
	slow := filepath.Join(dir, "slow.sh")
	os.WriteFile(slow, []byte("#!/bin/sh\necho starting\nsleep 30 &\nsleep 30\n"), 0o755)
	bad := filepath.Join(dir, "bad.sh")
	os.WriteFile(bad, []byte("#!/bin/sh\necho no route >&2\nexit 3\n"), 0o755)
	r := &Runner{Timeout: 300 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&buf, nil))}
	ev := func(script string) *Event {
		return &Event{Up: true, Script: script, Conn: "c", Child: "net", Key: script, Me: netip.MustParseAddr("192.0.2.1"),
			Local: []ts.Selector{sel("10.1.0.0/24")}, Remote: []ts.Selector{sel("10.2.0.0/24")}}
	}
	start := time.Now()
	r.Run(ev(slow))
	r.Run(ev(bad))
	r.Wait()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout not enforced: %s", d)
	}
	out := buf.String()
	if !strings.Contains(out, "killed after 300ms (updown_timeout): starting") || !strings.Contains(out, "exit status 3: no route") {
		t.Fatalf("log:\n%s", out)
	}
}
