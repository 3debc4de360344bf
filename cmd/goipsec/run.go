package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/daemon"
	"github.com/goipsec/goipsec/internal/logging"
	"github.com/goipsec/goipsec/metrics"
)

func newRunCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run goipsec in the foreground with a swanctl.conf-style configuration",
		Long: `run loads FILE (swanctl.conf syntax, see docs/configuration.md), creates the TUN device
and sockets of the userspace data plane, installs the configured SAs and policies and runs until
SIGINT or SIGTERM, then removes everything it installed. SIGHUP reloads FILE: changed and new
SAs are installed, unchanged ones keep running untouched; a configuration with errors is refused
and the running state is kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDaemon(ctx, path, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/goipsec/goipsec.conf", "configuration file")
	return cmd
}

func newLogs(w io.Writer, l config.Log) *logging.Hub {
	levels := map[string]slog.Level{}
	for sub, lv := range l.Subsystems {
		levels[sub] = logging.ParseLevel(lv)
	}
	return logging.New(logging.Options{Out: w, Format: l.Format, Level: logging.ParseLevel(l.Level), Levels: levels})
}

func runDaemon(ctx context.Context, path string, logOut io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logs := newLogs(logOut, cfg.Daemon.Log)
	log := logs.Logger("cfg")
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
	d, err := daemon.New(daemon.Options{Backend: dp.backend, Logs: logs, MTU: cfg.Daemon.MTU, NATT: dp.natt, Daemon: cfg.Daemon, Keylog: keylog,
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
	reload := func() error {
		next, err := config.Load(path)
		if err != nil {
			// Refuse the whole edit: the running state stays as it was.
			log.Error("reload refused, keeping the running configuration", "err", err)
			return err
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
	d.SetReload(reload)
	if sock := cfg.Daemon.VICISocket; sock != "" {
		// Without its control socket the daemon still protects traffic; say so loudly and go on
		// (strongSwan's charon, too, runs on when its vici plugin cannot open the socket).
		if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
			log.Error("control socket unavailable: goipsec status/up/down and swanctl will not work", "err", err)
		} else if err := d.ServeVICI(sock); err != nil {
			log.Error("control socket unavailable: goipsec status/up/down and swanctl will not work", "err", err)
		}
	}
	if addr := cfg.Daemon.MetricsListen; addr != "" {
		c := metrics.New(d)
		collector.Store(c)
		bound, err := metrics.Serve(ctx, addr, c)
		if err != nil {
			return err
		}
		log.Info("metrics endpoint up", "url", "http://"+bound.String()+"/metrics")
	}
	// Connections start only now, so that the control socket and the metrics see them from the
	// first message on.
	if err := d.Apply(cfg); err != nil {
		log.Error("configuration applied with errors", "err", err)
	}
	log.Info("goipsec running", "config", path, "dataplane", dp.desc, "manual_sas", len(cfg.Manual), "connections", len(cfg.Connections), "vici", cfg.Daemon.VICISocket)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			log.Info("goipsec stopping: deleting SAs, removing routes and the TUN device")
			return nil
		case <-hup:
			reload()
		}
	}
}
