package ikev1

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ikev1/wire"
	"github.com/goipsec/goipsec/proposal"
)

// Config is one connection as IKEv1 sees it: the IKEv2 peer configuration (proposals,
// identities, PSK look-up, children, timers) plus what only IKEv1 has.
type Config struct {
	Peer *ike.PeerConfig
	// Aggressive initiates Aggressive Mode instead of Main Mode. With a PSK the responder's
	// answer carries a hash that an eavesdropper can attack offline (RFC 2409 §5; the daemon
	// warns).
	Aggressive bool
	// AllowWeak: the connection opted in to 3DES, SHA-1 and MODP1024. Its proposals may then
	// contain them; SAs that use them are logged as weak.
	AllowWeak bool
	// Lifetime is the ISAKMP SA's lifetime we propose and the most we accept (0: 3 hours).
	Lifetime time.Duration
	// DPDTimeout: a peer that answers no R-U-THERE for this long is dead (0: 150 s, RFC 3706
	// leaves it to the implementation; strongSwan's default).
	DPDTimeout time.Duration
	// XAuth: as responder, require XAuth (XAUTHInitPreShared) and check the user's password
	// with Users (the seam for RADIUS).
	XAuth bool
	Users func(user string) (password string, ok bool)
	// Pool and DNS answer Mode Config requests (virtual IPs).
	Pool Addresses
	DNS  []netip.Addr
}

func (c *Config) name() string {
	if c == nil || c.Peer == nil {
		return ""
	}
	return c.Peer.Name
}

func (c *Config) lifetime() time.Duration {
	if c.Lifetime > 0 {
		return c.Lifetime
	}
	return 3 * time.Hour
}

// Timing are the retransmission settings (the same knobs as the IKEv2 engine's).
type Timing struct {
	Timeout time.Duration
	Base    float64
	Tries   int
}

func (t Timing) delay(n int) time.Duration {
	d := float64(t.Timeout)
	for range n {
		d *= t.Base
	}
	return time.Duration(d)
}

// Vendor IDs we send and recognise.
var (
	// vidNATT is MD5("RFC 3947") (RFC 3947 §3.1).
	vidNATT = []byte{0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f}
	// vidDPD is RFC 3706 §4's vendor ID (the last two bytes are major and minor version 1.0).
	vidDPD = []byte{0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00}
)

// Phase1State is the state of the ISAKMP SA.
type Phase1State uint8

// Phase 1 states.
const (
	StateStart       Phase1State = iota
	StateSASent                  // I: MM1 sent
	StateKESent                  // I: MM3 sent / R: MM2 sent, waiting for MM3 (SA done)
	StateAuthSent                // I: MM5 or AM1 sent / R: MM4 or AM2 sent, waiting for the last
	StateEstablished             // authenticated
	StateDeleting                // our Delete is being sent
	StateDead
	numPhase1States
)

var phase1Names = [...]string{"START", "SA_SENT", "KE_SENT", "AUTH_SENT", "ESTABLISHED", "DELETING", "DEAD"}

func (s Phase1State) String() string {
	if int(s) < len(phase1Names) {
		return phase1Names[s]
	}
	return fmt.Sprintf("STATE(%d)", uint8(s))
}

// phase1Moves is the state table: every legal move of an ISAKMP SA.
var phase1Moves = [numPhase1States][numPhase1States]bool{
	StateStart:       {StateSASent: true, StateKESent: true, StateAuthSent: true, StateDead: true},
	StateSASent:      {StateKESent: true, StateDead: true},
	StateKESent:      {StateAuthSent: true, StateDead: true},
	StateAuthSent:    {StateEstablished: true, StateDead: true},
	StateEstablished: {StateDeleting: true, StateDead: true},
	StateDeleting:    {StateDead: true},
}

// Output is what processing produced, in order: an effect for the daemon (ike.ChildUp,
// ike.IKEUp, ...) or a datagram to send.
type Output struct {
	Effect ike.Effect
	Send   *Datagram
}

// Datagram is an IKEv1 message to send from Local to Remote (the driver adds the non-ESP marker
// on the NAT-T port).
type Datagram struct {
	Local, Remote netip.AddrPort
	B             []byte
}

