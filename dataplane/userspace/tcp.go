package userspace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/tcpencap"
)

// ESP (and IKE) in TCP, RFC 9329. The engine owns the TCP connections, because one connection
// carries both: it listens on the configured ports, dials when the IKE daemon asks it to send to a
// peer it has no connection with, splits each received stream into frames (package tcpencap),
// hands IKE messages to the daemon and puts ESP packets on the inbound path like ESP in UDP, and
// writes the ESP packets of SAs installed with dataplane.SAParams.TCP into the connection of their
// addresses — or, when that one broke and the originator reconnected, into the newest connection
// between the same two hosts (RFC 9329 §6.1: the SAs outlive their connection).

// tcpDialTimeout bounds a connect; tcpWriteTimeout a write into a connection that does not drain.
const (
	tcpDialTimeout  = 10 * time.Second
	tcpWriteTimeout = 5 * time.Second
	tcpPrefixWait   = 10 * time.Second // the accepted side's "IKETCP" must come by then
	tcpReadBuf      = 64 << 10
)

// tcpCarrier is the engine's set of TCP connections.
type tcpCarrier struct {
	e *Engine

	mu        sync.Mutex
	listeners []net.Listener
	streams   map[streamKey]*tcpStream
	onIKE     func(b []byte, local, remote netip.AddrPort)
	onClosed  func(local, remote netip.AddrPort)
	dialing   map[streamKey]*sync.Mutex // one dial at a time towards a peer
	closed    bool
}

type streamKey struct{ local, remote netip.AddrPort }

// tcpStream is one TCP connection.
type tcpStream struct {
	c             *net.TCPConn
	local, remote netip.AddrPort
	originator    bool
	since         time.Time
	last          atomic.Int64 // unix nanoseconds of the last frame received

	wmu  sync.Mutex // serialises writes; guards wbuf
	wbuf []byte

	bytesIn, bytesOut, espIn, espOut, ikeIn, ikeOut atomic.Uint64
	dead                                            atomic.Bool
}

// carrier returns the engine's TCP carrier, creating it on first use.
func (e *Engine) carrier() *tcpCarrier {
	e.tcpOnce.Do(func() {
		e.tcp = &tcpCarrier{e: e, streams: map[streamKey]*tcpStream{}, dialing: map[streamKey]*sync.Mutex{}}
		go func() {
			<-e.closing
			e.tcp.close()
		}()
	})
	return e.tcp
}

// SetTCPHandlers sets who receives the IKE messages that arrive in TCP connections (without the
// non-ESP marker; b is only valid during the call) and who learns that a connection closed.
func (e *Engine) SetTCPHandlers(ike func(b []byte, local, remote netip.AddrPort), closed func(local, remote netip.AddrPort)) {
	t := e.carrier()
	t.mu.Lock()
	t.onIKE, t.onClosed = ike, closed
	t.mu.Unlock()
}

// ListenTCP accepts IKE and ESP in TCP on each port, IPv4 and IPv6.
func (e *Engine) ListenTCP(ports []uint16) error {
	t := e.carrier()
	lc := net.ListenConfig{Control: markControl(e.cfg.FwMark)}
	for _, p := range ports {
		l, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			l, err = lc.Listen(context.Background(), "tcp4", fmt.Sprintf(":%d", p))
		}
		if err != nil {
			return fmt.Errorf("listen for IKE in TCP on port %d: %w", p, err)
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			l.Close()
			return errors.New("the data plane is closed")
		}
		t.listeners = append(t.listeners, l)
		t.mu.Unlock()
		go t.accept(l)
		e.log.Info("accepting IKE and ESP in TCP", "port", p)
	}
	return nil
}

// markControl sets the engine's fwmark on a socket, so that its packets never enter the tunnel.
func markControl(mark uint32) func(string, string, syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)) }); err != nil {
			return err
		}
		return serr
	}
}

func (t *tcpCarrier) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		tc := c.(*net.TCPConn)
		if raw, err := tc.SyscallConn(); err == nil {
			markControl(t.e.cfg.FwMark)("", "", raw)
		}
		s := t.newStream(tc, false)
		if !t.add(s) {
			tc.Close()
			return
		}
		go t.read(s)
	}
}

