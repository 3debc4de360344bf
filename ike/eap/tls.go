package eap

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// EAP-TLS (RFC 5216) and EAP-TTLS (RFC 5281) run a TLS 1.2 handshake of crypto/tls inside EAP.
// crypto/tls wants a connection it reads and writes; a pump gives it one whose Read waits for the
// next EAP packet, so that each EAP step feeds the peer's TLS records in and takes the records
// TLS wrote out until it waits again. TLS 1.3 inside EAP needs RFC 9190's rules (a commitment
// message, resumption), which strongSwan 5.9 does not speak: the version is 1.2.

// TLSConfig is what the TLS-based methods need from the credentials.
type TLSConfig struct {
	// Certificate is ours: the server's always, the client's for EAP-TLS.
	Certificate *tls.Certificate
	// VerifyPeer checks the peer's certificate chain (DER, leaf first) against the trust anchors
	// and the identity it must have (the EAP identity of a client, aaa_id of a server).
	VerifyPeer func(chain [][]byte) error
	// FragmentSize bounds the TLS data of one EAP packet (default 1024, strongSwan's).
	FragmentSize int
}

// EAP-TLS flags (RFC 5216 §3.1).
const (
	flagLength = 0x80
	flagMore   = 0x40
	flagStart  = 0x20
)

// pumpTimeout ends a TLS exchange whose peer went away (the goroutine that runs it then ends).
const pumpTimeout = 2 * time.Minute

// pump is the connection crypto/tls reads and writes.
type pump struct {
	in      chan []byte   // the peer's data, one chunk per EAP step
	need    chan struct{} // TLS waits for more input
	fin     chan error    // the TLS side ended (nil: done)
	mu      sync.Mutex
	out     bytes.Buffer
	pending []byte
	closed  chan struct{}
	once    sync.Once
	// ready: TLS has asked for input (its need was taken) and waits for it. Only the EAP side
	// reads and writes it.
	ready bool
	// serverRandom is taken from the ServerHello going through (either way) and master the
	// master secret from the key log: the exporter without Extended Master Secret (tlsprf.go).
	hello        []byte
	serverRandom []byte
	master       keyCapture
}

func newPump() *pump {
	return &pump{in: make(chan []byte), need: make(chan struct{}), fin: make(chan error, 1), closed: make(chan struct{})}
}

func (p *pump) Read(b []byte) (int, error) {
	if len(p.pending) == 0 {
		select {
		case p.need <- struct{}{}:
		case <-p.closed:
			return 0, io.EOF
		case <-time.After(pumpTimeout):
			return 0, errors.New("eap: TLS peer went silent")
		}
		select {
		case d := <-p.in:
			p.pending = d
		case <-p.closed:
			return 0, io.EOF
		case <-time.After(pumpTimeout):
			return 0, errors.New("eap: TLS peer went silent")
		}
	}
	n := copy(b, p.pending)
	p.sniff(p.pending[:n])
	p.pending = p.pending[n:]
	return n, nil
}

func (p *pump) Write(b []byte) (int, error) {
	p.sniff(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *pump) take() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := append([]byte(nil), p.out.Bytes()...)
	p.out.Reset()
	return b
}

func (p *pump) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *pump) LocalAddr() net.Addr              { return pipeAddr{} }
func (p *pump) RemoteAddr() net.Addr             { return pipeAddr{} }
func (p *pump) SetDeadline(time.Time) error      { return nil }
func (p *pump) SetReadDeadline(time.Time) error  { return nil }
func (p *pump) SetWriteDeadline(time.Time) error { return nil }
func (pipeAddr) Network() string                 { return "eap" }
func (pipeAddr) String() string                  { return "eap" }

type pipeAddr struct{}

// waitFor waits until TLS wants input (false) or has ended (true, with its error).
func (p *pump) waitFor() (bool, error) {
	if p.ready {
		return false, nil
	}
	select {
	case <-p.need:
		p.ready = true
		return false, nil
	case err := <-p.fin:
		return true, err
	}
}

// feedAndWait gives TLS the peer's data once it asks for it, and waits for its answer.
func (p *pump) feedAndWait(d []byte) (bool, error) {
	if done, err := p.waitFor(); done {
		return true, err
	}
	p.ready = false
	select {
	case p.in <- d:
	case err := <-p.fin:
		return true, err
	}
	return p.waitFor()
}

// tlsSession runs one TLS endpoint over a pump: handshake, then (TTLS) the application phase.
type tlsSession struct {
	p     *pump
	conn  *tls.Conn
	ended bool
	err   error
	// The fragment layer: what is still to be sent, and what has been received so far.
	sendBuf  []byte
	recvBuf  []byte
	recvWant int
	frag     int
}

// startTLS begins a session; app runs after the handshake on the TLS goroutine (nil: none).
func startTLS(conn *tls.Conn, p *pump, app func(*tls.Conn) error, frag int) *tlsSession {
	if frag <= 0 {
		frag = 1024
	}
	s := &tlsSession{p: p, conn: conn, frag: frag}
	go func() {
		err := conn.Handshake()
		if err == nil && app != nil {
			err = app(conn)
		}
		p.fin <- err
	}()
	return s
}

