package vici

// Interop tests against Debian's swanctl (strongSwan 5.9.8): a test server plays the daemon, swanctl
// runs as a separate process, and the tests assert both what swanctl sends and what it prints. The
// message layouts used here are the ones charon 5.9.8 produces and docs/vici.md describes.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
)

// swanctlVersion is the release the expectations below were taken from.
const swanctlVersion = "5.9.8"

// swanctlSafetyTimeout only keeps a hung swanctl from hanging the test run; no assertion depends on
// timing.
const swanctlSafetyTimeout = 60 * time.Second

// findSwanctl returns the swanctl binary. Missing, it fails the test, except in -short mode (and
// without GOIPSEC_INTEGRATION=require) where the test passes without running.
func findSwanctl(t *testing.T) (string, bool) {
	t.Helper()
	path, err := exec.LookPath("swanctl")
	if err != nil {
		path, err = exec.LookPath("/usr/sbin/swanctl")
	}
	if err != nil {
		if testing.Short() && os.Getenv(testnet.IntegrationEnv) != "require" {
			t.Log("swanctl not installed; interop test not run in -short mode")
			return "", false
		}
		t.Fatalf("swanctl not found (%v): this interop test needs Debian 12's strongswan-swanctl "+
			"(strongSwan %s) installed; run with -short to leave it out", err, swanctlVersion)
	}
	return path, true
}

// swanctlEnv is a test server plus a strongswan.conf pointing swanctl at it.
type swanctlEnv struct {
	t    *testing.T
	bin  string
	dir  string
	conf string // strongswan.conf, passed as STRONGSWAN_CONF
	srv  *Server
}

// newSwanctlEnv starts a server for h and checks the swanctl version. It returns nil when swanctl
// is missing in -short mode.
func newSwanctlEnv(t *testing.T, h Handler) *swanctlEnv {
	t.Helper()
	bin, ok := findSwanctl(t)
	if !ok {
		return nil
	}
	srv, sock := startServer(t, h)
	dir := filepath.Dir(sock)
	e := &swanctlEnv{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "strongswan.conf"), srv: srv}
	// swanctl refuses to start without a readable strongswan.conf; this minimal one only names the
	// socket, so the host's /etc/strongswan.conf plays no part.
	conf := fmt.Sprintf("swanctl {\n\tsocket = unix://%s\n}\n", sock)
	if err := os.WriteFile(e.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("--version")
	if r.stdout != "strongSwan swanctl "+swanctlVersion+"\n" {
		t.Fatalf("swanctl --version printed %q (%s); these expectations are for strongSwan %s", r.stdout, r.stderr, swanctlVersion)
	}
	return e
}

type swanctlResult struct {
	stdout, stderr string
	code           int
}

func (e *swanctlEnv) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+e.conf)
	return cmd
}

// run runs swanctl to completion.
func (e *swanctlEnv) run(args ...string) swanctlResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), swanctlSafetyTimeout)
	defer cancel()
	cmd := e.command(ctx, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := swanctlResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		e.t.Fatalf("swanctl %s: %v", strings.Join(args, " "), err)
	}
	e.t.Logf("swanctl %s: exit %d\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// follow starts a long-running swanctl (--log, --monitor-sa) with line-buffered output and returns
// its output lines; cleanup interrupts it.
func (e *swanctlEnv) follow(args ...string) <-chan string {
	e.t.Helper()
	stdbuf, err := exec.LookPath("stdbuf")
	if err != nil {
		e.t.Fatalf("stdbuf (coreutils) is needed to read swanctl's output as it is printed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), swanctlSafetyTimeout)
	cmd := e.command(ctx, append([]string{"-oL", e.bin}, args...)...)
	cmd.Path, cmd.Args[0] = stdbuf, stdbuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	e.t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		for range lines {
		}
		cmd.Wait()
		cancel()
		e.t.Logf("swanctl %s stderr:\n%s", strings.Join(args, " "), stderr.String())
	})
	return lines
}

// probeInterval paces the probes of followSynced; it is a retry pace, not an expectation.
const probeInterval = 20 * time.Millisecond

// followSynced starts a long-running swanctl like follow and returns once swanctl prints events.
//
// Waiting for the registration is not enough: libvici installs its event callback only after the
// EVENT_CONFIRM arrives, so an event sent right after the confirm can be dropped by swanctl. So
// probe, an event printing probeLines lines the first of which starts with probePrefix, is
// published until its output appears. The returned channel yields the lines after the probes.
func (e *swanctlEnv) followSynced(event string, probe *Message, probePrefix string, probeLines int, args ...string) <-chan string {
	e.t.Helper()
	lines := e.follow(args...)
	seen := make(chan struct{})
	probing := make(chan struct{})
	go func() {
		defer close(probing)
		for {
			if _, err := e.srv.Publish(event, probe); err != nil {
				e.t.Error(err)
				return
			}
			select {
			case <-seen:
				return
			case <-time.After(probeInterval):
			}
		}
	}()
	out := make(chan string, 100)
	go func() {
		defer close(out)
		synced := false
		for l := range lines {
			if strings.HasPrefix(l, probePrefix) {
				if !synced {
					synced = true
					close(seen)
				}
				for range probeLines - 1 {
					<-lines
				}
				continue
			}
			out <- l
		}
	}()
	// Every probe is published before anything the caller publishes next, and one connection
	// delivers in order, so the caller's events come after the last probe's output.
	<-probing
	return out
}

// readLines reads n lines from a follow channel.
func readLines(t *testing.T, lines <-chan string, n int) string {
	t.Helper()
	var b strings.Builder
	for range n {
		l, ok := <-lines
		if !ok {
			t.Fatalf("swanctl ended after:\n%s", b.String())
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// fakeDaemon answers commands with canned responses and records the requests it got.
type fakeDaemon struct {
	mu       sync.Mutex
	requests []recordedRequest
	handlers map[string]CommandFunc
}

type recordedRequest struct {
	name string
	req  *Message
}

func newFakeDaemon() *fakeDaemon { return &fakeDaemon{handlers: make(map[string]CommandFunc)} }

// respond makes the daemon answer name with a fixed response.
func (d *fakeDaemon) respond(name string, resp *Message) {
	d.handlers[name] = func(context.Context, *Message, EventStreamer) (*Message, error) { return resp, nil }
}

func (d *fakeDaemon) Command(name string) CommandFunc {
	f, ok := d.handlers[name]
	if !ok {
		return nil
	}
	return func(ctx context.Context, req *Message, st EventStreamer) (*Message, error) {
		d.mu.Lock()
		d.requests = append(d.requests, recordedRequest{name, req})
		d.mu.Unlock()
		return f(ctx, req, st)
	}
}

// got returns the recorded requests in order.
func (d *fakeDaemon) got() []recordedRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]recordedRequest(nil), d.requests...)
}

// names returns the recorded command names, space-separated, for asserting the command sequence.
func (d *fakeDaemon) names() string {
	var names []string
	for _, r := range d.got() {
		names = append(names, r.name)
	}
	return strings.Join(names, " ")
}

func assertOutput(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n--- got ---\n%s--- want ---\n%s", what, got, want)
	}
}

