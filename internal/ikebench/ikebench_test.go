package ikebench

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

const (
	testPSK      = "ikebench-test-psk"
	testProposal = "aes256gcm16-prfsha256-x25519"
	testESP      = "aes256gcm16"
	// testTimeout is generous: on a loaded test machine a slow answer must not turn into a
	// retransmission that changes the counts asserted.
	testTimeout = 5 * time.Second
)

// responder is goipsec's IKE engine answering on two loopback UDP sockets, one for the IKE port and
// one for the NAT-T port (behind the non-ESP marker), as the daemon runs it.
type responder struct {
	e             *engine.Engine
	ikeConn, natt *net.UDPConn
	addr          netip.AddrPort
	nattAddr      netip.AddrPort
	wg            sync.WaitGroup
	ikeUp         atomic.Int64
	childUp       atomic.Int64
	ikeDown       atomic.Int64
}

// loopTransport implements engine.Transport over the responder's sockets.
type loopTransport struct{ r *responder }

func (t loopTransport) Send(b []byte, local, remote netip.AddrPort) error {
	if local.Port() == t.r.nattAddr.Port() {
		_, err := t.r.natt.WriteToUDPAddrPort(append(make([]byte, nonESPMarkerLen), b...), remote)
		return err
	}
	_, err := t.r.ikeConn.WriteToUDPAddrPort(b, remote)
	return err
}

