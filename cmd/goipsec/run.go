package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/daemon"
	"github.com/goipsec/goipsec/internal/logging"
	"github.com/goipsec/goipsec/internal/systemd"
	"github.com/goipsec/goipsec/metrics"
	"github.com/goipsec/goipsec/status"
)

func (a *cli) runCommand() *cobra.Command {
	var opts runOptions
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run goipsec in the foreground with a swanctl.conf-style configuration",
		Long: `run loads FILE (swanctl.conf syntax, see goipsec.conf(5) and docs/configuration.md), creates
the TUN device and sockets of the userspace data plane, installs the configured SAs and policies
and runs until SIGINT or SIGTERM, then removes everything it installed. SIGHUP reloads FILE:
changed and new SAs are installed, unchanged ones keep running untouched; a configuration with
errors is refused and the running state is kept.

Another daemon already serving the control socket is an error: give each daemon on a host its
own socket (--socket or daemon.vici_socket).

Under systemd (Type=notify) it reports READY=1 once its sockets and TUN device exist and every
connection with start_action = start is up or has failed once (at most --ready-timeout), pets
the watchdog (WatchdogSec=) while its state can be read, and logs to the journal with each
attribute as a GOIPSEC_* field.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts.socket = a.socket
			opts.logOut = cmd.ErrOrStderr()
			return runDaemon(ctx, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.path, "config", "c", "/etc/goipsec/goipsec.conf", "configuration file")
	cmd.Flags().DurationVar(&opts.readyTimeout, "ready-timeout", 60*time.Second,
		"under systemd, how long start-up waits for start_action = start connections before reporting ready")
	// For profiling the daemon under load (docs/performance.md): Go's /debug/pprof on a local
	// address. Hidden: it is a developer's tool, off unless asked for.
	cmd.Flags().StringVar(&opts.pprof, "debug-pprof", "", "serve Go's /debug/pprof on this address (developers)")
	cmd.Flags().MarkHidden("debug-pprof")
	return cmd
}

// runOptions are run's settings.
type runOptions struct {
	path         string
	socket       string // --socket: overrides daemon.vici_socket
	logOut       io.Writer
	readyTimeout time.Duration
	pprof        string
}

// logQueue is how many log records may wait for a slow output before records are dropped.
const logQueue = 16384

func newLogs(w io.Writer, l config.Log, h slog.Handler) *logging.Hub {
	levels := map[string]slog.Level{}
	for sub, lv := range l.Subsystems {
		levels[sub] = logging.ParseLevel(lv)
	}
	// The output is asynchronous: a stalled stderr or journal must not stall an IKE SA that logs.
	return logging.New(logging.Options{Out: w, Format: l.Format, Level: logging.ParseLevel(l.Level), Levels: levels, Handler: h,
		Queue: logQueue})
}

// journalHandler returns a journald handler when the daemon's stderr is the journal (started by
// systemd) and the configuration does not ask for JSON lines; nil otherwise.
func journalHandler(logOut io.Writer, format string) slog.Handler {
	f, ok := logOut.(*os.File)
	if !ok || format == "json" || !systemd.UnderJournal(os.Getenv("JOURNAL_STREAM"), f) {
		return nil
	}
	j, err := systemd.NewJournal(systemd.JournalSocket)
	if err != nil {
		return nil
	}
	return systemd.NewJournalHandler(j, "goipsec", nil)
}

func runDaemon(ctx context.Context, opts runOptions) error {
	path := opts.path
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if opts.socket != "" {
		cfg.Daemon.VICISocket = opts.socket
	}
	// Two daemons must not share a control socket: the second would either fail to serve it and
	// run uncontrollable, or take it over from the first. Refuse before touching anything.
	if err := socketFree(cfg.Daemon.VICISocket); err != nil {
		return err
	}
	logs := newLogs(opts.logOut, cfg.Daemon.Log, journalHandler(opts.logOut, cfg.Daemon.Log.Format))
	defer logs.Close()
	log := logs.Logger("cfg")
	tuneGC(ctx, log)
	if opts.pprof != "" {
		if err := servePprof(ctx, opts.pprof); err != nil {
			return err
		}
		log.Warn("serving /debug/pprof (a developer's tool)", "addr", opts.pprof)
	}
	notify, err := systemd.NewNotifier(os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		log.Warn("cannot notify systemd", "err", err)
	}
	defer notify.Close()
	// The data plane and the daemon point at each other (IKE on the NAT-T port, acquires); the
	// data plane is created first and reaches the daemon through this pointer.
	var dptr atomic.Pointer[daemon.Daemon]
	dp, err := newDataPlane(cfg, logs, &dptr)
	if err != nil {
		return err
	}
	defer dp.close()
	var keylog io.Writer
	if path := cfg.Daemon.Log.KeylogFile; path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open key log: %w", err)
		}
		defer f.Close()
		keylog = f
		log.Warn("key logging is on: IKE and ESP keys are written to " + path + " (debugging only)")
	}
	var collector atomic.Pointer[metrics.Collector]
	d, err := daemon.New(daemon.Options{Backend: dp.backend, Logs: logs, MTU: cfg.Daemon.MTU, NATT: dp.natt, TCP: dp.tcp, Daemon: cfg.Daemon, Keylog: keylog,
		OnHandshake: func(took time.Duration) {
			if c := collector.Load(); c != nil {
				c.ObserveHandshake(took)
			}
		}})
	if err != nil {
		return err
	}
	dptr.Store(d)
	defer d.Close()
	// A reload parses in the background: SIGTERM, or a newer reload, cancels one that is still
	// reading a large file; only the newest applies, and applies run one at a time.
	var reloads reloader
	reload := func(rctx context.Context) error {
		next, err := (&config.Parser{Context: rctx}).Load(path)
		if rctx.Err() != nil {
			log.Info("reload abandoned: a newer reload or shutdown replaced it", "config", path)
			return fmt.Errorf("reload of %s abandoned: %w", path, rctx.Err())
		}
		if err != nil {
			// Refuse the whole edit: the running state stays as it was.
			log.Error("reload refused, keeping the running configuration", "err", err)
			return err
		}
		reloads.applyMu.Lock()
		defer reloads.applyMu.Unlock()
		if rctx.Err() != nil {
			return fmt.Errorf("reload of %s abandoned: %w", path, rctx.Err())
		}
		if !reflect.DeepEqual(next.Daemon, cfg.Daemon) {
			log.Warn("changes to the daemon { } section take effect after a restart")
		}
		if err := d.Apply(next); err != nil {
			log.Error("reload applied with errors", "err", err)
			return err
		}
		log.Info("configuration reloaded", "config", path)
		return nil
	}
	d.SetReload(func() error { return reloads.run(ctx, reload) })
	viciState := "none"
	if sock := cfg.Daemon.VICISocket; sock != "" {
		if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
			err = fmt.Errorf("control socket %s: %w", sock, err)
			return err
		}
		if err := d.ServeVICI(sock); err != nil {
			// Someone else took the socket between the check and now, or it cannot be created:
			// a daemon nobody can control or stop cleanly is worse than none.
			return fmt.Errorf("control socket %s: %w", sock, err)
		}
		viciState = sock
	}
	if addr := cfg.Daemon.MetricsListen; addr != "" {
		c := metrics.New(d, metrics.BuildInfo{Version: version, Revision: vcsRevision()})
		collector.Store(c)
		bound, err := metrics.Serve(ctx, addr, c)
		if err != nil {
			return err
		}
		log.Info("metrics endpoint up", "url", "http://"+bound.String()+"/metrics")
	}
	// Connections start only now, so that the control socket and the metrics see them from the
	// first message on.
	applied := time.Now()
	if err := d.Apply(cfg); err != nil {
		log.Error("configuration applied with errors", "err", err)
	}
	log.Info("goipsec running", "config", path, "dataplane", dp.desc, "manual_sas", len(cfg.Manual), "connections", len(cfg.Connections), "vici", viciState)
	if notify != nil {
		waitStarted(ctx, d, applied, opts.readyTimeout)
		notify.Ready(readyStatus(d.Status()))
		if every, err := systemd.WatchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid()); err != nil {
			log.Warn("systemd watchdog", "err", err)
		} else if every > 0 {
			go watchdog(ctx, notify, d, every/2)
		}
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			notify.Stopping()
			log.Info("goipsec stopping: deleting SAs, removing routes and the TUN device")
			return nil
		case <-hup:
			go func() {
				notify.Reloading()
				if err := reloads.run(ctx, reload); err == nil || !errors.Is(err, context.Canceled) {
					notify.Ready(readyStatus(d.Status()))
				}
			}()
		}
	}
}

// reloader runs one reload at a time to its end: a new one cancels the one still parsing.
type reloader struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	gen     uint64
	applyMu sync.Mutex // applies run one at a time
}

func (r *reloader) run(parent context.Context, fn func(context.Context) error) error {
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
	}
	ctx, cancel := context.WithCancel(parent)
	r.gen++
	mine := r.gen
	r.cancel = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.gen == mine {
			r.cancel = nil
		}
		r.mu.Unlock()
		cancel()
	}()
	return fn(ctx)
}

// socketFree fails when a server answers on the control socket path.
func socketFree(path string) error {
	if path == "" {
		return nil
	}
	c, err := net.DialTimeout("unix", strings.TrimPrefix(path, "unix://"), 2*time.Second)
	if err != nil {
		return nil // absent or stale: ServeVICI replaces a stale one
	}
	c.Close()
	return fmt.Errorf("another daemon already serves the control socket %s: stop it, or give this one its own socket (goipsec run --socket PATH, or daemon.vici_socket; the CLI then needs --socket PATH or GOIPSEC_SOCKET=PATH)", path)
}

// waitStarted waits until every connection with a start_action = start child is up or has failed
// once since begin (when the configuration was applied), at most timeout: systemd's "started"
// then means the tunnels are up, or that trying is under way and `goipsec status` says why they
// are not.
func waitStarted(ctx context.Context, d *daemon.Daemon, begin time.Time, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		settled := true
		for _, c := range d.Status().Connections {
			if !startsItself(&c) || c.State == status.StateUp {
				continue
			}
			if c.LastFailure == nil || c.LastFailure.At.Before(begin) {
				settled = false
			}
		}
		if settled {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func startsItself(c *status.Connection) bool {
	for _, ch := range c.Children {
		if ch.StartAction == "start" {
			return true
		}
	}
	return false
}

// readyStatus is the STATUS= line systemctl status shows.
func readyStatus(st status.Status) string {
	up := 0
	var down []string
	for _, c := range st.Connections {
		if c.State == status.StateUp {
			up++
		} else if startsItself(&c) {
			down = append(down, c.Name+" "+c.State)
		}
	}
	s := fmt.Sprintf("%d of %d connections up", up, len(st.Connections))
	if len(down) > 0 {
		s += "; not up: " + strings.Join(down, ", ")
	}
	if len(st.Manual) > 0 {
		s += fmt.Sprintf("; %d manual SA pairs", len(st.Manual))
	}
	return s
}

// watchdog pets systemd's watchdog every interval, but only while the daemon can still produce
// a status snapshot within that interval: a daemon whose engine is stuck gets restarted.
func watchdog(ctx context.Context, n *systemd.Notifier, d *daemon.Daemon, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		done := make(chan status.Status, 1)
		go func() { done <- d.Status() }()
		select {
		case st := <-done:
			n.Watchdog()
			n.Status(readyStatus(st))
		case <-time.After(every):
		case <-ctx.Done():
			return
		}
	}
}
