package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/internal/ikebench"
)

func newBenchCommand() *cobra.Command {
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Load generators for measuring IPsec peers",
		Args:  cobra.NoArgs,
	}
	bench.AddCommand(newBenchIKECommand())
	return bench
}

type benchIKEFlags struct {
	peer        string
	source      string
	nattPort    uint16
	count       int
	concurrency int
	spec        ikebench.Spec
	delete      bool
	timeout     time.Duration
	retries     int
	json        bool
	cpuProfile  string
	certs       benchCertFlags // certs.go
}

func newBenchIKECommand() *cobra.Command {
	var f benchIKEFlags
	cmd := &cobra.Command{
		Use:   "ike --peer ADDR[:PORT] --psk KEY",
		Short: "Run IKEv2 handshakes against a responder as fast as it answers",
		Long: `ike runs --count IKE_SA_INIT + IKE_AUTH handshakes (PSK authentication, one Child SA)
against the responder at --peer, --concurrency of them in flight at once, and reports handshakes
per second, failures by reason, retransmissions and latency percentiles (first IKE_SA_INIT request
to verified IKE_AUTH response). With --delete (the default) each IKE SA is deleted with an
INFORMATIONAL exchange once it is up, so the responder does not accumulate SAs; a handshake counts
as completed when that Delete is answered. Nothing is installed locally: no data plane, no daemon.

The responder needs a PSK connection that accepts these handshakes (remote_addrs = %any, the same
proposals and traffic selectors). COOKIE and INVALID_KE_PAYLOAD answers are followed; a responder
whose NAT detection says to float (strongSwan's kernel-libipsec, goipsec with encap = yes) is
followed to its NAT-T port. See docs/performance.md, "IKE handshakes per second".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBenchIKE(ctx, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.peer, "peer", "", "responder address, ADDR or ADDR:PORT (port 500 by default)")
	fl.StringVar(&f.source, "source", "", "local address to send from (default: the kernel's choice)")
	fl.Uint16Var(&f.nattPort, "natt-port", ikebench.DefaultNATTPort, "responder's NAT-T port, used when it asks to float")
	fl.IntVar(&f.count, "count", 1000, "handshakes to run")
	fl.IntVar(&f.concurrency, "concurrency", 16, "handshakes in flight at once")
	fl.StringVar(&f.spec.PSK, "psk", "", "preshared key: text, 0x + hex or 0s + base64")
	fl.StringVar(&f.spec.ID, "id", "%any", "local identity (%any: the local IP address)")
	fl.StringVar(&f.spec.RemoteID, "remote-id", "%any", "identity the responder must authenticate as (%any: any)")
	fl.StringVar(&f.spec.Proposal, "proposal", "aes256gcm16-prfsha256-x25519", "IKE proposals (swanctl.conf syntax)")
	fl.StringVar(&f.spec.ESP, "esp", "aes256gcm16", "ESP proposals of the Child SA (swanctl.conf syntax)")
	fl.StringVar(&f.spec.LocalTS, "local-ts", "dynamic", "local traffic selectors of the Child SA")
	fl.StringVar(&f.spec.RemoteTS, "remote-ts", "dynamic", "remote traffic selectors of the Child SA")
	fl.BoolVar(&f.delete, "delete", true, "delete each IKE SA after it is up (--delete=false keeps them at the responder)")
	fl.DurationVar(&f.timeout, "timeout", ikebench.DefaultTimeout, "wait for a response this long before retransmitting")
	fl.IntVar(&f.retries, "retries", ikebench.DefaultRetries, "retransmissions before a handshake fails")
	fl.BoolVar(&f.json, "json", false, "print the result as JSON")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator to this file (go tool pprof)")
	fl.StringVar(&f.certs.cert, "cert", "", "authenticate with this certificate (and --key) instead of the PSK")
	fl.StringVar(&f.certs.key, "key", "", "private key of --cert")
	fl.StringVar(&f.certs.cacert, "cacert", "", "CA certificate the responder's certificate must chain to (with --cert)")
	cmd.MarkFlagRequired("peer")
	cmd.MarkFlagRequired("psk")
	return cmd
}

func runBenchIKE(ctx context.Context, f benchIKEFlags, out io.Writer) error {
	peer, err := ikebench.ParsePeer(f.peer)
	if err != nil {
		return err
	}
	var source netip.Addr
	if f.source != "" {
		if source, err = netip.ParseAddr(f.source); err != nil {
			return fmt.Errorf("--source: %w", err)
		}
	}
	if f.retries < 0 || f.timeout <= 0 {
		return errors.New("--timeout must be positive and --retries not negative")
	}
	ikeCfg, child, err := f.spec.Build()
	if err != nil {
		return err
	}
	if err := f.certs.apply(ikeCfg); err != nil {
		return err
	}
	cfg := ikebench.Config{Peer: peer, PeerNATTPort: f.nattPort, Source: source, IKE: ikeCfg, Child: child,
		Count: f.count, Concurrency: f.concurrency, Delete: f.delete, Timeout: f.timeout, Retries: f.retries}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpuBefore := processCPU()
	res, runErr := ikebench.Run(ctx, cfg)
	if res == nil {
		return runErr
	}
	// The generator's own CPU time tells whether it, rather than the responder, set the pace.
	cpu := processCPU() - cpuBefore
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(benchJSON(f, peer, res, cpu)); err != nil {
			return err
		}
	} else {
		printBench(out, f, peer, res, cpu)
	}
	if runErr != nil {
		return fmt.Errorf("interrupted after %d of %d handshakes: %w", res.Completed+res.Failed, f.count, runErr)
	}
	return nil
}

// processCPU is the user and system CPU time this process has used so far.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perHandshake divides d over the handshakes started.
func perHandshake(d time.Duration, r *ikebench.Result) time.Duration {
	if r.Started == 0 {
		return 0
	}
	return d / time.Duration(r.Started)
}

func printBench(w io.Writer, f benchIKEFlags, peer netip.AddrPort, r *ikebench.Result, cpu time.Duration) {
	del := "on"
	if !f.delete {
		del = "off"
	}
	fmt.Fprintf(w, "IKE handshakes against %s: %s, ESP %s, concurrency %d, delete %s\n", peer, f.spec.Proposal, f.spec.ESP, f.concurrency, del)
	fmt.Fprintf(w, "  completed    %d of %d in %.3fs: %.1f handshakes/s\n", r.Completed, r.Started, r.Elapsed.Seconds(), r.Rate())
	fmt.Fprintf(w, "  failed       %d\n", r.Failed)
	fmt.Fprintf(w, "  retransmits  %d, cookies %d, INVALID_KE %d, floated to NAT-T %d, unmatched datagrams %d\n",
		r.Retransmits, r.Cookies, r.InvalidKE, r.NATT, r.Unmatched)
	if r.Completed > 0 {
		fmt.Fprintf(w, "  latency      p50 %s  p90 %s  p99 %s  max %s\n",
			ms(r.Percentile(50)), ms(r.Percentile(90)), ms(r.Percentile(99)), ms(r.Percentile(100)))
	}
	if r.Elapsed > 0 {
		fmt.Fprintf(w, "  generator    %.0fµs CPU per handshake, %.0f%% of one core\n",
			float64(perHandshake(cpu, r))/float64(time.Microsecond), 100*cpu.Seconds()/r.Elapsed.Seconds())
	}
	for _, fr := range r.SortedFailures() {
		fmt.Fprintf(w, "  %8d × %s\n", fr.Count, fr.Reason)
	}
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}

// benchResult is the --json output; durations are in milliseconds, the elapsed time in seconds.
type benchResult struct {
	Peer        string             `json:"peer"`
	Proposal    string             `json:"proposal"`
	ESP         string             `json:"esp"`
	Concurrency int                `json:"concurrency"`
	Delete      bool               `json:"delete"`
	Started     int                `json:"started"`
	Completed   int                `json:"completed"`
	Failed      int                `json:"failed"`
	Failures    map[string]int     `json:"failures"`
	Retransmits int                `json:"retransmits"`
	Cookies     int                `json:"cookies"`
	InvalidKE   int                `json:"invalid_ke"`
	NATT        int                `json:"natt"`
	Unmatched   int                `json:"unmatched"`
	Seconds     float64            `json:"elapsed_seconds"`
	Rate        float64            `json:"handshakes_per_second"`
	LatencyMS   map[string]float64 `json:"latency_ms"`
	// GeneratorCPU is this process's CPU time per handshake, in microseconds.
	GeneratorCPU float64 `json:"generator_cpu_us_per_handshake"`
}

func benchJSON(f benchIKEFlags, peer netip.AddrPort, r *ikebench.Result, cpu time.Duration) benchResult {
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return benchResult{
		Peer: peer.String(), Proposal: f.spec.Proposal, ESP: f.spec.ESP, Concurrency: f.concurrency, Delete: f.delete,
		Started: r.Started, Completed: r.Completed, Failed: r.Failed, Failures: r.Failures,
		Retransmits: r.Retransmits, Cookies: r.Cookies, InvalidKE: r.InvalidKE, NATT: r.NATT, Unmatched: r.Unmatched,
		Seconds: r.Elapsed.Seconds(), Rate: r.Rate(),
		LatencyMS: map[string]float64{
			"p50": msf(r.Percentile(50)), "p90": msf(r.Percentile(90)), "p99": msf(r.Percentile(99)), "max": msf(r.Percentile(100)),
		},
		GeneratorCPU: float64(perHandshake(cpu, r)) / float64(time.Microsecond),
	}
}