func assertRequest(t *testing.T, r recordedRequest, name string, want *Message) {
	t.Helper()
	if r.name != name || !r.req.Equal(want) {
		t.Fatalf("request %s:\n%s\nwant %s:\n%s", r.name, r.req, name, want)
	}
}

func TestSwanctlVersion(t *testing.T) {
	d := newFakeDaemon()
	d.respond("version", NewMessage().Set("daemon", "goipsec").Set("version", "0.1.0").
		Set("sysname", "Linux").Set("release", "6.1.0").Set("machine", "x86_64"))
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	r := e.run("--version", "--daemon")
	assertOutput(t, "swanctl --version --daemon", r.stdout, "strongSwan 0.1.0 goipsec (Linux, 6.1.0, x86_64)\n")
	r = e.run("--version", "--daemon", "--raw")
	assertOutput(t, "swanctl --version --daemon --raw", r.stdout,
		"version reply {daemon=goipsec version=0.1.0 sysname=Linux release=6.1.0 machine=x86_64}\n")
	assertRequest(t, d.got()[0], "version", NewMessage())
}

func TestSwanctlStats(t *testing.T) {
	d := newFakeDaemon()
	stats := NewMessage()
	stats.AddSection("uptime").Set("running", "2 hours").Set("since", "Nov 23 10:00:00 2026")
	w := stats.AddSection("workers").Set("total", "16").Set("idle", "11")
	w.AddSection("active").Set("critical", "4").Set("high", "0").Set("medium", "1").Set("low", "0")
	stats.AddSection("queues").Set("critical", "0").Set("high", "1").Set("medium", "2").Set("low", "3")
	stats.Set("scheduled", "5")
	stats.AddSection("ikesas").Set("total", "2").Set("half-open", "1")
	stats.SetList("plugins", "goipsec-ike", "goipsec-esp")
	d.respond("stats", stats)
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	r := e.run("--stats")
	assertOutput(t, "swanctl --stats", r.stdout, `uptime: 2 hours, since Nov 23 10:00:00 2026
worker threads: 16 total, 11 idle, working: 4/0/1/0
job queues: 0/1/2/3
jobs scheduled: 5
IKE_SAs: 2 total, 1 half-open
loaded plugins: goipsec-ike goipsec-esp
`)
}

