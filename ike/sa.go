package ike

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// Deps are an SA's injected dependencies. One Deps value is shared by every SA of a driver.
type Deps struct {
	Rand io.Reader        // default crypto/rand
	Now  func() time.Time // default time.Now
	// AllocSPI returns a fresh inbound SPI for a Child SA, unique on this host.
	AllocSPI func() (uint32, error)
	// Nonce returns a fresh nonce of n bytes (default: n bytes from Rand). Tests script nonces
	// through it to decide who wins a rekey collision.
	Nonce func(n int) ([]byte, error)
	// Illegal is told about a refused state change (a bug, logged by the driver).
	Illegal func(error)
	// Unique tells what the driver knows about other IKE SAs of the same identities (nil: none).
	Unique func(*SA) Uniqueness
	// KeyLog: record KeysDerived effects (debugging only).
	KeyLog bool

	addrIDs *addrIdentities // set by WithDefaults
}

// addrIdentities shares the identity of each local address among the IKE SAs that use it as
// their ID (no local id configured: the address, as strongSwan does), instead of one copy per
// SA. Only a few local addresses are expected; past maxAddrIdentities new ones are not kept.
type addrIdentities struct {
	mu sync.Mutex
	m  map[netip.Addr]Identity
}

const maxAddrIdentities = 256

