// Package daemon wires goipsec together: it takes a loaded configuration, installs manually keyed
// SAs, runs IKEv2 for the configured connections and installs the negotiated Child SAs into a data
// plane through dataplane.Backend, and applies an edited configuration on reload, changing only
// what changed.
//
// The IKE engine calls the daemon's event handlers from its appliers, with no IKE SA held; they
// may call the engine. Daemon.mu guards only maps and is never held across a call that may block.
package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/daemon/control"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ike/engine"
	v1engine "github.com/goipsec/goipsec/ikev1/engine"
	"github.com/goipsec/goipsec/internal/logging"
	"github.com/goipsec/goipsec/ts"
)

// NATT is the data plane's NAT-T socket, shared with IKE (RFC 3948: IKE and ESP on port 4500).
type NATT interface {
	SendIKE(b []byte, remote netip.AddrPort) error
	SendKeepalive(remote netip.AddrPort) error
	NATTPort() uint16
	FwMark() uint32
}

// Options are the daemon's dependencies and settings.
type Options struct {
	Backend dataplane.Backend
	// Logs gives each subsystem its logger (default: discard).
	Logs *logging.Hub
	// MTU of the data plane's TUN device, for TFC padding "mtu".
	MTU int
	// NATT enables IKE: nil runs manual keys only.
	NATT NATT
	// TCP carries IKE and ESP in TCP (RFC 9329); nil: UDP only.
	TCP TCPCarrier
	// IKE settings from the configuration's daemon section.
	Daemon config.Daemon
	// Keylog receives IKE and ESP keys in Wireshark's table formats (debugging only); nil: off.
	Keylog io.Writer
	// Clock for the IKE engine (default: the wall clock).
	Clock engine.Clock
	// OnHandshake observes handshake durations (metrics); may be nil.
	OnHandshake func(time.Duration)
}

// failure is a connection's last negotiation failure, for status and doctor.
type failure struct {
	when time.Time
	err  string
}

// Daemon owns the running state derived from the configuration.
type Daemon struct {
	backend  dataplane.Backend
	log      *slog.Logger
	mtu      int
	opts     Options
	ikePort  uint16
	fwmark   uint32
	ike      *engine.Engine
	ikev1    *v1engine.Engine
	l2tpMu   sync.Mutex
	l2tp     *l2tpService
	sockets  *ikeSockets
	ikeQueue chan ikeMessage
	stop     chan struct{} // closed by Close: the IKE workers end
	keylog   *keylogger
	peers    atomic.Pointer[peerSnapshot]
	ppks     atomic.Pointer[ppkTable]
	ctl      atomic.Pointer[control.Service]
	closing  atomic.Bool
	// softExpired dedupes soft-lifetime rekeys of a Child SA (OnExpire).
	softExpired softExpiries

	// rand feeds SPI allocation.
	rand  io.Reader
	spiMu sync.Mutex
	spis  map[uint32]struct{} // inbound Child SA SPIs in use or being negotiated

	// mu guards the maps below; it is held only for map operations, never across a data plane
	// call that may block. Lock order: mu, then a policyState's mu (policy changes that call the
	// data plane hold only the policyState's mu).
	mu           sync.Mutex
	cfg          *config.Config
	manual       map[string]*manualState
	conns        map[string]*connection
	policies     map[policyKey]*policyState
	children     map[uint32]*installed      // by inbound SPI
	bySA         map[dataplane.SAKey]uint32 // inbound SPI of the Child SA an SA belongs to
	trapByPolicy map[dataplane.PolicyID]string
	lastFailure  map[string]failure
	redirects    map[string][]time.Time // recent redirects followed, by connection (redirect.go)
	failures     map[string]uint64      // by reason, for metrics
	reload       func() error
	logCancel    func()

	credOnce sync.Once
	creds    *credState // creds.go
	vips     *vipState  // vips.go

	updownOnce sync.Once
	updown     *updownState // updown.go
	radiusOnce sync.Once
	rad        *radiusState // radius.go
}