// homeConn is the list-conn event charon 5.9.8 streams for a PSK site-to-site connection with two
// CHILD_SAs (captured from charon and rebuilt here).
func homeConn() *Message {
	m := NewMessage()
	c := m.AddSection("home")
	c.SetList("local_addrs", "192.0.2.2").SetList("remote_addrs", "192.0.2.1")
	c.Set("version", "IKEv2").Set("reauth_time", "0").Set("rekey_time", "14400").Set("unique", "UNIQUE_NO")
	c.AddSection("local-1").Set("id", "moon@example.org").Set("class", "pre-shared key").
		SetList("groups").SetList("cert_policy").SetList("certs").SetList("cacerts")
	c.AddSection("remote-1").Set("id", "sun@example.org").Set("class", "pre-shared key").
		SetList("groups").SetList("cert_policy").SetList("certs").SetList("cacerts")
	ch := c.AddSection("children")
	ch.AddSection("net2").Set("mode", "TRANSPORT").Set("rekey_time", "3600").Set("rekey_bytes", "0").
		Set("rekey_packets", "0").Set("dpd_action", "none").Set("close_action", "none").
		SetList("local-ts", "10.1.0.0/16", "10.5.0.0/24").SetList("remote-ts", "10.6.0.0/16[tcp/https]")
	ch.AddSection("net").Set("mode", "TUNNEL").Set("rekey_time", "3600").Set("rekey_bytes", "0").
		Set("rekey_packets", "0").Set("dpd_action", "none").Set("close_action", "none").
		SetList("local-ts", "10.1.0.0/16").SetList("remote-ts", "10.2.0.0/16")
	return m
}

// roadConn is a roadwarrior responder with EAP and a second authentication round.
func roadConn() *Message {
	m := NewMessage()
	c := m.AddSection("road")
	c.SetList("local_addrs", "%any").SetList("remote_addrs", "%any")
	c.Set("version", "IKEv1/2").Set("reauth_time", "0").Set("rekey_time", "14400").Set("unique", "UNIQUE_NO")
	c.AddSection("local-1").Set("class", "public key").SetList("groups").SetList("cert_policy").SetList("certs").SetList("cacerts")
	c.AddSection("remote-1").Set("eap_id", "%any").Set("eap-type", "EAP_MD5").Set("class", "EAP").
		SetList("groups").SetList("cert_policy").SetList("certs").SetList("cacerts")
	c.AddSection("remote-2").Set("class", "pre-shared key").SetList("groups").SetList("cert_policy").SetList("certs").SetList("cacerts")
	c.AddSection("children").AddSection("rw").Set("mode", "TUNNEL").Set("rekey_time", "3600").Set("rekey_bytes", "0").
		Set("rekey_packets", "0").Set("dpd_action", "none").Set("close_action", "none").
		SetList("local-ts", "0.0.0.0/0").SetList("remote-ts", "dynamic")
	return m
}

func TestSwanctlListConns(t *testing.T) {
	d := newFakeDaemon()
	d.handlers["list-conns"] = func(_ context.Context, _ *Message, st EventStreamer) (*Message, error) {
		for _, c := range []*Message{homeConn(), roadConn()} {
			if err := st.Stream("list-conn", c); err != nil {
				return nil, err
			}
		}
		return NewMessage(), nil
	}
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	r := e.run("--list-conns")
	assertOutput(t, "swanctl --list-conns", r.stdout, `home: IKEv2, no reauthentication, rekeying every 14400s
  local:  192.0.2.2
  remote: 192.0.2.1
  local pre-shared key authentication:
    id: moon@example.org
  remote pre-shared key authentication:
    id: sun@example.org
  net2: TRANSPORT, rekeying every 3600s
    local:  10.1.0.0/16 10.5.0.0/24
    remote: 10.6.0.0/16[tcp/https]
  net: TUNNEL, rekeying every 3600s
    local:  10.1.0.0/16
    remote: 10.2.0.0/16
road: IKEv1/2, no reauthentication, rekeying every 14400s
  local:  %any
  remote: %any
  local public key authentication:
  remote EAP_MD5 authentication:
    eap_id: %any
  remote pre-shared key authentication:
  rw: TUNNEL, rekeying every 3600s
    local:  0.0.0.0/0
    remote: dynamic
`)
	assertRequest(t, d.got()[0], "list-conns", NewMessage())
}

// ikeSA is the list-sa content of an established IKE SA (as charon 5.9.8 reports it) without the
// child-sas section.
func ikeSA(c *Message) *Message {
	return c.Set("uniqueid", "1").Set("version", "2").Set("state", "ESTABLISHED").
		Set("local-host", "192.0.2.2").Set("local-port", "4500").Set("local-id", "moon@example.org").
		Set("remote-host", "192.0.2.1").Set("remote-port", "4500").Set("remote-id", "sun@example.org").
		Set("initiator", "yes").Set("initiator-spi", "9c330495b45e5943").Set("responder-spi", "866e40c237a67cb3").
		Set("nat-remote", "yes").Set("nat-any", "yes").
		Set("encr-alg", "AES_CBC").Set("encr-keysize", "256").Set("integ-alg", "HMAC_SHA2_256_128").
		Set("prf-alg", "PRF_HMAC_SHA2_256").Set("dh-group", "CURVE_25519").
		Set("established", "4").Set("rekey-time", "14004")
}

// childSA is the content of one CHILD_SA entry of child-sas.
func childSA(c *Message, uniqueid, state, spiIn, spiOut string) *Message {
	return c.Set("name", "net").Set("uniqueid", uniqueid).Set("reqid", "1").Set("state", state).
		Set("mode", "TUNNEL").Set("protocol", "ESP").Set("encap", "yes").
		Set("spi-in", spiIn).Set("spi-out", spiOut).
		Set("encr-alg", "AES_GCM_16").Set("encr-keysize", "256").
		Set("bytes-in", "168").Set("packets-in", "2").Set("use-in", "0").
		Set("bytes-out", "168").Set("packets-out", "2").Set("use-out", "0").
		Set("rekey-time", "3273").Set("life-time", "3956").Set("install-time", "4").
		SetList("local-ts", "10.1.0.0/16").SetList("remote-ts", "10.2.0.0/16")
}

