package ike

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// Identity is an IKE identity (RFC 7296 §3.5). The zero Type means "any" where an identity is
// matched.
type Identity struct {
	Type wire.IDType
	Data []byte
}

// IsAny reports whether the identity matches any peer.
func (id Identity) IsAny() bool { return id.Type == 0 }

// Equal reports whether two identities are the same.
func (id Identity) Equal(o Identity) bool { return id.Type == o.Type && bytes.Equal(id.Data, o.Data) }

// Matches reports whether a received identity satisfies this configured one.
func (id Identity) Matches(got Identity) bool { return id.IsAny() || id.Equal(got) }

// AddrIdentity is the identity of an IP address (the default local identity).
func AddrIdentity(a netip.Addr) Identity {
	if a.Is4() {
		return Identity{Type: wire.IDIPv4Addr, Data: a.AsSlice()}
	}
	return Identity{Type: wire.IDIPv6Addr, Data: a.AsSlice()}
}

func (id Identity) String() string {
	switch id.Type {
	case 0:
		return "%any"
	case wire.IDIPv4Addr, wire.IDIPv6Addr:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	case wire.IDFQDN:
		return string(id.Data)
	case wire.IDRFC822Addr:
		return string(id.Data)
	case wire.IDKeyID:
		return fmt.Sprintf("keyid:%x", id.Data)
	case wire.IDDERASN1DN:
		return dn.String(id.Data)
	}
	return fmt.Sprintf("id(%d):%x", id.Type, id.Data)
}

// Mode of a Child SA.
type Mode uint8

const (
	Tunnel Mode = iota
	Transport
)

func (m Mode) String() string {
	if m == Transport {
		return "transport"
	}
	return "tunnel"
}

// PeerConfig is what an IKE SA needs to know about one configured connection.
type PeerConfig struct {
	Name      string
	Proposals []proposal.Proposal // IKE proposals, in order of preference
	LocalID   Identity            // zero: the local IP address
	RemoteID  Identity            // zero: accept any identity
	// PSK returns the preshared key for a pair of identities.
	PSK func(local, remote Identity) ([]byte, bool)
	// Authenticator handles certificates, raw keys and signatures (authenticator.go); nil: PSK.
	Authenticator Authenticator
	// Fragmentation: announce and use IKEv2 fragmentation (RFC 7383).
	Fragmentation bool
	// ForceEncap makes both peers believe there is a NAT (RFC 7296 §2.23: faked NAT_DETECTION
	// hashes), so that ESP is carried in UDP.
	ForceEncap bool
	Children   []*ChildConfig
	// RekeyTime (IKE SA rekey) and DPDDelay (liveness checks when the peer is quiet) are for
	// the driver; zero disables.
	RekeyTime time.Duration
	DPDDelay  time.Duration
	// ReauthTime: the initiator re-authenticates with a new IKE SA (make-before-break) this
	// often; zero disables.
	ReauthTime time.Duration
	// Unique is the policy for several IKE SAs of one remote identity.
	Unique Unique
	// Childless decides about IKE SAs without a Child SA in IKE_AUTH (RFC 6023).
	Childless Childless
	// VIPs are the virtual IPs a client asks for (unspecified: any of the family); AssignVIPs
	// gives a gateway's clients theirs (nil: none). task_cp.go.
	VIPs       []netip.Addr
	AssignVIPs func(VIPRequest) (VIPAssignment, error)
	// MOBIKE: announce and use RFC 4555 (task_mobike.go).
	MOBIKE bool
	// RedirectTo sends every client that supports it to another gateway in IKE_SA_INIT;
	// RedirectedFrom is the gateway that redirected us (task_redirect.go).
	RedirectTo     string
	RedirectedFrom netip.Addr
	// LocalEAP: we authenticate with EAP; RemoteEAP: the peer does (task_eap.go).
	LocalEAP  *EAPClientSpec
	RemoteEAP *EAPServerSpec
	// PPKID names our post-quantum preshared key (RFC 8784); PPKRequired refuses IKE SAs without
	// one; PPK looks a PPK up by its identity (nil: none).
	PPKID       []byte
	PPKRequired bool
	PPK         func(id []byte) ([]byte, bool)
	// PPKNoIntermediate keeps to RFC 8784 (the PPK in IKE_AUTH): no USE_PPK_INT is announced or
	// answered, so RFC 9867 (the PPK in IKE_INTERMEDIATE) is not used even with a peer that has
	// it.
	PPKNoIntermediate bool
	// ForceTCP starts in TCP (encap = tcp); TCPPort is the peer's TCP port (RFC 9329), used by
	// ForceTCP and by the fallback when UDP gets no answer (0: no fallback).
	ForceTCP bool
	TCPPort  uint16
}