// New returns a daemon with nothing installed. With opts.NATT set it opens the IKE port and runs
// the IKE engine; call Apply with a configuration next.
func New(opts Options) (*Daemon, error) {
	if opts.Logs == nil {
		opts.Logs = logging.New(logging.Options{})
	}
	d := &Daemon{backend: opts.Backend, log: opts.Logs.Logger("cfg"), mtu: opts.MTU, opts: opts,
		manual: map[string]*manualState{}, conns: map[string]*connection{}, policies: map[policyKey]*policyState{},
		children: map[uint32]*installed{}, bySA: map[dataplane.SAKey]uint32{}, trapByPolicy: map[dataplane.PolicyID]string{},
		lastFailure: map[string]failure{}, failures: map[string]uint64{}, rand: rand.Reader, spis: map[uint32]struct{}{},
		redirects: map[string][]time.Time{}}
	if opts.Keylog != nil {
		d.keylog = &keylogger{w: opts.Keylog}
	}
	d.vipsInit()
	if opts.NATT == nil {
		return d, nil
	}
	d.ikePort = opts.Daemon.IKEPort
	if d.ikePort == 0 {
		d.ikePort = 500
	}
	d.fwmark = opts.NATT.FwMark()
	ikeLog := opts.Logs.Logger("ike")
	socks, err := listenIKE(d.ikePort, opts.NATT.NATTPort(), d.fwmark, opts.NATT.SendIKE, ikeLog)
	if err != nil {
		return nil, err
	}
	d.sockets = socks
	dc := opts.Daemon
	var transport engine.Transport = socks
	if opts.TCP != nil {
		transport = &tcpTransport{ikeSockets: socks, tcp: opts.TCP}
	}
	ec := engine.Config{
		Transport: transport, Clock: opts.Clock, Logger: ikeLog, NATTPort: opts.NATT.NATTPort(),
		NetLogger: opts.Logs.Logger("net"), EncLogger: opts.Logs.Logger("enc"),
		Configs: d.candidates, AllocSPI: d.AllocSPI, KeyLog: d.keylog != nil,
		Keepalive: func(local, remote netip.AddrPort) {
			if local.Port() == opts.NATT.NATTPort() {
				opts.NATT.SendKeepalive(remote)
			}
		},
		RetransmitTimeout: dc.RetransmitTimeout, RetransmitBase: dc.RetransmitBase,
		RetransmitTries: dc.RetransmitTries, RetransmitLimit: dc.RetransmitLimit, MaxDatagram: dc.FragmentSize,
		Events: engine.Events{
			IKEUp: d.onIKEUp, IKEDown: d.onIKEDown, ChildUp: d.onChildUp, ChildActivate: d.onChildActivate,
			ChildDown: d.onChildDown, ChildMoved: d.onChildMoved, Failed: d.onFailed, Keys: d.keylogIKE,
			Handshake: opts.OnHandshake, VirtualIPs: d.onVirtualIPs, IKERekeyed: d.onIKERekeyed,
			Redirected: d.onRedirected,
		},
	}
	d.ike = engine.New(ec)
	d.newIKEv1(ec)
	// IKE messages are handled by a few workers, so that new IKE SAs (whose key exchange runs
	// outside the engine's lock) use every CPU, and so that the data plane's receive goroutine
	// only hands NAT-T messages over instead of computing them.
	d.ikeQueue = make(chan ikeMessage, ikeQueueLen)
	d.stop = make(chan struct{})
	for range max(2, runtime.GOMAXPROCS(0)) {
		go d.ikeWorker()
	}
	socks.serve(d.enqueueIKE)
	if opts.TCP == nil && len(opts.Daemon.TCPListen) > 0 {
		d.Close()
		return nil, fmt.Errorf("daemon.tcp_listen: %w", errNoTCP)
	}
	if opts.TCP != nil {
		if err := d.startTCP(); err != nil {
			d.Close()
			return nil, err
		}
	}
	d.watchAddresses() // mobike.go
	return d, nil
}

// ikeMessage is an IKE datagram waiting for a worker.
type ikeMessage struct {
	b             []byte
	local, remote netip.AddrPort
	tcp           bool // in a TCP connection (RFC 9329)
}

// ikeQueueLen bounds the IKE messages waiting for a worker; more are dropped (the peer
// retransmits), which also caps what a flood can make the daemon hold.
const ikeQueueLen = 1024

func (d *Daemon) enqueueIKE(b []byte, local, remote netip.AddrPort) {
	m := ikeMessage{b: append([]byte(nil), b...), local: local, remote: remote}
	select {
	case d.ikeQueue <- m:
	default:
		d.log.Debug("IKE queue full: dropping a message", "from", remote)
	}
}

