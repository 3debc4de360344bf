package vici

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// socketMode is the permission of the VICI socket: the control socket can load keys and tear down
// tunnels, so only its owner (root for the daemon) may connect, as with charon's socket.
const socketMode os.FileMode = 0o600

// staleProbeTimeout bounds the connection attempt that tells a live socket from a stale one.
const staleProbeTimeout = 2 * time.Second

// ErrSocketInUse is returned by ListenUnix when a server already answers on the path.
var ErrSocketInUse = errors.New("vici: socket already in use")

// ListenUnix listens on a unix socket at path with mode 0600. A stale socket left by a crashed
// process is removed first; if something still accepts connections on path, or path exists and is
// not a socket, it fails instead. Closing the listener removes the socket file if it is still the
// one this call created.
//
// The socket is created in a private (0700) directory next to path, restricted to 0600 there and
// then renamed into place, so no one can connect during the moment a freshly bound socket has the
// umask's permissions. A "unix://" prefix, as in swanctl's --uri, is accepted.
func ListenUnix(path string) (net.Listener, error) {
	path = strings.TrimPrefix(path, "unix://")
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".vici")
	if err != nil {
		return nil, fmt.Errorf("vici: listen %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("vici: listen %s: %w", path, err)
	}
	// The file is renamed away, so the listener must not unlink its bind name; unixListener.Close
	// removes the final path instead.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, socketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("vici: listen %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, fmt.Errorf("vici: listen %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("vici: listen %s: %w", path, err)
	}
	return &unixListener{UnixListener: l, path: path, file: fi}, nil
}

// removeStale removes a socket file nobody listens on any more.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vici: listen %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("vici: listen %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s", ErrSocketInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("vici: listen %s: probing existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("vici: listen %s: removing stale socket: %w", path, err)
	}
	return nil
}

// unixListener removes its socket file on Close, unless another process has replaced it meanwhile.
type unixListener struct {
	*net.UnixListener
	path string
	file os.FileInfo // the socket as created, to recognise it at Close
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if fi, statErr := os.Lstat(l.path); statErr == nil && os.SameFile(fi, l.file) {
		os.Remove(l.path)
	}
	return err
}
