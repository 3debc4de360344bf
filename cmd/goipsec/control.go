package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/daemon"
	"github.com/goipsec/goipsec/vici"
)

// The control commands talk to a running `goipsec run` over its VICI socket, the same socket
// strongSwan's swanctl can use.

const defaultSocket = "/run/goipsec/vici.sock"

var socketPath = defaultSocket

func dialDaemon() (*vici.Client, error) {
	c, err := vici.Dial(socketPath)
	if err != nil {
		return nil, fmt.Errorf("cannot reach goipsec at %s (is `goipsec run` running, and is daemon.vici_socket the same?): %w", socketPath, err)
	}
	return c, nil
}

func call(ctx context.Context, cmd string, req *vici.Message) (*vici.Message, error) {
	c, err := dialDaemon()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.Call(ctx, cmd, req)
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, err
	}
	return resp, nil
}

func fetchStatus(ctx context.Context) (*daemon.Status, error) {
	resp, err := call(ctx, "goipsec-status", vici.NewMessage())
	if err != nil {
		return nil, err
	}
	var st daemon.Status
	if err := json.Unmarshal([]byte(resp.Get("json")), &st); err != nil {
		return nil, fmt.Errorf("malformed status from the daemon: %w", err)
	}
	return &st, nil
}

func newControlCommands() []*cobra.Command {
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show connections, SAs and traffic of the running daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := fetchStatus(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var child string
	up := &cobra.Command{
		Use:   "up NAME",
		Short: "Bring a connection up (IKE SA and its children, or --child)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := vici.NewMessage().Set("ike", args[0])
			if child != "" {
				req.Set("child", child)
			}
			if _, err := call(cmd.Context(), "initiate", req); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is up\n", args[0])
			return nil
		},
	}
	up.Flags().StringVar(&child, "child", "", "only this child")

	down := &cobra.Command{
		Use:   "down NAME",
		Short: "Take a connection down (sends Delete for its IKE SAs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := call(cmd.Context(), "terminate", vici.NewMessage().Set("ike", args[0]))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is down (%s IKE SA(s) deleted)\n", args[0], resp.Get("terminated"))
			return nil
		},
	}

	reload := &cobra.Command{
		Use:   "reload",
		Short: "Apply the edited configuration file (unchanged connections and SAs keep running)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := call(cmd.Context(), "goipsec-reload", vici.NewMessage()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration reloaded")
			return nil
		},
	}

	logCmd := &cobra.Command{
		Use:   "log",
		Short: "Follow the daemon's log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dialDaemon()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			out := cmd.OutOrStdout()
			err = c.Listen(ctx, func(_ string, m *vici.Message) {
				fmt.Fprintf(out, "%s [%s] %s\n", time.Now().Format("15:04:05.000"), m.Get("group"), m.Get("msg"))
			}, "log")
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}

	doctor := &cobra.Command{
		Use:   "doctor NAME",
		Short: "Explain why a connection is not up",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := fetchStatus(cmd.Context())
			if err != nil {
				return err
			}
			return doctorReport(cmd.OutOrStdout(), st, args[0])
		},
	}

	for _, c := range []*cobra.Command{status, up, down, reload, logCmd, doctor} {
		c.Flags().StringVar(&socketPath, "socket", defaultSocket, "the daemon's VICI socket")
	}
	return []*cobra.Command{status, up, down, reload, logCmd, doctor}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String()
}

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func printStatus(w io.Writer, st *daemon.Status) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTION\tSTATE\tPEER\tLOCAL TS\tREMOTE TS\tALGORITHMS\tIN\tOUT\tREKEY IN\tUP")
	for _, c := range st.Connections {
		if len(c.IKESAs) == 0 {
			for _, ch := range c.Children {
				fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\n", c.Name, ch.Name, c.State, c.RemoteAddrs, ch.LocalTS, ch.RemoteTS, c.Proposals)
			}
			continue
		}
		for _, sa := range c.IKESAs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t%s\t\t\t\t%s\n", c.Name, strings.ToLower(sa.State), sa.Remote, sa.Proposal, ago(sa.Established))
			for _, ch := range sa.Children {
				mode := ch.Mode
				if ch.Encap {
					mode += "/udp"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s (%d pkts)\t%s (%d pkts)\t%s\t%s\n", ch.Name, mode,
					fmt.Sprintf("%08x/%08x", ch.SPIIn, ch.SPIOut), ch.LocalTS, ch.RemoteTS, ch.Proposal,
					bytesText(ch.BytesIn), ch.PacketsIn, bytesText(ch.BytesOut), ch.PacketsOut, ch.RekeyIn, ago(ch.Installed))
			}
		}
	}
	for _, m := range st.Manual {
		fmt.Fprintf(tw, "%s\tmanual\t%s\t%s\t%s\t%s\t%s (%d pkts)\t%s (%d pkts)\t-\t-\n", m.Name, m.Remote, m.LocalTS, m.RemoteTS, m.Proposal,
			bytesText(m.BytesIn), m.PacketsIn, bytesText(m.BytesOut), m.PacketsOut)
	}
	tw.Flush()
	for _, c := range st.Connections {
		if c.State != "up" && c.LastFailure != "" {
			fmt.Fprintf(w, "%s: last failure %s ago: %s\n", c.Name, ago(c.LastFailureAt), c.LastFailure)
		}
	}
	printCertificates(w, st.Certificates) // certs.go
}
