// Command labctl builds and boots the lab VM by hand (scripts/lab.sh wraps it):
//
//	labctl build [strongswan|libreswan]      build (or find) the image in the cache
//	labctl run IMAGE 'CMD'                   boot, run CMD in the guest, print its output, stop
//	labctl shell IMAGE [NETNS TAP]           boot and run each line read from stdin in the guest
//	labctl bench [strongswan] [CPUS]         kernel vs userspace data plane throughput in the guest
//
// bench needs a static goipsec binary named goipsec in the current directory (make build).
// IMAGE is strongswan or libreswan. The current directory is shared with the guest at /mnt/host.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "labctl:", err)
		os.Exit(1)
	}
}

func recipe(name string) (labvm.Recipe, error) {
	switch name {
	case "strongswan", "":
		return labvm.StrongSwan(), nil
	case "libreswan":
		return labvm.Libreswan(), nil
	}
	return labvm.Recipe{}, fmt.Errorf("unknown image %q (strongswan or libreswan)", name)
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: labctl build|run|shell IMAGE ...")
	}
	ctx := context.Background()
	name := ""
	if len(args) > 1 {
		name = args[1]
	}
	r, err := recipe(name)
	if err != nil {
		return err
	}
	img, err := labvm.Build(ctx, r, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image %s: kernel %s, %s\n", r.Name, img.Version, img.Dir)
	if args[0] == "build" {
		return nil
	}
	cwd, _ := os.Getwd()
	if args[0] == "bench" {
		cpus := 2
		if len(args) > 2 {
			fmt.Sscan(args[2], &cpus)
		}
		return bench(ctx, img, cwd, cpus)
	}
	opts := labvm.Options{Image: img, Share: cwd, Modules: labvm.DefaultModules}
	if args[0] == "shell" && len(args) >= 4 {
		opts.Netns, opts.Tap = args[2], args[3]
	}
	if os.Getenv("LABVM_CONSOLE") != "" {
		opts.Console = os.Stderr
	}
	vm, err := labvm.Boot(ctx, opts)
	if err != nil {
		return err
	}
	defer vm.Close()
	fmt.Fprintf(os.Stderr, "booted in %v\n", vm.BootTime.Round(time.Millisecond))
	switch args[0] {
	case "run":
		if len(args) < 3 {
			return fmt.Errorf("usage: labctl run IMAGE 'CMD'")
		}
		res, err := vm.Run(ctx, 0, strings.Join(args[2:], " "))
		os.Stdout.WriteString(res.Stdout)
		os.Stderr.WriteString(res.Stderr)
		if err != nil {
			return err
		}
		if res.Exit != 0 {
			return fmt.Errorf("exit status %d", res.Exit)
		}
		return nil
	case "shell":
		sc := bufio.NewScanner(os.Stdin)
		fmt.Fprint(os.Stderr, "labvm# ")
		for sc.Scan() {
			res, err := vm.Run(ctx, 0, sc.Text())
			os.Stdout.WriteString(res.Stdout)
			os.Stderr.WriteString(res.Stderr)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
			} else if res.Exit != 0 {
				fmt.Fprintf(os.Stderr, "[exit %d]\n", res.Exit)
			}
			fmt.Fprint(os.Stderr, "labvm# ")
		}
		return sc.Err()
	}
	return fmt.Errorf("unknown command %q", args[0])
}