// SA is one ISAKMP SA (phase 1) with its phase 2 exchanges and the IPsec SAs they made. Like the
// IKEv2 SA it does no I/O: a driver feeds it datagrams and ticks and carries out its Output.
type SA struct {
	cfg      *Config
	deps     *ike.Deps
	timing   Timing
	nattPort uint16

	Initiator  bool
	Aggressive bool
	// Successor: this phase 1 replaces an older one of the connection (no INITIAL-CONTACT).
	Successor  bool
	CkyI, CkyR uint64
	state      Phase1State

	Local, Remote       netip.AddrPort
	NATLocal, NATRemote bool
	peerNATT, peerDPD   bool

	chosen p1Transform
	keys   *keys
	// Handshake values.
	saiB               []byte // the initiator's SA payload body (HASH_I/HASH_R, RFC 2409 §5)
	ke                 suite.KeyExchange
	gxi, gxr           []byte
	ni, nr             []byte
	gxy                []byte
	iv                 []byte // phase 1 CBC chain; after phase 1, its last block
	idB                []byte // our phase 1 ID payload body
	peerIDB            []byte // the initiator's Aggressive Mode ID payload body
	LocalID            ike.Identity
	RemoteID           ike.Identity
	Established        time.Time
	started            time.Time
	PeerInitialContact bool

	quick map[uint32]*quickMode
	txns  map[uint32]*txn
	// XAuth and Mode Config (responder).
	xauthUser          string
	xauthOK, xauthDone bool
	vip                netip.Addr
	vipLease           string
	Children           []*Child
	pending            []*ike.ChildConfig // children to negotiate once phase 1 is up

	// Retransmission of our last message of each exchange, by message ID (phase 1: 0).
	out map[uint32]*outstanding
	// The last message received of each exchange and our answer, to answer a retransmission
	// from cache (never recomputed).
	lastIn      map[uint32]*received
	lastInOrder []uint32
	// halfOpenUntil: a responder whose phase 1 is not complete by then gives up.
	halfOpenUntil time.Time

	lastSeen    time.Time
	dpdSeq      uint32
	dpdSent     time.Time // first unanswered R-U-THERE (zero: none)
	dpdLast     time.Time // the last R-U-THERE sent
	rekeyAt     time.Time
	expireAt    time.Time
	keepaliveAt time.Time
	keepalive   time.Duration

	reason   ike.Reason
	replaced bool // a newer phase 1 took the Child SAs
	output   []Output
}

type outstanding struct {
	b     []byte
	tries int
	next  time.Time
	// what gives up: phase 1 kills the SA; others only abort the exchange.
	onGiveUp func()
}

type received struct {
	sum   [32]byte
	reply []byte
}

// Phase1 reports the state.
func (sa *SA) State() Phase1State { return sa.state }

// Name is the connection's name.
func (sa *SA) Name() string { return sa.cfg.name() }

// Config returns the connection.
func (sa *SA) Config() *Config { return sa.cfg }

// Proposal returns the negotiated phase 1 transform in keyword form.
func (sa *SA) Proposal() proposal.Proposal { return sa.chosen.proposal() }

// Weak reports whether the ISAKMP SA uses a legacy algorithm.
func (sa *SA) Weak() bool { return sa.chosen.weak() }

// NAT reports whether a NAT was found on either side.
func (sa *SA) NAT() bool { return sa.NATLocal || sa.NATRemote }

func (sa *SA) setState(next Phase1State) bool {
	if sa.state == next {
		return true
	}
	if !phase1Moves[sa.state][next] {
		sa.deps.Illegal(ike.IllegalTransition{What: "ISAKMP SA", From: sa.state.String(), To: next.String()})
		return false
	}
	sa.state = next
	return true
}

func (sa *SA) emit(e ike.Effect) { sa.output = append(sa.output, Output{Effect: e}) }

// TakeOutput returns what processing produced since the last call, in order.
func (sa *SA) TakeOutput() []Output {
	o := sa.output
	sa.output = nil
	return o
}

// Info identifies the SA in effects (the cookies as SPIs).
func (sa *SA) Info() ike.IKEInfo {
	return ike.IKEInfo{Conn: sa.Name(), SPIi: sa.CkyI, SPIr: sa.CkyR, Initiator: sa.Initiator, Local: sa.Local, Remote: sa.Remote,
		LocalID: sa.LocalID, RemoteID: sa.RemoteID, NATLocal: sa.NATLocal, NATRemote: sa.NATRemote, Proposal: sa.chosen.proposal()}
}

