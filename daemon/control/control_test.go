package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	govici "github.com/strongswan/govici/vici"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/internal/ikeprobe"
	"github.com/goipsec/goipsec/internal/logging"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/status"
	"github.com/goipsec/goipsec/ts"
)

// fakeDaemon is a Daemon whose IKE SAs are a list the test edits: Initiate brings the connection
// up after a delay (or fails it), Terminate removes its SAs.
type fakeDaemon struct {
	credOnce sync.Once
	creds    *credentials.Store

	mu       sync.Mutex
	cfg      *config.Config
	sas      []engine.SAInfo
	failures map[string]failureAt
	applied  int
	reloads  int
	rekeyed  []string
	deleted  []uint32
	probed   []netip.AddrPort
	logs     *logging.Hub
	// initiate decides what Initiate does for a connection: nil brings it up.
	initiate func(conn string) error
	upAfter  time.Duration
}

type failureAt struct {
	at  time.Time
	msg string
}

func newFake(t *testing.T, confText string) *fakeDaemon {
	t.Helper()
	tree, err := config.Parse("test.conf", []byte(confText))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeDaemon{cfg: cfg, failures: map[string]failureAt{}, logs: logging.New(logging.Options{})}
}

func (f *fakeDaemon) Status() status.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := status.Status{SchemaVersion: status.SchemaVersion}
	for _, c := range f.cfg.Connections {
		cs := status.Connection{Name: c.Name, State: status.StateDown}
		for _, ch := range c.Children {
			cs.Children = append(cs.Children, status.ChildConfig{Name: ch.Name, Mode: string(ch.Mode), StartAction: string(ch.StartAction),
				LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"}})
		}
		for _, sa := range f.sas {
			if sa.Name != c.Name {
				continue
			}
			cs.State = status.StateUp
			is := status.IKESA{State: "established"}
			for _, ch := range sa.Children {
				is.Children = append(is.Children, status.ChildSA{Name: ch.Name, SPIIn: fmt.Sprintf("%08x", ch.SPIIn), Mode: "tunnel",
					UDPEncap: true, In: status.Traffic{Bytes: 1000, Packets: 10}, Out: status.Traffic{Bytes: 2000, Packets: 20},
					LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"}})
			}
			cs.IKESAs = append(cs.IKESAs, is)
		}
		st.Connections = append(st.Connections, cs)
	}
	st.Normalize()
	return st
}

func (f *fakeDaemon) SAs() []engine.SAInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sas)
}

func (f *fakeDaemon) IKERunning() bool { return true }

func (f *fakeDaemon) Credentials() *credentials.Store {
	f.credOnce.Do(func() { f.creds = credentials.New(credentials.Options{}) })
	return f.creds
}

func (f *fakeDaemon) Config() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *fakeDaemon) Apply(c *config.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = c
	f.applied++
	return nil
}

func (f *fakeDaemon) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return nil
}

var testProposal, _ = proposal.ParseIKE("aes256gcm16-prfsha256-x25519")

func (f *fakeDaemon) Initiate(conn, child string) error {
	if f.initiate != nil {
		if err := f.initiate(conn); err != nil {
			return err
		}
	}
	f.logs.Logger("ike").Info("initiating IKE_SA_INIT", "conn", conn)
	go func() {
		time.Sleep(f.upAfter)
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, failed := f.failures[conn]; failed {
			return
		}
		f.sas = append(f.sas, engine.SAInfo{Name: conn, SPIi: 0x1122334455667788, SPIr: 0x99aabbccddeeff00, Initiator: true,
			State: ike.StateEstablished, Local: netip.MustParseAddrPort("192.0.2.1:4500"), Remote: netip.MustParseAddrPort("192.0.2.2:4500"),
			LocalID: "gw1", RemoteID: "gw2", Transforms: testProposal[0], NATRemote: true, Established: time.Now(),
			Children: []engine.ChildInfo{{Name: "net", SPIIn: 0xc0000001, SPIOut: 0xc0000002, Created: time.Now(),
				LocalTS: []ts.Selector{mustTS("10.1.0.0/24")}, RemoteTS: []ts.Selector{mustTS("10.2.0.0/24")}}}})
	}()
	return nil
}