func (t *tcpCarrier) newStream(c *net.TCPConn, originator bool) *tcpStream {
	la := c.LocalAddr().(*net.TCPAddr).AddrPort()
	ra := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	c.SetNoDelay(true)
	s := &tcpStream{c: c, originator: originator, since: t.e.cfg.Now(),
		local: netip.AddrPortFrom(la.Addr().Unmap(), la.Port()), remote: netip.AddrPortFrom(ra.Addr().Unmap(), ra.Port())}
	s.last.Store(s.since.UnixNano())
	return s
}

func (t *tcpCarrier) add(s *tcpStream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.streams[streamKey{s.local, s.remote}] = s
	return true
}

// read splits a connection into frames until it closes. ESP frames go through an inbound pipeline
// of their own (decrypted in place in the decoder's buffer, written to the TUN device with GRO).
func (t *tcpCarrier) read(s *tcpStream) {
	defer t.drop(s)
	d := tcpencap.NewDecoder(!s.originator)
	// An inbound pipeline without a socket: the stream is its source.
	rx := &rxPipeline{e: t.e, gro: groWriter{queues: t.e.tun.queues}, hdrs: make([]byte, 32<<10)}
	if !s.originator {
		s.c.SetReadDeadline(time.Now().Add(tcpPrefixWait))
	}
	buf := make([]byte, tcpReadBuf)
	e := t.e
	for {
		n, err := s.c.Read(buf)
		if n > 0 {
			s.bytesIn.Add(uint64(n))
			d.Feed(buf[:n])
			ok := t.frames(s, d, rx)
			rx.gro.flush()
			rx.account(nil)
			if rx.gro.err != nil {
				t.e.log.Debug("TUN write", "err", rx.gro.err)
				rx.gro.err = nil
			}
			if !ok {
				return
			}
			if !s.originator {
				s.c.SetReadDeadline(time.Time{})
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				e.log.Debug("TCP connection ends", "local", s.local, "remote", s.remote, "err", err)
			}
			return
		}
	}
}

// frames handles every complete frame the decoder holds; false ends the connection (a framing
// error: RFC 9329 gives no way to resynchronise).
func (t *tcpCarrier) frames(s *tcpStream, d *tcpencap.Decoder, rx *rxPipeline) bool {
	e := t.e
	rx.hoff = 0
	for {
		kind, msg, ok, err := d.Next()
		if err != nil {
			e.stats.drops[dataplane.DropMalformed].Add(1)
			e.log.Info("closing TCP connection with a framing error", "local", s.local, "remote", s.remote, "err", err)
			return false
		}
		if !ok {
			return true
		}
		s.last.Store(e.cfg.Now().UnixNano())
		if kind == tcpencap.IKE {
			s.ikeIn.Add(1)
			e.stats.ikePackets.Add(1)
			t.mu.Lock()
			fn := t.onIKE
			t.mu.Unlock()
			if fn != nil {
				fn(msg, s.local, s.remote)
			}
			continue
		}
		s.espIn.Add(1)
		e.stats.netPackets.Add(1)
		sa := e.sad.lookup(dataplane.ESP, binary.BigEndian.Uint32(msg), s.local.Addr())
		if sa == nil || !sa.addr.Load().tcp || !sa.hold() {
			e.stats.drops[dataplane.DropNoSA].Add(1)
			continue
		}
		// Decrypted in place: the decoder's buffer is not read again before the next Feed, and
		// the GRO writer is flushed before that.
		rx.deliver(sa, msg, s.remote)
	}
}

// drop forgets a connection that ended and tells the daemon.
func (t *tcpCarrier) drop(s *tcpStream) {
	s.dead.Store(true)
	s.c.Close()
	t.mu.Lock()
	k := streamKey{s.local, s.remote}
	if t.streams[k] == s {
		delete(t.streams, k)
	}
	fn, closed := t.onClosed, t.closed
	t.mu.Unlock()
	if fn != nil && !closed {
		fn(s.local, s.remote)
	}
}

func (t *tcpCarrier) close() {
	t.mu.Lock()
	t.closed = true
	ls, ss := t.listeners, t.streams
	t.listeners, t.streams = nil, map[streamKey]*tcpStream{}
	t.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, s := range ss {
		s.c.Close()
	}
}

// pick returns the connection between local and remote, or else the newest live one between the
// two hosts (the originator reconnected from another port).
func (t *tcpCarrier) pick(local, remote netip.AddrPort) *tcpStream {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.streams[streamKey{local, remote}]; s != nil && !s.dead.Load() {
		return s
	}
	var best *tcpStream
	for _, s := range t.streams {
		if s.dead.Load() || s.local.Addr() != local.Addr() || s.remote.Addr() != remote.Addr() {
			continue
		}
		if best == nil || s.since.After(best.since) {
			best = s
		}
	}
	return best
}