const ikeSAOutput = `home: #1, ESTABLISHED, IKEv2, 9c330495b45e5943_i* 866e40c237a67cb3_r
  local  'moon@example.org' @ 192.0.2.2[4500]
  remote 'sun@example.org' @ 192.0.2.1[4500]
  AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519
  established 4s ago, rekeying in 14004s
`

const childSAOutput = `  net: #2, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 4s ago, rekeying in 3273s, expires in 3956s
    in  68d84a2b,    168 bytes,     2 packets,     0s ago
    out 42c978e5,    168 bytes,     2 packets,     0s ago
    local  10.1.0.0/16
    remote 10.2.0.0/16
`

func TestSwanctlListSAs(t *testing.T) {
	d := newFakeDaemon()
	d.handlers["list-sas"] = func(_ context.Context, req *Message, st EventStreamer) (*Message, error) {
		withChild := NewMessage()
		childSA(ikeSA(withChild.AddSection("home")).AddSection("child-sas").AddSection("net-2"), "2", "INSTALLED", "68d84a2b", "42c978e5")
		// swanctl prints an IKE SA when it reaches its child-sas section: without one (last, after
		// all IKE SA keys) the SA does not appear at all.
		noChildSection := NewMessage()
		ikeSA(noChildSection.AddSection("lost"))
		onlyIKE := NewMessage()
		ikeSA(onlyIKE.AddSection("home")).SetSection("child-sas", nil)
		// Keys after child-sas arrive too late to be printed.
		lateKeys := NewMessage()
		late := ikeSA(lateKeys.AddSection("home"))
		late.Delete("established")
		late.Delete("rekey-time")
		late.SetSection("child-sas", nil).Set("established", "4").Set("rekey-time", "14004")
		for _, ev := range []*Message{withChild, noChildSection, onlyIKE, lateKeys} {
			if err := st.Stream("list-sa", ev); err != nil {
				return nil, err
			}
		}
		return NewMessage(), nil
	}
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	r := e.run("--list-sas")
	withoutTimes := strings.TrimSuffix(ikeSAOutput, "  established 4s ago, rekeying in 14004s\n")
	assertOutput(t, "swanctl --list-sas", r.stdout, ikeSAOutput+childSAOutput+ikeSAOutput+withoutTimes)
	assertRequest(t, d.got()[0], "list-sas", NewMessage())
	e.run("--list-sas", "--noblock", "--ike", "home", "--child", "net")
	assertRequest(t, d.got()[1], "list-sas", NewMessage().Set("ike", "home").Set("child", "net").Set("noblock", "yes"))
}

func TestSwanctlListPols(t *testing.T) {
	d := newFakeDaemon()
	d.handlers["list-policies"] = func(_ context.Context, _ *Message, st EventStreamer) (*Message, error) {
		ev := NewMessage()
		ev.AddSection("home/net").Set("child", "net").Set("ike", "home").Set("mode", "TUNNEL").
			SetList("local-ts", "10.1.0.0/16").SetList("remote-ts", "10.2.0.0/16")
		return NewMessage(), st.Stream("list-policy", ev)
	}
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	r := e.run("--list-pols")
	assertOutput(t, "swanctl --list-pols", r.stdout, "home/net, TUNNEL\n  local:  10.1.0.0/16\n  remote: 10.2.0.0/16\n")
	assertRequest(t, d.got()[0], "list-policies", NewMessage().Set("trap", "yes").Set("drop", "yes").Set("pass", "yes"))
}

// controlLog streams control-log events as charon does during initiate and terminate.
func controlLog(st EventStreamer, lines ...string) error {
	for _, l := range lines {
		group, msg, _ := strings.Cut(l, " ")
		ev := NewMessage().Set("group", group).Set("level", "1").Set("ikesa-name", "home").
			Set("ikesa-uniqueid", "1").Set("msg", msg)
		if err := st.Stream("control-log", ev); err != nil {
			return err
		}
	}
	return nil
}