func (d *Daemon) ikeWorker() {
	for {
		select {
		case m := <-d.ikeQueue:
			if m.tcp {
				d.ike.ReceiveTCP(m.b, m.local, m.remote)
				continue
			}
			d.receiveIKE(m.b, m.local, m.remote)
		case <-d.stop:
			return
		}
	}
}

// ReceiveNATT takes IKE messages the data plane received on the NAT-T port.
func (d *Daemon) ReceiveNATT(b []byte, local netip.Addr, remote netip.AddrPort) {
	if d.ike == nil {
		return
	}
	// The UDP socket's GRO path can lose IP_PKTINFO, leaving local invalid; the engine then keeps
	// the address the IKE SA already has.
	d.enqueueIKE(b, netip.AddrPortFrom(local.Unmap(), d.opts.NATT.NATTPort()), netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()))
}

// IKE returns the IKE engine (nil without IKE).
func (d *Daemon) IKE() *engine.Engine { return d.ike }

// Apply makes the running state match cfg: manual SAs and connections that disappeared or changed
// are removed (their IKE SAs deleted), new and changed ones installed and started, unchanged ones
// left as they are. It returns every error it met; what could be applied is applied.
func (d *Daemon) Apply(cfg *config.Config) error {
	errs := d.loadCredentials(cfg)
	if err := d.applyPools(cfg); err != nil {
		errs = append(errs, err)
	}
	if err := d.applyRadius(cfg); err != nil {
		errs = append(errs, err)
	}
	d.mu.Lock()
	want := map[string]*config.ManualSA{}
	for _, m := range cfg.Manual {
		want[m.Name] = m
	}
	for name, st := range d.manual {
		if m, ok := want[name]; !ok || !sameManual(m, st.cfg) {
			errs = append(errs, d.removeManualLocked(name))
		}
	}
	for _, m := range cfg.Manual {
		if st, ok := d.manual[m.Name]; ok && sameManual(m, st.cfg) {
			st.cfg = m
			continue
		}
		errs = append(errs, d.installManualLocked(m))
	}
	var start, terminate []string
	if d.ike != nil {
		var cerrs []error
		start, terminate, cerrs = d.applyConnectionsLocked(cfg)
		errs = append(errs, cerrs...)
	} else if len(cfg.Connections) > 0 {
		errs = append(errs, errors.New("connections are configured but IKE is not running"))
	}
	d.cfg = cfg
	d.ppks.Store(newPPKTable(cfg.Secrets.PPK))
	d.mu.Unlock()
	if d.ike != nil {
		errs = append(errs, d.applyL2TP(cfg))
	}
	for _, name := range terminate {
		d.ike.Terminate(name)
		d.ikev1.Terminate(name)
	}
	for _, name := range start {
		if err := d.Initiate(name, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close deletes every IKE SA (sending Deletes), and removes everything the daemon installed.
func (d *Daemon) Close() error {
	if d.closing.Swap(true) {
		return nil // closed already
	}
	if srv := d.viciServer(); srv != nil {
		srv.Close()
		if d.logCancel != nil {
			d.logCancel()
		}
	}
	d.l2tpMu.Lock()
	if d.l2tp != nil {
		d.l2tp.close("shutdown")
		d.l2tp = nil
	}
	d.l2tpMu.Unlock()
	if d.ike != nil {
		d.ike.Close()
		d.ikev1.Close()
	}
	if d.updown != nil {
		d.updown.runner.Wait() // the "down" calls of the Child SAs just closed
	}
	if d.sockets != nil {
		d.sockets.close()
	}
	if d.stop != nil {
		close(d.stop)
	}
	d.closeVIPs()
	d.closeRadius()
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for name := range d.manual {
		errs = append(errs, d.removeManualLocked(name))
	}
	for _, ps := range d.policies {
		ps.mu.Lock()
		if ps.id != 0 && !ps.dead {
			d.backend.DeletePolicy(ps.id)
		}
		ps.dead = true
		ps.mu.Unlock()
	}
	d.policies = map[policyKey]*policyState{}
	return errors.Join(errs...)
}

func tsList(list []ts.Selector) string { return ts.FormatList(list) }
