package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/daemon/control"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/internal/ikeprobe"
	"github.com/goipsec/goipsec/internal/logging"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/status"
	"github.com/goipsec/goipsec/vici"
)

// The control socket's commands live in package control; this file connects them to the daemon
// (controlPort implements control.Daemon) and publishes SA events to its clients.

// control returns the daemon's command service, creating it on first use.
func (d *Daemon) control() *control.Service {
	if c := d.ctl.Load(); c != nil {
		return c
	}
	c := control.New(controlPort{d}, control.Options{Version: Version, Started: processStarted, Logger: d.opts.Logs.Logger("vici")})
	if d.ctl.CompareAndSwap(nil, c) {
		return c
	}
	return d.ctl.Load()
}

// VICI returns the command registry of the control socket (package control).
func (d *Daemon) VICI() *vici.Registry { return d.control().Registry() }

// ServeVICI opens the VICI socket at path (mode 0600) and serves it until Close. It fails when
// another process already serves that path.
func (d *Daemon) ServeVICI(path string) error {
	c := d.control()
	if err := c.Serve(path); err != nil {
		return err
	}
	d.logCancel = func() { c.Close() }
	return nil
}

func (d *Daemon) viciServer() *vici.Server {
	if c := d.ctl.Load(); c != nil {
		return c.Server()
	}
	return nil
}

var errNoReload = errors.New("this daemon was not started from a configuration file")

// SetReload tells the daemon how to reload its configuration file (goipsec reload, SIGHUP).
func (d *Daemon) SetReload(f func() error) { d.reload = f }

// publishIKE sends ike-updown for an IKE SA.
func (d *Daemon) publishIKE(sa ike.IKEInfo, up bool) {
	c := d.ctl.Load()
	if c == nil || c.Server() == nil {
		return
	}
	c.PublishIKE(saInfo(sa, up), up)
}

// publishChild sends child-updown for a Child SA.
func (d *Daemon) publishChild(sa ike.IKEInfo, ch *ike.ChildInstall, up bool) {
	c := d.ctl.Load()
	if c == nil || c.Server() == nil {
		return
	}
	ci := engine.ChildInfo{Name: ch.Name, SPIIn: ch.SPIIn, SPIOut: ch.SPIOut, Mode: ch.Mode, Transforms: ch.Proposal, ESN: ch.ESN,
		LocalTS: ch.LocalTS, RemoteTS: ch.RemoteTS, Created: time.Now()}
	if ch.Config != nil {
		ci.RekeyTime = ch.Config.RekeyTime
	}
	c.PublishChild(saInfo(sa, true), ci, ch.Encap, up)
}

// saInfo turns an event's IKE SA identification into a listing entry.
func saInfo(sa ike.IKEInfo, up bool) engine.SAInfo {
	st := ike.StateEstablished
	if !up {
		st = ike.StateDead
	}
	return engine.SAInfo{Name: sa.Conn, SPIi: sa.SPIi, SPIr: sa.SPIr, Initiator: sa.Initiator, State: st,
		Local: sa.Local, Remote: sa.Remote, LocalID: sa.LocalID.String(), RemoteID: sa.RemoteID.String(),
		Transforms: sa.Proposal, NAT: sa.NATLocal || sa.NATRemote, NATLocal: sa.NATLocal, NATRemote: sa.NATRemote}
}

// controlPort is the daemon as package control sees it.
type controlPort struct{ d *Daemon }

func (p controlPort) Status() status.Status { return p.d.Status() }

func (p controlPort) SAs() []engine.SAInfo {
	if p.d.ike == nil {
		return nil
	}
	return p.d.allSAs()
}

func (p controlPort) IKERunning() bool { return p.d.ike != nil }

func (p controlPort) Config() *config.Config {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	if p.d.cfg == nil {
		return &config.Config{}
	}
	return p.d.cfg
}

func (p controlPort) Apply(c *config.Config) error { return p.d.Apply(c) }

func (p controlPort) Reload() error {
	if p.d.reload == nil {
		return errNoReload
	}
	return p.d.reload()
}

func (p controlPort) Initiate(conn, child string) error  { return p.d.Initiate(conn, child) }
func (p controlPort) Terminate(conn string) (int, error) { return p.d.Terminate(conn) }
func (p controlPort) RekeyIKE(conn string) bool          { return p.d.ike != nil && p.d.ike.RekeyIKE(conn) }
func (p controlPort) RekeyChild(spi uint32) bool {
	return p.d.ike != nil && (p.d.ikev1.RekeyChild(spi) || p.d.ike.RekeyChild(spi))
}
func (p controlPort) DeleteChild(spi uint32) bool {
	return p.d.ike != nil && (p.d.ikev1.DeleteChildAs(spi, ike.ReasonLifetime) || p.d.ike.DeleteChild(spi))
}

func (p controlPort) LastFailure(conn string) (time.Time, string) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	f := p.d.lastFailure[conn]
	return f.when, f.err
}

func (p controlPort) RetransmitBudget() time.Duration { return retransmitBudget(p.d.opts.Daemon) }

func (p controlPort) SubscribeLog(level slog.Level, active func() bool, fn func(logging.Record)) func() {
	return p.d.opts.Logs.SubscribeWhile(level, active, fn)
}

func (p controlPort) Probe(ctx context.Context, dst netip.AddrPort, props []proposal.Proposal) ikeprobe.Result {
	return ikeprobe.Probe(ctx, dst, ikeprobe.Options{Mark: p.d.fwmark, Proposals: props})
}

// retransmitBudget is how long an exchange can take before the engine gives up on the peer, with
// a margin: the sum of every retransmission timeout.
func retransmitBudget(c config.Daemon) time.Duration {
	timeout, base, tries := c.RetransmitTimeout, c.RetransmitBase, c.RetransmitTries
	if timeout == 0 {
		timeout = 4 * time.Second
	}
	if base < 1 {
		base = 1.8
	}
	if tries == 0 {
		tries = 5
	}
	total, step := time.Duration(0), float64(timeout)
	for range tries + 1 {
		t := time.Duration(step)
		if c.RetransmitLimit > 0 && t > c.RetransmitLimit {
			t = c.RetransmitLimit
		}
		total += t
		step *= base
	}
	// IKE_SA_INIT and IKE_AUTH each may need the whole budget.
	return 2*total + 5*time.Second
}