func TestSwanctlInitiate(t *testing.T) {
	d := newFakeDaemon()
	d.handlers["initiate"] = func(_ context.Context, req *Message, st EventStreamer) (*Message, error) {
		if err := controlLog(st, "IKE initiating IKE_SA home[1] to 192.0.2.1",
			"IKE IKE_SA home[1] established between 192.0.2.2[moon@example.org]...192.0.2.1[sun@example.org]"); err != nil {
			return nil, err
		}
		if req.Get("child") == "broken" {
			return NewMessage().Set("success", "no").Set("errmsg", "establishing CHILD_SA 'broken' failed"), nil
		}
		return NewMessage().Set("success", "yes"), nil
	}
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	logLines := "[IKE] initiating IKE_SA home[1] to 192.0.2.1\n" +
		"[IKE] IKE_SA home[1] established between 192.0.2.2[moon@example.org]...192.0.2.1[sun@example.org]\n"
	r := e.run("--initiate", "--child", "net", "--timeout", "5")
	assertOutput(t, "swanctl --initiate", r.stdout, logLines+"initiate completed successfully\n")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	assertRequest(t, d.got()[0], "initiate", NewMessage().Set("child", "net").Set("timeout", "5000").Set("loglevel", "1"))

	r = e.run("--initiate", "--child", "broken", "--ike", "home")
	assertOutput(t, "swanctl --initiate (stdout)", r.stdout, logLines)
	assertOutput(t, "swanctl --initiate (stderr)", r.stderr, "initiate failed: establishing CHILD_SA 'broken' failed\n")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	assertRequest(t, d.got()[1], "initiate", NewMessage().Set("child", "broken").Set("ike", "home").Set("loglevel", "1"))
}

func TestSwanctlTerminate(t *testing.T) {
	d := newFakeDaemon()
	d.handlers["terminate"] = func(_ context.Context, _ *Message, st EventStreamer) (*Message, error) {
		if err := controlLog(st, "IKE deleting IKE_SA home[1] between 192.0.2.2[moon@example.org]...192.0.2.1[sun@example.org]",
			"IKE IKE_SA deleted"); err != nil {
			return nil, err
		}
		return NewMessage().Set("success", "yes").Set("matches", "1").Set("terminated", "1"), nil
	}
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	r := e.run("--terminate", "--ike", "home", "--force", "--timeout", "2")
	assertOutput(t, "swanctl --terminate", r.stdout,
		"[IKE] deleting IKE_SA home[1] between 192.0.2.2[moon@example.org]...192.0.2.1[sun@example.org]\n"+
			"[IKE] IKE_SA deleted\nterminate completed successfully\n")
	assertRequest(t, d.got()[0], "terminate", NewMessage().Set("ike", "home").Set("force", "yes").Set("timeout", "2000").Set("loglevel", "1"))
	e.run("--terminate", "--child-id", "7")
	assertRequest(t, d.got()[1], "terminate", NewMessage().Set("child-id", "7").Set("loglevel", "1"))
}

// swanctlConf is a swanctl.conf exercising connections, secrets, pools and authorities.
const swanctlConf = `connections {
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
      net {
        local_ts = 10.1.0.0/16
        remote_ts = 10.2.0.0/16, 10.3.0.0/16
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
  token-1 {
    handle = 0123ab
    slot = 1
    module = mymodule
    pin = 1234
  }
}
pools {
  p1 {
    addrs = 10.3.0.0/24
    dns = 10.3.0.1, 10.3.0.2
  }
}
authorities {
  ca1 {
    crl_uris = http://crl.example.org/ca.crl
  }
}
`

// writeSwanctlConf writes swanctlConf and the credential folders swanctl reads next to it, with an
// ECDSA key and its self-signed certificate. It returns the swanctl.conf path and the key.
func writeSwanctlConf(t *testing.T, dir string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	for _, d := range []string{"x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey",
		"private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "moon.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"swanctl.conf":   []byte(swanctlConf),
		"x509/moon.pem":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"ecdsa/moon.pem": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "swanctl.conf"), key
}

func TestSwanctlLoadConns(t *testing.T) {
	d := newFakeDaemon()
	d.respond("get-conns", NewMessage().SetList("conns", "old", "home"))
	d.respond("load-conn", NewMessage().Set("success", "yes"))
	d.respond("unload-conn", NewMessage().Set("success", "yes"))
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	conf, _ := writeSwanctlConf(t, e.dir)
	r := e.run("--load-conns", "--file", conf)
	assertOutput(t, "swanctl --load-conns", r.stdout, "loaded connection 'home'\nsuccessfully loaded 1 connections, 1 unloaded\n")
	if got := d.names(); got != "get-conns load-conn unload-conn" {
		t.Fatalf("commands %s", got)
	}
	// swanctl sends the configuration in file order; comma-separated values become lists.
	want := NewMessage()
	home := want.AddSection("home")
	home.SetList("remote_addrs", "192.0.2.1").SetList("local_addrs", "192.0.2.2").Set("version", "2").
		SetList("proposals", "aes256-sha256-x25519")
	home.AddSection("local").Set("auth", "psk").Set("id", "moon@example.org")
	home.AddSection("remote").Set("auth", "psk").Set("id", "sun@example.org")
	home.AddSection("children").AddSection("net").SetList("local_ts", "10.1.0.0/16").
		SetList("remote_ts", "10.2.0.0/16", "10.3.0.0/16").SetList("esp_proposals", "aes256gcm16").
		Set("start_action", "trap")
	got := d.got()
	assertRequest(t, got[0], "get-conns", NewMessage())
	assertRequest(t, got[1], "load-conn", want)
	assertRequest(t, got[2], "unload-conn", NewMessage().Set("name", "old"))
}

