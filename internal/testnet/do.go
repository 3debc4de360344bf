package testnet

import (
	"golang.org/x/sys/unix"

	"fmt"
	"os"
	"runtime"
	"syscall"
)

// Do runs fn with the calling goroutine locked to its OS thread and that thread switched into the
// namespace, then switches the thread back. Sockets, TUN devices and netlink handles that fn creates
// belong to the namespace and stay there after Do returns. Goroutines that fn starts do NOT run in
// the namespace (they may be scheduled on any thread); create the file descriptors inside fn and hand
// them out.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	// thread-self, not self: setns changes only this thread, and the other threads of the process may
	// be anywhere.
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testnet: Do: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(ns.Path())
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testnet: Do in %s: %w", ns, err)
	}
	err = setns(target, syscall.CLONE_NEWNET)
	target.Close()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testnet: Do: entering %s: %w", ns, err)
	}
	defer func() {
		if err := setns(orig, syscall.CLONE_NEWNET); err != nil {
			// Stay locked: a goroutine that exits while locked takes its thread down with it, so this
			// thread never runs other goroutines in the wrong namespace.
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// setns moves the calling thread into the namespace that f refers to.
func setns(f *os.File, nstype int) error {
	return unix.Setns(int(f.Fd()), nstype)
}
