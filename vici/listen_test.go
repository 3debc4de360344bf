package vici

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnixMode(t *testing.T) {
	dir := socketDir(t)
	path := filepath.Join(dir, "vici.sock")
	l, err := ListenUnix("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	// Only the socket is left in the directory: the private staging directory is gone.
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v, %v", entries, err)
	}
	// The listener accepts on the renamed path.
	go func() {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket file: %v", err)
	}
}

func TestListenUnixRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "vici.sock")
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l2, err := ListenUnix(path); !errors.Is(err, ErrSocketInUse) {
		if l2 != nil {
			l2.Close()
		}
		t.Fatalf("second listener: %v, want ErrSocketInUse", err)
	}
	// The first listener's socket is untouched.
	go func() {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "vici.sock")
	// A socket file nobody listens on, as a crashed daemon leaves behind.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not in place: %v", err)
	}
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
}

func TestListenUnixRefusesNonSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "vici.sock")
	if err := os.WriteFile(path, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := ListenUnix(path)
	if err == nil {
		l.Close()
		t.Fatal("listened over a regular file")
	}
	if !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Fatalf("error %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "not a socket" {
		t.Fatal("regular file was modified")
	}
}

func TestListenUnixMissingDirectory(t *testing.T) {
	if l, err := ListenUnix(filepath.Join(socketDir(t), "missing", "vici.sock")); err == nil {
		l.Close()
		t.Fatal("listened in a missing directory")
	}
}

// TestListenerCloseKeepsReplacement: Close removes the socket file only if it is still the one the
// listener created, so a successor's socket survives its predecessor shutting down.
func TestListenerCloseKeepsReplacement(t *testing.T) {
	path := filepath.Join(socketDir(t), "vici.sock")
	old, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	successor, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer successor.Close()
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("old listener removed its successor's socket: %v", err)
	}
}