func TestSwanctlLoadCreds(t *testing.T) {
	d := newFakeDaemon()
	d.respond("clear-creds", NewMessage().Set("success", "yes"))
	d.respond("get-keys", NewMessage().SetList("keys", "00112233"))
	d.respond("get-shared", NewMessage().SetList("keys", "oldpsk"))
	d.respond("load-cert", NewMessage().Set("success", "yes"))
	d.respond("load-key", NewMessage().Set("success", "yes").Set("id", "aabbccdd"))
	d.respond("load-token", NewMessage().Set("success", "yes").Set("id", "eeff0011"))
	d.respond("load-shared", NewMessage().Set("success", "yes"))
	d.respond("unload-key", NewMessage().Set("success", "yes"))
	d.respond("unload-shared", NewMessage().Set("success", "yes"))
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	conf, _ := writeSwanctlConf(t, e.dir)
	r := e.run("--load-creds", "--clear", "--noprompt", "--file", conf)
	certPath := filepath.Join(e.dir, "x509", "moon.pem")
	keyPath := filepath.Join(e.dir, "ecdsa", "moon.pem")
	assertOutput(t, "swanctl --load-creds", r.stdout, fmt.Sprintf(`loaded certificate from '%s'
loaded ecdsa key from '%s'
loaded key token-1 from token [keyid: eeff0011]
loaded ike secret 'ike-1'
`, certPath, keyPath))
	if got := d.names(); got != "clear-creds get-keys get-shared load-cert load-key load-token load-shared unload-key unload-shared" {
		t.Fatalf("commands %s", got)
	}
	got := d.got()
	assertRequest(t, got[0], "clear-creds", NewMessage())
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	assertRequest(t, got[3], "load-cert", NewMessage().Set("type", "X509").Set("flag", "NONE").Set("data", string(certPEM)))
	// A key in a type-specific folder (ecdsa/) is sent as the file holds it, with the folder's
	// name as type; swanctl only parses keys in private/ (and then sends DER).
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	assertRequest(t, got[4], "load-key", NewMessage().Set("type", "ecdsa").Set("data", string(keyPEM)))
	assertRequest(t, got[5], "load-token", NewMessage().Set("handle", "0123ab").Set("slot", "1").Set("module", "mymodule").Set("pin", "1234"))
	assertRequest(t, got[6], "load-shared", NewMessage().Set("id", "ike-1").Set("type", "ike").Set("data", "s3cr3t").
		SetList("owners", "moon@example.org", "sun@example.org"))
	assertRequest(t, got[7], "unload-key", NewMessage().Set("id", "00112233"))
	assertRequest(t, got[8], "unload-shared", NewMessage().Set("id", "oldpsk"))
}

func TestSwanctlLoadPoolsAndAuthorities(t *testing.T) {
	d := newFakeDaemon()
	old := NewMessage()
	old.AddSection("oldpool").Set("base", "10.9.0.0").Set("size", "254").Set("online", "0").Set("offline", "0")
	d.respond("get-pools", old)
	d.respond("load-pool", NewMessage().Set("success", "yes"))
	d.respond("unload-pool", NewMessage().Set("success", "yes"))
	d.respond("get-authorities", NewMessage().SetList("authorities", "oldca"))
	d.respond("load-authority", NewMessage().Set("success", "yes"))
	d.respond("unload-authority", NewMessage().Set("success", "yes"))
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	conf, _ := writeSwanctlConf(t, e.dir)
	r := e.run("--load-pools", "--file", conf)
	assertOutput(t, "swanctl --load-pools", r.stdout, "loaded pool 'p1'\nsuccessfully loaded 1 pools, 1 unloaded\n")
	r = e.run("--load-authorities", "--file", conf)
	assertOutput(t, "swanctl --load-authorities", r.stdout, "loaded authority 'ca1'\nsuccessfully loaded 1 authorities, 1 unloaded\n")
	got := d.got()
	if len(got) != 6 {
		t.Fatalf("commands %s", d.names())
	}
	assertRequest(t, got[0], "get-pools", NewMessage())
	pool := NewMessage()
	pool.AddSection("p1").Set("addrs", "10.3.0.0/24").SetList("dns", "10.3.0.1", "10.3.0.2")
	assertRequest(t, got[1], "load-pool", pool)
	assertRequest(t, got[2], "unload-pool", NewMessage().Set("name", "oldpool"))
	assertRequest(t, got[3], "get-authorities", NewMessage())
	ca := NewMessage()
	ca.AddSection("ca1").SetList("crl_uris", "http://crl.example.org/ca.crl")
	assertRequest(t, got[4], "load-authority", ca)
	assertRequest(t, got[5], "unload-authority", NewMessage().Set("name", "oldca"))
}