func (f *fakeDaemon) Terminate(conn string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	f.sas = slices.DeleteFunc(f.sas, func(sa engine.SAInfo) bool {
		if sa.Name == conn {
			n++
			return true
		}
		return false
	})
	if n == 0 {
		return 0, fmt.Errorf("no IKE SA of connection %q is up", conn)
	}
	return n, nil
}

func (f *fakeDaemon) RekeyIKE(conn string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rekeyed = append(f.rekeyed, conn)
	return slices.ContainsFunc(f.sas, func(sa engine.SAInfo) bool { return sa.Name == conn })
}

func (f *fakeDaemon) RekeyChild(spi uint32) bool { return f.DeleteChild(0) || spi != 0 }

func (f *fakeDaemon) DeleteChild(spi uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if spi == 0 {
		return false
	}
	f.deleted = append(f.deleted, spi)
	for i := range f.sas {
		f.sas[i].Children = slices.DeleteFunc(f.sas[i].Children, func(c engine.ChildInfo) bool { return c.SPIIn == spi })
	}
	return true
}

func (f *fakeDaemon) LastFailure(conn string) (time.Time, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.failures[conn]
	return x.at, x.msg
}

func (f *fakeDaemon) fail(conn, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[conn] = failureAt{time.Now(), msg}
}

func (f *fakeDaemon) RetransmitBudget() time.Duration { return 2 * time.Second }

func (f *fakeDaemon) SubscribeLog(level slog.Level, active func() bool, fn func(logging.Record)) func() {
	return f.logs.SubscribeWhile(level, active, fn)
}

func (f *fakeDaemon) Probe(_ context.Context, dst netip.AddrPort, _ []proposal.Proposal) ikeprobe.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probed = append(f.probed, dst)
	if dst.Port() == 500 {
		return ikeprobe.Result{Verdict: ikeprobe.Answered, Detail: "an IKEv2 responder answered", RTT: 3 * time.Millisecond}
	}
	return ikeprobe.Result{Verdict: ikeprobe.Silent, Detail: "no answer"}
}

const testConf = `connections {
    site {
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        proposals = aes256gcm16-prfsha256-x25519
        dpd_delay = 30s
        local { auth = psk
                id = gw1 }
        remote { auth = psk
                 id = gw2 }
        children {
            net {
                local_ts = 10.1.0.0/24
                remote_ts = 10.2.0.0/24
                start_action = start
            }
        }
    }
}
secrets {
    ike-1 { secret = "s3cret-s3cret" }
}
`

// serve runs the Service for d on a fresh socket and returns a govici session to it: strongSwan's
// own client library checks goipsec's server and handlers.
func serve(t *testing.T, d Daemon) (*Service, *govici.Session) {
	t.Helper()
	svc, s, _ := serveAt(t, d)
	return svc, s
}