// dial opens a connection to remote from local's address and sends the stream prefix.
func (t *tcpCarrier) dial(local, remote netip.AddrPort) (*tcpStream, error) {
	t.mu.Lock()
	k := streamKey{netip.AddrPortFrom(local.Addr(), 0), remote}
	m := t.dialing[k]
	if m == nil {
		m = &sync.Mutex{}
		t.dialing[k] = m
	}
	t.mu.Unlock()
	m.Lock()
	defer m.Unlock()
	// Another sender may have connected meanwhile.
	if s := t.pick(local, remote); s != nil && s.remote == remote {
		return s, nil
	}
	dl := net.Dialer{Timeout: tcpDialTimeout, Control: markControl(t.e.cfg.FwMark)}
	if local.Addr().IsValid() && !local.Addr().IsUnspecified() {
		dl.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local.Addr(), 0))
	}
	c, err := dl.Dial("tcp", remote.String())
	if err != nil {
		return nil, err
	}
	s := t.newStream(c.(*net.TCPConn), true)
	s.c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
	if _, err := s.c.Write([]byte(tcpencap.Prefix)); err != nil {
		s.c.Close()
		return nil, err
	}
	s.bytesOut.Add(uint64(len(tcpencap.Prefix)))
	if !t.add(s) {
		s.c.Close()
		return nil, errors.New("the data plane is closed")
	}
	go t.read(s)
	t.e.log.Info("opened TCP connection for IKE and ESP", "local", s.local, "remote", s.remote)
	return s, nil
}

// write sends frames already encoded, closing the connection when it does not drain.
func (s *tcpStream) write(frames []byte) error {
	s.c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
	_, err := s.c.Write(frames)
	if err != nil {
		s.c.Close() // the reader ends and reports it
		return err
	}
	s.bytesOut.Add(uint64(len(frames)))
	return nil
}

// SendIKETCP sends an IKE message in the TCP connection between local and remote (or the peer's
// newest one); with dial it opens one to remote when there is none. It blocks while connecting.
func (e *Engine) SendIKETCP(b []byte, local, remote netip.AddrPort, dial bool) error {
	t := e.carrier()
	s := t.pick(local, remote)
	if s == nil {
		if !dial {
			return fmt.Errorf("no TCP connection with %s (the peer opens it)", remote)
		}
		var err error
		if s, err = t.dial(local, remote); err != nil {
			return fmt.Errorf("TCP connection to %s: %w", remote, err)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	frame, err := tcpencap.AppendIKE(s.wbuf[:0], b)
	s.wbuf = frame[:0]
	if err != nil {
		return err
	}
	if err := s.write(frame); err != nil {
		return err
	}
	s.ikeOut.Add(1)
	return nil
}

// sendTCP writes a run of ESP packets of one outbound SA into its connection, as one write.
func (e *Engine) sendTCP(sa *saState, a *saAddr, pkts [][]byte) error {
	s := e.carrier().pick(netip.AddrPortFrom(a.src, a.srcPort), netip.AddrPortFrom(a.dst, a.dstPort))
	if s == nil {
		sa.dropN(dataplane.DropNoSA, len(pkts))
		return fmt.Errorf("no TCP connection with %s", a.dst)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	buf := s.wbuf[:0]
	for _, pkt := range pkts {
		var err error
		if buf, err = tcpencap.AppendESP(buf, pkt); err != nil {
			sa.drop(dataplane.DropMalformed)
		}
	}
	s.wbuf = buf[:0]
	if err := s.write(buf); err != nil {
		return err
	}
	s.espOut.Add(uint64(len(pkts)))
	return nil
}

// TCPStreams lists the TCP connections.
func (e *Engine) TCPStreams() []dataplane.TCPStream {
	t := e.carrier()
	t.mu.Lock()
	out := make([]dataplane.TCPStream, 0, len(t.streams))
	for _, s := range t.streams {
		out = append(out, dataplane.TCPStream{Local: s.local, Remote: s.remote, Originator: s.originator, Since: s.since,
			LastReceived: time.Unix(0, s.last.Load()), BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
			ESPIn: s.espIn.Load(), ESPOut: s.espOut.Load(), IKEIn: s.ikeIn.Load(), IKEOut: s.ikeOut.Load()})
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}
