package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Pool is an address pool (pools.<name>).
type Pool struct {
	Name       string
	File       string
	Line       int
	Start, End netip.Addr
	DNS        []netip.Addr
}

// L2TP is the l2tp section (goipsec's L2TP/IPsec server and clients).
type L2TP struct {
	LNS  *LNS
	LACs []*LAC
}

// LNS is the L2TP server (l2tp.lns).
type LNS struct {
	File    string
	Line    int
	Pool    string
	LocalIP netip.Addr
	Auth    []string // mschapv2, chap, pap, preferred first
	MRU     int
	Port    uint16
}

// LAC is an L2TP client connection (l2tp.lac<suffix>).
type LAC struct {
	Name   string
	File   string
	Line   int
	Remote netip.AddrPort
	User   string
	Auto   bool
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
	var out []*Pool
	for _, p := range sectionsOf(sec, "pools", "pools.<name>") {
		l.check(p, "pools.<name>")
		pl := &Pool{Name: p.Name, File: p.File, Line: p.Line}
		kv := explicit(p, "addrs")
		if kv == nil {
			l.errorAt(p.File, p.Line, "%s: addrs is required (a prefix such as 10.3.0.0/24 or a range)", p.Path)
		} else if start, end, err := parsePoolAddrs(kv.Value); err != nil {
			l.valueError(kv, err)
		} else {
			pl.Start, pl.End = start, end
		}
		if kv := explicit(p, "dns"); kv != nil {
			for _, part := range strings.Split(kv.Value, ",") {
				a, err := netip.ParseAddr(strings.TrimSpace(part))
				if err != nil {
					l.valueError(kv, fmt.Errorf("%q is not an IP address", strings.TrimSpace(part)))
					continue
				}
				pl.DNS = append(pl.DNS, a)
			}
		}
		out = append(out, pl)
	}
	return out
}

// parsePoolAddrs reads a prefix (without network and broadcast address for IPv4) or a range.
func parsePoolAddrs(s string) (netip.Addr, netip.Addr, error) {
	if a, b, ok := strings.Cut(s, "-"); ok {
		start, err1 := netip.ParseAddr(strings.TrimSpace(a))
		end, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || start.Is4() != end.Is4() || end.Less(start) {
			return netip.Addr{}, netip.Addr{}, fmt.Errorf("invalid range %q (expected first-last of one family)", s)
		}
		return start, end, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("invalid value %q (expected a prefix like 10.3.0.0/24 or a range)", s)
	}
	p = p.Masked()
	start := p.Addr()
	b := start.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	end, _ := netip.AddrFromSlice(b)
	if start.Is4() && p.Bits() < 31 {
		start, end = start.Next(), end.Prev()
	}
	return start, end, nil
}

func (l *loader) l2tp(sec *Section, pools []*Pool) *L2TP {
	if sec == nil {
		return nil
	}
	l.check(sec, "l2tp")
	out := &L2TP{}
	if lns := sec.Section("lns"); lns != nil {
		const pat = "l2tp.lns"
		l.check(lns, pat)
		s := &LNS{File: lns.File, Line: lns.Line}
		s.Pool, _ = l.value(lns, pat, "pool")
		if s.Pool == "" {
			l.errorAt(lns.File, lns.Line, "%s: pool is required (the name of a pools entry)", lns.Path)
		} else if !hasPool(pools, s.Pool) {
			kv := lns.Setting("pool")
			l.errorAt(kv.File, kv.Line, "%s: no pool named %q in the pools section", kv.Path, s.Pool)
		}
		if kv := explicit(lns, "local_ip"); kv != nil {
			a, err := netip.ParseAddr(kv.Value)
			if err != nil || !a.Is4() {
				l.valueError(kv, fmt.Errorf("%q is not an IPv4 address", kv.Value))
			}
			s.LocalIP = a
		}
		s.Auth = parsed(l, lns, pat, "auth", func(v string) ([]string, error) {
			var list []string
			for _, part := range strings.Split(v, ",") {
				part = strings.TrimSpace(part)
				switch part {
				case "mschapv2", "chap", "pap":
					list = append(list, part)
				default:
					return nil, fmt.Errorf("unknown PPP authentication %q (expected mschapv2, chap or pap)", part)
				}
			}
			return list, nil
		})
		s.MRU = int(l.number(lns, pat, "mru", 65535))
		if s.MRU < 576 {
			l.errorAt(lns.File, lns.Line, "%s.mru: %d is below 576", lns.Path, s.MRU)
		}
		s.Port = l.port(lns, pat, "port")
		out.LNS = s
	}
	for _, c := range sectionsOf(sec, "l2tp", "l2tp.lac<suffix>") {
		const pat = "l2tp.lac<suffix>"
		l.check(c, pat)
		lac := &LAC{Name: c.Name, File: c.File, Line: c.Line, Auto: l.boolean(c, pat, "auto")}
		if kv := explicit(c, "remote"); kv == nil {
			l.errorAt(c.File, c.Line, "%s: remote is required", c.Path)
		} else if ap, err := netip.ParseAddrPort(kv.Value); err == nil {
			lac.Remote = ap
		} else if a, err := netip.ParseAddr(kv.Value); err == nil {
			lac.Remote = netip.AddrPortFrom(a, 1701)
		} else {
			l.valueError(kv, fmt.Errorf("%q is not an address or address:port", kv.Value))
		}
		if kv := explicit(c, "user"); kv == nil {
			l.errorAt(c.File, c.Line, "%s: user is required", c.Path)
		} else {
			lac.User = kv.Value
		}
		out.LACs = append(out.LACs, lac)
	}
	return out
}

func hasPool(pools []*Pool, name string) bool {
	for _, p := range pools {
		if p.Name == name {
			return true
		}
	}
	return false
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
			if len(u.IDs) == 0 {
				l.errorAt(p.File, p.Line, "%s: id is required (the user name)", p.Path)
			}
			if kv := explicit(p, "secret"); kv == nil {
				l.errorAt(p.File, p.Line, "%s: secret is required", p.Path)
			} else {
				secret, err := parseSecret(kv.Value)
				if err != nil {
					l.errorAt(kv.File, kv.Line, "%s: %v", kv.Path, err) // never echo a secret
				}
				u.Secret = secret
			}
			out = append(out, u)
		}
	}
	return out
}
