package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/status"
)

// historyLen is how many samples the throughput graph of `status --watch` keeps.
const historyLen = 60

// tunnelRates follows one child of one connection across snapshots: its throughput now and over
// the last historyLen samples. Counters are kept per SA (by inbound SPI), so a rekey, which starts
// a new SA at zero, is not mistaken for negative traffic.
type tunnelRates struct {
	key         string // conn/child
	state, peer string
	last        map[string][2]uint64 // SPI → bytes in, out at the previous sample
	in, out     float64              // bytes per second over the last interval
	history     []float64            // in+out bytes per second, oldest first
	seen        bool
}

// watcher turns successive snapshots into per-tunnel rates.
type watcher struct {
	tunnels map[string]*tunnelRates
	prev    time.Time
	conns   int
	up      int
}

func newWatcher() *watcher { return &watcher{tunnels: map[string]*tunnelRates{}} }

// update takes a snapshot taken at now.
func (w *watcher) update(st *status.Status, now time.Time) {
	dt := now.Sub(w.prev).Seconds()
	first := w.prev.IsZero()
	w.prev = now
	w.conns, w.up = len(st.Connections), 0
	for _, t := range w.tunnels {
		t.seen = false
	}
	for _, c := range st.Connections {
		if c.State == status.StateUp {
			w.up++
		}
		// Every configured child is a row, with or without an SA.
		children := map[string]map[string][2]uint64{}
		for _, ch := range c.Children {
			children[ch.Name] = map[string][2]uint64{}
		}
		peer := strings.Join(c.RemoteAddrs, ",")
		for _, sa := range c.IKESAs {
			if sa.State == "established" {
				peer = sa.Remote
			}
			for _, ch := range sa.Children {
				if children[ch.Name] == nil {
					children[ch.Name] = map[string][2]uint64{}
				}
				children[ch.Name][ch.SPIIn] = [2]uint64{ch.In.Bytes, ch.Out.Bytes}
			}
		}
		for name, now := range children {
			key := c.Name + "/" + name
			t := w.tunnels[key]
			if t == nil {
				t = &tunnelRates{key: key}
				w.tunnels[key] = t
			}
			t.seen, t.state, t.peer = true, c.State, peer
			var din, dout uint64
			for spi, v := range now {
				p := t.last[spi] // zero for a new SA: all its traffic is new
				din += v[0] - min(p[0], v[0])
				dout += v[1] - min(p[1], v[1])
			}
			t.last = now
			if first || dt <= 0 {
				continue
			}
			t.in, t.out = float64(din)/dt, float64(dout)/dt
			t.history = append(t.history, t.in+t.out)
			if len(t.history) > historyLen {
				t.history = t.history[len(t.history)-historyLen:]
			}
		}
	}
	for k, t := range w.tunnels {
		if !t.seen {
			delete(w.tunnels, k) // the connection was removed from the configuration
		}
	}
}

// render draws the view for a terminal width columns wide.
func (w *watcher) render(out io.Writer, now time.Time, width int) {
	fmt.Fprintf(out, "goipsec: %d connection(s), %d up, %s (Ctrl-C quits)\n\n", w.conns, w.up, now.Format("15:04:05"))
	keys := make([]string, 0, len(w.tunnels))
	for k := range w.tunnels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	nameW := len("TUNNEL")
	for _, k := range keys {
		nameW = max(nameW, len(k))
	}
	graphW := max(10, min(historyLen, width-nameW-11-12-12-6))
	fmt.Fprintf(out, "%-*s  %-10s  %10s  %10s  %s\n", nameW, "TUNNEL", "STATE", "IN", "OUT", "IN+OUT, LAST "+fmt.Sprint(graphW)+" SAMPLES")
	for _, k := range keys {
		t := w.tunnels[k]
		fmt.Fprintf(out, "%-*s  %-10s  %10s  %10s  %s\n", nameW, t.key, t.state, rateText(t.in), rateText(t.out), sparkline(t.history, graphW))
	}
	if len(keys) == 0 {
		fmt.Fprintln(out, "(no tunnels configured)")
	}
}

// rateText prints bytes per second as bits per second, as link speeds are given.
func rateText(bps float64) string {
	b := bps * 8
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.1f Gb/s", b/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f Mb/s", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kb/s", b/1e3)
	}
	return fmt.Sprintf("%.0f b/s", b)
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last n values scaled to their maximum; zero is a blank.
func sparkline(vals []float64, n int) string {
	if len(vals) > n {
		vals = vals[len(vals)-n:]
	}
	peak := 0.0
	for _, v := range vals {
		peak = max(peak, v)
	}
	var b strings.Builder
	for range n - len(vals) {
		b.WriteByte(' ')
	}
	for _, v := range vals {
		if v <= 0 || peak == 0 {
			b.WriteByte(' ')
			continue
		}
		i := int(v / peak * float64(len(sparks)-1))
		b.WriteRune(sparks[i])
	}
	return b.String()
}

// terminalWidth is the width of out when it is a terminal, else 100 columns.
func terminalWidth(out io.Writer) int {
	if f, ok := out.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return 100
}

// watchStatus redraws the view every interval until Ctrl-C.
func watchStatus(ctx context.Context, c *client, name string, interval time.Duration, _ io.Reader, out io.Writer) error {
	if interval < 100*time.Millisecond {
		interval = 100 * time.Millisecond
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	w := newWatcher()
	// The alternate screen keeps the shell's scrollback intact; the cursor is hidden meanwhile.
	fmt.Fprint(out, "\x1b[?1049h\x1b[?25l")
	defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		st, err := c.status(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		w.update(st, now)
		var frame strings.Builder
		frame.WriteString("\x1b[H\x1b[2J")
		w.render(&frame, now, terminalWidth(out))
		io.WriteString(out, frame.String())
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