func TestSwanctlLog(t *testing.T) {
	e := newSwanctlEnv(t, newFakeDaemon())
	if e == nil {
		return
	}
	probe := NewMessage().Set("group", "DMN").Set("level", "1").Set("thread", "1").Set("msg", "probe")
	lines := e.followSynced("log", probe, "01[DMN] probe", 1, "--log")
	for _, ev := range []*Message{
		NewMessage().Set("group", "IKE").Set("level", "0").Set("thread", "7").
			Set("ikesa-name", "home").Set("ikesa-uniqueid", "1").Set("msg", "initiating IKE_SA home[1] to 192.0.2.1"),
		// libvici hands swanctl only printable values (chunk_printable): a message with a line
		// break or other control character prints nothing, so the daemon must send one event per
		// line.
		NewMessage().Set("group", "CFG").Set("level", "1").Set("thread", "12").Set("msg", "first line\nsecond line"),
		NewMessage().Set("group", "CFG").Set("level", "1").Set("thread", "12").Set("msg", "tab\there"),
		NewMessage().Set("group", "CFG").Set("level", "1").Set("thread", "12").Set("msg", "one line"),
	} {
		if n, err := e.srv.Publish("log", ev); err != nil || n != 1 {
			t.Fatalf("Publish: %d, %v", n, err)
		}
	}
	assertOutput(t, "swanctl --log", readLines(t, lines, 2),
		"07[IKE] initiating IKE_SA home[1] to 192.0.2.1\n12[CFG] one line\n")
}

func TestSwanctlMonitorSA(t *testing.T) {
	e := newSwanctlEnv(t, newFakeDaemon())
	if e == nil {
		return
	}
	// swanctl 5.9.8 registers for ike-updown and then child-updown; once a child-updown is printed,
	// both registrations are in place. The probe prints three lines: a bare IKE SA header.
	probe := NewMessage().Set("up", "yes")
	probe.AddSection("probe").Set("uniqueid", "0").Set("version", "2").Set("state", "CONNECTING").
		Set("local-host", "-").Set("local-port", "0").Set("local-id", "-").
		Set("remote-host", "-").Set("remote-port", "0").Set("remote-id", "-").
		Set("initiator-spi", "0").Set("responder-spi", "0").SetSection("child-sas", nil)
	lines := e.followSynced("child-updown", probe, "probe: #0, CONNECTING", 3, "--monitor-sa")
	up := NewMessage().Set("up", "yes")
	childSA(ikeSA(up.AddSection("home")).AddSection("child-sas").AddSection("net-2"), "2", "INSTALLED", "68d84a2b", "42c978e5")
	// ike-updown has no child-sas section, and swanctl prints an IKE SA only from there: nothing
	// appears for it, so the next lines come from the child-updown (down) after it.
	ikeDown := NewMessage()
	ikeSA(ikeDown.AddSection("home")).Set("state", "DELETING")
	down := NewMessage()
	childSA(ikeSA(down.AddSection("home")).Set("state", "DELETING").AddSection("child-sas").AddSection("net-3"),
		"3", "DELETED", "5ad537f1", "9e949848")
	for _, ev := range []struct {
		name string
		msg  *Message
	}{{"child-updown", up}, {"ike-updown", ikeDown}, {"child-updown", down}} {
		if n, err := e.srv.Publish(ev.name, ev.msg); err != nil || n != 1 {
			t.Fatalf("Publish %s: %d, %v", ev.name, n, err)
		}
	}
	downOutput := strings.Replace(ikeSAOutput, "ESTABLISHED", "DELETING", 1) +
		strings.NewReplacer("#2", "#3", "INSTALLED", "DELETED", "68d84a2b", "5ad537f1", "42c978e5", "9e949848").Replace(childSAOutput)
	assertOutput(t, "swanctl --monitor-sa", readLines(t, lines, 22), ikeSAOutput+childSAOutput+downOutput)
}

func TestSwanctlCountersAndPools(t *testing.T) {
	d := newFakeDaemon()
	// Global counters sit in a section with an empty name, which VICI allows.
	counters := NewMessage()
	counters.AddSection("counters").AddSection("").Set("ike-rekey-init", "4").Set("child-rekey", "4").
		Set("create-child-out-resp", "0")
	counters.Set("success", "yes")
	d.respond("get-counters", counters)
	pools := NewMessage()
	pools.AddSection("p1").Set("base", "10.3.0.0").Set("size", "254").Set("online", "1").Set("offline", "2")
	d.respond("get-pools", pools)
	e := newSwanctlEnv(t, d)
	if e == nil {
		return
	}
	r := e.run("--counters")
	assertOutput(t, "swanctl --counters", r.stdout, `global:
  ike-rekey-init        : 4
  child-rekey           : 4
  create-child-out-resp : 0
`)
	r = e.run("--list-pools")
	assertOutput(t, "swanctl --list-pools", r.stdout, "p1                   10.3.0.0                            1 / 2 / 254\n")
	got := d.got()
	assertRequest(t, got[0], "get-counters", NewMessage())
	assertRequest(t, got[1], "get-pools", NewMessage())
}

