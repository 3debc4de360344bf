package userspace

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
)

// kickerLab is a veth between two namespaces: A sends raw ESP through a packetTX, B reads it with
// a raw protocol-50 socket (the kernel has no ESP here, so it only delivers a copy to the socket).
type kickerLab struct {
	a        *netlab.NS
	src, dst netip.Addr
	tx       *packetTX
	rawA     int // raw ESP socket in A: the fallback
	recv     int // raw ESP socket in B
	ctr      ringCounters
	fellBack atomic.Uint64
}

func newKickerLab(t *testing.T) *kickerLab {
	t.Helper()
	requireNetTests(t)
	var id [3]byte
	rand.Read(id[:])
	var nss [2]*netlab.NS
	for i := range nss {
		ns, err := netlab.NewNS(fmt.Sprintf("gk%x%c", id, 'a'+i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Delete() })
		nss[i] = ns
	}
	if err := netlab.Link(nss[0], "veth0", []string{"192.0.2.1/24"}, nss[1], "veth0", []string{"192.0.2.2/24"}); err != nil {
		t.Fatal(err)
	}
	l := &kickerLab{src: netip.MustParseAddr("192.0.2.1"), dst: netip.MustParseAddr("192.0.2.2"), a: nss[0]}
	// Resolve B's link-layer address, which the ring's path needs.
	if r, err := nss[0].Ping(l.src, l.dst, 1, 10*time.Millisecond, 2*time.Second); err != nil || r.Received != 1 {
		t.Fatalf("ping: %v %v", r, err)
	}
	if err := nss[1].Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 50)
		if err != nil {
			return err
		}
		l.recv = fd
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(l.recv) })
	if err := nss[0].Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 50)
		if err != nil {
			return err
		}
		l.rawA = fd
		fallback := func(src, dst netip.Addr, pkts [][]byte) error {
			for _, p := range pkts {
				if err := unix.Sendto(fd, p, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
					return err
				}
				l.fellBack.Add(1)
			}
			return nil
		}
		l.tx, err = newPacketTX(0, time.Now, &l.ctr, fallback, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.tx.close()
		unix.Close(l.rawA)
	})
	return l
}

// burst sends n packets numbered from first: an ESP header (SPI 0x1001, the number as sequence
// number) and padding, through the ring and, for what the ring leaves, the fallback socket.
func (l *kickerLab) burst(t *testing.T, first uint32, n int) {
	t.Helper()
	pkts := make([][]byte, n)
	for i := range pkts {
		p := make([]byte, 200)
		binary.BigEndian.PutUint32(p, 0x1001)
		binary.BigEndian.PutUint32(p[4:], first+uint32(i))
		pkts[i] = p
	}
	left, err := l.tx.send(nil, l.src, l.dst, pkts)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		if err := l.tx.fallback(l.src, l.dst, left); err != nil {
			t.Fatal(err)
		}
	}
}