// serveAt is serve that also returns the socket's path.
func serveAt(t *testing.T, d Daemon) (*Service, *govici.Session, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	svc := New(d, Options{Version: "9.9.9", Poll: 5 * time.Millisecond})
	path := filepath.Join(dir, "vici.sock")
	if err := svc.Serve(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	s, err := govici.NewSession(govici.WithSocketPath(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return svc, s, path
}

func call(t *testing.T, s *govici.Session, cmd string, kv ...string) (*govici.Message, error) {
	t.Helper()
	req := govici.NewMessage()
	for i := 0; i+1 < len(kv); i += 2 {
		req.Set(kv[i], kv[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Call(ctx, cmd, req)
}

func errmsg(m *govici.Message) string {
	if m == nil {
		return ""
	}
	s, _ := m.Get("errmsg").(string)
	return s
}

func get(m *govici.Message, path ...string) string {
	for _, k := range path[:len(path)-1] {
		sec, ok := m.Get(k).(*govici.Message)
		if !ok {
			return ""
		}
		m = sec
	}
	s, _ := m.Get(path[len(path)-1]).(string)
	return s
}

func TestVersion(t *testing.T) {
	_, s := serve(t, newFake(t, testConf))
	m, err := call(t, s, "version")
	if err != nil || get(m, "daemon") != "goipsec" || get(m, "version") != "9.9.9" || get(m, "sysname") != "Linux" {
		t.Fatalf("version: %v %v", m, err)
	}
}

// TestInitiateWaitsAndStreamsProgress: initiate returns once the Child SA is up, and the client
// registered for control-log sees the connection's IKE log lines meanwhile.
func TestInitiateWaitsAndStreamsProgress(t *testing.T) {
	d := newFake(t, testConf)
	d.upAfter = 50 * time.Millisecond
	_, s := serve(t, d)
	req := govici.NewMessage()
	req.Set("ike", "site")
	req.Set("timeout", "2000")
	var logs []string
	var final error
	for m, err := range s.CallStreaming(context.Background(), "initiate", "control-log", req) {
		if err != nil {
			final = err
			break
		}
		logs = append(logs, get(m, "msg"))
	}
	if final != nil {
		t.Fatal(final)
	}
	if len(logs) == 0 || !strings.Contains(logs[0], "initiating IKE_SA_INIT") || !strings.Contains(logs[0], "conn=site") {
		t.Fatalf("control-log events %q", logs)
	}
	if len(d.SAs()) != 1 {
		t.Fatal("initiate returned before the SA was up")
	}
}

func TestInitiateReportsFailure(t *testing.T) {
	d := newFake(t, testConf)
	d.upAfter = time.Hour
	d.initiate = func(conn string) error {
		go func() {
			time.Sleep(20 * time.Millisecond)
			d.fail(conn, "no IKE proposal chosen: peer offered x; we accept y")
		}()
		return nil
	}
	_, s := serve(t, d)
	m, err := call(t, s, "initiate", "ike", "site")
	if err == nil || errmsg(m) != "establishing site failed: no IKE proposal chosen: peer offered x; we accept y" {
		t.Fatalf("initiate of a failing connection: %q, %v", errmsg(m), err)
	}
}

func TestInitiateTimeout(t *testing.T) {
	d := newFake(t, testConf)
	d.upAfter = time.Hour
	_, s := serve(t, d)
	start := time.Now()
	m, err := call(t, s, "initiate", "ike", "site", "timeout", "100")
	if err == nil || !strings.Contains(errmsg(m), "not up after 100ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("initiate with timeout 100ms: %q, %v after %v", errmsg(m), err, time.Since(start))
	}
	// timeout < 0: do not wait.
	if m, err := call(t, s, "initiate", "ike", "site", "timeout", "-1"); err != nil {
		t.Fatalf("initiate without waiting: %q %v", errmsg(m), err)
	}
}

// TestUnknownNames: every command that takes a connection name says "no such connection" and
// lists the configured ones, rather than an internal state.
func TestUnknownNames(t *testing.T) {
	_, s := serve(t, newFake(t, testConf))
	for _, cmd := range []string{"initiate", "terminate", "rekey", "goipsec-status", "goipsec-probe"} {
		m, err := call(t, s, cmd, "ike", "nosuch")
		if err == nil || errmsg(m) != `no such connection "nosuch" (configured: site)` {
			t.Errorf("%s nosuch: %q, %v", cmd, errmsg(m), err)
		}
	}
	m, err := call(t, s, "unload-conn", "name", "nosuch")
	if err == nil || !strings.Contains(errmsg(m), `no such connection "nosuch"`) {
		t.Errorf("unload-conn nosuch: %q, %v", errmsg(m), err)
	}
}

func TestTerminateAndListSAs(t *testing.T) {
	d := newFake(t, testConf)
	_, s := serve(t, d)
	if _, err := call(t, s, "initiate", "ike", "site"); err != nil {
		t.Fatal(err)
	}
	var sas []*govici.Message
	for m, err := range s.CallStreaming(context.Background(), "list-sas", "list-sa", nil) {
		if err != nil {
			t.Fatal(err)
		}
		sas = append(sas, m)
	}
	if len(sas) != 1 {
		t.Fatalf("list-sas streamed %d events", len(sas))
	}
	sa := sas[0].Get("site").(*govici.Message)
	for k, want := range map[string]string{"state": "ESTABLISHED", "initiator-spi": "1122334455667788", "responder-spi": "99aabbccddeeff00",
		"nat-remote": "yes", "nat-any": "yes", "local-id": "gw1", "remote-id": "gw2", "encr-alg": "AES_GCM_16", "encr-keysize": "256", "dh-group": "CURVE_25519"} {
		if got := get(sa, k); got != want {
			t.Errorf("list-sa %s = %q, want %q", k, got, want)
		}
	}
	child := sa.Get("child-sas").(*govici.Message)
	c := child.Get(child.Keys()[0]).(*govici.Message)
	if get(c, "spi-in") != "c0000001" || get(c, "bytes-in") != "1000" || get(c, "packets-out") != "20" || get(c, "encap") != "yes" {
		t.Errorf("child-sa %v", c)
	}
	m, err := call(t, s, "terminate", "ike", "site")
	if err != nil || get(m, "terminated") != "1" || len(d.SAs()) != 0 {
		t.Fatalf("terminate: %v %v", m, err)
	}
	if m, err := call(t, s, "terminate", "child", "nosuch"); err == nil || !strings.Contains(errmsg(m), "no Child SA named") {
		t.Fatalf("terminate of an unknown child: %q %v", errmsg(m), err)
	}
}

func TestRekey(t *testing.T) {
	d := newFake(t, testConf)
	_, s := serve(t, d)
	if m, err := call(t, s, "rekey", "ike", "site"); err == nil {
		t.Fatalf("rekey of a down connection succeeded: %v", m)
	}
	call(t, s, "initiate", "ike", "site")
	if m, err := call(t, s, "rekey", "ike", "site"); err != nil || get(m, "matches") != "1" {
		t.Fatalf("rekey: %q %v", errmsg(m), err)
	}
}

// TestLoadConnAndShared: load-conn and load-shared go through the configuration parser into
// Apply; unload-conn takes the connection out again.
func TestLoadConnAndShared(t *testing.T) {
	d := newFake(t, testConf)
	_, s := serve(t, d)
	conn := govici.NewMessage()
	home := govici.NewMessage()
	home.Set("remote_addrs", []string{"192.0.2.9"})
	local := govici.NewMessage()
	local.Set("auth", "psk")
	remote := govici.NewMessage()
	remote.Set("auth", "psk")
	home.Set("local", local)
	home.Set("remote", remote)
	conn.Set("home", home)
	ctx := context.Background()
	if m, err := s.Call(ctx, "load-conn", conn); err != nil {
		t.Fatalf("load-conn: %q %v", errmsg(m), err)
	}
	if names := connNames(d.Config()); !slices.Equal(names, []string{"site", "home"}) {
		t.Fatalf("connections after load-conn: %v", names)
	}
	m, err := call(t, s, "get-conns")
	if err != nil || !slices.Equal(m.Get("conns").([]string), []string{"site", "home"}) {
		t.Fatalf("get-conns: %v %v", m, err)
	}
	shared := govici.NewMessage()
	shared.Set("type", "IKE")
	shared.Set("id", "k1")
	shared.Set("data", "a secret with \"quotes\"\nand a newline")
	shared.Set("owners", []string{"gw1", "gw2"})
	if m, err := s.Call(ctx, "load-shared", shared); err != nil {
		t.Fatalf("load-shared: %q %v", errmsg(m), err)
	}
	var psk *config.PSK
	for _, p := range d.Config().Secrets.IKE {
		if p.Name == "k1" {
			psk = p
		}
	}
	if psk == nil || string(psk.Secret) != "a secret with \"quotes\"\nand a newline" || len(psk.IDs) != 2 {
		t.Fatalf("loaded secret %+v", psk)
	}
	if m, err := call(t, s, "unload-conn", "name", "home"); err != nil || !slices.Equal(connNames(d.Config()), []string{"site"}) {
		t.Fatalf("unload-conn: %q %v", errmsg(m), err)
	}
	if m, err := call(t, s, "load-shared", "type", "EAP"); err == nil || !strings.Contains(errmsg(m), "not supported") {
		t.Fatalf("load-shared EAP: %q %v", errmsg(m), err)
	}
}

func connNames(c *config.Config) []string {
	var out []string
	for _, x := range c.Connections {
		out = append(out, x.Name)
	}
	return out
}

// TestGoipsecStatus: the JSON is the status schema, filtered to one connection on request.
func TestGoipsecStatus(t *testing.T) {
	_, s := serve(t, newFake(t, testConf+"connections {\n  other {\n    local { auth = psk }\n    remote { auth = psk }\n  }\n}\n"))
	for _, tc := range []struct {
		args []string
		want []string
	}{{nil, []string{"other", "site"}}, {[]string{"ike", "site"}, []string{"site"}}} {
		m, err := call(t, s, "goipsec-status", tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		var st status.Status
		dec := json.NewDecoder(strings.NewReader(get(m, "json")))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range st.Connections {
			names = append(names, c.Name)
		}
		slices.Sort(names)
		if st.SchemaVersion != status.SchemaVersion || !slices.Equal(names, tc.want) {
			t.Errorf("goipsec-status %v: schema %d, connections %v", tc.args, st.SchemaVersion, names)
		}
	}
}

// TestProbe: goipsec-probe asks the daemon to probe each remote address on 500 and 4500.
func TestProbe(t *testing.T) {
	d := newFake(t, testConf)
	_, s := serve(t, d)
	m, err := call(t, s, "goipsec-probe", "ike", "site")
	if err != nil {
		t.Fatal(err)
	}
	if get(m, "192.0.2.2:500", "verdict") != "answered" || get(m, "192.0.2.2:4500", "verdict") != "silent" || get(m, "192.0.2.2:500", "rtt_ms") != "3" {
		t.Fatalf("probe answer %v", m)
	}
	if m, err := call(t, s, "goipsec-probe", "host", "not-an-ip"); err == nil || !strings.Contains(errmsg(m), "not an IP address") {
		t.Fatalf("probe of a bad host: %q %v", errmsg(m), err)
	}
}

// TestPublishedEvents: ike-updown and child-updown reach a subscribed client.
func TestPublishedEvents(t *testing.T) {
	svc, s := serve(t, newFake(t, testConf))
	events := make(chan govici.Event, 4)
	s.NotifyEvents(events)
	if err := s.Subscribe("ike-updown", "child-updown"); err != nil {
		t.Fatal(err)
	}
	sa := engine.SAInfo{Name: "site", SPIi: 1, SPIr: 2, State: ike.StateEstablished, Local: netip.MustParseAddrPort("192.0.2.1:500"),
		Remote: netip.MustParseAddrPort("192.0.2.2:500")}
	svc.PublishIKE(sa, true)
	svc.PublishChild(sa, engine.ChildInfo{Name: "net", SPIIn: 0xabcd}, false, true)
	for _, want := range []string{"ike-updown", "child-updown"} {
		select {
		case ev := <-events:
			if ev.Name != want || get(ev.Message, "up") != "yes" || get(ev.Message, "site", "initiator-spi") != "0000000000000001" {
				t.Fatalf("event %s: %v", ev.Name, ev.Message)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", want)
		}
	}
}

func TestReload(t *testing.T) {
	d := newFake(t, testConf)
	_, s := serve(t, d)
	if _, err := call(t, s, "goipsec-reload"); err != nil || d.reloads != 1 {
		t.Fatalf("reload: %v (reloads %d)", err, d.reloads)
	}
}

func TestSectionToConfigText(t *testing.T) {
	var b strings.Builder
	vm := viciSection()
	b.WriteString("connections {\n")
	if err := sectionToText(&b, vm, "    "); err != nil {
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

func TestRejectsInjectedNames(t *testing.T) {
	if err := sectionToText(&strings.Builder{}, injected(), ""); err == nil {
		t.Fatal("a key with configuration syntax in it was accepted")
	}
}

func mustTS(s string) ts.Selector {
	sel, err := ts.Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// TestFetchStatusLarge: a gateway's status exceeds what one VICI value (65,535 bytes) and one
// message (512 KiB) hold; FetchStatus reassembles it from the parts, byte for byte.
func TestFetchStatusLarge(t *testing.T) {
	d := newFake(t, testConf)
	for i := range 3000 {
		d.sas = append(d.sas, engine.SAInfo{Name: "site", State: ike.StateEstablished,
			Children: []engine.ChildInfo{{Name: "net", SPIIn: uint32(0xc0000000 + i)}}})
	}
	_, _, path := serveAt(t, d)
	want, err := json.Marshal(d.Status())
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 2*statusPartSize {
		t.Fatalf("status is only %d bytes; the test needs more than two parts", len(want))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := FetchStatus(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("reassembled %d bytes, want the %d-byte document", len(got), len(want))
	}
	got, err = FetchStatus(ctx, path, map[string]string{"ike": "nonexistent"})
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Msg, `no such connection "nonexistent"`) {
		t.Errorf("status of an unknown connection: %v, want a CommandError naming it", err)
	}
	if got != nil {
		t.Errorf("status of an unknown connection returned %d bytes", len(got))
	}
}
