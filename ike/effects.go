package ike

import (
	"net/netip"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// Effect is something an IKE SA's processing wants done outside it: installing or removing Child
// SAs in the data plane, reporting state changes. The SA only records effects (TakeEffects hands
// them over); the driver applies them, in order, after it has released the SA, so that nothing
// that may block (netlink, the data plane, logging to a slow sink) runs while an SA is held.
type Effect interface{ isEffect() }

// IKEInfo identifies an IKE SA in effects: an immutable copy, safe to read anywhere.
type IKEInfo struct {
	Conn                string
	SPIi, SPIr          uint64
	Initiator           bool
	Local, Remote       netip.AddrPort
	LocalID, RemoteID   Identity
	NATLocal, NATRemote bool
	Proposal            proposal.Proposal
	// LocalVIPs are virtual IPs we received; RemoteVIPs those we leased to the peer under
	// VIPID (released when the IKE SA goes unless Replaced).
	LocalVIPs, RemoteVIPs []netip.Addr
	VIPID                 string
	// EAPID is the EAP identity authenticated in the IKE SA ("" without EAP); AAAClass the
	// RADIUS Class values of that authentication.
	EAPID    string
	AAAClass [][]byte
	// TCP: IKE and ESP in TCP (RFC 9329).
	TCP bool
	// PPK: a post-quantum preshared key is in the keys (RFC 9867 or RFC 8784).
	PPK bool
}

// Info returns the IKE SA's identification for effects and logs.
func (sa *SA) Info() IKEInfo {
	name := ""
	if sa.Config != nil {
		name = sa.Config.Name
	}
	info := IKEInfo{Conn: name, SPIi: sa.SPIi, SPIr: sa.SPIr, Initiator: sa.Initiator, Local: sa.Local, Remote: sa.Remote,
		LocalID: sa.LocalID, RemoteID: sa.RemoteID, NATLocal: sa.NATLocal, NATRemote: sa.NATRemote, Proposal: sa.Proposal,
		LocalVIPs: sa.LocalVIPs, RemoteVIPs: sa.RemoteVIPs, TCP: sa.TCP, PPK: sa.PPK}
	if r := sa.rare; r != nil {
		info.VIPID, info.EAPID, info.AAAClass = r.vipID, r.eapID, r.aaaClass
	}
	return info
}

// IKEUp reports an authenticated IKE SA. InitialContact is set when the peer sent INITIAL_CONTACT.
type IKEUp struct {
	IKE            IKEInfo
	InitialContact bool
}

// IKEDown reports an IKE SA that is gone. Up is false when it never completed IKE_AUTH.
type IKEDown struct {
	IKE    IKEInfo
	Reason Reason
	Up     bool
	// Replaced: a rekeyed IKE SA carries the connection on; its end is not the connection's end.
	Replaced bool
}

// IKERekeyed reports that New replaced Old.
type IKERekeyed struct{ Old, New IKEInfo }

// ChildInstall describes a negotiated Child SA for the data plane. The key slices belong to the
// effect: the Child SA keeps no copy, and whoever applies the effect wipes them after use.
type ChildInstall struct {
	IKE               IKEInfo
	Config            *ChildConfig
	Name              string
	Mode              Mode
	Proposal          proposal.Proposal // its Protocol is ESP or AH (see Protocol)
	SPIIn, SPIOut     uint32
	LocalTS, RemoteTS []ts.Selector
	EncrIn, IntegIn   []byte
	EncrOut, IntegOut []byte
	ESN               bool
	// Encap: ESP in UDP between IKE.Local and IKE.Remote; with IKE.TCP, ESP in the IKE SA's TCP
	// connection instead (RFC 9329).
	Encap bool
	// Activate points the outbound policy at this Child SA now. Without it the Child SA only
	// receives until a ChildActivate follows (the successor of a rekey the peer started).
	Activate bool
	// NotifyFirstInbound asks the data plane to report the first packet on the inbound SA
	// (Engine.InboundActive), the sign that the peer sends on it.
	NotifyFirstInbound bool
	// Replaces is the inbound SPI of the Child SA this one rekeys (0: none).
	Replaces uint32
}

// Protocol returns the Child SA's IPsec protocol: proposal.ProtoESP or proposal.ProtoAH. An AH
// Child SA has no encryption keys (EncrIn and EncrOut are empty) and is never encapsulated.
func (c *ChildInstall) Protocol() proposal.Protocol { return c.Proposal.Protocol }

// Zero wipes the key material.
func (c *ChildInstall) Zero() {
	clear(c.EncrIn)
	clear(c.IntegIn)
	clear(c.EncrOut)
	clear(c.IntegOut)
}

// ChildUp asks for a Child SA to be installed.
type ChildUp struct{ Child *ChildInstall }

// ChildActivate moves the outbound traffic of a Child SA's policy to it (make-before-break).
type ChildActivate struct {
	IKE   IKEInfo
	Name  string
	SPIIn uint32
}

// ChildDown asks for a Child SA to be removed. Grace keeps the inbound SA a little longer for
// packets the peer sent before it switched (after a rekey).
type ChildDown struct {
	IKE           IKEInfo
	Name          string
	Protocol      proposal.Protocol // ESP or AH
	SPIIn, SPIOut uint32
	Reason        Reason
	Grace         bool
}

// ChildMoved asks for a Child SA's outer addresses to change: the peer's NAT mapping moved (RFC
// 7296 §2.23).
type ChildMoved struct {
	IKE           IKEInfo
	Name          string
	SPIIn, SPIOut uint32
	Encap         bool
}

// Failed reports a negotiation failure in one line.
type Failed struct {
	Conn string
	Err  error
	// Retry: a normal step such as an INVALID_KE_PAYLOAD or COOKIE round trip, not a failure.
	Retry bool
}

// KeysDerived reports an IKE SA's keys for a debugging key log. It is recorded only when
// Deps.KeyLog is set.
type KeysDerived struct {
	IKE                                               IKEInfo
	Transforms                                        suite.IKETransforms
	SKEYSEED, SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte
	Ni, Nr, DHSecret                                  []byte
}

func (IKEUp) isEffect()         {}
func (IKEDown) isEffect()       {}
func (IKERekeyed) isEffect()    {}
func (ChildUp) isEffect()       {}
func (ChildActivate) isEffect() {}
func (ChildDown) isEffect()     {}
func (ChildMoved) isEffect()    {}
func (Failed) isEffect()        {}
func (KeysDerived) isEffect()   {}

// emit records an effect for the driver.
func (sa *SA) emit(e Effect) { sa.effects = append(sa.effects, e) }

// TakeEffects returns the effects recorded since the last call, in order.
func (sa *SA) TakeEffects() []Effect {
	out := sa.effects
	sa.effects = nil
	return out
}