// expect reads packets at B until n numbered from 1 arrived, and fails unless they came in order.
func (l *kickerLab) expect(t *testing.T, from, to uint32) {
	t.Helper()
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(l.recv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	next := from
	for next <= to {
		n, _, err := unix.Recvfrom(l.recv, buf, 0)
		if err != nil {
			t.Fatalf("waiting for packet %d of %d..%d: %v (ring sent %d, raw socket %d)", next, from, to, err, l.ctr.sent.Load(), l.fellBack.Load())
		}
		_, _, esp, ok := splitRawIPv4(buf[:n])
		if !ok || binary.BigEndian.Uint32(esp) != 0x1001 {
			continue
		}
		if got := binary.BigEndian.Uint32(esp[4:]); got != next {
			t.Fatalf("packet %d arrived where %d was due", got, next)
		}
		next++
	}
}

// TestPacketTXKicker: frames the pipeline writes while the kicker's sendto is running — here at
// the worst moment, after the kernel stopped looking at the ring and before the kicker records
// what it sent — leave with the next sendto; bursts written back to back (the kicker's wake-ups
// coalesced, the ring filling up) all arrive, in order; and closing with frames just queued stops
// the kicker only after it has sent them.
func TestPacketTXKicker(t *testing.T) {
	l := newKickerLab(t)
	inFlight, written := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	l.tx.afterSendto = func() {
		if calls.Add(1) == 1 {
			close(inFlight)
			<-written
		}
	}
	l.burst(t, 1, 32)
	<-inFlight
	l.burst(t, 33, 32) // while the first sendto is still the kicker's
	close(written)
	l.expect(t, 1, 64)
	// The packets arrive while the kicker's sendto is still running (a veth delivers within
	// it), and the kicker records what it sent only when sendto returns: wait for that, briefly.
	for deadline := time.Now().Add(2 * time.Second); l.tx.pending(); {
		if time.Now().After(deadline) {
			t.Fatal("frames still queued 2 s after all arrived")
		}
		time.Sleep(time.Millisecond)
	}

	// Bursts back to back: 6,000 packets, far more than the ring's 512 frames.
	next := uint32(65)
	for range 150 {
		l.burst(t, next, 40)
		next += 40
	}
	l.expect(t, 65, next-1)
	kicks := calls.Load()
	t.Logf("%d packets in %d sendto calls (%d through the ring, %d through the raw socket)", next-1, kicks, l.ctr.sent.Load(), l.fellBack.Load())
	if l.ctr.sent.Load() < uint64(next-1)/2 {
		t.Fatalf("only %d of %d packets went through the ring", l.ctr.sent.Load(), next-1)
	}

	// Close right after queuing: the kicker's last sendto sends them before the ring goes.
	l.burst(t, next, 100)
	exited := l.tx.exited
	l.tx.close()
	select {
	case <-exited:
	default:
		t.Fatal("close returned before the kicker stopped")
	}
	l.expect(t, next, next+99)
}

// TestPacketTXFailedSendto: a sendto that fails (the interface is down) leaves its frames marked
// and the kernel's position at the first of them. The pipeline takes them back at its next send
// and sends them through the raw socket, before the packets of that send; and the ring then
// works again from where the kernel stopped.
func TestPacketTXFailedSendto(t *testing.T) {
	l := newKickerLab(t)
	l.burst(t, 1, 10)
	l.expect(t, 1, 10)
	if _, err := l.a.IP("link", "set", "veth0", "down"); err != nil {
		t.Fatal(err)
	}
	l.burst(t, 11, 30) // the path is cached: into the ring, and the sendto fails
	for deadline := time.Now().Add(5 * time.Second); !l.tx.broken.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("the sendto on a down interface did not fail")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := l.a.IP("link", "set", "veth0", "up"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if out, _ := l.a.IP("route", "get", l.dst.String()); strings.Contains(out, "veth0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no route after the link came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.burst(t, 41, 30)
	l.expect(t, 11, 70)
	if got := l.fellBack.Load(); got < 30 {
		t.Fatalf("%d packets through the raw socket, want the 30 taken back at least", got)
	}
	// The counters (dataplane.PacketRingStats) tell the operator what happened: the ring was
	// given up once or more, and the 30 frames marked when the first sendto failed were taken
	// back (the later burst's may have been too, if its path was still the cached one).
	if n := l.ctr.broken.Load(); n == 0 {
		t.Fatal("broken counter 0 after a failed sendto")
	}
	if n := l.ctr.recovered.Load(); n < 30 || n > 60 {
		t.Fatalf("recovered counter %d, want the 30 frames of the failed sendto (and at most the next 30)", n)
	}
	if n := l.ctr.sendtos.Load(); n < 2 {
		t.Fatalf("sendto counter %d after two bursts", n)
	}
	// The neighbour was resolved again by the raw socket's packets; once the path is looked up
	// again the ring carries the traffic, from the frame where the kernel stopped.
	time.Sleep(l2PathTTL + 100*time.Millisecond)
	ring := l.ctr.sent.Load()
	l.burst(t, 71, 600)
	l.expect(t, 71, 670)
	if l.ctr.sent.Load()-ring < 500 {
		t.Fatalf("only %d packets through the ring after it recovered", l.ctr.sent.Load()-ring)
	}
}

// TestRawESPRingCloseWhileSending closes an engine while a TCP stream fills its pipelines' TX
// rings: Close returns, and only after every pipeline's kicker has stopped (the ring is unmapped
// after its last sendto).
func TestRawESPRingCloseWhileSending(t *testing.T) {
	a, b := newPairWith(t, Config{Queues: 2})
	sc := scenario{name: "raw-close", proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36}
	inst := install(t, sc, a, b)
	if ping, err := a.ns.Ping(inst.src, inst.dst, 2, 50*time.Millisecond, 2*time.Second); err != nil || ping.Received != 2 {
		t.Fatalf("ping: %v %v", ping, err)
	}
	time.Sleep(l2PathTTL + 100*time.Millisecond)
	var kickers []chan struct{}
	for _, p := range a.eng.txp {
		if p.ptx == nil {
			t.Fatal("a pipeline without a TX ring")
		}
		kickers = append(kickers, p.ptx.exited)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go netlab.Throughput(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7790), 5*time.Second)
	before := a.eng.stats.ring.sent.Load()
	for deadline := time.Now().Add(5 * time.Second); a.eng.stats.ring.sent.Load() < before+2000; {
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not start through the ring (%d packets)", a.eng.stats.ring.sent.Load()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- a.eng.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while sending")
	}
	for i, k := range kickers {
		select {
		case <-k:
		default:
			t.Fatalf("pipeline %d's kicker still runs after Close", i)
		}
	}
}
