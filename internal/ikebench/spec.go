package ikebench

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// Spec describes the handshakes in the notation of swanctl.conf, as the command line gives it.
type Spec struct {
	Proposal string // IKE proposals, e.g. "aes256gcm16-prfsha256-x25519"
	ESP      string // ESP proposals of the Child SA, e.g. "aes256gcm16"
	ID       string // local identity; empty or "%any": the local IP address
	RemoteID string // expected peer identity; empty or "%any": any
	PSK      string // text, "0x" + hex or "0s" + base64
	LocalTS  string // comma-separated selectors or "dynamic"
	RemoteTS string
}

// specName names the connection in ike's messages.
const specName = "bench"

// Build turns the spec into the IKE and Child SA configuration the load generator uses.
func (s Spec) Build() (*ike.PeerConfig, *ike.ChildConfig, error) {
	props, err := proposal.ParseIKE(s.Proposal)
	if err != nil {
		return nil, nil, fmt.Errorf("IKE proposal: %w", err)
	}
	esp, err := proposal.ParseESP(s.ESP)
	if err != nil {
		return nil, nil, fmt.Errorf("ESP proposal: %w", err)
	}
	local, err := ParseIdentity(s.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("local identity: %w", err)
	}
	remote, err := ParseIdentity(s.RemoteID)
	if err != nil {
		return nil, nil, fmt.Errorf("remote identity: %w", err)
	}
	psk, err := ParsePSK(s.PSK)
	if err != nil {
		return nil, nil, err
	}
	child := &ike.ChildConfig{Name: specName, Proposals: esp, Mode: ike.Tunnel}
	if child.LocalTS, child.LocalDynamic, err = ParseSelectors(s.LocalTS); err != nil {
		return nil, nil, fmt.Errorf("local traffic selectors: %w", err)
	}
	if child.RemoteTS, child.RemoteDynamic, err = ParseSelectors(s.RemoteTS); err != nil {
		return nil, nil, fmt.Errorf("remote traffic selectors: %w", err)
	}
	peer := &ike.PeerConfig{
		Name: specName, Proposals: props, LocalID: local, RemoteID: remote,
		// One key for every pair of identities: the generator talks to one peer.
		PSK:      func(_, _ ike.Identity) ([]byte, bool) { return psk, true },
		Children: []*ike.ChildConfig{child},
		// The generator plays many clients with one identity: without INITIAL_CONTACT, so that
		// a responder keeps every IKE SA instead of replacing the older ones (RFC 7296 §2.4).
		Unique: ike.UniqueNever,
	}
	return peer, child, nil
}

// ParseIdentity reads an identity as strongSwan writes it: an IP address; "@name" (an FQDN taken
// as written); "@@user@host" (RFC 822, as written); "@#hex" (key ID); "user@host" (RFC 822);
// anything else an FQDN. Empty and "%any" are the zero Identity.
func ParseIdentity(s string) (ike.Identity, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || s == "%any":
		return ike.Identity{}, nil
	case strings.HasPrefix(s, "@#"):
		b, err := hex.DecodeString(s[2:])
		if err != nil || len(b) == 0 {
			return ike.Identity{}, fmt.Errorf("key ID %q is not hex", s)
		}
		return ike.Identity{Type: wire.IDKeyID, Data: b}, nil
	case strings.HasPrefix(s, "@@"):
		return nonEmpty(wire.IDRFC822Addr, s[2:], s)
	case strings.HasPrefix(s, "@"):
		return nonEmpty(wire.IDFQDN, s[1:], s)
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return ike.Identity{}, fmt.Errorf("identity %q: an address with a zone is not an identity", s)
		}
		return ike.AddrIdentity(a.Unmap()), nil
	}
	if strings.Contains(s, "@") {
		return ike.Identity{Type: wire.IDRFC822Addr, Data: []byte(s)}, nil
	}
	return ike.Identity{Type: wire.IDFQDN, Data: []byte(s)}, nil
}

func nonEmpty(t wire.IDType, data, orig string) (ike.Identity, error) {
	if data == "" {
		return ike.Identity{}, fmt.Errorf("identity %q is empty", orig)
	}
	return ike.Identity{Type: t, Data: []byte(data)}, nil
}

// ParsePSK reads a preshared key as swanctl.conf's secrets do: "0x" + hex, "0s" + base64, or text.
func ParsePSK(s string) ([]byte, error) {
	var b []byte
	var err error
	switch {
	case strings.HasPrefix(s, "0x"):
		b, err = hex.DecodeString(s[2:])
	case strings.HasPrefix(s, "0s"):
		b, err = base64.StdEncoding.DecodeString(s[2:])
	default:
		b = []byte(s)
	}
	if err != nil {
		return nil, fmt.Errorf("preshared key: %w", err)
	}
	if len(b) == 0 {
		return nil, errors.New("preshared key is empty")
	}
	return b, nil
}

// ParseSelectors reads comma-separated traffic selectors in swanctl.conf notation; "dynamic"
// stands for the IKE address of that side and is reported as dynamic instead.
func ParseSelectors(s string) (list []ts.Selector, dynamic bool, err error) {
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "dynamic" {
			dynamic = true
			continue
		}
		sel, err := ts.Parse(f)
		if err != nil {
			return nil, false, err
		}
		list = append(list, sel)
	}
	return list, dynamic, nil
}

// IKEPort is the port of a peer address given without one (RFC 7296 §2).
const IKEPort = 500

// ParsePeer reads a responder address: ADDR, ADDR:PORT, [IPv6]:PORT, or a host name with or
// without a port (resolved). The port defaults to IKEPort.
func ParsePeer(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), IKEPort), nil
	}
	host, port := s, strconv.Itoa(IKEPort)
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("peer %q: %w", s, err)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