// MyCookie is the cookie that identifies the SA on this side.
func (sa *SA) MyCookie() uint64 {
	if sa.Initiator {
		return sa.CkyI
	}
	return sa.CkyR
}

func (sa *SA) now() time.Time { return sa.deps.Now() }

func (sa *SA) cookie() (uint64, error) {
	var b [8]byte
	for {
		if _, err := io.ReadFull(sa.deps.Rand, b[:]); err != nil {
			return 0, err
		}
		if c := binary.BigEndian.Uint64(b[:]); c != 0 {
			return c, nil
		}
	}
}

func (sa *SA) nonce() ([]byte, error) { return sa.deps.Nonce(32) }

// --- sending ---

func (sa *SA) header(x wire.ExchangeType, msgID uint32, flags uint8) wire.Header {
	return wire.Header{ICookie: sa.CkyI, RCookie: sa.CkyR, Exchange: x, MessageID: msgID, Flags: flags}
}

// plain encodes an unencrypted message.
func (sa *SA) plain(x wire.ExchangeType, ps ...wire.Payload) ([]byte, error) {
	m := &wire.Message{Header: sa.header(x, 0, 0), Payloads: ps}
	return m.Encode()
}

// sealed encodes and encrypts a message with iv, returning it and the next IV.
func (sa *SA) sealed(h wire.Header, iv []byte, ps ...wire.Payload) (b, next []byte, err error) {
	body, err := wire.EncodePayloads(ps)
	if err != nil {
		return nil, nil, err
	}
	ct, err := encrypt(sa.keys.enc, sa.keys.encKey, iv, body)
	if err != nil {
		return nil, nil, err
	}
	h.Flags |= wire.FlagEncryption
	return wire.Assemble(h, wire.FirstType(ps), ct), lastBlock(sa.keys.enc, ct), nil
}

// open decrypts a received message's body with iv and decodes its payloads.
func (sa *SA) open(b []byte, h wire.Header, iv []byte) (ps []wire.Payload, next []byte, err error) {
	if !h.Encrypted() {
		return nil, nil, errors.New("message is not encrypted")
	}
	ct := b[wire.HeaderLen:]
	pt, err := decrypt(sa.keys.enc, sa.keys.encKey, iv, ct)
	if err != nil {
		return nil, nil, err
	}
	ps, err = wire.DecodePayloads(h.NextPayload, pt, true)
	if err != nil {
		return nil, nil, err
	}
	return ps, lastBlock(sa.keys.enc, ct), nil
}

// send queues a datagram to the peer; with retransmit it is resent until the exchange moves on.
func (sa *SA) send(b []byte, msgID uint32, retransmit bool, onGiveUp func()) {
	sa.output = append(sa.output, Output{Send: &Datagram{Local: sa.Local, Remote: sa.Remote, B: b}})
	if retransmit {
		sa.out[msgID] = &outstanding{b: b, next: sa.now().Add(sa.timing.delay(0)), onGiveUp: onGiveUp}
	}
}

// answered records our reply to a received message (for retransmitted copies of it).
func (sa *SA) answered(in []byte, msgID uint32, reply []byte) {
	if _, ok := sa.lastIn[msgID]; !ok {
		sa.lastInOrder = append(sa.lastInOrder, msgID)
		// Only the most recent exchanges can still be retransmitted: a long-lived SA with
		// frequent DPD and rekeys must not keep all of them.
		for len(sa.lastInOrder) > maxRemembered {
			old := sa.lastInOrder[0]
			sa.lastInOrder = sa.lastInOrder[1:]
			if old != 0 {
				delete(sa.lastIn, old)
			}
		}
	}
	sa.lastIn[msgID] = &received{sum: sha256.Sum256(in), reply: reply}
}

// maxRemembered bounds the exchanges whose last message and answer are kept for retransmissions.
const maxRemembered = 32

