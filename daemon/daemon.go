// Package daemon wires goipsec together: it takes a loaded configuration, installs manually keyed
// SAs and (with IKE) negotiated ones into a data plane through dataplane.Backend, and applies an
// edited configuration on reload, changing only what changed.
package daemon

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ts"
)

// Options are the daemon's dependencies.
type Options struct {
	Backend dataplane.Backend
	Logger  *slog.Logger
	// MTU of the data plane's TUN device, for TFC padding "mtu".
	MTU int
}

// Daemon owns the running state derived from the configuration.
type Daemon struct {
	backend dataplane.Backend
	log     *slog.Logger
	mtu     int

	mu     sync.Mutex
	cfg    *config.Config
	manual map[string]*manualState
}

// New returns a daemon with nothing installed; call Apply with a configuration.
func New(opts Options) *Daemon {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Daemon{backend: opts.Backend, log: opts.Logger, mtu: opts.MTU, manual: map[string]*manualState{}}
}

// Apply makes the running state match cfg: manual SAs that disappeared or changed are removed,
// new and changed ones installed, unchanged ones left as they are. It returns every error it met;
// what could be applied is applied.
func (d *Daemon) Apply(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
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
	d.cfg = cfg
	return errors.Join(errs...)
}

// Close removes everything the daemon installed.
func (d *Daemon) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for name := range d.manual {
		errs = append(errs, d.removeManualLocked(name))
	}
	return errors.Join(errs...)
}

func tsList(list []ts.Selector) string { return ts.FormatList(list) }
