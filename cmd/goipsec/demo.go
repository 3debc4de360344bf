package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/daemon"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/dataplane/userspace"
	"github.com/goipsec/goipsec/internal/netlab"
	"github.com/goipsec/goipsec/ts"
)

func newDemoCommand() *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a tunnel between two network namespaces and show ping and throughput (needs root)",
		Long: `demo creates two network namespaces joined by a veth pair, each with an inner subnet,
brings up an AES-256-GCM ESP-in-UDP tunnel between them with goipsec's userspace data plane,
pings across, measures TCP throughput through the tunnel and over the plain veth, prints a
report and removes everything it created (also on Ctrl-C or failure).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), time.Duration(seconds)*time.Second)
		},
	}
	cmd.Flags().IntVar(&seconds, "seconds", 3, "duration of each throughput measurement")
	return cmd
}

// demoSide is one end of the demo tunnel.
type demoSide struct {
	ns     *netlab.NS
	outer  netip.Addr
	inner  netip.Addr
	subnet netip.Prefix
	engine *userspace.Engine
	daemon *daemon.Daemon
}

func runDemo(ctx context.Context, out io.Writer, measure time.Duration) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("demo needs root (it creates network namespaces and TUN devices); try: sudo goipsec demo")
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	a := &demoSide{outer: netip.MustParseAddr("192.0.2.1"), inner: netip.MustParseAddr("10.1.0.1"), subnet: netip.MustParsePrefix("10.1.0.0/24")}
	b := &demoSide{outer: netip.MustParseAddr("192.0.2.2"), inner: netip.MustParseAddr("10.2.0.1"), subnet: netip.MustParsePrefix("10.2.0.0/24")}
	pid := os.Getpid()
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		say("cleaned up: namespaces, TUN devices, routes removed")
	}()

	say("goipsec demo: two namespaces, an IKEv2 (PSK) keyed AES-256-GCM ESP-in-UDP tunnel between them")
	for i, s := range []*demoSide{a, b} {
		name := fmt.Sprintf("goipsec-demo%d-%c", pid, 'a'+i)
		if s.ns, err = netlab.NewNS(name); err != nil {
			return err
		}
		ns := s.ns
		cleanups = append(cleanups, func() { ns.Delete() })
	}
	if err := netlab.Link(a.ns, "veth-a", []string{a.outer.String() + "/24"}, b.ns, "veth-b", []string{b.outer.String() + "/24"}); err != nil {
		return err
	}
	for _, s := range []*demoSide{a, b} {
		// The inner subnet lives on loopback: this namespace is a gateway for it.
		if err := s.ns.AddAddr("lo", netip.PrefixFrom(s.inner, s.subnet.Bits()).String()); err != nil {
			return err
		}
	}
	say("  %s: outer %s, inner %s", a.ns.Name, a.outer, a.subnet)
	say("  %s: outer %s, inner %s", b.ns.Name, b.outer, b.subnet)

	// Each side runs the same pieces as `goipsec run`: a userspace data plane and the daemon with
	// IKEv2, configured in swanctl.conf syntax; B answers, A initiates.
	psk := make([]byte, 24)
	rand.Read(psk)
	for i, s := range []*demoSide{b, a} {
		s := s
		peer := a
		if s == a {
			peer = b
		}
		conf := demoConf(s, peer, hex.EncodeToString(psk), i == 1)
		cfg, err := parseDemoConf(s.ns.Name, conf)
		if err != nil {
			return err
		}
		if err := s.ns.Do(func() error {
			var err error
			var dptr atomic.Pointer[daemon.Daemon]
			s.engine, err = userspace.New(userspace.Config{TunName: "goipsec0",
				IKE: func(pkt []byte, local netip.Addr, remote netip.AddrPort) {
					if d := dptr.Load(); d != nil {
						d.ReceiveNATT(pkt, local, remote)
					}
				}})
			if err != nil {
				return err
			}
			s.daemon, err = daemon.New(daemon.Options{Backend: s.engine, MTU: 1400, NATT: s.engine, Daemon: cfg.Daemon})
			if err != nil {
				s.engine.Close()
				return err
			}
			dptr.Store(s.daemon)
			return nil
		}); err != nil {
			return fmt.Errorf("start goipsec in %s: %w", s.ns.Name, err)
		}
		cleanups = append(cleanups, func() { s.daemon.Close(); s.engine.Close() })
		if err := s.daemon.Apply(cfg); err != nil {
			return fmt.Errorf("configure %s: %w", s.ns.Name, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.engine.SAs()) < 2 || len(b.engine.SAs()) < 2 {
		if time.Now().After(deadline) {
			return errors.New("the IKEv2 negotiation did not complete within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, sa := range a.daemon.IKE().SAs() {
		say("IKEv2 (PSK) established: IKE SA %016x_i %016x_r, %s", sa.SPIi, sa.SPIr, sa.Proposal)
		for _, c := range sa.Children {
			say("  Child SA %s: %s <=> %s, ESP %s in UDP, SPIs 0x%08x (in) / 0x%08x (out)", c.Name,
				ts.FormatList(c.LocalTS), ts.FormatList(c.RemoteTS), c.Proposal, c.SPIIn, c.SPIOut)
		}
	}

	ping, err := a.ns.Ping(a.inner, b.inner, 5, 200*time.Millisecond, 2*time.Second)
	if err != nil {
		return err
	}
	say("ping %s -> %s through the tunnel: %s", a.inner, b.inner, ping)
	if ping.Received == 0 {
		return errors.New("no ping reply came back through the tunnel")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	say("measuring TCP throughput for %s each ...", measure)
	tunnel, err := netlab.Throughput(ctx, a.ns, a.inner, b.ns, netip.AddrPortFrom(b.inner, 5201), measure)
	if err != nil {
		return fmt.Errorf("throughput through the tunnel: %w", err)
	}
	plain, err := netlab.Throughput(ctx, a.ns, a.outer, b.ns, netip.AddrPortFrom(b.outer, 5202), measure)
	if err != nil {
		return fmt.Errorf("throughput over plain veth: %w", err)
	}
	say("")
	say("  through goipsec (AES-256-GCM, ESP in UDP): %6.2f Gbit/s", tunnel.Gbps())
	say("  plain veth, no tunnel:                     %6.2f Gbit/s  (tunnel reaches %.0f%%)", plain.Gbps(), 100*tunnel.Gbps()/plain.Gbps())
	say("")
	say("SAs in %s:", a.ns.Name)
	printSAs(out, a.engine.SAs())
	return nil
}

func printSAs(out io.Writer, sas []dataplane.SAInfo) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  name\tdir\tspi\tpeer\tmode\tpackets\tbytes\tdrops")
	for _, sa := range sas {
		p := sa.Params
		peer := p.Dst
		if p.Direction == dataplane.In {
			peer = p.Src
		}
		fmt.Fprintf(tw, "  %s\t%s\t0x%08x\t%s\t%s/%s\t%d\t%d\t%d\n", p.Name, p.Direction, p.SPI, peer,
			p.Protocol, p.Mode, sa.Stats.Packets, sa.Stats.Bytes, sa.Stats.Drops.Total())
	}
	tw.Flush()
}

// demoConf is one side's configuration, in the swanctl.conf syntax `goipsec run` reads.
func demoConf(self, peer *demoSide, psk string, initiator bool) string {
	start := "none"
	if initiator {
		start = "start"
	}
	return fmt.Sprintf(`connections {
    demo {
        local_addrs = %s
        remote_addrs = %s
        proposals = aes256gcm16-prfsha256-x25519
        encap = yes
        local {
            auth = psk
            id = %s
        }
        remote {
            auth = psk
            id = %s
        }
        children {
            net {
                local_ts = %s
                remote_ts = %s
                esp_proposals = aes256gcm16
                start_action = %s
            }
        }
    }
}
secrets {
    ike-demo {
        secret = 0x%s
    }
}
`, self.outer, peer.outer, self.outer, peer.outer, self.subnet, peer.subnet, start, psk)
}

func parseDemoConf(name string, conf string) (*config.Config, error) {
	tree, err := config.Parse(name+".conf", []byte(conf))
	if err != nil {
		return nil, err
	}
	return config.FromTree(tree)
}
