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
	root := &cobra.Command{
		Use:           "goipsec",
		Short:         "IPsec (ESP, AH, IKEv2) with a userspace data plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	daemon.Version = version
	root.AddCommand(newVersionCommand(), newDemoCommand(), newRunCommand())
	root.AddCommand(newBenchCommand())
	root.AddCommand(newPKICommand())
	root.AddCommand(newControlCommands()...)
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
			case "vcs.revision", "vcs.time", "vcs.modified":
				s += fmt.Sprintf("  %s: %s\n", kv.Key, kv.Value)
			}
		}
	}
	return s
}