// duplicate answers a retransmitted message from the cache; it reports whether b was one.
func (sa *SA) duplicate(b []byte, msgID uint32) bool {
	r := sa.lastIn[msgID]
	if r == nil {
		return false
	}
	sum := sha256.Sum256(b)
	if !hmac.Equal(sum[:], r.sum[:]) {
		return false
	}
	if r.reply != nil {
		sa.output = append(sa.output, Output{Send: &Datagram{Local: sa.Local, Remote: sa.Remote, B: r.reply}})
	}
	return true
}

// --- ending ---

// Error is a negotiation failure with the notify to send (0: none).
type Error struct {
	Notify wire.NotifyType
	Msg    string
	Reason ike.Reason
}

func (e *Error) Error() string { return e.Msg }

func errorf(n wire.NotifyType, format string, args ...any) *Error {
	r := ike.ReasonNegotiationFailed
	if n == wire.AuthenticationFailed || n == wire.InvalidHashInformation || n == wire.InvalidIDInformation {
		r = ike.ReasonAuthFailed
	}
	return &Error{Notify: n, Msg: fmt.Sprintf(format, args...), Reason: r}
}

// Fail ends the SA after a failure: the peer is told (when the error names a notify) and a
// Failed effect says why.
func (sa *SA) Fail(err error) { sa.fail(err) }

// fail ends a phase 1 that failed, telling the peer when the notify can be sent.
func (sa *SA) fail(err error) {
	var e *Error
	reason := ike.ReasonNegotiationFailed
	if errors.As(err, &e) {
		reason = e.Reason
		if e.Notify != 0 {
			n := &wire.Notify{DOI: wire.DOIIPsec, Protocol: wire.ProtoISAKMP, SPI: sa.cookies(), NotifyType: e.Notify}
			if b, err := sa.plain(wire.ExchangeInformational, n); err == nil {
				sa.output = append(sa.output, Output{Send: &Datagram{Local: sa.Local, Remote: sa.Remote, B: b}})
			}
		}
	}
	sa.emit(ike.Failed{Conn: sa.Name(), Err: err})
	sa.Kill(reason)
}

func (sa *SA) cookies() []byte {
	b := binary.BigEndian.AppendUint64(nil, sa.CkyI)
	return binary.BigEndian.AppendUint64(b, sa.CkyR)
}

// Kill ends the ISAKMP SA at once: its IPsec SAs go down, keys are wiped.
func (sa *SA) Kill(reason ike.Reason) {
	if sa.state == StateDead {
		return
	}
	wasUp := sa.state == StateEstablished || sa.state == StateDeleting
	for _, c := range sa.Children {
		sa.emit(ike.ChildDown{IKE: sa.Info(), Name: c.Name, SPIIn: c.SPIIn, SPIOut: c.SPIOut, Reason: childReason(reason)})
	}
	sa.Children = nil
	for _, q := range sa.quick {
		q.zero()
	}
	sa.quick = nil
	sa.emit(ike.IKEDown{IKE: sa.Info(), Reason: reason, Up: wasUp, Replaced: sa.replaced})
	sa.releaseVIP()
	sa.zero()
	sa.state = StateDead
	sa.reason = reason
}

func childReason(r ike.Reason) ike.Reason {
	if r == ike.ReasonRekeyed {
		return ike.ReasonParentGone
	}
	return r
}

func (sa *SA) zero() {
	sa.keys.zero()
	if sa.ke != nil {
		sa.ke.Zero()
		sa.ke = nil
	}
	clear(sa.gxy)
	sa.gxy = nil
}

// Reason says why a dead SA ended.
func (sa *SA) Reason() ike.Reason { return sa.reason }

// New returns an SA bound to its dependencies; the driver calls Initiate or RespondFirst next.
func New(deps *ike.Deps, timing Timing, nattPort uint16) *SA {
	return &SA{deps: deps, timing: timing, nattPort: nattPort, quick: map[uint32]*quickMode{}, txns: map[uint32]*txn{},
		out: map[uint32]*outstanding{}, lastIn: map[uint32]*received{}}
}

func find[T wire.Payload](ps []wire.Payload) T {
	var zero T
	for _, p := range ps {
		if t, ok := p.(T); ok {
			return t
		}
	}
	return zero
}

func findAll[T wire.Payload](ps []wire.Payload) []T {
	var out []T
	for _, p := range ps {
		if t, ok := p.(T); ok {
			out = append(out, t)
		}
	}
	return out
}
