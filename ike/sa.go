package ike

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// Deps are an SA's injected dependencies.
type Deps struct {
	Rand io.Reader        // default crypto/rand
	Now  func() time.Time // default time.Now
	// AllocSPI returns a fresh inbound SPI for a Child SA, unique on this host.
	AllocSPI func() (uint32, error)
}

func (d *Deps) setDefaults() {
	if d.Rand == nil {
		d.Rand = rand.Reader
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.AllocSPI == nil {
		d.AllocSPI = func() (uint32, error) {
			var b [4]byte
			for {
				if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
					return 0, err
				}
				if spi := binary.BigEndian.Uint32(b[:]); spi >= 256 {
					return spi, nil
				}
			}
		}
	}
}

// State is the life-cycle state of an IKE SA.
type State uint8

const (
	StateInitSent    State = iota // initiator: IKE_SA_INIT request sent
	StateInitDone                 // IKE_SA_INIT complete, keys derived, IKE_AUTH pending
	StateAuthSent                 // initiator: IKE_AUTH request sent
	StateEstablished              // authenticated
	StateDeleting                 // a Delete for the IKE SA is under way
	StateDead                     // deleted, keys wiped
)

var stateNames = [...]string{"INIT_SENT", "INIT_DONE", "AUTH_SENT", "ESTABLISHED", "DELETING", "DEAD"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE(%d)", uint8(s))
}

// SA is one IKE SA.
type SA struct {
	Config    *PeerConfig
	deps      Deps
	Initiator bool // we are the original initiator
	SPIi      uint64
	SPIr      uint64
	State     State

	// Local and Remote are the current IKE addresses; the driver moves them to the NAT-T port.
	Local, Remote netip.AddrPort
	// NATLocal: a NAT is in front of us (our NAT_DETECTION_SOURCE_IP did not match at the peer);
	// NATRemote: a NAT is in front of the peer. Either means ESP in UDP.
	NATLocal, NATRemote bool
	PeerFragmentation   bool

	Proposal   proposal.Proposal // the negotiated IKE proposal
	transforms suite.IKETransforms
	prf        suite.PRF
	keys       *suite.Keys
	out, in    suite.Protector
	Ni, Nr     []byte
	ke         suite.KeyExchange
	group      uint16
	cookie     []byte
	initTries  int
	initReq    []byte // the IKE_SA_INIT request and response as sent, signed by AUTH
	initResp   []byte

	// candidates are the configurations a responder may still choose at IKE_AUTH.
	candidates []*PeerConfig

	LocalID, RemoteID Identity
	Children          []*ChildSA
	Established       time.Time

	// authChild is the Child SA the initiator negotiates inside IKE_AUTH.
	authChild *childRequest
}

// ChildSA is one negotiated Child SA (a pair of ESP SAs).
type ChildSA struct {
	Config   *ChildConfig
	Name     string
	Mode     Mode
	Proposal proposal.Proposal
	// SPIIn is our inbound SPI (chosen by us), SPIOut the peer's.
	SPIIn, SPIOut     uint32
	LocalTS, RemoteTS []ts.Selector
	EncrIn, IntegIn   []byte
	EncrOut, IntegOut []byte
	ESN               bool
	Created           time.Time
	// Initiated: we started the exchange that created it; nonces decide rekey collisions.
	Initiated bool
	Ni, Nr    []byte
	keys      *suite.ChildKeys
}

// Zero wipes the Child SA's keys.
func (c *ChildSA) Zero() {
	if c.keys != nil {
		c.keys.Zero()
	}
	c.EncrIn, c.IntegIn, c.EncrOut, c.IntegOut = nil, nil, nil, nil
}

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

// Keys returns the IKE SA's keys (for debugging key logs); nil before IKE_SA_INIT completes.
func (sa *SA) Keys() *suite.Keys { return sa.keys }

// Transforms returns the negotiated IKE transforms.
func (sa *SA) Transforms() suite.IKETransforms { return sa.transforms }

// NAT reports whether a NAT was detected on either side (or faked with ForceEncap).
func (sa *SA) NAT() bool { return sa.NATLocal || sa.NATRemote }

// Zero wipes the IKE SA's keys and those of its Child SAs.
func (sa *SA) Zero() {
	if sa.keys != nil {
		sa.keys.Zero()
	}
	if sa.out != nil {
		sa.out.Zero()
	}
	if sa.in != nil {
		sa.in.Zero()
	}
	if sa.ke != nil {
		sa.ke.Zero()
	}
	for _, c := range sa.Children {
		c.Zero()
	}
	sa.State = StateDead
}

func (sa *SA) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(sa.deps.Rand, b); err != nil {
		return nil, err
	}
	return b, nil
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
func (sa *SA) Seal(h wire.Header, payloads []wire.Payload, maxSize int) ([][]byte, error) {
	if sa.out == nil {
		return nil, errors.New("ike: no keys yet")
	}
	m := &wire.Message{Header: h}
	b, err := m.EncodeEncrypted(payloads, sa.out)
	if err != nil {
		return nil, err
	}
	if maxSize > 0 && len(b) > maxSize && sa.PeerFragmentation && sa.Config != nil && sa.Config.Fragmentation && h.Exchange != wire.ExchangeIKESAInit {
		return (&wire.Message{Header: h}).EncodeFragments(payloads, sa.out, maxSize)
	}
	return [][]byte{b}, nil
}

// Open authenticates and decrypts a protected message of this SA.
func (sa *SA) Open(b []byte) (*wire.Opened, error) {
	if sa.in == nil {
		return nil, errors.New("ike: no keys yet")
	}
	return wire.Open(b, sa.in)
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
}

func (e *Error) Error() string { return e.Msg }

func errorf(n wire.NotifyType, format string, args ...any) *Error {
	return &Error{Notify: n, Msg: fmt.Sprintf(format, args...)}
}
