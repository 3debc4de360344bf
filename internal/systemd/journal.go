package systemd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// JournalSocket is where journald receives native entries.
const JournalSocket = "/run/systemd/journal/socket"

// Journal sends entries to journald over its native protocol.
type Journal struct {
	conn *net.UnixConn
	addr *net.UnixAddr
}

// NewJournal returns a writer for the journald socket at path (JournalSocket in production).
func NewJournal(path string) (*Journal, error) {
	conn, err := unboundUnixgram()
	if err != nil {
		return nil, fmt.Errorf("journal socket: %w", err)
	}
	// journald accepts entries up to its DATA_SIZE_MAX; a large send buffer lets most entries go
	// as one datagram.
	conn.SetWriteBuffer(8 << 20)
	return &Journal{conn: conn, addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// Close releases the socket.
func (j *Journal) Close() error { return j.conn.Close() }

// Field is one journal field.
type Field struct{ Key, Value string }

// AppendField encodes one field: KEY=VALUE, or the binary-safe form when the value holds a newline.
func AppendField(b []byte, key, value string) []byte {
	if strings.IndexByte(value, '\n') < 0 {
		b = append(b, key...)
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, key...)
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

// Send writes one entry.
func (j *Journal) Send(fields []Field) error {
	var b []byte
	for _, f := range fields {
		b = AppendField(b, f.Key, f.Value)
	}
	_, err := j.conn.WriteToUnix(b, j.addr)
	if err == nil || !(errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.ENOBUFS)) {
		return err
	}
	return j.sendLarge(b)
}

// sendLarge passes an entry too large for a datagram in a sealed memfd.
func (j *Journal) sendLarge(b []byte) error {
	fd, err := unix.MemfdCreate("goipsec-journal", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("journal: memfd: %w", err)
	}
	defer unix.Close(fd)
	for off := 0; off < len(b); {
		n, err := unix.Write(fd, b[off:])
		if err != nil {
			return fmt.Errorf("journal: memfd write: %w", err)
		}
		off += n
	}
	// journald requires the memfd to be sealed against changes.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("journal: sealing memfd: %w", err)
	}
	_, _, err = j.conn.WriteMsgUnix(nil, unix.UnixRights(fd), j.addr)
	return err
}

// priority maps slog levels to syslog priorities (journal PRIORITY field).
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "3" // err
	case l >= slog.LevelWarn:
		return "4" // warning
	case l >= slog.LevelInfo:
		return "6" // info
	}
	return "7" // debug
}

// fieldName turns an attribute key into a journal field name: upper case, [A-Z0-9_] only,
// prefixed so that it never collides with journald's own fields.
func fieldName(prefix, key string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 64 { // journald's limit on field names
		s = s[:64]
	}
	return s
}

// JournalHandler is a slog.Handler that writes entries to the journal: MESSAGE (the message and its
// attributes as key=value, readable in `journalctl`), PRIORITY, SYSLOG_IDENTIFIER, and each
// attribute as its own field GOIPSEC_<KEY> (for `journalctl GOIPSEC_CONN=site`).
type JournalHandler struct {
	j      *Journal
	ident  string
	level  slog.Leveler
	attrs  []slog.Attr
	prefix string // group prefix for keys
}

// NewJournalHandler returns a handler writing to j with SYSLOG_IDENTIFIER ident.
func NewJournalHandler(j *Journal, ident string, level slog.Leveler) *JournalHandler {
	if level == nil {
		level = slog.Level(-1 << 20)
	}
	return &JournalHandler{j: j, ident: ident, level: level}
}

// Enabled implements slog.Handler.
func (h *JournalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler.
func (h *JournalHandler) Handle(_ context.Context, r slog.Record) error {
	var text strings.Builder
	text.WriteString(r.Message)
	fields := []Field{{"PRIORITY", priority(r.Level)}, {"SYSLOG_IDENTIFIER", h.ident}}
	var add func(prefix string, a slog.Attr)
	add = func(prefix string, a slog.Attr) {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindGroup {
			for _, g := range v.Group() {
				add(prefix+a.Key+"_", g)
			}
			return
		}
		if a.Key == "" {
			return
		}
		s := v.String()
		text.WriteByte(' ')
		text.WriteString(prefix + a.Key)
		text.WriteByte('=')
		if s == "" || strings.ContainsAny(s, " =\"\n") {
			text.WriteString(strconv.Quote(s))
		} else {
			text.WriteString(s)
		}
		fields = append(fields, Field{fieldName("GOIPSEC_", prefix+a.Key), s})
	}
	for _, a := range h.attrs {
		add("", a)
	}
	r.Attrs(func(a slog.Attr) bool { add(h.prefix, a); return true })
	fields = append(fields, Field{"MESSAGE", text.String()})
	return h.j.Send(fields)
}

// WithAttrs implements slog.Handler.
func (h *JournalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	for _, a := range attrs {
		a.Key = h.prefix + a.Key
		n.attrs = append(append([]slog.Attr(nil), n.attrs...), a)
	}
	return &n
}

// WithGroup implements slog.Handler.
func (h *JournalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "_"
	return &n
}
