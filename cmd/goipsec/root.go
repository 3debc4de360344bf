package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/daemon"
)

// version is set at link time (-ldflags "-X main.version=...") for releases.
var version = "0.1.0-dev"

func newRootCommand() *cobra.Command {
	a := &cli{}
	root := &cobra.Command{
		Use:   "goipsec",
		Short: "IPsec (ESP, AH, IKEv2) with a userspace data plane",
		Long: `goipsec is an IPsec implementation: IKEv2, ESP and AH in tunnel and transport mode, on its own
userspace data plane (a TUN device and UDP/raw sockets). It reads strongSwan's swanctl.conf
syntax and serves strongSwan's VICI control protocol, so swanctl works against it too.

"goipsec run" is the daemon; status, up, down, reload, log and doctor talk to it over its
control socket; check validates a configuration file without running it.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate(versionText())
	root.PersistentFlags().StringVar(&a.socket, "socket", "",
		"the daemon's control (VICI) socket (default $"+socketEnv+", else "+defaultSocket+"; for run: daemon.vici_socket)")
	daemon.Version = version
	root.AddCommand(newVersionCommand(), newDemoCommand(), a.runCommand(), newCheckCommand(), newProfileCommand())
	root.AddCommand(newBenchCommand(), newManCommand(root))
	root.AddCommand(newPKICommand())
	root.AddCommand(a.controlCommands()...)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version and build information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.OutOrStdout(), versionText())
			return nil
		},
	}
}

func versionText() string {
	s := fmt.Sprintf("goipsec %s\n  go: %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision", "vcs.time", "vcs.modified", "CGO_ENABLED":
				s += fmt.Sprintf("  %s: %s\n", kv.Key, kv.Value)
			}
		}
	}
	return s
}

// vcsRevision is the commit the binary was built from, or "unknown".
func vcsRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				return kv.Value
			}
		}
	}
	return "unknown"
}
