package config

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Pool is an address pool for remote clients (pools.<name>).
type Pool struct {
	Name string
	File string
	Line int
	// Start..End is the range handed out (a subnet's network, broadcast and IPv6 anycast
	// addresses left out).
	Start, End netip.Addr
	// DNS servers, and the other attributes strongSwan's pools know; Attrs are the numbered ones
	// (pools.<name>.<attr>), by attribute type.
	DNS, NBNS, DHCP, Server []netip.Addr
	Netmask                 netip.Addr
	Subnets                 []netip.Prefix // subnet and split_include
	Attrs                   []PoolAttr
}

// PoolAttr is a configuration attribute given by number.
type PoolAttr struct {
	Type  uint16
	Value []byte
}

// UserSecret is a user's password (secrets.eap<suffix> or xauth<suffix>).
type UserSecret struct {
	Name   string
	File   string
	Line   int
	IDs    []string
	Secret []byte
}

func (l *loader) pools(sec *Section) []*Pool {
	if sec == nil {
		return nil
	}
	l.check(sec, "pools")
	const pat = "pools.<name>"
	var out []*Pool
	for _, p := range sectionsOf(sec, "pools", pat) {
		l.check(p, pat)
		pl := &Pool{Name: p.Name, File: p.File, Line: p.Line}
		if strings.EqualFold(p.Name, "radius") {
			l.errorAt(p.File, p.Line, "%s: the name radius is reserved (connections' pools = radius take addresses from RADIUS)", p.Path)
		}
		if kv := explicit(p, "addrs"); kv == nil {
			l.errorAt(p.File, p.Line, "%s: addrs is required (a subnet such as 10.3.0.0/24, a range a-b or an address)", p.Path)
		} else if start, end, err := parsePoolAddrs(kv.Value); err != nil {
			l.valueError(kv, err)
		} else {
			pl.Start, pl.End = start, end
		}
		addrs := func(key string) []netip.Addr {
			if kv := explicit(p, key); kv != nil {
				list, err := parseAddrList(kv.Value)
				if err != nil {
					l.valueError(kv, err)
				}
				return list
			}
			return nil
		}
		pl.DNS, pl.NBNS, pl.DHCP, pl.Server = addrs("dns"), addrs("nbns"), addrs("dhcp"), addrs("server")
		if kv := explicit(p, "netmask"); kv != nil {
			m, err := netip.ParseAddr(kv.Value)
			if err != nil || !m.Is4() {
				l.valueError(kv, fmt.Errorf("%q is not an IPv4 netmask", kv.Value))
			}
			pl.Netmask = m
		}
		for _, key := range []string{"subnet", "split_include"} {
			if kv := explicit(p, key); kv != nil {
				for _, part := range strings.Split(kv.Value, ",") {
					pfx, err := netip.ParsePrefix(strings.TrimSpace(part))
					if err != nil {
						l.valueError(kv, fmt.Errorf("%q is not a subnet", strings.TrimSpace(part)))
						continue
					}
					pl.Subnets = append(pl.Subnets, pfx.Masked())
				}
			}
		}
		for _, kv := range p.Settings {
			k, ok := lookupKey(pat, kv.Key)
			if !ok || k.Path != pat+".<attr>" {
				continue
			}
			n, err := strconv.ParseUint(kv.Key, 10, 16)
			if err != nil || n == 0 || n > 0x7fff {
				l.errorAt(kv.File, kv.Line, "unknown key %q in %s (expected addrs, dns, nbns, dhcp, netmask, server, subnet, split_include, split_exclude or an attribute number 1-32767)", kv.Key, p.Path)
				continue
			}
			for _, v := range strings.Split(kv.Value, ",") {
				pl.Attrs = append(pl.Attrs, PoolAttr{Type: uint16(n), Value: attrValue(strings.TrimSpace(v))})
			}
		}
		out = append(out, pl)
	}
	return out
}

// attrValue encodes a numbered attribute's value as strongSwan does: an address as its bytes,
// 0x-prefixed hex as bytes, anything else as text.
func attrValue(v string) []byte {
	if a, err := netip.ParseAddr(v); err == nil {
		return a.AsSlice()
	}
	if h, ok := strings.CutPrefix(v, "0x"); ok {
		if b, err := hex.DecodeString(h); err == nil {
			return b
		}
	}
	return []byte(v)
}

// parsePoolAddrs reads a subnet (without network and broadcast address for IPv4, without the
// subnet-router anycast address for IPv6), a range, or one address.
func parsePoolAddrs(s string) (netip.Addr, netip.Addr, error) {
	if a, b, ok := strings.Cut(s, "-"); ok {
		start, err1 := netip.ParseAddr(strings.TrimSpace(a))
		end, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || start.Is4() != end.Is4() || end.Less(start) {
			return netip.Addr{}, netip.Addr{}, fmt.Errorf("invalid range %q (expected first-last of one family)", s)
		}
		return start, end, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a, a, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("invalid value %q (expected a subnet like 10.3.0.0/24, a range a-b or an address)", s)
	}
	p = p.Masked()
	start := p.Addr()
	b := start.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	end, _ := netip.AddrFromSlice(b)
	switch {
	case start.Is4() && p.Bits() < 31:
		start, end = start.Next(), end.Prev()
	case start.Is6() && p.Bits() < 127:
		start = start.Next()
	}
	return start, end, nil
}

// parseAddrList reads comma separated IP addresses (vips, dns, ...).
func parseAddrList(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address", part)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

func parseNameList(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out, nil
}

// checkPoolRefs reports connections naming pools that do not exist.
func (l *loader) checkPoolRefs(cfg *Config) {
	names := map[string]bool{"radius": true}
	for _, p := range cfg.Pools {
		names[p.Name] = true
	}
	for _, c := range cfg.Connections {
		for _, n := range c.Pools {
			if !names[n] {
				l.errorAt(c.File, c.Line, "connections.%s.pools: no pool named %q in the pools section", c.Name, n)
			}
		}
	}
}

// users loads secrets.eap<suffix> and secrets.xauth<suffix>.
func (l *loader) users(sec *Section) []*UserSecret {
	if sec == nil {
		return nil
	}
	var out []*UserSecret
	for _, pattern := range []string{"secrets.eap<suffix>", "secrets.xauth<suffix>"} {
		for _, p := range sectionsOf(sec, "secrets", pattern) {
			l.check(p, pattern)
			u := &UserSecret{Name: p.Name, File: p.File, Line: p.Line}
			for _, kv := range p.Settings {
				if k, ok := lookupKey(pattern, kv.Key); ok && k.Path == pattern+".id<suffix>" && kv.Value != "" {
					u.IDs = append(u.IDs, kv.Value)
				}
			}
			u.Secret = l.requiredSecret(p)
			out = append(out, u)
		}
	}
	return out
}

// UserPassword finds the password of an EAP/XAuth user: a secret naming the user, else one
// naming no user (strongSwan's rule for unbound secrets).
func (s *Secrets) UserPassword(user string) ([]byte, bool) {
	var unbound []byte
	for _, u := range s.Users {
		if len(u.IDs) == 0 && unbound == nil {
			unbound = u.Secret
		}
		for _, id := range u.IDs {
			if id == user {
				return u.Secret, true
			}
		}
	}
	return unbound, unbound != nil
}

// ParseIdentity reads an identity as swanctl.conf writes it (id = ...): an EAP identity received
// on the wire is matched against certificates in this form.
func ParseIdentity(s string) (Identity, error) { return parseIdentity(s) }
