package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Radius is goipsec's radius section: strongSwan's eap-radius plugin settings (which strongSwan
// keeps in strongswan.conf), used by remote.auth = eap-radius and pools = radius.
type Radius struct {
	File string
	Line int
	// NASIdentifier is sent in every request.
	NASIdentifier string
	// Accounting sends Start, Interim-Update (every AccountingInterval when set) and Stop records.
	Accounting         bool
	AccountingInterval time.Duration
	// Timeout per server before the next one is tried; Retry is the retransmission interval.
	Timeout, Retry time.Duration
	Servers        []*RadiusServer
	DAE            *RadiusDAE // nil: no Disconnect/CoA listener
}

// RadiusServer is radius.servers.<name>.
type RadiusServer struct {
	Name               string
	Addr               netip.Addr
	AuthPort, AcctPort uint16
	Secret             []byte
	Preference         int
}

// RadiusDAE is radius.dae (RFC 5176 Disconnect and CoA).
type RadiusDAE struct {
	Listen netip.Addr
	Port   uint16
	Secret []byte
}

func (l *loader) radius(sec *Section) *Radius {
	if sec == nil {
		return nil
	}
	const pat = "radius"
	l.check(sec, pat)
	r := &Radius{File: sec.File, Line: sec.Line}
	r.NASIdentifier, _ = l.value(sec, pat, "nas_identifier")
	r.Accounting = l.boolean(sec, pat, "accounting")
	r.AccountingInterval = l.duration(sec, pat, "accounting_interval")
	r.Timeout = l.duration(sec, pat, "timeout")
	r.Retry = l.duration(sec, pat, "retry")
	if servers := sec.Section("servers"); servers != nil {
		l.check(servers, pat+".servers")
		for _, s := range sectionsOf(servers, pat+".servers", pat+".servers.<name>") {
			const sp = pat + ".servers.<name>"
			l.check(s, sp)
			srv := &RadiusServer{Name: s.Name, AuthPort: l.port(s, sp, "auth_port"), AcctPort: l.port(s, sp, "acct_port"),
				Preference: int(l.number(s, sp, "preference", 1<<16))}
			if kv := explicit(s, "address"); kv == nil {
				l.errorAt(s.File, s.Line, "%s: address is required (the server's IP address)", s.Path)
			} else if a, err := netip.ParseAddr(kv.Value); err != nil {
				l.valueError(kv, fmt.Errorf("%q is not an IP address", kv.Value))
			} else {
				srv.Addr = a
			}
			srv.Secret = l.requiredSecret(s)
			r.Servers = append(r.Servers, srv)
		}
	}
	if len(r.Servers) == 0 {
		l.errorAt(sec.File, sec.Line, "radius: servers { name { address = ..., secret = ... } } is required")
	}
	if d := sec.Section("dae"); d != nil {
		const dp = pat + ".dae"
		l.check(d, dp)
		if l.boolean(d, dp, "enable") {
			dae := &RadiusDAE{Port: l.port(d, dp, "port")}
			listen, _ := l.value(d, dp, "listen")
			a, err := netip.ParseAddr(listen)
			if err != nil {
				l.errorAt(d.File, d.Line, "%s.listen: %q is not an IP address", d.Path, listen)
			}
			dae.Listen = a
			dae.Secret = l.requiredSecret(d)
			r.DAE = dae
		}
	}
	return r
}

// requiredSecret reads a section's secret, which must be set (and is never echoed in errors).
func (l *loader) requiredSecret(sec *Section) []byte {
	kv := explicit(sec, "secret")
	if kv == nil {
		l.errorAt(sec.File, sec.Line, "%s: secret is required", sec.Path)
		return nil
	}
	s, err := parseSecret(kv.Value)
	if err != nil {
		l.errorAt(kv.File, kv.Line, "%s: %v", kv.Path, err)
	}
	return s
}
