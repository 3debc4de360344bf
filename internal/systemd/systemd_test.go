package systemd

import (
	"encoding/binary"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen opens a fake systemd socket (a unix datagram socket at a path, or in the abstract
// namespace when the name starts with "@").
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	addr := name
	if strings.HasPrefix(name, "@") {
		addr = "\x00" + name[1:]
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sockDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func readDatagram(t *testing.T, c *net.UnixConn) ([]byte, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, oob := make([]byte, 1<<20), make([]byte, 1024)
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], oob[:oobn]
}

func TestNotifyPathAndAbstract(t *testing.T) {
	for _, name := range []string{filepath.Join(sockDir(t), "notify"), "@goipsec-test-notify-" + time.Now().Format("150405.000000")} {
		srv := listen(t, name)
		n, err := NewNotifier(name)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		if err := n.Ready("2 of 2 connections up\nsecond line"); err != nil {
			t.Fatal(err)
		}
		got, _ := readDatagram(t, srv)
		if string(got) != "READY=1\nSTATUS=2 of 2 connections up second line" {
			t.Fatalf("%s: READY datagram %q", name, got)
		}
		n.Reloading()
		got, _ = readDatagram(t, srv)
		if !strings.HasPrefix(string(got), "RELOADING=1\nMONOTONIC_USEC=") {
			t.Fatalf("RELOADING datagram %q", got)
		}
		for _, f := range []func() error{n.Watchdog, n.Stopping} {
			f()
		}
		w, _ := readDatagram(t, srv)
		s, _ := readDatagram(t, srv)
		if string(w) != "WATCHDOG=1" || string(s) != "STOPPING=1" {
			t.Fatalf("watchdog %q, stopping %q", w, s)
		}
	}
}

func TestNotifierOffWithoutSocket(t *testing.T) {
	n, err := NewNotifier("")
	if n != nil || err != nil {
		t.Fatalf("NewNotifier(\"\") = %v, %v", n, err)
	}
	// A nil notifier does nothing, so callers need not check.
	if err := n.Ready("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNotifier("relative/path"); err == nil {
		t.Fatal("a relative NOTIFY_SOCKET was accepted")
	}
	if err := (&Notifier{}).Notify("NOEQUALS"); err == nil {
		t.Fatal("an assignment without = was sent")
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", "42", 30 * time.Second, false},
		{"30000000", "43", 0, false}, // meant for another process
		{"0", "", 0, true},
		{"x", "", 0, true},
	} {
		got, err := WatchdogInterval(tc.usec, tc.pid, 42)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("WatchdogInterval(%q, %q) = %v, %v", tc.usec, tc.pid, got, err)
		}
	}
}

func TestUnderJournal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Fstat(int(f.Fd()), &st)
	if !UnderJournal(strings.Join([]string{itoa(st.Dev), itoa(st.Ino)}, ":"), f) {
		t.Fatal("stderr with the JOURNAL_STREAM device and inode not recognised")
	}
	if UnderJournal(itoa(st.Dev)+":"+itoa(st.Ino+1), f) || UnderJournal("", f) || UnderJournal("garbage", f) {
		t.Fatal("a redirected stderr was taken for the journal")
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// parseEntry decodes a native-protocol entry into its fields (repeated keys keep the last value).
func parseEntry(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for len(b) > 0 {
		nl := strings.IndexByte(string(b), '\n')
		if nl < 0 {
			t.Fatalf("entry without final newline: %q", b)
		}
		line := string(b[:nl])
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
			b = b[nl+1:]
			continue
		}
		// Binary-safe field: KEY \n, 64-bit little-endian length, value, \n.
		rest := b[nl+1:]
		n := binary.LittleEndian.Uint64(rest[:8])
		out[line] = string(rest[8 : 8+n])
		if rest[8+n] != '\n' {
			t.Fatalf("binary field %s not followed by a newline", line)
		}
		b = rest[9+n:]
	}
	return out
}

func TestJournalHandler(t *testing.T) {
	path := filepath.Join(sockDir(t), "journal")
	srv := listen(t, path)
	j, err := NewJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	log := slog.New(NewJournalHandler(j, "goipsec", nil)).With("subsys", "ike")
	log.Warn("negotiation failed", "conn", "site", "why", "no proposal\nchosen", slog.Group("peer", "addr", "192.0.2.2"))
	got, _ := readDatagram(t, srv)
	f := parseEntry(t, got)
	want := map[string]string{
		"PRIORITY": "4", "SYSLOG_IDENTIFIER": "goipsec", "GOIPSEC_SUBSYS": "ike", "GOIPSEC_CONN": "site",
		"GOIPSEC_WHY": "no proposal\nchosen", "GOIPSEC_PEER_ADDR": "192.0.2.2",
		"MESSAGE": `negotiation failed subsys=ike conn=site why="no proposal\nchosen" peer_addr=192.0.2.2`,
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("field %s = %q, want %q", k, f[k], v)
		}
	}
	log.Debug("debug line")
	got, _ = readDatagram(t, srv)
	if parseEntry(t, got)["PRIORITY"] != "7" {
		t.Errorf("debug priority: %q", got)
	}
}

// TestJournalLargeEntryGoesThroughMemfd: an entry too large for one datagram is passed as a
// sealed memfd (SCM_RIGHTS), as journald expects.
func TestJournalLargeEntryGoesThroughMemfd(t *testing.T) {
	path := filepath.Join(sockDir(t), "journal")
	srv := listen(t, path)
	j, err := NewJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	big := strings.Repeat("x", 9<<20) // larger than the 8 MiB send buffer
	if err := j.Send([]Field{{"MESSAGE", big}}); err != nil {
		t.Fatal(err)
	}
	data, oob := readDatagram(t, srv)
	if len(data) != 0 {
		t.Fatalf("large entry sent inline (%d bytes)", len(data))
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("no descriptor passed: %v", err)
	}
	f := os.NewFile(uintptr(fds[0]), "memfd")
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_WRITE == 0 {
		t.Fatalf("memfd not sealed: %x %v", seals, err)
	}
	content, err := os.ReadFile("/proc/self/fd/" + itoa(uint64(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if parseEntry(t, content)["MESSAGE"] != big {
		t.Fatal("memfd content differs")
	}
}
