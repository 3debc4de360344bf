// Package updown runs updown scripts the way strongSwan's updown plugin does: once per pair of
// local and remote traffic selectors when a Child SA comes up or goes down, with the PLUTO_*
// environment scripts written for strongSwan (and its _updown default script) expect.
//
// Scripts run outside the IKE engine: Run queues the call and returns at once. Calls for one
// Child SA run in order (an "up" finishes before its "down" starts), different Child SAs in
// parallel; each call is bounded by a timeout after which the script's process group is killed,
// and a failure is logged with the script's last output.
package updown

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goipsec/goipsec/ts"
)

// Event describes a Child SA that came up or went down.
type Event struct {
	Up bool
	// Script is the updown path; Child the child's name (PLUTO_CONNECTION), Conn its connection.
	Script      string
	Conn, Child string
	// Interface is the device the tunnel's traffic leaves by (the TUN device).
	Interface string
	// Reqid identifies the Child SA (PLUTO_REQID); UniqueID the IKE SA (PLUTO_UNIQUEID).
	Reqid, UniqueID uint32
	// Me and Peer are the outer addresses; MyID and PeerID the identities.
	Me, Peer     netip.Addr
	MyID, PeerID string
	// PeerEAPID is the peer's EAP (XAuth) identity, empty without one.
	PeerEAPID string
	// Local and Remote are the negotiated traffic selectors.
	Local, Remote []ts.Selector
	// MySourceIPs are our virtual IPs, PeerSourceIPs the peer's.
	MySourceIPs, PeerSourceIPs []netip.Addr
	// DNS servers received with our virtual IPs.
	DNS []netip.Addr
	// Encap: ESP in UDP (PLUTO_UDP_ENC names the peer's port).
	Encap           bool
	PeerPort        uint16
	HostAccess      bool
	MarkIn, MarkOut string // value/mask, "" when unset
	IfIDIn, IfIDOut uint32
	SPIIn, SPIOut   uint32
	Proto           string // esp or ah
	Key             string // orders the calls: one Child SA's up before its down
}

// Calls returns the environments of the script runs an event makes: one per pair of local and
// remote selectors of the same family (strongSwan's rule), with the verb up-host/up-client
// (-v6 for IPv6) or the down variants.
func (e *Event) Calls() [][]string {
	var out [][]string
	for _, l := range e.Local {
		for _, r := range e.Remote {
			if l.Is6() != r.Is6() {
				continue
			}
			out = append(out, e.env(l, r))
		}
	}
	return out
}

func (e *Event) env(l, r ts.Selector) []string {
	verb := "down"
	if e.Up {
		verb = "up"
	}
	// A host-to-host Child SA covers just our outer address (strongSwan's is_host test).
	if p, ok := l.Prefix(); ok && p.IsSingleIP() && p.Addr() == e.Me.Unmap() {
		verb += "-host"
	} else {
		verb += "-client"
	}
	if l.Is6() {
		verb += "-v6"
	}
	env := []string{
		"PLUTO_VERSION=1.1",
		"PLUTO_VERB=" + verb,
		"PLUTO_CONNECTION=" + e.Child,
		"PLUTO_INTERFACE=" + e.Interface,
		"PLUTO_REQID=" + strconv.FormatUint(uint64(e.Reqid), 10),
		"PLUTO_PROTO=" + e.protoName(),
		"PLUTO_UNIQUEID=" + strconv.FormatUint(uint64(e.UniqueID), 10),
		"PLUTO_ME=" + e.Me.String(),
		"PLUTO_MY_ID=" + e.MyID,
		"PLUTO_MY_CLIENT=" + client(l),
		"PLUTO_MY_PORT=" + port(l),
		"PLUTO_MY_PROTOCOL=" + strconv.Itoa(int(l.Protocol)),
		"PLUTO_PEER=" + e.Peer.String(),
		"PLUTO_PEER_ID=" + e.PeerID,
		"PLUTO_PEER_CLIENT=" + client(r),
		"PLUTO_PEER_PORT=" + port(r),
		"PLUTO_PEER_PROTOCOL=" + strconv.Itoa(int(r.Protocol)),
		fmt.Sprintf("PLUTO_INBOUND_SPI=0x%08x", e.SPIIn),
		fmt.Sprintf("PLUTO_OUTBOUND_SPI=0x%08x", e.SPIOut),
		"GOIPSEC_CONNECTION=" + e.Conn,
	}
	if e.PeerEAPID != "" {
		env = append(env, "PLUTO_XAUTH_ID="+e.PeerEAPID)
	}
	for _, a := range e.MySourceIPs {
		if a.Is6() == l.Is6() {
			env = append(env, "PLUTO_MY_SOURCEIP="+a.String())
			break
		}
	}
	for i, a := range e.MySourceIPs {
		n := "PLUTO_MY_SOURCEIP4_"
		if a.Is6() {
			n = "PLUTO_MY_SOURCEIP6_"
		}
		env = append(env, n+strconv.Itoa(i+1)+"="+a.String())
	}
	for _, a := range e.PeerSourceIPs {
		if a.Is6() == r.Is6() {
			env = append(env, "PLUTO_PEER_SOURCEIP="+a.String())
			break
		}
	}
	n4, n6 := 0, 0
	for _, a := range e.DNS {
		if a.Is4() {
			n4++
			env = append(env, "PLUTO_DNS4_"+strconv.Itoa(n4)+"="+a.String())
		} else {
			n6++
			env = append(env, "PLUTO_DNS6_"+strconv.Itoa(n6)+"="+a.String())
		}
	}
	if e.HostAccess {
		env = append(env, "PLUTO_HOST_ACCESS=1")
	}
	if e.Encap {
		env = append(env, "PLUTO_UDP_ENC="+strconv.Itoa(int(e.PeerPort)))
	}
	if e.MarkIn != "" {
		env = append(env, "PLUTO_MARK_IN="+e.MarkIn)
	}
	if e.MarkOut != "" {
		env = append(env, "PLUTO_MARK_OUT="+e.MarkOut)
	}
	if e.IfIDIn != 0 {
		env = append(env, fmt.Sprintf("PLUTO_IF_ID_IN=%d", e.IfIDIn))
	}
	if e.IfIDOut != 0 {
		env = append(env, fmt.Sprintf("PLUTO_IF_ID_OUT=%d", e.IfIDOut))
	}
	return env
}