// step feeds the peer's TLS data (nil: none yet) and returns ours; ended when TLS is done.
func (s *tlsSession) step(in []byte) ([]byte, bool, error) {
	if s.ended {
		return nil, true, s.err
	}
	var done bool
	var err error
	if in == nil {
		done, err = s.p.waitFor()
	} else {
		done, err = s.p.feedAndWait(in)
	}
	out := s.p.take()
	if done {
		s.ended, s.err = true, err
		if err != nil {
			s.p.Close()
		}
	}
	return out, done, err
}

func (s *tlsSession) close() { s.p.Close() }

// --- fragments (RFC 5216 §2.1.5) ---

// nextFragment returns the Type-Data of the next packet carrying sendBuf: L and the total length
// in the first of several, M while more follow.
func (s *tlsSession) nextFragment(first bool) []byte {
	n := min(len(s.sendBuf), s.frag)
	var flags byte
	more := n < len(s.sendBuf)
	hdr := []byte{0}
	if more {
		flags |= flagMore
	}
	if first && more {
		flags |= flagLength
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(s.sendBuf)))
	}
	hdr[0] = flags
	out := append(hdr, s.sendBuf[:n]...)
	s.sendBuf = s.sendBuf[n:]
	return out
}

// receive takes one packet's Type-Data. complete reports a whole TLS message in recvBuf; ack
// tells the caller to answer with an empty packet for the next fragment.
func (s *tlsSession) receive(data []byte) (complete bool, err error) {
	if len(data) < 1 {
		return false, errors.New("EAP-TLS packet without flags")
	}
	flags := data[0]
	body := data[1:]
	if flags&flagLength != 0 {
		if len(body) < 4 {
			return false, errors.New("EAP-TLS length flag without length")
		}
		total := int(binary.BigEndian.Uint32(body))
		if total > 1<<20 {
			return false, fmt.Errorf("EAP-TLS message of %d bytes", total)
		}
		if s.recvBuf == nil {
			s.recvWant = total
		}
		body = body[4:]
	}
	s.recvBuf = append(s.recvBuf, body...)
	if len(s.recvBuf) > 1<<20 {
		return false, errors.New("EAP-TLS message too long")
	}
	return flags&flagMore == 0, nil
}

func (s *tlsSession) takeReceived() []byte {
	b := s.recvBuf
	s.recvBuf, s.recvWant = nil, 0
	if b == nil {
		b = []byte{}
	}
	return b
}

// tlsBase is the server or client side of EAP-TLS or -TTLS: the fragment layer around a
// tlsSession.
type tlsBase struct {
	s *tlsSession
	// sending: a fragmented message is going out; each ack asks for the next piece.
	sending bool
	// finished: TLS (and the inner phase) ended; the next packet from the peer is its ack.
	finished bool
	label    string // exporter label of the MSK
	msk      []byte
}

// out turns TLS data into the next Type-Data, fragmenting as needed.
func (b *tlsBase) out(data []byte) []byte {
	b.s.sendBuf = data
	frag := b.s.nextFragment(true)
	b.sending = len(b.s.sendBuf) > 0
	return frag
}

// in handles one packet from the peer: an ack for our fragments, a fragment of theirs, or a
// whole TLS message (fed to TLS; its answer returned). done reports TLS has ended.
func (b *tlsBase) in(data []byte) (reply []byte, done bool, err error) {
	if b.sending {
		if len(data) != 1 || data[0] != 0 {
			return nil, false, errors.New("expected an EAP-TLS acknowledgement")
		}
		frag := b.s.nextFragment(false)
		b.sending = len(b.s.sendBuf) > 0
		return frag, false, nil
	}
	complete, err := b.s.receive(data)
	if err != nil {
		return nil, false, err
	}
	if !complete {
		return []byte{0}, false, nil // ack: send the next fragment
	}
	tlsIn := b.s.takeReceived()
	if len(tlsIn) == 0 {
		// An acknowledgement of our last flight, with nothing for TLS.
		tlsIn = nil
	}
	tlsOut, ended, err := b.s.step(tlsIn)
	if err != nil {
		return nil, true, err
	}
	if ended {
		b.finished = true
		if err := b.exportMSK(); err != nil {
			return nil, true, err
		}
	}
	return b.out(tlsOut), ended, nil
}

// exportMSK derives the MSK: the first 64 octets of TLS-PRF(master secret, label, client random |
// server random) (RFC 5216 §2.3, RFC 5281 §8), the RFC 5705 exporter without context.
func (b *tlsBase) exportMSK() error {
	msk, err := b.s.p.export(b.s.conn, b.label, 64)
	if err != nil {
		return fmt.Errorf("EAP-TLS key export: %w", err)
	}
	b.msk = msk
	return nil
}

func baseTLSConfig(c *TLSConfig) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		// One full handshake per conversation: no resumption (and no renegotiation, which
		// crypto/tls refuses by default), so the exporter without Extended Master Secret is not
		// open to the triple handshake attack (tlsprf.go).
		SessionTicketsDisabled: true,
		// The peer's chain is checked by VerifyPeer against goipsec's credential store.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if c.VerifyPeer == nil {
				return errors.New("no way to verify the peer's certificate")
			}
			return c.VerifyPeer(raw)
		}}
}
