// Package ts implements IPsec traffic selectors (RFC 7296 §3.13.1, RFC 4301 §4.4.1): an address range,
// an IP protocol and a port range. The data plane matches packets against them; IKE narrows them.
package ts

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Selector is one traffic selector. The zero Protocol means any protocol; ports 0-65535 mean any
// port. For ICMP and ICMPv6 the "port" is the message type in the high byte and the code in the low
// byte (RFC 4301 §4.4.1.1; IKEv2 carries them the same way).
type Selector struct {
	Protocol  uint8
	StartPort uint16
	EndPort   uint16
	Start     netip.Addr
	End       netip.Addr
}

// Protocol numbers used by selectors.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

// FromPrefix returns the selector covering a whole prefix, any protocol and port.
func FromPrefix(p netip.Prefix) Selector {
	p = p.Masked()
	return Selector{StartPort: 0, EndPort: 0xffff, Start: p.Addr(), End: lastAddr(p)}
}

// Any returns the selector for every address of the family of a.
func Any(is6 bool) Selector {
	if is6 {
		return FromPrefix(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
	}
	return FromPrefix(netip.PrefixFrom(netip.IPv4Unspecified(), 0))
}

// Host returns the selector of a single address, any protocol and port.
func Host(a netip.Addr) Selector {
	return Selector{EndPort: 0xffff, Start: a, End: a}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		hostBits := len(b)*8 - bits - (len(b)-1-i)*8
		switch {
		case hostBits >= 8:
			b[i] = 0xff
		case hostBits > 0:
			b[i] |= byte(1<<hostBits - 1)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Is6 reports whether the selector is for IPv6 addresses.
func (s Selector) Is6() bool { return s.Start.Is6() }

// Valid reports whether the selector is well formed: both addresses of one family, start ≤ end,
// start port ≤ end port.
func (s Selector) Valid() bool {
	return s.Start.IsValid() && s.End.IsValid() && s.Start.Is4() == s.End.Is4() &&
		s.Start.Compare(s.End) <= 0 && s.StartPort <= s.EndPort
}

// ContainsAddr reports whether a lies in the selector's address range.
func (s Selector) ContainsAddr(a netip.Addr) bool {
	return a.Is4() == s.Start.Is4() && s.Start.Compare(a) <= 0 && a.Compare(s.End) <= 0
}

// AnyPort reports whether the selector does not restrict ports.
func (s Selector) AnyPort() bool { return s.StartPort == 0 && s.EndPort == 0xffff }

// Matches reports whether a packet endpoint (address, protocol, port) lies inside the selector.
// hasPort is false for protocols without ports and for non-first fragments; such packets only match
// selectors that do not restrict ports (RFC 4301 §4.4.1: OPAQUE).
func (s Selector) Matches(a netip.Addr, proto uint8, port uint16, hasPort bool) bool {
	if !s.ContainsAddr(a) {
		return false
	}
	if s.Protocol != 0 && s.Protocol != proto {
		return false
	}
	if s.AnyPort() {
		return true
	}
	return hasPort && s.StartPort <= port && port <= s.EndPort
}

// Intersect returns the intersection of two selectors and whether it is not empty. It is the core of
// traffic selector narrowing (RFC 7296 §2.9).
func (s Selector) Intersect(o Selector) (Selector, bool) {
	if s.Start.Is4() != o.Start.Is4() {
		return Selector{}, false
	}
	var r Selector
	switch {
	case s.Protocol == o.Protocol || o.Protocol == 0:
		r.Protocol = s.Protocol
	case s.Protocol == 0:
		r.Protocol = o.Protocol
	default:
		return Selector{}, false
	}
	r.StartPort, r.EndPort = max(s.StartPort, o.StartPort), min(s.EndPort, o.EndPort)
	if r.StartPort > r.EndPort {
		return Selector{}, false
	}
	r.Start, r.End = s.Start, s.End
	if o.Start.Compare(r.Start) > 0 {
		r.Start = o.Start
	}
	if o.End.Compare(r.End) < 0 {
		r.End = o.End
	}
	if r.Start.Compare(r.End) > 0 {
		return Selector{}, false
	}
	return r, true
}

// Contains reports whether o lies entirely inside s.
func (s Selector) Contains(o Selector) bool {
	r, ok := s.Intersect(o)
	return ok && r == o
}

// Prefix returns the selector's range as a prefix when it is exactly one.
func (s Selector) Prefix() (netip.Prefix, bool) {
	if !s.Valid() {
		return netip.Prefix{}, false
	}
	for bits := 0; bits <= s.Start.BitLen(); bits++ {
		p := netip.PrefixFrom(s.Start, bits)
		if p.Masked().Addr() == s.Start && lastAddr(p) == s.End {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Prefixes returns the smallest list of prefixes that covers exactly the selector's address range
// (routes are per prefix; a range like 10.0.0.1-10.0.0.6 needs several).
func (s Selector) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	cur := s.Start
	for cur.IsValid() && cur.Compare(s.End) <= 0 {
		bits := cur.BitLen()
		// Grow the prefix at cur while it stays aligned and inside the range.
		for bits > 0 {
			p := netip.PrefixFrom(cur, bits-1)
			if p.Masked().Addr() != cur || lastAddr(p).Compare(s.End) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(cur, bits)
		out = append(out, p)
		last := lastAddr(p)
		cur = last.Next()
		if !cur.IsValid() || last == s.End {
			break
		}
	}
	return out
}

// String formats the selector the way swanctl.conf writes it: a prefix or range, then
// [proto/port] when restricted.
func (s Selector) String() string {
	var b strings.Builder
	if p, ok := s.Prefix(); ok {
		b.WriteString(p.String())
	} else {
		b.WriteString(s.Start.String() + "-" + s.End.String())
	}
	if s.Protocol != 0 || !s.AnyPort() {
		b.WriteByte('[')
		b.WriteString(protoName(s.Protocol))
		if !s.AnyPort() {
			b.WriteByte('/')
			if s.StartPort == s.EndPort {
				b.WriteString(strconv.Itoa(int(s.StartPort)))
			} else {
				b.WriteString(fmt.Sprintf("%d-%d", s.StartPort, s.EndPort))
			}
		}
		b.WriteByte(']')
	}
	return b.String()
}

var protoNames = map[string]uint8{"icmp": ProtoICMP, "tcp": ProtoTCP, "udp": ProtoUDP, "ipv6-icmp": ProtoICMPv6, "icmpv6": ProtoICMPv6, "sctp": ProtoSCTP}

func protoName(p uint8) string {
	switch p {
	case 0:
		return "any"
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMPv6:
		return "ipv6-icmp"
	case ProtoSCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// Parse reads one selector in swanctl.conf notation: "10.0.0.0/24", "10.0.0.5", "10.0.0.1-10.0.0.9",
// "2001:db8::/64", each optionally followed by "[proto]", "[proto/port]", "[proto/lo-hi]" or "[/port]",
// with proto a name (tcp, udp, icmp, ipv6-icmp, sctp, any) or number.
func Parse(s string) (Selector, error) {
	s = strings.TrimSpace(s)
	addrPart, rest, hasBracket := strings.Cut(s, "[")
	var sel Selector
	sel.EndPort = 0xffff
	switch {
	case strings.Contains(addrPart, "/"):
		p, err := netip.ParsePrefix(addrPart)
		if err != nil {
			return Selector{}, fmt.Errorf("traffic selector %q: %q is not an address prefix", s, addrPart)
		}
		r := FromPrefix(p)
		sel.Start, sel.End = r.Start, r.End
	case strings.Contains(addrPart, "-"):
		lo, hi, _ := strings.Cut(addrPart, "-")
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(hi)
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() || a.Compare(b) > 0 {
			return Selector{}, fmt.Errorf("traffic selector %q: %q is not an address range low-high of one family", s, addrPart)
		}
		sel.Start, sel.End = a.Unmap(), b.Unmap()
	default:
		a, err := netip.ParseAddr(addrPart)
		if err != nil {
			return Selector{}, fmt.Errorf("traffic selector %q: %q is not an address, prefix or range", s, addrPart)
		}
		sel.Start, sel.End = a.Unmap(), a.Unmap()
	}
	if sel.Start.Zone() != "" || sel.End.Zone() != "" {
		return Selector{}, fmt.Errorf("traffic selector %q: addresses with a zone are not allowed", s)
	}
	if !hasBracket {
		return sel, nil
	}
	inner, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return Selector{}, fmt.Errorf("traffic selector %q: missing \"]\"", s)
	}
	protoStr, portStr, hasPort := strings.Cut(inner, "/")
	switch protoStr {
	case "", "any", "%any":
	default:
		if p, ok := protoNames[protoStr]; ok {
			sel.Protocol = p
		} else if n, err := strconv.ParseUint(protoStr, 10, 8); err == nil {
			sel.Protocol = uint8(n)
		} else {
			return Selector{}, fmt.Errorf("traffic selector %q: unknown protocol %q (expected tcp, udp, icmp, ipv6-icmp, sctp, any or a number)", s, protoStr)
		}
	}
	if hasPort && portStr != "" && portStr != "%any" && portStr != "any" {
		lo, hi, isRange := strings.Cut(portStr, "-")
		a, err1 := parsePort(lo, sel.Protocol)
		b := a
		var err2 error
		if isRange {
			b, err2 = parsePort(hi, sel.Protocol)
		}
		if err1 != nil || err2 != nil || a > b {
			return Selector{}, fmt.Errorf("traffic selector %q: %q is not a port, service name or port range", s, portStr)
		}
		sel.StartPort, sel.EndPort = uint16(a), uint16(b)
	}
	return sel, nil
}

// parsePort reads a port number or, as strongSwan does (getservbyname), a service name such as
// "ssh" for TCP, UDP and SCTP (from /etc/services, or Go's built-in table of common services).
func parsePort(s string, proto uint8) (uint64, error) {
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return n, nil
	}
	network := map[uint8]string{ProtoTCP: "tcp", ProtoUDP: "udp", ProtoSCTP: "sctp"}[proto]
	if network == "" || s == "" {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	n, err := net.LookupPort(network, s)
	if err != nil {
		return 0, err
	}
	return uint64(n), nil
}

// ErrEmpty is returned when narrowing leaves nothing.
var ErrEmpty = errors.New("traffic selectors do not overlap")

// Narrow intersects every selector of want with every selector of allowed and returns the non-empty
// intersections (RFC 7296 §2.9: the responder narrows the initiator's proposal to its policy).
func Narrow(want, allowed []Selector) ([]Selector, error) {
	var out []Selector
	for _, w := range want {
		for _, a := range allowed {
			if r, ok := w.Intersect(a); ok {
				out = appendUnique(out, r)
			}
		}
	}
	if len(out) == 0 {
		return nil, ErrEmpty
	}
	if slices.Equal(out, allowed) {
		// The usual outcome: what we allow, unchanged. Share that list (capacity capped, so an
		// append copies) instead of a copy per Child SA.
		return allowed[:len(allowed):len(allowed)], nil
	}
	return out, nil
}

func appendUnique(list []Selector, s Selector) []Selector {
	for _, x := range list {
		if x.Contains(s) {
			return list
		}
	}
	return append(list, s)
}

// Key returns a compact binary form of the list, equal for equal lists (in the same order) and
// different for different ones: a map key for what a list selects. Every Child SA install needs
// one, and FormatList allocates per selector and more; Key allocates the string only.
func Key(list []Selector) string {
	var buf [2 * (5 + 2*17)]byte // room for two selectors without growing
	b := buf[:0]
	for _, s := range list {
		b = append(b, s.Protocol, byte(s.StartPort>>8), byte(s.StartPort), byte(s.EndPort>>8), byte(s.EndPort))
		b = appendAddrKey(b, s.Start)
		b = appendAddrKey(b, s.End)
	}
	return string(b)
}

// appendAddrKey appends the address's length in bytes (0, 4 or 16) and its bytes.
func appendAddrKey(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4():
		a4 := a.As4()
		return append(append(b, 4), a4[:]...)
	case a.Is6():
		a16 := a.As16()
		return append(append(b, 16), a16[:]...)
	}
	return append(b, 0)
}

// FormatList joins selectors with ", " for logs and errors.
func FormatList(list []Selector) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = s.String()
	}
	return strings.Join(parts, ", ")
}
