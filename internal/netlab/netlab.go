// Package netlab builds small virtual networks out of Linux network namespaces and veth pairs, for
// `goipsec demo` and the benchmark scripts. It drives iproute2 (`ip`), the tool an administrator
// would use by hand, so every step can be read in the error messages and repeated manually.
package netlab

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// NS is a named network namespace (as `ip netns add` makes it).
type NS struct {
	Name string
}

// NewNS creates a namespace with its loopback up. A leftover namespace of the same name (from a
// run that was killed) is removed first.
func NewNS(name string) (*NS, error) {
	_ = exec.Command("ip", "netns", "del", name).Run()
	if _, err := ip("netns", "add", name); err != nil {
		return nil, err
	}
	ns := &NS{Name: name}
	if _, err := ns.IP("link", "set", "lo", "up"); err != nil {
		ns.Delete()
		return nil, err
	}
	return ns, nil
}

// Delete removes the namespace and everything in it.
func (ns *NS) Delete() error {
	_, err := ip("netns", "del", ns.Name)
	return err
}

// IP runs `ip -n NS args...`.
func (ns *NS) IP(args ...string) (string, error) {
	return ip(append([]string{"-n", ns.Name}, args...)...)
}

// Exec runs a command inside the namespace and returns its combined output.
func (ns *NS) Exec(argv ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
}

// Command returns an *exec.Cmd that runs inside the namespace.
func (ns *NS) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
}

// Do runs fn on an OS thread switched into the namespace. Sockets, TUN devices and netlink handles
// created by fn stay in the namespace after Do returns; goroutines fn starts run elsewhere.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns.Name)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns.Name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter namespace %s: %w", ns.Name, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is in the wrong namespace; keep it locked so that it dies with this goroutine
		// instead of serving other goroutines.
		runtime.LockOSThread()
		return fmt.Errorf("return from namespace %s: %w", ns.Name, err)
	}
	return fnErr
}

// Link joins two namespaces with a veth pair named ifA (in a) and ifB (in b), assigns the given
// addresses (CIDR notation, IPv4 or IPv6; IPv6 without duplicate address detection so that it is
// usable at once) and brings both ends up.
func Link(a *NS, ifA string, addrsA []string, b *NS, ifB string, addrsB []string) error {
	if _, err := ip("link", "add", ifA, "netns", a.Name, "type", "veth", "peer", "name", ifB, "netns", b.Name); err != nil {
		return err
	}
	for _, side := range []struct {
		ns    *NS
		ifc   string
		addrs []string
	}{{a, ifA, addrsA}, {b, ifB, addrsB}} {
		for _, addr := range side.addrs {
			if err := side.ns.AddAddr(side.ifc, addr); err != nil {
				return err
			}
		}
		if _, err := side.ns.IP("link", "set", side.ifc, "up"); err != nil {
			return err
		}
	}
	return nil
}

// AddAddr assigns an address (CIDR) to an interface of the namespace.
func (ns *NS) AddAddr(ifc, cidr string) error {
	args := []string{"addr", "add", cidr, "dev", ifc}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	_, err := ns.IP(args...)
	return err
}

func ip(args ...string) (string, error) { return run("ip", args...) }

func run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
