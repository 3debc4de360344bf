// Package systemd speaks the two socket protocols a service uses under systemd, written here
// because they are small and a dependency for them would be larger than the code:
//
//   - sd_notify (sd_notify(3), "Notification protocol" in systemd.io): datagrams of
//     newline-separated VAR=VALUE assignments to the AF_UNIX socket named by $NOTIFY_SOCKET (a
//     leading "@" names an abstract socket). goipsec sends READY=1, RELOADING=1, STOPPING=1,
//     STATUS=... and WATCHDOG=1.
//   - journald's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL): one datagram per entry to
//     /run/systemd/journal/socket, fields as KEY=VALUE lines, or KEY, newline, a 64-bit
//     little-endian length and the raw value when the value holds a newline; an entry too large
//     for a datagram goes into a sealed memfd whose descriptor is passed with SCM_RIGHTS.
package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifier sends sd_notify messages. The zero value and a nil *Notifier do nothing, so callers
// need not check whether they run under systemd.
type Notifier struct {
	mu   sync.Mutex
	conn *net.UnixConn
	addr *net.UnixAddr
}

// NewNotifier returns a notifier for the socket named by socket (the value of $NOTIFY_SOCKET),
// or nil when it is empty: not started by systemd with Type=notify.
func NewNotifier(socket string) (*Notifier, error) {
	if socket == "" {
		return nil, nil
	}
	name := socket
	if strings.HasPrefix(name, "@") {
		name = "\x00" + name[1:] // abstract namespace
	} else if !strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q is neither a path nor an abstract socket", socket)
	}
	conn, err := unboundUnixgram()
	if err != nil {
		return nil, fmt.Errorf("sd_notify socket: %w", err)
	}
	return &Notifier{conn: conn, addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Notify sends the assignments, each "VAR=VALUE", in one datagram.
func (n *Notifier) Notify(assignments ...string) error {
	if n == nil {
		return nil
	}
	for _, a := range assignments {
		if !strings.Contains(a, "=") {
			return fmt.Errorf("sd_notify: %q is not VAR=VALUE", a)
		}
	}
	msg := strings.Join(assignments, "\n")
	n.mu.Lock()
	defer n.mu.Unlock()
	_, err := n.conn.WriteToUnix([]byte(msg), n.addr)
	return err
}

// Ready tells systemd that start-up is complete (Type=notify), with a status line.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1", "STATUS="+oneLine(status))
}

// Reloading tells systemd that a reload started; Ready ends it. MONOTONIC_USEC is required by
// Type=notify-reload (systemd ≥ 253) and ignored by older versions.
func (n *Notifier) Reloading() error {
	return n.Notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicMicros(), 10))
}

// Stopping tells systemd that shutdown began.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Status updates the status line `systemctl status` shows.
func (n *Notifier) Status(s string) error { return n.Notify("STATUS=" + oneLine(s)) }

// Watchdog pets the service watchdog (WatchdogSec=).
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// Close releases the socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	return n.conn.Close()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// WatchdogInterval reads $WATCHDOG_USEC and $WATCHDOG_PID as sd_watchdog_enabled(3) does: the
// interval at which systemd expects WATCHDOG=1, or 0 when the watchdog is off or meant for
// another process.
func WatchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, fmt.Errorf("WATCHDOG_PID %q: %w", pid, err)
		}
		if p != self {
			return 0, nil
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0, errors.New("WATCHDOG_USEC " + strconv.Quote(usec) + " is not a positive number of microseconds")
	}
	return time.Duration(u) * time.Microsecond, nil
}

// UnderJournal reports whether stderr is connected to the journal: $JOURNAL_STREAM holds the
// device and inode of the stream systemd connected, and stderr must still be that stream (it is
// not when the output was redirected), as systemd.exec(5) recommends checking.
func UnderJournal(journalStream string, stderr *os.File) bool {
	dev, ino, ok := strings.Cut(journalStream, ":")
	if !ok {
		return false
	}
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	sd, si, err := fileID(stderr)
	return err == nil && sd == d && si == i
}