func (c *addrIdentities) get(a netip.Addr) Identity {
	if c == nil {
		return AddrIdentity(a)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.m[a]; ok {
		return id
	}
	id := AddrIdentity(a)
	if len(c.m) < maxAddrIdentities {
		c.m[a] = id
	}
	return id
}

// WithDefaults returns d with every unset dependency filled in.
func (d Deps) WithDefaults() *Deps {
	if d.Rand == nil {
		d.Rand = rand.Reader
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.AllocSPI == nil {
		r := d.Rand
		d.AllocSPI = func() (uint32, error) {
			var b [4]byte
			for {
				if _, err := io.ReadFull(r, b[:]); err != nil {
					return 0, err
				}
				if spi := binary.BigEndian.Uint32(b[:]); spi >= 256 {
					return spi, nil
				}
			}
		}
	}
	if d.Nonce == nil {
		r := d.Rand
		d.Nonce = func(n int) ([]byte, error) {
			b := make([]byte, n)
			_, err := io.ReadFull(r, b)
			return b, err
		}
	}
	if d.Illegal == nil {
		d.Illegal = func(error) {}
	}
	if d.addrIDs == nil {
		d.addrIDs = &addrIdentities{m: map[netip.Addr]Identity{}}
	}
	return &d
}

func (d *Deps) illegal(err error) { d.Illegal(err) }

// SA is one IKE SA with its Child SAs. It is owned by one goroutine at a time (the driver makes
// sure); none of its methods does I/O or blocks.
type SA struct {
	Config *PeerConfig
	deps   *Deps
	SPIi   uint64
	SPIr   uint64

	// Local and Remote are the current IKE addresses; the driver moves them to the NAT-T port
	// and follows a NAT mapping that changes.
	Local, Remote netip.AddrPort

	// The flags and small values sit together: the Go compiler does not reorder fields, and
	// spread among the words they would pad the SA by about 40 bytes (TestSASize).
	Initiator bool // we are the original initiator
	state     State
	// NATLocal: a NAT is in front of us (our NAT_DETECTION_SOURCE_IP did not match at the peer);
	// NATRemote: a NAT is in front of the peer. Either means ESP in UDP.
	NATLocal, NATRemote bool
	// NATFake: no NAT was found but encap = yes faked one toward the peer (ESP in UDP, no
	// keepalives).
	NATFake           bool
	PeerFragmentation bool
	// TCP: IKE and the Child SAs' ESP travel in TCP (RFC 9329) between Local and Remote;
	// TCPOriginator: this side opened the connection and reopens it when it breaks.
	TCP, TCPOriginator bool
	// PeerChildless: the peer announced RFC 6023 childless IKE SA support.
	PeerChildless bool
	// PeerInitialContact: the peer sent INITIAL_CONTACT in IKE_AUTH.
	PeerInitialContact bool
	// PPK: a post-quantum preshared key is mixed into the keys (RFC 9867 or RFC 8784).
	PPK bool
	// peerRedirect: the client announced REDIRECT_SUPPORTED (task_redirect.go).
	peerRedirect bool
	// mobike: MOBIKE was negotiated (task_mobike.go).
	mobike bool
	// adopting is set on an IKE SA created by the peer's rekey while ours of the same IKE SA was
	// outstanding: until the collision is decided it has no Child SAs and defers requests for them.
	adopting bool
	// replaced: a rekeyed IKE SA carries the connection on; this one's end is not its end.
	replaced bool
	// closing: kill the SA once the response being built is sent (an answered Delete, a failed
	// authentication).
	closing Reason

	Proposal   proposal.Proposal // the negotiated IKE proposal
	transforms suite.IKETransforms
	prf        suite.PRF
	keys       *suite.Keys
	// ivOut is the IV counter of our next message (AEAD ciphers). The IKE SA keeps no cipher
	// objects between messages — they are built from the keys when a message is sealed or
	// opened, which costs about a microsecond and saves 1.5 KB per held IKE SA.
	ivOut uint64

	// hs holds what only the initial exchanges need; it is dropped once IKE_AUTH completes.
	hs *handshake

	LocalID, RemoteID Identity
	Children          []*ChildSA
	// childMem is where Children lives while there is one Child SA (nearly every IKE SA of a
	// gateway): one object less per tunnel for the garbage collector. Children handed to
	// another IKE SA are copied out of it (moveTo, handOver), never aliased.
	childMem    [1]*ChildSA
	Established time.Time
	// LocalVIPs are the virtual IPs we received, RemoteVIPs those we assigned to the peer (their
	// leases are held under rare.vipID, task_cp.go).
	LocalVIPs, RemoteVIPs []netip.Addr
	// held is a request of the peer waiting for blocking work (async.go).
	held *heldRequest

	// Tasks: queued exchanges we will start, and the ones whose request is outstanding.
	queue  []initiatorTask
	active []initiatorTask

	effects []Effect

	// rare is what few IKE SAs need, or need only for an exchange or two (rare.go); nil when
	// none of it is in use.
	rare *saRare
}

// handshake is the IKE_SA_INIT/IKE_AUTH state.
type handshake struct {
	Ni, Nr     []byte
	ke         suite.KeyExchange
	group      uint16
	cookie     []byte
	initTries  int
	initReq    []byte // the IKE_SA_INIT request and response as sent, signed by AUTH
	initResp   []byte
	candidates []*PeerConfig // configurations a responder may still choose at IKE_AUTH
	secret     []byte        // the DH secret, kept only for the key log
	skeyseed   []byte        // kept only for the key log
	inter      *intermediate // IKE_INTERMEDIATE exchanges (RFC 9242), nil when none
	ppk        *ppkState     // post-quantum preshared key (RFC 8784), nil when not used
	// keepKE: the next IKE_SA_INIT request reuses ke (RestartInit), so that a responder that
	// answered the first one and replays its cached answer still agrees on the keys.
	keepKE bool
}

// ChildSA is one negotiated Child SA (a pair of ESP or AH SAs). Its keys are handed to the data plane
// in a ChildUp effect and not kept here.
type ChildSA struct {
	Config   *ChildConfig
	Name     string
	Mode     Mode
	Proposal proposal.Proposal
	// SPIIn is our inbound SPI (chosen by us), SPIOut the peer's.
	SPIIn, SPIOut     uint32
	LocalTS, RemoteTS []ts.Selector
	ESN               bool
	Created           time.Time
	// Initiated: we started the exchange that created it.
	Initiated bool
	// nonceMin is the lower of the two nonces of the exchange that created it: rekey collisions
	// are decided by it (RFC 7296 §2.8.1).
	nonceMin nonceValue
	state    ChildState
	// successor is the Child SA that replaces this one (rekeyed by either side).
	successor *ChildSA
	// redundant: the losing Child SA of a rekey collision; it never carries our traffic.
	redundant bool
	// RekeyAt and ExpireAt are the driver's deadlines (zero: none).
	RekeyAt, ExpireAt time.Time
}

// State returns the Child SA's state.
func (c *ChildSA) State() ChildState { return c.state }

// Protocol returns the Child SA's IPsec protocol, ESP or AH (from its negotiated proposal).
func (c *ChildSA) Protocol() proposal.Protocol { return c.Proposal.Protocol }

// wireProtocol is the Protocol ID that names the Child SA in REKEY_SA and Delete payloads.
func (c *ChildSA) wireProtocol() wire.ProtocolID { return wire.ProtocolID(c.Proposal.Protocol) }

// Encryption and Integrity return the negotiated transform IDs and key length (bits).
func (c *ChildSA) Encryption() (id uint16, bits uint16) {
	for _, t := range c.Proposal.Transforms {
		if t.Type == proposal.TypeEncryption {
			return t.ID, t.KeyLength
		}
	}
	return 0, 0
}

func (c *ChildSA) Integrity() uint16 {
	for _, t := range c.Proposal.Transforms {
		if t.Type == proposal.TypeIntegrity {
			return t.ID
		}
	}
	return 0
}

// MySPI is the SPI that identifies the SA on this side.
func (sa *SA) MySPI() uint64 {
	if sa.Initiator {
		return sa.SPIi
	}
	return sa.SPIr
}

// NAT reports whether a NAT was detected on either side (a faked one, NATFake, is not).
func (sa *SA) NAT() bool { return sa.NATLocal || sa.NATRemote }

// Encap reports whether Child SAs use ESP in UDP.
func (sa *SA) Encap() bool { return sa.NAT() || (sa.Config != nil && sa.Config.ForceEncap) }

// Zero wipes the IKE SA's keys and marks it dead.
func (sa *SA) Zero() {
	if sa.keys != nil {
		sa.keys.Zero()
		sa.keys = nil
	}
	sa.dropHandshake()
	sa.dropFollowups()
	sa.state = StateDead
}

// dropHandshake forgets the IKE_SA_INIT state once it is no longer needed.
func (sa *SA) dropHandshake() {
	if sa.hs == nil {
		return
	}
	if sa.hs.ke != nil {
		sa.hs.ke.Zero()
	}
	clear(sa.hs.secret)
	clear(sa.hs.skeyseed)
	if sa.hs.inter != nil {
		sa.hs.inter.next.zero()
	}
	if sa.hs.ppk != nil {
		sa.hs.ppk.zero()
	}
	sa.hs = nil
}

func (sa *SA) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(sa.deps.Rand, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (sa *SA) nonce() ([]byte, error) {
	n, err := sa.deps.Nonce(nonceLen)
	if err != nil {
		return nil, err
	}
	if len(n) < 16 || len(n) > 256 {
		return nil, fmt.Errorf("ike: nonce source gave %d bytes", len(n))
	}
	return n, nil
}

func (sa *SA) randomSPI() (uint64, error) {
	for {
		b, err := sa.random(8)
		if err != nil {
			return 0, err
		}
		if spi := binary.BigEndian.Uint64(b); spi != 0 {
			return spi, nil
		}
	}
}

// nonceLen is the nonce size we send: at least half the PRF key size (RFC 7296 §2.10); 32 bytes
// covers every PRF we offer.
const nonceLen = 32

// Header returns an IKE header for a message of this SA.
func (sa *SA) Header(ex wire.ExchangeType, msgID uint32, response bool) wire.Header {
	h := wire.Header{SPIi: sa.SPIi, SPIr: sa.SPIr, Exchange: ex, MessageID: msgID}
	if sa.Initiator {
		h.Flags |= wire.FlagInitiator
	}
	if response {
		h.Flags |= wire.FlagResponse
	}
	return h
}

// Seal encodes and protects a message. When the peer supports fragmentation and the message is
// larger than maxSize (a datagram's IKE payload budget), it is split into SKF fragments (RFC 7383).
// An IKE_INTERMEDIATE message joins the IntAuth chain as it was sealed (RFC 9242 §3.3.2), and once
// a responder's IKE_INTERMEDIATE response is sealed the keys its exchange derived take over.
func (sa *SA) Seal(h wire.Header, payloads []wire.Payload, maxSize int) ([][]byte, error) {
	out, err := sa.protector(true)
	if err != nil {
		return nil, err
	}
	defer out.Zero()
	m := &wire.Message{Header: h}
	b, err := m.EncodeEncrypted(payloads, out)
	if err != nil {
		return nil, err
	}
	if maxSize > 0 && len(b) > maxSize && sa.PeerFragmentation && sa.Config != nil && sa.Config.Fragmentation && h.Exchange != wire.ExchangeIKESAInit {
		msgs, err := (&wire.Message{Header: h}).EncodeFragments(payloads, out, maxSize)
		sa.keepIV(out)
		if err == nil {
			sa.sealed(h, payloads)
		}
		return msgs, err
	}
	sa.keepIV(out)
	sa.sealed(h, payloads)
	return [][]byte{b}, nil
}

// protector builds the Protector of one direction from the keys.
func (sa *SA) protector(out bool) (suite.Protector, error) {
	if sa.keys == nil {
		return nil, errors.New("ike: no keys yet")
	}
	p, err := sa.keys.Protector(sa.transforms, sa.Initiator, out, sa.deps.Rand)
	if err != nil {
		return nil, err
	}
	if c, ok := p.(suite.IVCounter); ok && out {
		c.SetNextIV(sa.ivOut)
	}
	return p, nil
}

// keepIV remembers where the IV counter of a sealing Protector stopped.
func (sa *SA) keepIV(p suite.Protector) {
	if c, ok := p.(suite.IVCounter); ok {
		sa.ivOut = c.NextIV()
	}
}

// Open authenticates and decrypts a protected message of this SA.
func (sa *SA) Open(b []byte) (*wire.Opened, error) {
	in, err := sa.protector(false)
	if err != nil {
		return nil, err
	}
	defer in.Zero()
	return wire.Open(b, in)
}

// Keys returns the IKE SA's keys (for debugging key logs); nil before IKE_SA_INIT completes.
func (sa *SA) Keys() *suite.Keys { return sa.keys }

// Transforms returns the negotiated IKE transforms.
func (sa *SA) Transforms() suite.IKETransforms { return sa.transforms }

// Child returns the live Child SA with the given inbound SPI.
func (sa *SA) Child(spiIn uint32) *ChildSA {
	for _, c := range sa.Children {
		if c.SPIIn == spiIn {
			return c
		}
	}
	return nil
}

// childByOutbound finds a Child SA by the protocol and the peer's SPI, which the peer names in
// REKEY_SA and Delete together with the protocol (RFC 7296 §3.10, §3.11): a REKEY_SA or Delete
// for AH must not find an ESP Child SA that happens to have that SPI, nor the other way round.
func (sa *SA) childByOutbound(proto wire.ProtocolID, spi uint32) *ChildSA {
	for _, c := range sa.Children {
		if c.SPIOut == spi && c.wireProtocol() == proto {
			return c
		}
	}
	return nil
}

func (sa *SA) removeChild(c *ChildSA) {
	for i, x := range sa.Children {
		if x == c {
			sa.Children = slices.Delete(sa.Children, i, i+1) // clears the freed slot (childMem)
			return
		}
	}
}

// findNotify returns the first Notify of type t.
func findNotify(ps []wire.Payload, t wire.NotifyType) *wire.Notify {
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}

// firstError returns the first error Notify (types below 16384).
func firstError(ps []wire.Payload) *wire.Notify {
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType.IsError() {
			return n
		}
	}
	return nil
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

// spiBytes encodes a 32-bit Child SA SPI for the wire.
func spiBytes(spi uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, spi)
}

func spiFromBytes(b []byte) (uint32, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

func ikeSPIBytes(spi uint64) []byte { return binary.BigEndian.AppendUint64(nil, spi) }

// Error is a negotiation failure: Notify is what to tell the peer (0: nothing), Msg the one-line
// explanation for the log that names both sides' offers.
type Error struct {
	Notify wire.NotifyType
	Data   []byte
	Msg    string
	// Reason classifies the failure.
	Reason Reason
}

func (e *Error) Error() string { return e.Msg }

func errorf(n wire.NotifyType, format string, args ...any) *Error {
	r := ReasonNegotiationFailed
	if n == wire.AuthenticationFailed {
		r = ReasonAuthFailed
	}
	return &Error{Notify: n, Msg: fmt.Sprintf(format, args...), Reason: r}
}

// IsStep reports whether err is a normal step of a negotiation rather than a failure: an *Error
// with ReasonNone, such as the INVALID_KE_PAYLOAD a responder answers with to make the initiator
// retry with another group.
func IsStep(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == ReasonNone
}

// ReasonOf classifies an error returned by this package.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) && e.Reason != ReasonNone {
		return e.Reason
	}
	return ReasonNegotiationFailed
}
