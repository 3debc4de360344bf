// Package ikebench is a load generator for IKEv2 responders: it runs many IKE_SA_INIT + IKE_AUTH
// handshakes (PSK authentication, one Child SA) against one peer as fast as the peer answers, and
// reports completions per second, failures by reason, retransmissions and latency percentiles.
//
// It drives the state machines of package ike directly, without package ike/engine: no data plane,
// no daemon, nothing installed. Concurrency handshakes are in flight at any time, each owned by one
// goroutine; all of them share one connected UDP socket towards the peer's IKE port (and one towards
// its NAT-T port, used after the peer's NAT detection asks to float), and a reader per socket hands
// each response to its handshake by the initiator SPI, which this side chose.
//
// Hand-written: there is no IKEv2 load tool in Go (strongSwan's load-tester plugin lives inside
// charon and needs a second charon as the initiator).
package ikebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goipsec/goipsec/ike"
)

// Defaults: for the zero values of Config, and DefaultRetries for callers (Retries 0 means none).
const (
	DefaultTimeout  = time.Second
	DefaultRetries  = 3
	DefaultNATTPort = 4500
	// socketBuffer is the receive buffer asked for on each socket: enough for a response to every
	// handshake in flight at any realistic concurrency (the kernel caps it at net.core.rmem_max).
	socketBuffer = 4 << 20
	// inboxLen bounds the datagrams queued for one handshake; more (duplicates after a
	// retransmission) are dropped and counted as unmatched.
	inboxLen = 4
	// maxDatagram is the largest datagram read; IKE over UDP cannot exceed it.
	maxDatagram = 65535
)

// Config describes a load run.
type Config struct {
	// Peer is the responder's IKE address (normally port 500).
	Peer netip.AddrPort
	// PeerNATTPort is the responder's NAT-T port, used when its NAT detection payloads say to float
	// (strongSwan's kernel-libipsec always does, and goipsec with encap = yes). Default 4500.
	PeerNATTPort uint16
	// Source is the local address to send from; invalid: the kernel's choice.
	Source netip.Addr
	// IKE holds the IKE proposals, identities and PSK; Child the Child SA requested in IKE_AUTH.
	IKE   *ike.PeerConfig
	Child *ike.ChildConfig
	// Count is the number of handshakes to run; Concurrency how many are in flight at once.
	Count       int
	Concurrency int
	// Delete sends an INFORMATIONAL Delete of the IKE SA after each handshake, so that the
	// responder does not accumulate SAs; a handshake completes when the Delete is answered.
	Delete bool
	// Timeout is how long to wait for a response before retransmitting (fixed, no backoff: under
	// load a late answer is queueing, and backing off would hide it; default DefaultTimeout);
	// Retries is the number of retransmissions before the handshake fails (0: none).
	Timeout time.Duration
	Retries int
	// Rand is the source of SPIs, nonces and keys (default crypto/rand).
	Rand io.Reader
}

// Result is what a run measured.
type Result struct {
	Started   int // handshakes begun
	Completed int // handshakes that established the IKE SA and Child SA (and deleted them, with Delete)
	Failed    int
	// Failures counts failed handshakes by reason (the exchange and what went wrong).
	Failures    map[string]int
	Retransmits int // requests sent again after a timeout
	Cookies     int // IKE_SA_INIT requests the peer answered with COOKIE
	InvalidKE   int // IKE_SA_INIT requests the peer answered with INVALID_KE_PAYLOAD
	NATT        int // handshakes that floated to the peer's NAT-T port
	// Unmatched counts datagrams that belonged to no handshake in flight (late duplicates after a
	// retransmission, or garbage).
	Unmatched int
	// Elapsed is the wall time of the whole run, from the first request to the last answer.
	Elapsed time.Duration
	// Latencies are the times from the first IKE_SA_INIT request to the verified IKE_AUTH response
	// of each completed handshake, sorted. The Delete is not part of it.
	Latencies []time.Duration
}