func listenLoopback(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// responderConfig is the responder side of the handshakes the tests run.
func responderConfig(t testing.TB, ikeProposal string) *ike.PeerConfig {
	t.Helper()
	props, err := proposal.ParseIKE(ikeProposal)
	if err != nil {
		t.Fatal(err)
	}
	esp, err := proposal.ParseESP(testESP)
	if err != nil {
		t.Fatal(err)
	}
	return &ike.PeerConfig{Name: "resp", Proposals: props,
		PSK: func(_, _ ike.Identity) ([]byte, bool) { return []byte(testPSK), true },
		Children: []*ike.ChildConfig{{Name: "net", Proposals: esp,
			LocalTS: []ts.Selector{mustTS(t, "10.2.0.0/24")}, RemoteTS: []ts.Selector{mustTS(t, "10.1.0.0/24")}}}}
}

func mustTS(t testing.TB, s string) ts.Selector {
	t.Helper()
	sel, err := ts.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

// startResponder runs an engine with pc as its only connection; mod adjusts the engine's config.
func startResponder(t *testing.T, pc *ike.PeerConfig, mod func(*engine.Config)) *responder {
	t.Helper()
	r := &responder{}
	r.ikeConn, r.addr = listenLoopback(t)
	r.natt, r.nattAddr = listenLoopback(t)
	cfg := engine.Config{
		Transport: loopTransport{r},
		Logger:    slog.New(slog.DiscardHandler),
		NATTPort:  r.nattAddr.Port(),
		Configs:   func(netip.Addr, netip.Addr) []*ike.PeerConfig { return []*ike.PeerConfig{pc} },
		Events: engine.Events{
			IKEUp:   func(ike.IKEUp) { r.ikeUp.Add(1) },
			IKEDown: func(ike.IKEDown) { r.ikeDown.Add(1) },
			ChildUp: func(*ike.ChildInstall) error { r.childUp.Add(1); return nil },
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	r.e = engine.New(cfg)
	for _, c := range []struct {
		conn  *net.UDPConn
		local netip.AddrPort
		natt  bool
	}{{r.ikeConn, r.addr, false}, {r.natt, r.nattAddr, true}} {
		r.wg.Go(func() {
			buf := make([]byte, maxDatagram)
			for {
				n, from, err := c.conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				msg, ok := ikeMessage(buf[:n], c.natt)
				if !ok {
					continue
				}
				r.e.Receive(msg, c.local, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
			}
		})
	}
	t.Cleanup(func() {
		r.ikeConn.Close()
		r.natt.Close()
		r.wg.Wait()
		r.e.Close()
	})
	return r
}

// benchConfig is a load run against r with the given counts.
func benchConfig(t *testing.T, r *responder, count, concurrency int) Config {
	t.Helper()
	peer, child, err := Spec{Proposal: testProposal, ESP: testESP, PSK: testPSK,
		LocalTS: "10.1.0.0/24", RemoteTS: "10.2.0.0/24"}.Build()
	if err != nil {
		t.Fatal(err)
	}
	return Config{Peer: r.addr, PeerNATTPort: r.nattAddr.Port(), IKE: peer, Child: child,
		Count: count, Concurrency: concurrency, Delete: true, Timeout: testTimeout, Retries: 2}
}

// checkAllCompleted asserts a clean run of n handshakes.
func checkAllCompleted(t *testing.T, res *Result, n int) {
	t.Helper()
	if res.Started != n || res.Completed != n || res.Failed != 0 || len(res.Failures) != 0 || len(res.Latencies) != n {
		t.Fatalf("started %d, completed %d, failed %d %v, %d latencies; want %d completed, no failures",
			res.Started, res.Completed, res.Failed, res.Failures, len(res.Latencies), n)
	}
	for i := 1; i < len(res.Latencies); i++ {
		if res.Latencies[i] < res.Latencies[i-1] || res.Latencies[i] <= 0 {
			t.Fatalf("latencies not sorted and positive: %v", res.Latencies)
		}
	}
	if res.Rate() <= 0 || res.Percentile(50) <= 0 || res.Percentile(100) != res.Latencies[n-1] {
		t.Fatalf("rate %v, p50 %v, max %v of %v", res.Rate(), res.Percentile(50), res.Percentile(100), res.Latencies[n-1])
	}
}

func TestRunAgainstEngineWithDelete(t *testing.T) {
	r := startResponder(t, responderConfig(t, testProposal), nil)
	const n = 200
	before := runtime.NumGoroutine()
	res, err := Run(context.Background(), benchConfig(t, r, n, 8))
	if err != nil {
		t.Fatal(err)
	}
	checkAllCompleted(t, res, n)
	if res.Retransmits != 0 || res.Cookies != 0 || res.NATT != 0 {
		t.Errorf("retransmits %d, cookies %d, NAT-T %d; want none", res.Retransmits, res.Cookies, res.NATT)
	}
	// The engine drops an SA before the answer to its Delete leaves; the events that report it
	// are applied right after the answer is sent.
	waitFor(t, func() bool { return r.ikeDown.Load() == n })
	if got := r.ikeUp.Load(); got != n {
		t.Errorf("responder established %d IKE SAs, want %d", got, n)
	}
	if got := r.childUp.Load(); got != n {
		t.Errorf("responder installed %d Child SAs, want %d", got, n)
	}
	if sas := r.e.SAs(); len(sas) != 0 {
		t.Errorf("responder still holds %d IKE SAs after the Deletes", len(sas))
	}
	if got := r.ikeDown.Load(); got != n {
		t.Errorf("responder deleted %d IKE SAs, want %d", got, n)
	}
	if st := r.e.Stats(); st.HandshakesOK != n || st.HandshakesFailed != 0 {
		t.Errorf("responder counted %d handshakes, %d failed", st.HandshakesOK, st.HandshakesFailed)
	}
	checkNoLeak(t, before)
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("condition not met within 5 s")
}

// checkNoLeak asserts that the goroutines started since before have ended. Run waits for its
// goroutines, but a goroutine that has signalled its WaitGroup may still be on its way out, so
// the count is polled for a while before it counts as a leak.
func checkNoLeak(t *testing.T, before int) {
	t.Helper()
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Errorf("%d goroutines before the run, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
}

func TestRunWithoutDeleteLeavesSAs(t *testing.T) {
	r := startResponder(t, responderConfig(t, testProposal), nil)
	const n = 20
	cfg := benchConfig(t, r, n, 4)
	cfg.Delete = false
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAllCompleted(t, res, n)
	sas := r.e.SAs()
	if len(sas) != n {
		t.Fatalf("responder holds %d IKE SAs, want %d", len(sas), n)
	}
	for _, s := range sas {
		if s.State != ike.StateEstablished || len(s.Children) != 1 {
			t.Fatalf("responder SA in state %s with %d Child SAs", s.State, len(s.Children))
		}
	}
}

func TestRunRetriesWithCookie(t *testing.T) {
	// A negative threshold makes the engine demand a cookie from every IKE_SA_INIT.
	r := startResponder(t, responderConfig(t, testProposal), func(c *engine.Config) { c.CookieThreshold = -1 })
	const n = 30
	res, err := Run(context.Background(), benchConfig(t, r, n, 4))
	if err != nil {
		t.Fatal(err)
	}
	checkAllCompleted(t, res, n)
	if res.Cookies != n {
		t.Errorf("%d COOKIE answers, want one per handshake (%d)", res.Cookies, n)
	}
	if got := r.e.Stats().CookiesSent; got != n {
		t.Errorf("responder sent %d cookies, want %d", got, n)
	}
}

func TestRunRetriesWithRequestedGroup(t *testing.T) {
	// The initiator sends an X25519 key first; the responder only takes ECP-256 and asks for it.
	r := startResponder(t, responderConfig(t, "aes256gcm16-prfsha256-ecp256"), nil)
	const n = 10
	cfg := benchConfig(t, r, n, 2)
	var err error
	if cfg.IKE.Proposals, err = proposal.ParseIKE("aes256gcm16-prfsha256-x25519-ecp256"); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAllCompleted(t, res, n)
	if res.InvalidKE != n || res.Cookies != 0 {
		t.Errorf("%d INVALID_KE_PAYLOAD and %d COOKIE answers, want %d and 0", res.InvalidKE, res.Cookies, n)
	}
}

func TestRunFloatsToNATTPort(t *testing.T) {
	// ForceEncap makes the responder fake its NAT detection hash, as strongSwan's kernel-libipsec
	// does: the generator must move to the NAT-T port for IKE_AUTH and the Delete.
	pc := responderConfig(t, testProposal)
	pc.ForceEncap = true
	r := startResponder(t, pc, nil)
	const n = 50
	res, err := Run(context.Background(), benchConfig(t, r, n, 8))
	if err != nil {
		t.Fatal(err)
	}
	checkAllCompleted(t, res, n)
	if res.NATT != n {
		t.Errorf("%d handshakes floated to the NAT-T port, want %d", res.NATT, n)
	}
	if sas := r.e.SAs(); len(sas) != 0 {
		t.Errorf("responder still holds %d IKE SAs", len(sas))
	}
}

func TestRunCountsFailuresByReason(t *testing.T) {
	const n = 6
	cases := []struct {
		name   string
		resp   func(t *testing.T) *ike.PeerConfig
		mod    func(c *Config)
		reason string
	}{
		{
			name: "wrong PSK",
			resp: func(t *testing.T) *ike.PeerConfig { return responderConfig(t, testProposal) },
			mod: func(c *Config) {
				c.IKE.PSK = func(_, _ ike.Identity) ([]byte, bool) { return []byte("not the key"), true }
			},
			reason: "IKE_AUTH: peer refused our authentication (AUTHENTICATION_FAILED): we are 127.0.0.1 authenticating with a PSK, expecting %any; check the credentials and identities on both sides, and whether the peer wants EAP from us (then set local auth = eap-...)",
		},
		{
			name:   "no common IKE proposal",
			resp:   func(t *testing.T) *ike.PeerConfig { return responderConfig(t, "aes128gcm16-prfsha256-x25519") },
			reason: "IKE_SA_INIT: peer accepted none of our IKE proposals: we offered aes256gcm16-prfsha256-x25519",
		},
		{
			name: "traffic selectors refused",
			resp: func(t *testing.T) *ike.PeerConfig { return responderConfig(t, testProposal) },
			mod: func(c *Config) {
				c.Child.RemoteTS = []ts.Selector{mustTS(t, "10.99.0.0/24")}
			},
			reason: "IKE_AUTH: IKE SA up, Child SA refused: child bench: peer refused our traffic selectors: we proposed local 10.1.0.0/24, remote 10.99.0.0/24",
		},
		{
			name: "wrong peer identity",
			resp: func(t *testing.T) *ike.PeerConfig { return responderConfig(t, testProposal) },
			mod: func(c *Config) {
				c.IKE.RemoteID = ike.Identity{Type: 2, Data: []byte("moon.example.com")}
			},
			// The engine picks its configuration by IDr only when its own ID is configured, so it
			// answers as 127.0.0.1, which the generator refuses.
			reason: "IKE_AUTH: peer identifies as 127.0.0.1, but connection bench expects moon.example.com",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := startResponder(t, tc.resp(t), nil)
			cfg := benchConfig(t, r, n, 3)
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{tc.reason: n}
			if res.Started != n || res.Completed != 0 || res.Failed != n || !reflect.DeepEqual(res.Failures, want) {
				t.Fatalf("started %d, completed %d, failed %d, reasons %v; want %d failed with %q", res.Started, res.Completed, res.Failed, res.Failures, n, tc.reason)
			}
			if got := res.SortedFailures(); len(got) != 1 || got[0] != (Reason{tc.reason, n}) {
				t.Fatalf("sorted failures %v", got)
			}
			if len(res.Latencies) != 0 || res.Percentile(50) != 0 || res.Rate() != 0 {
				t.Fatalf("latencies %v, rate %v for failed handshakes", res.Latencies, res.Rate())
			}
		})
	}
}

func TestRunTimesOutAndRetransmits(t *testing.T) {
	// A bound socket that never answers: every request is retransmitted Retries times, then the
	// handshake fails.
	silent, addr := listenLoopback(t)
	defer silent.Close()
	peer, child, err := Spec{Proposal: testProposal, ESP: testESP, PSK: testPSK, LocalTS: "dynamic", RemoteTS: "dynamic"}.Build()
	if err != nil {
		t.Fatal(err)
	}
	const n, retries = 3, 2
	res, err := Run(context.Background(), Config{Peer: addr, IKE: peer, Child: child, Count: n, Concurrency: n,
		Timeout: 10 * time.Millisecond, Retries: retries})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"IKE_SA_INIT: no response after 2 retransmissions": n}
	if res.Failed != n || !reflect.DeepEqual(res.Failures, want) || res.Retransmits != n*retries {
		t.Fatalf("failed %d %v, %d retransmissions; want %d %v, %d", res.Failed, res.Failures, res.Retransmits, n, want, n*retries)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	r := startResponder(t, responderConfig(t, testProposal), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, benchConfig(t, r, 100, 4))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if res.Started != 0 || res.Completed != 0 || res.Failed != 0 {
		t.Fatalf("cancelled run started %d, completed %d, failed %d", res.Started, res.Completed, res.Failed)
	}
}

func TestRunRejectsConfig(t *testing.T) {
	peer, child, err := Spec{Proposal: testProposal, ESP: testESP, PSK: testPSK, LocalTS: "dynamic", RemoteTS: "dynamic"}.Build()
	if err != nil {
		t.Fatal(err)
	}
	ok := Config{Peer: netip.MustParseAddrPort("127.0.0.1:500"), IKE: peer, Child: child, Count: 1, Concurrency: 1}
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Peer = netip.AddrPort{} }, "ikebench: no peer address"},
		{func(c *Config) { c.Child = nil }, "ikebench: IKE and Child configuration are required"},
		{func(c *Config) { c.IKE = &ike.PeerConfig{Proposals: peer.Proposals} }, "ikebench: no preshared key"},
		{func(c *Config) { c.Count = 0 }, "ikebench: count 0: at least one handshake"},
		{func(c *Config) { c.Concurrency = -1 }, "ikebench: concurrency -1: at least one handshake in flight"},
		{func(c *Config) { c.Retries = -1 }, "ikebench: negative timeout or retries"},
	}
	for _, tc := range cases {
		cfg := ok
		tc.mod(&cfg)
		res, err := Run(context.Background(), cfg)
		if err == nil || err.Error() != tc.want || res != nil {
			t.Errorf("err %v, want %q", err, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	r := &Result{}
	for i := 1; i <= 100; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond},
		{0, time.Millisecond}, {0.5, time.Millisecond}, {99.5, 100 * time.Millisecond}} {
		if got := r.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	one := &Result{Latencies: []time.Duration{7}, Completed: 1, Elapsed: 2 * time.Second}
	if one.Percentile(50) != 7 || one.Percentile(99) != 7 || one.Rate() != 0.5 {
		t.Errorf("single latency: p50 %v, p99 %v, rate %v", one.Percentile(50), one.Percentile(99), one.Rate())
	}
}

func TestSpecBuild(t *testing.T) {
	peer, child, err := Spec{Proposal: testProposal, ESP: testESP, ID: "@client", RemoteID: "192.0.2.2", PSK: "0x0102",
		LocalTS: "10.1.0.0/24, dynamic", RemoteTS: "10.2.0.0/24[tcp/80]"}.Build()
	if err != nil {
		t.Fatal(err)
	}
	if got := proposal.FormatList(peer.Proposals); got != "aes256gcm16-prfsha256-x25519" {
		t.Errorf("IKE proposals %s", got)
	}
	if got := proposal.FormatList(child.Proposals); got != "aes256gcm16-noesn" {
		t.Errorf("ESP proposals %s", got)
	}
	if peer.LocalID.String() != "client" || peer.LocalID.Type != 2 || peer.RemoteID.String() != "192.0.2.2" {
		t.Errorf("identities %s, %s", peer.LocalID, peer.RemoteID)
	}
	if psk, ok := peer.PSK(ike.Identity{}, ike.Identity{}); !ok || string(psk) != "\x01\x02" {
		t.Errorf("PSK %x", psk)
	}
	if !child.LocalDynamic || child.RemoteDynamic || ts.FormatList(child.LocalTS) != "10.1.0.0/24" || ts.FormatList(child.RemoteTS) != "10.2.0.0/24[tcp/80]" {
		t.Errorf("selectors local %s (dynamic %v), remote %s (dynamic %v)", ts.FormatList(child.LocalTS), child.LocalDynamic, ts.FormatList(child.RemoteTS), child.RemoteDynamic)
	}
	if len(peer.Children) != 1 || peer.Children[0] != child {
		t.Errorf("children %v", peer.Children)
	}

	good := Spec{Proposal: testProposal, ESP: testESP, PSK: "k", LocalTS: "dynamic", RemoteTS: "dynamic"}
	for _, c := range []struct {
		mod  func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Proposal = "aes256gcm16" }, "IKE proposal: "},
		{func(s *Spec) { s.ESP = "aes256gcm16-sha256" }, "ESP proposal: "},
		{func(s *Spec) { s.ID = "@" }, `local identity: identity "@" is empty`},
		{func(s *Spec) { s.RemoteID = "@#xyz" }, `remote identity: key ID "@#xyz" is not hex`},
		{func(s *Spec) { s.PSK = "" }, "preshared key is empty"},
		{func(s *Spec) { s.PSK = "0xzz" }, "preshared key: encoding/hex: invalid byte: U+007A 'z'"},
		{func(s *Spec) { s.LocalTS = "" }, "local traffic selectors: "},
		{func(s *Spec) { s.RemoteTS = "10.0.0.0/33" }, "remote traffic selectors: "},
	} {
		s := good
		c.mod(&s)
		_, _, err := s.Build()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("err %v, want it to start with %q", err, c.want)
		}
	}
}

func TestParseIdentity(t *testing.T) {
	for _, c := range []struct {
		in       string
		wantType uint8
		wantData string
	}{
		{"", 0, ""},
		{"%any", 0, ""},
		{"192.0.2.1", 1, "\xc0\x00\x02\x01"},
		{"2001:db8::1", 5, "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"},
		{"::ffff:192.0.2.1", 1, "\xc0\x00\x02\x01"},
		{"moon.example.com", 2, "moon.example.com"},
		{"@moon", 2, "moon"},
		{"carol@example.com", 3, "carol@example.com"},
		{"@@carol", 3, "carol"},
		{"@#0a0B", 11, "\x0a\x0b"},
	} {
		id, err := ParseIdentity(c.in)
		if err != nil || uint8(id.Type) != c.wantType || string(id.Data) != c.wantData {
			t.Errorf("ParseIdentity(%q) = %d %x, %v; want %d %x", c.in, id.Type, id.Data, err, c.wantType, c.wantData)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"@", `identity "@" is empty`},
		{"@@", `identity "@@" is empty`},
		{"@#", `key ID "@#" is not hex`},
		{"@#0g", `key ID "@#0g" is not hex`},
		{"fe80::1%eth0", `identity "fe80::1%eth0": an address with a zone is not an identity`},
	} {
		if _, err := ParseIdentity(c.in); err == nil || err.Error() != c.want {
			t.Errorf("ParseIdentity(%q): %v, want %q", c.in, err, c.want)
		}
	}
}

func TestParsePSK(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"secret", "secret"}, {"0x00ff", "\x00\xff"}, {"0sAP8=", "\x00\xff"}, {"0", "0"},
	} {
		if got, err := ParsePSK(c.in); err != nil || string(got) != c.want {
			t.Errorf("ParsePSK(%q) = %x, %v; want %x", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "preshared key is empty"},
		{"0x", "preshared key is empty"},
		{"0x0", "preshared key: encoding/hex: odd length hex string"},
		{"0s!", "preshared key: illegal base64 data at input byte 0"},
	} {
		if _, err := ParsePSK(c.in); err == nil || err.Error() != c.want {
			t.Errorf("ParsePSK(%q): %v, want %q", c.in, err, c.want)
		}
	}
}

func TestParsePeer(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.2", "192.0.2.2:500"},
		{"192.0.2.2:4500", "192.0.2.2:4500"},
		{"2001:db8::2", "[2001:db8::2]:500"},
		{"[2001:db8::2]:600", "[2001:db8::2]:600"},
		{"::ffff:192.0.2.2", "192.0.2.2:500"},
	} {
		got, err := ParsePeer(c.in)
		if err != nil || got.String() != c.want {
			t.Errorf("ParsePeer(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"192.0.2.2:port", `peer "192.0.2.2:port": lookup udp/port: unknown port`},
		{"192.0.2.2:70000", `peer "192.0.2.2:70000": address 70000: invalid port`},
	} {
		if _, err := ParsePeer(c.in); err == nil || err.Error() != c.want {
			t.Errorf("ParsePeer(%q): %v, want %q", c.in, err, c.want)
		}
	}
}
