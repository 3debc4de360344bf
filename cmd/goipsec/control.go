package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	govici "github.com/strongswan/govici/vici"

	"github.com/goipsec/goipsec/vici"
)

// cli holds what the control commands share: the --socket flag.
type cli struct {
	socket string
}

func (a *cli) dial(ctx context.Context) (*client, error) { return dial(ctx, socketFor(a.socket)) }

func (a *cli) controlCommands() []*cobra.Command {
	return []*cobra.Command{a.statusCommand(), a.upCommand(), a.downCommand(), a.reloadCommand(), a.logCommand(), a.doctorCommand()}
}

func (a *cli) statusCommand() *cobra.Command {
	var asJSON, watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show connections, SAs and traffic of the running daemon",
		Long: `status shows every connection (or only NAME): its state (up, degraded, connecting, down),
identities, IKE SPIs, negotiated algorithms, NAT, timers, and each Child SA with its selectors
and traffic. A connection is "degraded" when its IKE SA is up but a Child SA it should have is
missing: no traffic is protected for it.

--json prints the same snapshot in the stable schema documented in docs/status-json.md.
--watch shows a live view with each tunnel's throughput over the last minutes (q quits).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if watch {
				if asJSON {
					return errors.New("--watch and --json do not go together: for a feed, poll `goipsec status --json`")
				}
				return watchStatus(cmd.Context(), c, name, interval, cmd.InOrStdin(), cmd.OutOrStdout())
			}
			st, err := c.status(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (docs/status-json.md)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "live view with throughput per tunnel")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh interval of --watch")
	return cmd
}

func (a *cli) upCommand() *cobra.Command {
	var child string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "up NAME",
		Short: "Bring a connection up (IKE SA and its children, or --child) and wait for it",
		Long: `up initiates NAME and waits until its Child SA is installed, printing the daemon's IKE
log lines for it as it goes. After --timeout it gives up waiting (the daemon keeps trying in the
background, as its retransmission settings say); --timeout 0 returns as soon as the first message
is sent.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			req := map[string]string{"ike": args[0]}
			if child != "" {
				req["child"] = child
			}
			// VICI's timeout: milliseconds to wait, negative for "do not wait".
			req["timeout"] = "-1"
			if timeout > 0 {
				req["timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout+10*time.Second)
			defer cancel()
			progress := cmd.ErrOrStderr()
			err = c.stream(ctx, "initiate", "control-log", req, func(m *vici.Message) {
				fmt.Fprintf(progress, "%s %s\n", time.Now().Format("15:04:05"), m.Get("msg"))
			})
			if err != nil {
				return err
			}
			if timeout == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: initiated (not waiting: `goipsec status %s` shows the outcome)\n", args[0], args[0])
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is up\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&child, "child", "", "only this child")
	cmd.Flags().DurationVarP(&timeout, "timeout", "t", 30*time.Second, "how long to wait for the Child SA (0: do not wait)")
	return cmd
}

func (a *cli) downCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "down NAME",
		Short: "Take a connection down (sends Delete for its IKE SAs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.status(cmd.Context(), args[0])
			if err != nil {
				return err // names the configured connections when NAME is not one
			}
			if conn := st.Connection(args[0]); conn != nil && len(conn.IKESAs) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is already down\n", args[0])
				return nil
			}
			resp, err := c.call(cmd.Context(), "terminate", map[string]string{"ike": args[0], "timeout": "10000"})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is down (%s IKE SA(s) deleted)\n", args[0], str(resp, "terminated"))
			return nil
		},
	}
}

func (a *cli) reloadCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Apply the edited configuration file (unchanged connections and SAs keep running)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.call(cmd.Context(), "goipsec-reload", nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration reloaded")
			return nil
		},
	}
}

func (a *cli) logCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "log",
		Short: "Follow the daemon's log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return followLog(ctx, c, cmd.OutOrStdout())
		},
	}
}

func followLog(ctx context.Context, c *client, out io.Writer) error {
	events := make(chan govici.Event, 256)
	c.s.NotifyEvents(events)
	defer c.s.StopEvents(events)
	if err := c.s.Subscribe("log"); err != nil {
		return c.failure("log", nil, err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("the daemon at %s closed the connection", c.path)
			}
			fmt.Fprintf(out, "%s [%s] %s\n", ev.Timestamp.Format("15:04:05.000"), str(ev.Message, "group"), str(ev.Message, "msg"))
		}
	}
}

func (a *cli) doctorCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor NAME",
		Short: "Explain why a connection is not up",
		Long: `doctor prints what is configured for NAME, its state, the last negotiation failure with
advice, and whether an IKE responder answers at the peer's addresses on udp/500 and udp/4500.
The probe runs inside the daemon (its network namespace, its routing mark) and sends one
IKE_SA_INIT that no responder accepts: a live peer answers NO_PROPOSAL_CHOSEN, a closed port
ICMP port unreachable, a dead peer or a firewall nothing. The peer logs the probe as a
negotiation with an unacceptable proposal.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.status(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			probes, err := c.call(cmd.Context(), "goipsec-probe", map[string]string{"ike": args[0]})
			var results []probeLine
			if err == nil {
				for _, k := range probes.Keys() {
					if sec, ok := probes.Get(k).(*govici.Message); ok {
						results = append(results, probeLine{Target: k, Verdict: str(sec, "verdict"), Detail: str(sec, "detail")})
					}
				}
			} else {
				results = append(results, probeLine{Target: "probe", Verdict: "error", Detail: err.Error()})
			}
			return doctorReport(cmd.OutOrStdout(), st, args[0], results, time.Now())
		},
	}
}