// Rate is the number of completed handshakes per second of the run.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Completed) / r.Elapsed.Seconds()
}

// Percentile returns the latency at or below which p percent of the completed handshakes finished
// (nearest rank); 0 without completions.
func (r *Result) Percentile(p float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return r.Latencies[rank-1]
}

// Reason is one failure reason with its count, for reports.
type Reason struct {
	Reason string
	Count  int
}

// SortedFailures returns the failure reasons, most frequent first.
func (r *Result) SortedFailures() []Reason {
	out := make([]Reason, 0, len(r.Failures))
	for k, v := range r.Failures {
		out = append(out, Reason{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

func (c *Config) check() error {
	switch {
	case !c.Peer.IsValid():
		return errors.New("ikebench: no peer address")
	case c.IKE == nil || c.Child == nil:
		return errors.New("ikebench: IKE and Child configuration are required")
	case c.IKE.PSK == nil && c.IKE.Authenticator == nil:
		return errors.New("ikebench: no preshared key")
	case c.Count < 1:
		return fmt.Errorf("ikebench: count %d: at least one handshake", c.Count)
	case c.Concurrency < 1:
		return fmt.Errorf("ikebench: concurrency %d: at least one handshake in flight", c.Concurrency)
	case c.Timeout < 0 || c.Retries < 0:
		return errors.New("ikebench: negative timeout or retries")
	}
	return nil
}

// runner is the state shared by the workers of one run.
type runner struct {
	cfg       Config
	sock      *socket // to the peer's IKE port
	natt      *socket // to the peer's NAT-T port, behind the non-ESP marker
	claimed   atomic.Int64
	unmatched atomic.Int64
	deps      *ike.Deps // shared by every handshake's SA

	mu       sync.Mutex
	inflight map[uint64]chan []byte // handshakes by initiator SPI
}

// Run performs cfg.Count handshakes and returns what it measured. It stops early, with the
// partial result and ctx's error, when ctx ends. Failed handshakes are counted, not returned as
// errors; an error means the run itself could not go on (no socket).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.PeerNATTPort == 0 {
		cfg.PeerNATTPort = DefaultNATTPort
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	r := &runner{cfg: cfg, inflight: map[uint64]chan []byte{}, deps: ike.Deps{Rand: cfg.Rand}.WithDefaults()}
	var err error
	if r.sock, err = dial(cfg.Source, cfg.Peer, false); err != nil {
		return nil, err
	}
	defer r.sock.close()
	natt := netip.AddrPortFrom(cfg.Peer.Addr(), cfg.PeerNATTPort)
	if r.natt, err = dial(cfg.Source, natt, true); err != nil {
		return nil, err
	}
	defer r.natt.close()

	var readers sync.WaitGroup
	for _, s := range []*socket{r.sock, r.natt} {
		readers.Go(func() { s.read(r.deliver) })
	}

	workers := min(cfg.Concurrency, cfg.Count)
	tallies := make([]tally, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range tallies {
		wg.Go(func() { r.work(ctx, &tallies[i]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.sock.close()
	r.natt.close()
	readers.Wait()

	res := &Result{Failures: map[string]int{}, Elapsed: elapsed, Unmatched: int(r.unmatched.Load())}
	for i := range tallies {
		tallies[i].addTo(res)
	}
	slices.Sort(res.Latencies)
	return res, ctx.Err()
}

// claim takes the next handshake of the run; false when all are taken.
func (r *runner) claim() bool {
	return r.claimed.Add(1) <= int64(r.cfg.Count)
}

// deliver hands a datagram to the handshake whose initiator SPI it carries. Every handshake here
// is ours as original initiator, so the initiator SPI identifies it in requests and responses
// alike, including IKE_SA_INIT responses before the responder SPI is known.
func (r *runner) deliver(datagram []byte, natt bool) {
	b, ok := ikeMessage(datagram, natt)
	var spi uint64
	if ok {
		spi, ok = initiatorSPI(b)
	}
	if !ok {
		r.unmatched.Add(1)
		return
	}
	r.mu.Lock()
	inbox := r.inflight[spi]
	r.mu.Unlock()
	if inbox == nil {
		r.unmatched.Add(1)
		return
	}
	select {
	case inbox <- append([]byte(nil), b...):
	default:
		r.unmatched.Add(1)
	}
}

func (r *runner) register(spi uint64, inbox chan []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, taken := r.inflight[spi]; taken {
		return false
	}
	r.inflight[spi] = inbox
	return true
}

func (r *runner) unregister(spi uint64) {
	r.mu.Lock()
	delete(r.inflight, spi)
	r.mu.Unlock()
}

// tally is one worker's share of the result, merged at the end so workers share no counters.
type tally struct {
	started, completed, failed      int
	retransmits, cookies, invalidKE int
	natt                            int
	failures                        map[string]int
	latencies                       []time.Duration
}

func (t *tally) fail(reason string) {
	t.failed++
	if t.failures == nil {
		t.failures = map[string]int{}
	}
	t.failures[reason]++
}

func (t *tally) addTo(r *Result) {
	r.Started += t.started
	r.Completed += t.completed
	r.Failed += t.failed
	r.Retransmits += t.retransmits
	r.Cookies += t.cookies
	r.InvalidKE += t.invalidKE
	r.NATT += t.natt
	for k, v := range t.failures {
		r.Failures[k] += v
	}
	r.Latencies = append(r.Latencies, t.latencies...)
}

// work runs handshakes one after the other until the run's count is taken or ctx ends.
func (r *runner) work(ctx context.Context, t *tally) {
	h := &handshake{r: r, t: t, inbox: make(chan []byte, inboxLen), timer: time.NewTimer(time.Hour)}
	h.timer.Stop()
	for ctx.Err() == nil && r.claim() {
		t.started++
		lat, err := h.run(ctx)
		if err != nil {
			if ctx.Err() != nil {
				// Cut short by the caller: neither a completion nor the peer's failure.
				t.started--
				return
			}
			t.fail(err.Error())
			continue
		}
		t.completed++
		t.latencies = append(t.latencies, lat)
	}
}

// socket is a UDP socket connected to one peer address. Connected sockets let the kernel filter
// out everything not from the peer and give the local address the NAT detection hashes need.
type socket struct {
	conn  *net.UDPConn
	local netip.AddrPort
	natt  bool // datagrams carry the non-ESP marker (RFC 3948 §2.2)
	once  sync.Once
}

func dial(source netip.Addr, peer netip.AddrPort, natt bool) (*socket, error) {
	var laddr *net.UDPAddr
	if source.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(peer))
	if err != nil {
		return nil, fmt.Errorf("ikebench: socket to %s: %w", peer, err)
	}
	// Best effort: without privileges the kernel caps the size, which only matters at very high
	// concurrency (drops then show up as retransmissions).
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
	la := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return &socket{conn: c, local: netip.AddrPortFrom(la.Addr().Unmap(), la.Port()), natt: natt}, nil
}

func (s *socket) close() { s.once.Do(func() { s.conn.Close() }) }

// frame returns msg as it goes on the wire: behind the non-ESP marker on the NAT-T socket.
func (s *socket) frame(msg []byte) []byte {
	if !s.natt {
		return msg
	}
	out := make([]byte, nonESPMarkerLen, nonESPMarkerLen+len(msg))
	return append(out, msg...)
}

func (s *socket) send(datagram []byte) error {
	_, err := s.conn.Write(datagram)
	return err
}

// read passes every datagram received to deliver until the socket closes.
func (s *socket) read(deliver func(datagram []byte, natt bool)) {
	buf := make([]byte, maxDatagram)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors (port unreachable) surface on connected sockets as read errors; the
			// handshakes concerned time out and say so.
			continue
		}
		deliver(buf[:n], s.natt)
	}
}