func (e *Event) protoName() string {
	if e.Proto == "" {
		return "esp"
	}
	return e.Proto
}

// client is a selector as a subnet, the form the variables carry (the smallest prefix that
// covers a range that is no prefix).
func client(s ts.Selector) string {
	if p, ok := s.Prefix(); ok {
		return p.String()
	}
	if ps := s.Prefixes(); len(ps) > 0 {
		return ps[0].String()
	}
	return s.Start.String()
}

func port(s ts.Selector) string {
	if s.AnyPort() {
		return "0"
	}
	return strconv.Itoa(int(s.StartPort))
}

// Runner runs scripts off the caller's goroutine, in order per Event.Key.
type Runner struct {
	Timeout time.Duration
	Log     *slog.Logger
	// Env is added to every call (PATH, for example); the daemon's own environment is not passed
	// on beyond PATH.
	Env []string

	mu     sync.Mutex
	queues map[string][]*Event
	wg     sync.WaitGroup
}

// Run queues the script calls of an event.
func (r *Runner) Run(e *Event) {
	if e.Script == "" {
		return
	}
	r.mu.Lock()
	if r.queues == nil {
		r.queues = map[string][]*Event{}
	}
	q, busy := r.queues[e.Key]
	r.queues[e.Key] = append(q, e)
	r.mu.Unlock()
	if !busy {
		r.wg.Add(1)
		go r.drain(e.Key)
	}
}

func (r *Runner) drain(key string) {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		q := r.queues[key]
		if len(q) == 0 {
			delete(r.queues, key)
			r.mu.Unlock()
			return
		}
		e := q[0]
		r.queues[key] = q[1:]
		r.mu.Unlock()
		for _, env := range e.Calls() {
			if err := r.call(e.Script, env); err != nil && r.Log != nil {
				r.Log.Warn("updown script failed", "script", e.Script, "conn", e.Conn, "child", e.Child, "verb", envValue(env, "PLUTO_VERB"), "err", err)
			}
		}
	}
}

// Wait waits until every queued call has run (tests, shutdown).
func (r *Runner) Wait() { r.wg.Wait() }

func envValue(env []string, k string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

// call runs one script invocation with the timeout; the script gets its own process group so
// that a timeout kills what it started too.
func (r *Runner) call(script string, env []string) error {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/sbin:/usr/bin:/sbin:/bin"
	}
	cmd.Env = append(append([]string{"PATH=" + path}, r.Env...), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("killed after %s (updown_timeout): %s", timeout, tail(out.Bytes()))
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("exit status %d: %s", ee.ExitCode(), tail(out.Bytes()))
		}
		return err
	}
	return nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = "…" + s[len(s)-300:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
