// Pools (Pool, pools) and users (UserSecret, users) are remote.go's: the L2TP server, IKEv1 Mode
// Config and IKEv2 share them.

package config

import (
	"fmt"
	"net/netip"
	"strings"
)

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
	// Users is where PPP users are checked: "secrets" (secrets.eap/xauth) or "radius" (the
	// radius section's servers, as pppd's radius plugin does).
	Users     string
	UsersLine int
	MRU       int
	Port      uint16
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
		var ukv *Setting
		s.Users, ukv = l.value(lns, pat, "users")
		s.UsersLine = lns.Line
		if ukv != nil {
			s.UsersLine = ukv.Line
			if s.Users != "secrets" && s.Users != "radius" {
				l.valueError(ukv, fmt.Errorf("unknown value %q (expected secrets or radius)", s.Users))
			}
		}
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