// Unique is swanctl.conf's connection uniqueness policy.
type Unique uint8

const (
	// UniqueNo replaces older IKE SAs of the same identities when the new one carries
	// INITIAL_CONTACT (the default).
	UniqueNo Unique = iota
	// UniqueNever never replaces, and the initiator sends no INITIAL_CONTACT.
	UniqueNever
	// UniqueKeep refuses a new IKE SA of a remote identity that has one from another address.
	UniqueKeep
	// UniqueReplace deletes older IKE SAs of the remote identity when a new one is established.
	UniqueReplace
)

var uniqueNames = [...]string{"no", "never", "keep", "replace"}

func (u Unique) String() string {
	if int(u) < len(uniqueNames) {
		return uniqueNames[u]
	}
	return "unique?"
}

// Childless is swanctl.conf's childless setting.
type Childless uint8

const (
	// ChildlessAllow accepts childless IKE SAs as responder; as initiator the first Child SA
	// rides in IKE_AUTH unless none is asked for (the default).
	ChildlessAllow Childless = iota
	// ChildlessPrefer also initiates childless when the responder supports it.
	ChildlessPrefer
	// ChildlessForce accepts and initiates only childless IKE SAs.
	ChildlessForce
	// ChildlessNever refuses childless IKE SAs as responder.
	ChildlessNever
)

var childlessNames = [...]string{"allow", "prefer", "force", "never"}

func (c Childless) String() string {
	if int(c) < len(childlessNames) {
		return childlessNames[c]
	}
	return "childless?"
}

// ChildConfig is a configured Child SA.
type ChildConfig struct {
	Name string
	// LocalTS and RemoteTS: selectors; Dynamic means "the IKE SA's own address" (swanctl.conf's
	// "dynamic"), resolved when the SA is negotiated.
	LocalTS, RemoteTS           []ts.Selector
	LocalDynamic, RemoteDynamic bool
	Proposals                   []proposal.Proposal // ESP and/or AH (alternatives), in order of preference
	Mode                        Mode
	RekeyTime, LifeTime         time.Duration
	RekeyBytes, LifeBytes       uint64
	RekeyPackets, LifePackets   uint64
	ReplayWindow                int
	TFCPadding                  int
}

// localTS returns the child's local selectors with "dynamic" resolved to addr.
func (c *ChildConfig) localTS(addr netip.Addr) []ts.Selector {
	return resolveTS(c.LocalTS, c.LocalDynamic, addr)
}

func (c *ChildConfig) remoteTS(addr netip.Addr) []ts.Selector {
	return resolveTS(c.RemoteTS, c.RemoteDynamic, addr)
}

func resolveTS(list []ts.Selector, dynamic bool, addr netip.Addr) []ts.Selector {
	if !dynamic || !addr.IsValid() {
		// The configured list as it is: shared (capacity capped, so an append copies) rather
		// than copied for every Child SA.
		return list[:len(list):len(list)]
	}
	out := append([]ts.Selector(nil), list...)
	return append(out, ts.Host(addr.Unmap()))
}