// swanctlInvocations maps each strongSwan command to a swanctl invocation that sends it; {conf} is
// replaced by the swanctl.conf path.
var swanctlInvocations = map[string][]string{
	"version":          {"--version", "--daemon"},
	"stats":            {"--stats"},
	"reload-settings":  {"--reload-settings"},
	"initiate":         {"--initiate", "--child", "net"},
	"terminate":        {"--terminate", "--ike", "home"},
	"rekey":            {"--rekey", "--ike", "home"},
	"redirect":         {"--redirect", "--ike", "home", "--gateway", "192.0.2.9"},
	"install":          {"--install", "--child", "net"},
	"uninstall":        {"--uninstall", "--child", "net"},
	"list-sas":         {"--list-sas"},
	"list-policies":    {"--list-pols"},
	"list-conns":       {"--list-conns"},
	"get-conns":        {"--load-conns", "--file", "{conf}"},
	"list-certs":       {"--list-certs"},
	"list-authorities": {"--list-authorities"},
	"get-authorities":  {"--load-authorities", "--file", "{conf}"},
	"load-conn":        {"--load-conns", "--file", "{conf}"},
	"unload-conn":      {"--load-conns", "--file", "{conf}"},
	"load-cert":        {"--load-creds", "--noprompt", "--file", "{conf}"},
	"load-key":         {"--load-creds", "--noprompt", "--file", "{conf}"},
	"unload-key":       {"--load-creds", "--noprompt", "--file", "{conf}"},
	"get-keys":         {"--load-creds", "--noprompt", "--file", "{conf}"},
	"load-token":       {"--load-creds", "--noprompt", "--file", "{conf}"},
	"load-shared":      {"--load-creds", "--noprompt", "--file", "{conf}"},
	"unload-shared":    {"--load-creds", "--noprompt", "--file", "{conf}"},
	"get-shared":       {"--load-creds", "--noprompt", "--file", "{conf}"},
	"flush-certs":      {"--flush-certs"},
	"clear-creds":      {"--load-creds", "--clear", "--noprompt", "--file", "{conf}"},
	"load-authority":   {"--load-authorities", "--file", "{conf}"},
	"unload-authority": {"--load-authorities", "--file", "{conf}"},
	"load-pool":        {"--load-pools", "--file", "{conf}"},
	"unload-pool":      {"--load-pools", "--file", "{conf}"},
	"get-pools":        {"--list-pools"},
	"get-algorithms":   {"--list-algs"},
	"get-counters":     {"--counters"},
	"reset-counters":   {"--counters", "--reset"},
}

// happyDaemon answers every strongSwan command with a plausible success, so that swanctl's
// multi-command flows (load-creds: get-keys, get-shared, load-*, unload-*) reach every step.
func happyDaemon() *fakeDaemon {
	d := newFakeDaemon()
	for _, name := range StrongSwanCommands() {
		d.respond(name, NewMessage().Set("success", "yes"))
	}
	d.respond("get-conns", NewMessage().SetList("conns", "old"))
	d.respond("get-keys", NewMessage().SetList("keys", "00112233"))
	d.respond("get-shared", NewMessage().SetList("keys", "oldpsk"))
	d.respond("get-authorities", NewMessage().SetList("authorities", "oldca"))
	pools := NewMessage()
	pools.AddSection("oldpool").Set("base", "10.9.0.0").Set("size", "254").Set("online", "0").Set("offline", "0")
	d.respond("get-pools", pools)
	return d
}

// TestSwanctlNotImplemented checks the table behind Registry: for every strongSwan command it runs
// the swanctl invocation that sends it, once answering with goipsec's "not implemented" errmsg and
// once with CMD_UNKNOWN, and checks that SwanctlShowsErrmsg says which answer swanctl shows.
func TestSwanctlNotImplemented(t *testing.T) {
	if _, ok := findSwanctl(t); !ok {
		return
	}
	for _, name := range StrongSwanCommands() {
		args, ok := swanctlInvocations[name]
		if !ok {
			t.Fatalf("no swanctl invocation for %s", name)
		}
		t.Run(name, func(t *testing.T) {
			d := happyDaemon()
			d.handlers[name] = NotImplemented(name)
			e := newSwanctlEnv(t, d)
			conf, _ := writeSwanctlConf(t, e.dir)
			args := strings.Split(strings.ReplaceAll(strings.Join(args, "\x00"), "{conf}", conf), "\x00")

			r := e.run(args...)
			if !strings.Contains(d.names(), name) {
				t.Fatalf("%v did not send %s (sent %s)", args, name, d.names())
			}
			errmsg := "goipsec does not implement " + name + " yet"
			shown := strings.Contains(r.stdout+r.stderr, errmsg)
			if shown != SwanctlShowsErrmsg(name) {
				t.Fatalf("swanctl shows errmsg: %v, table says %v", shown, SwanctlShowsErrmsg(name))
			}
			if shown {
				return
			}
			// Not shown: CMD_UNKNOWN must do better. Stand-alone commands then fail naming the
			// command; swanctl's load flows skip a failed get-* query and carry on.
			delete(d.handlers, name)
			r = e.run(args...)
			switch name {
			case "get-conns", "get-keys", "get-shared", "get-authorities":
				if r.code != 0 || !strings.Contains(r.stdout, "loaded") {
					t.Fatalf("load flow stopped at unknown %s: exit %d", name, r.code)
				}
			default:
				if r.code == 0 || !strings.HasPrefix(r.stderr, name+" request failed: ") {
					t.Fatalf("CMD_UNKNOWN for %s: exit %d, stderr %q", name, r.code, r.stderr)
				}
			}
		})
	}
}
