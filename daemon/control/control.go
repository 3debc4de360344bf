// Package control serves goipsec's control socket: the VICI commands strongSwan's swanctl sends,
// and goipsec's own (goipsec-status, goipsec-reload, goipsec-probe) that its CLI sends. It talks
// to the daemon only through the Daemon interface declared here, so the handlers are tested
// in-process against a fake (control_test.go) and any IKE core that offers these operations can
// sit behind them.
//
// Commands are grouped by topic, one file each (info.go, conns.go, sas.go, creds.go, goipsec.go);
// a new group adds a file with a method that registers its commands and one line in
// Service.Registry.
package control

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/internal/ikeprobe"
	"github.com/goipsec/goipsec/internal/logging"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/status"
	"github.com/goipsec/goipsec/vici"
)

// Daemon is what the command handlers need from the daemon core.
type Daemon interface {
	// Status is a snapshot in the documented schema (package status).
	Status() status.Status
	// SAs lists the IKE SAs with their Child SAs; nil when IKE is not running.
	SAs() []engine.SAInfo
	// IKERunning reports whether the daemon runs IKE (false: manually keyed SAs only).
	IKERunning() bool

	// Config is the configuration in force (never nil); Apply makes the running state match an
	// edited copy of it (load-conn, unload-conn, load-shared, ...), changing only what changed.
	Config() *config.Config
	Apply(*config.Config) error
	// Reload re-reads the configuration file the daemon was started with.
	Reload() error

	// Initiate starts a connection's IKE SA (and child, or its start children when ""); it
	// returns once the first message is sent.
	Initiate(conn, child string) error
	// Terminate deletes the connection's IKE SAs and returns how many there were.
	Terminate(conn string) (int, error)
	RekeyIKE(conn string) bool
	RekeyChild(spiIn uint32) bool
	DeleteChild(spiIn uint32) bool
	// LastFailure is the connection's last failed negotiation; the zero time when none failed.
	LastFailure(conn string) (time.Time, string)
	// RetransmitBudget is how long an initiation may take before the engine gives up on the peer.
	RetransmitBudget() time.Duration

	// SubscribeLog delivers log records at level or above to fn while active reports true (nil:
	// always), until cancel is called. fn must not block or log.
	SubscribeLog(level slog.Level, active func() bool, fn func(logging.Record)) (cancel func())
	// Probe sends an IKE probe offering proposals to dst from the daemon's network namespace and
	// with its routing mark, as the daemon's IKE messages would travel (package ikeprobe).
	Probe(ctx context.Context, dst netip.AddrPort, proposals []proposal.Proposal) ikeprobe.Result
	// Credentials is the credential store (certificates, keys, authorities; certs.go).
	Credentials() *credentials.Store
}

// Options configure a Service.
type Options struct {
	// Version is reported by the version command.
	Version string
	// Started is when the daemon started (for stats).
	Started time.Time
	// Logger receives the VICI server's own log.
	Logger *slog.Logger
	// Poll is how often initiate and terminate look at the SAs while waiting (default 20 ms).
	Poll time.Duration
}

// Service is the control socket's set of commands and the server that publishes events.
type Service struct {
	d    Daemon
	opts Options
	srv  atomic.Pointer[vici.Server]

	mu        sync.Mutex
	logCancel func() // the "log" event subscription while serving
}

// New returns the commands over d.
func New(d Daemon, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Poll <= 0 {
		opts.Poll = 20 * time.Millisecond
	}
	if opts.Started.IsZero() {
		opts.Started = time.Now()
	}
	return &Service{d: d, opts: opts}
}

// Registry returns every command. strongSwan commands not listed are answered by vici.Registry with
// an error naming them.
func (s *Service) Registry() *vici.Registry {
	r := vici.NewRegistry()
	for _, group := range []func(*vici.Registry){
		s.infoCommands,     // info.go
		s.connCommands,     // conns.go
		s.saCommands,       // sas.go
		s.credCommands,     // creds.go
		s.certCommands,     // certs.go
		s.poolCommands,     // pools.go
		s.redirectCommands, // redirect.go
		s.goipsecCommands,  // goipsec.go
	} {
		group(r)
	}
	return r
}

// Serve opens the unix socket at path (mode 0600) and serves it until Close; log records are
// published as "log" events to clients that registered for them.
func (s *Service) Serve(path string) error {
	ln, err := vici.ListenUnix(path)
	if err != nil {
		return err
	}
	srv := vici.NewServer(s.Registry(), s.opts.Logger)
	s.srv.Store(srv)
	go srv.Serve(ln)
	// Records are built only while a `swanctl --log` / `goipsec log` client listens.
	cancel := s.d.SubscribeLog(slog.LevelDebug, func() bool { return srv.Listening("log") }, func(r logging.Record) {
		level := "1"
		if r.Level < slog.LevelInfo {
			level = "2"
		}
		srv.Publish("log", vici.NewMessage().Set("group", strings.ToUpper(r.Subsys)).Set("level", level).Set("thread", "0").Set("msg", recordText(r)))
	})
	s.mu.Lock()
	s.logCancel = cancel
	s.mu.Unlock()
	return nil
}

// Server is the VICI server once Serve ran, or nil.
func (s *Service) Server() *vici.Server { return s.srv.Load() }

// Close stops serving and ends the log subscription.
func (s *Service) Close() error {
	s.mu.Lock()
	cancel := s.logCancel
	s.logCancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if srv := s.srv.Load(); srv != nil {
		return srv.Close()
	}
	return nil
}

func recordText(r logging.Record) string {
	if r.Attrs != "" {
		return r.Msg + " " + r.Attrs
	}
	return r.Msg
}

// PublishIKE sends ike-updown for an IKE SA to the clients listening for it.
func (s *Service) PublishIKE(sa engine.SAInfo, up bool) {
	srv := s.srv.Load()
	if srv == nil || !srv.Listening("ike-updown") {
		return
	}
	m := vici.NewMessage()
	if up {
		m.Set("up", "yes")
	}
	ikeSAMessage(m.AddSection(sa.Name), sa, 1)
	srv.Publish("ike-updown", m)
}

// PublishChild sends child-updown for a Child SA of sa.
func (s *Service) PublishChild(sa engine.SAInfo, c engine.ChildInfo, encap, up bool) {
	srv := s.srv.Load()
	if srv == nil || !srv.Listening("child-updown") {
		return
	}
	m := vici.NewMessage()
	if up {
		m.Set("up", "yes")
	}
	sec := m.AddSection(sa.Name)
	ikeSAMessage(sec, sa, 1)
	st := status.ChildSA{UDPEncap: encap, LocalTS: tsStrings(c.LocalTS), RemoteTS: tsStrings(c.RemoteTS)}
	childSAMessage(sec.AddSection("child-sas").AddSection(fmt.Sprintf("%s-%d", c.Name, c.SPIIn)), c, &st, 1)
	srv.Publish("child-updown", m)
}
