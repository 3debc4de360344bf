package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/ts"
)

// parseBool accepts strongSwan's spellings: yes/no, true/false, 1/0 (any case).
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true", "1":
		return true, nil
	case "no", "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("invalid value %q (expected yes or no)", s)
}

// parseDuration reads strongSwan's time format: a whole number of seconds, or a whole number
// followed by s, m, h or d.
func parseDuration(s string) (time.Duration, error) {
	num, unit := s, time.Second
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 's':
			num = s[:n-1]
		case 'm':
			num, unit = s[:n-1], time.Minute
		case 'h':
			num, unit = s[:n-1], time.Hour
		case 'd':
			num, unit = s[:n-1], 24*time.Hour
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("invalid duration %q (expected a number of seconds, or a number with s, m, h or d)", s)
	}
	if v > uint64(math.MaxInt64/int64(unit)) {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return time.Duration(v) * unit, nil
}

// parseUint reads a decimal or 0x-prefixed hexadecimal number no larger than limit, as
// strongSwan's integer options do.
func parseUint(s string, limit uint64) (uint64, error) {
	var v uint64
	var err error
	if rest, ok := cutPrefixFold(s, "0x"); ok {
		v, err = strconv.ParseUint(rest, 16, 64)
		if rest == "" || rest[0] == '+' {
			err = errors.New("empty")
		}
	} else {
		v, err = strconv.ParseUint(s, 10, 64)
		if s == "" || s[0] == '+' {
			err = errors.New("empty")
		}
	}
	if err != nil {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	if v > limit {
		return 0, fmt.Errorf("%s is out of range (at most %d)", s, limit)
	}
	return v, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// parseHexKey reads key material written as 0x followed by hex digits, optionally grouped with
// ':' separators ("0x01:02:03" or "0x010203").
func parseHexKey(s string) ([]byte, error) {
	// Keys are secret, so messages describe the problem without echoing the value.
	rest, ok := cutPrefixFold(s, "0x")
	if !ok {
		return nil, errors.New("invalid key (expected 0x followed by hex digits)")
	}
	b, err := hex.DecodeString(strings.ReplaceAll(rest, ":", ""))
	if err != nil || len(b) == 0 {
		return nil, errors.New("invalid key (expected 0x followed by an even number of hex digits)")
	}
	return b, nil
}

// parseSecret decodes a PSK as strongSwan does: 0x followed by hex, 0s followed by base64, or
// else the text itself.
func parseSecret(s string) ([]byte, error) {
	switch {
	case s == "":
		return nil, errors.New("the secret is empty")
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		b, err := hex.DecodeString(strings.ReplaceAll(s[2:], ":", ""))
		if err != nil || len(b) == 0 {
			return nil, errors.New("the secret starts with 0x but is not valid hex")
		}
		return b, nil
	case strings.HasPrefix(s, "0s"):
		b, err := base64.StdEncoding.DecodeString(s[2:])
		if err != nil || len(b) == 0 {
			return nil, errors.New("the secret starts with 0s but is not valid base64")
		}
		return b, nil
	}
	return []byte(s), nil
}

// splitList splits a comma separated value into trimmed, non-empty items.
func splitList(s string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("empty item in list %q", s)
		}
		out = append(out, item)
	}
	return out, nil
}

// AddressKind says which form an Address has.
type AddressKind uint8

// Address forms.
const (
	AddrAny    AddressKind = iota // %any, %any4 or %any6
	AddrSingle                    // one IP address (Start == End)
	AddrPrefix                    // a CIDR subnet
	AddrRange                     // a range Start-End
	AddrHost                      // a DNS name, resolved at run time
)

// Address is one entry of local_addrs or remote_addrs.
type Address struct {
	Kind AddressKind
	// Family restricts AddrAny: 0 any, 4 IPv4 only (%any4), 6 IPv6 only (%any6).
	Family int
	Prefix netip.Prefix // AddrPrefix
	Start  netip.Addr   // AddrSingle, AddrRange (and the first address of AddrPrefix)
	End    netip.Addr   // AddrSingle, AddrRange (and the last address of AddrPrefix)
	Host   string       // AddrHost
}

func (a Address) String() string {
	switch a.Kind {
	case AddrAny:
		switch a.Family {
		case 4:
			return "%any4"
		case 6:
			return "%any6"
		}
		return "%any"
	case AddrSingle:
		return a.Start.String()
	case AddrPrefix:
		return a.Prefix.String()
	case AddrRange:
		return a.Start.String() + "-" + a.End.String()
	}
	return a.Host
}

// Specific reports whether the address names one peer to initiate to (an address or host name).
func (a Address) Specific() bool { return a.Kind == AddrSingle || a.Kind == AddrHost }

// parseAddresses reads a comma separated local_addrs/remote_addrs value.
func parseAddresses(s string) ([]Address, error) {
	items, err := splitList(s)
	if err != nil {
		return nil, err
	}
	out := make([]Address, 0, len(items))
	for _, item := range items {
		a, err := parseAddress(item)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func parseAddress(s string) (Address, error) {
	switch s {
	case "%any":
		return Address{Kind: AddrAny}, nil
	case "%any4":
		return Address{Kind: AddrAny, Family: 4}, nil
	case "%any6":
		return Address{Kind: AddrAny, Family: 6}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return Address{Kind: AddrSingle, Start: a, End: a}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Address{}, fmt.Errorf("invalid subnet %q", s)
		}
		sel := ts.FromPrefix(p)
		return Address{Kind: AddrPrefix, Prefix: p.Masked(), Start: sel.Start, End: sel.End}, nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(hi)
		if err1 == nil && err2 == nil {
			a, b = a.Unmap(), b.Unmap()
			if a.Is4() != b.Is4() || a.Compare(b) > 0 || a.Zone() != "" || b.Zone() != "" {
				return Address{}, fmt.Errorf("invalid range %q (expected low-high of one address family)", s)
			}
			return Address{Kind: AddrRange, Start: a, End: b}, nil
		}
	}
	if isHostName(s) {
		return Address{Kind: AddrHost, Host: s}, nil
	}
	return Address{}, fmt.Errorf("invalid address %q (expected an IP address, subnet, range a-b, host name or %%any)", s)
}

// isHostName checks the shape of a DNS name (RFC 1123 labels); whether it resolves is a run-time
// matter.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// TrafficSelector is one entry of local_ts or remote_ts. A Dynamic selector stands for the outer
// address of the SA (or a virtual IP); its Selector then only carries the protocol and ports.
type TrafficSelector struct {
	Dynamic  bool
	Selector ts.Selector
}

func (t TrafficSelector) String() string {
	if !t.Dynamic {
		return t.Selector.String()
	}
	s := "dynamic"
	if t.Selector.Protocol != 0 || !t.Selector.AnyPort() {
		full := t.Selector.String() // "0.0.0.0/0[proto/port]"
		s += full[strings.IndexByte(full, '['):]
	}
	return s
}

// parseSelectors reads a comma separated local_ts/remote_ts value.
func parseSelectors(s string) ([]TrafficSelector, error) {
	items, err := splitList(s)
	if err != nil {
		return nil, err
	}
	out := make([]TrafficSelector, 0, len(items))
	for _, item := range items {
		if rest, ok := strings.CutPrefix(item, "dynamic"); ok && (rest == "" || rest[0] == '[') {
			// Borrow ts.Parse for the [proto/port] part.
			sel, err := ts.Parse("0.0.0.0/0" + rest)
			if err != nil {
				return nil, fmt.Errorf("invalid traffic selector %q: %v", item, strings.TrimPrefix(err.Error(), `traffic selector "0.0.0.0/0`+rest+`": `))
			}
			out = append(out, TrafficSelector{Dynamic: true, Selector: ts.Selector{Protocol: sel.Protocol, StartPort: sel.StartPort, EndPort: sel.EndPort}})
			continue
		}
		sel, err := ts.Parse(item)
		if err != nil {
			return nil, fmt.Errorf("invalid %v", err)
		}
		out = append(out, TrafficSelector{Selector: sel})
	}
	return out, nil
}

// IDType is an IKEv2 identification type (RFC 7296 §3.5), or IDAny for "%any".
type IDType uint8

// Identification types.
const (
	IDAny    IDType = 0
	IDIPv4   IDType = 1
	IDFQDN   IDType = 2
	IDRFC822 IDType = 3
	IDIPv6   IDType = 5
	IDASN1DN IDType = 9
	IDASN1GN IDType = 10
	IDKeyID  IDType = 11
)

// Identity is an IKE identity: the ID payload's type and data, and the text it was written as.
type Identity struct {
	Type IDType
	Data []byte
	Text string
}

// IsAny reports whether the identity matches any peer (%any).
func (id Identity) IsAny() bool { return id.Type == IDAny }

// parseIdentity reads an identity in strongSwan notation:
//
//   - "%any" (or empty) matches any identity;
//
//   - "type:value" with type ipv4, ipv6, fqdn, dns, rfc822, email, userfqdn or keyid; "type:#hex"
//     gives the data in hex. Unlike strongSwan, ipv4:/ipv6: values are converted from text;
//
//   - "@name" is an FQDN taken as written, "@#hex" a key ID, "@@text" an RFC 822 name as written;
//
//   - otherwise an IP address becomes ID_IPV4_ADDR/ID_IPV6_ADDR, text with "@" ID_RFC822_ADDR and
//     anything else ID_FQDN.
//
//   - a distinguished name ("C=CH, O=Example, CN=gw", or asn1dn:...) becomes ID_DER_ASN1_DN.
func parseIdentity(s string) (Identity, error) {
	if s == "" || s == "%any" {
		return Identity{Type: IDAny, Text: "%any"}, nil
	}
	if typ, val, ok := strings.Cut(s, ":"); ok {
		switch strings.ToLower(typ) {
		case "ipv4", "ipv6":
			want, family, idType := 4, "IPv4", IDIPv4
			if strings.ToLower(typ) == "ipv6" {
				want, family, idType = 16, "IPv6", IDIPv6
			}
			if data, ok, err := hexData(val); ok {
				if err != nil || len(data) != want {
					return Identity{}, fmt.Errorf("invalid identity %q (expected %d bytes of hex)", s, want)
				}
				return Identity{Type: idType, Data: data, Text: s}, nil
			}
			a, err := netip.ParseAddr(val)
			if err != nil || a.Is4() != (want == 4) || a.Zone() != "" {
				return Identity{}, fmt.Errorf("invalid identity %q (expected an %s address)", s, family)
			}
			return ipIdentity(a, s), nil
		case "fqdn", "dns":
			return typedIdentity(IDFQDN, val, s)
		case "rfc822", "email", "userfqdn":
			return typedIdentity(IDRFC822, val, s)
		case "keyid":
			return typedIdentity(IDKeyID, val, s)
		case "asn1dn":
			if data, ok, err := hexData(val); ok {
				if err != nil {
					return Identity{}, fmt.Errorf("invalid identity %q (expected hex after #)", s)
				}
				return Identity{Type: IDASN1DN, Data: data, Text: s}, nil
			}
			return dnIdentity(val, s)
		case "asn1gn":
			return Identity{}, fmt.Errorf("identity %q: general names are not supported by goipsec yet", s)
		}
		if strings.HasPrefix(typ, "{") {
			return Identity{}, fmt.Errorf("identity %q: numeric identity types are not supported by goipsec yet", s)
		}
		// Otherwise the colon is part of the value (an IPv6 address, or a name with a colon).
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return ipIdentity(a, s), nil
	}
	switch {
	case strings.HasPrefix(s, "@#"):
		data, err := hex.DecodeString(strings.ReplaceAll(s[2:], ":", ""))
		if err != nil || len(data) == 0 {
			return Identity{}, fmt.Errorf("invalid identity %q (expected hex after @#)", s)
		}
		return Identity{Type: IDKeyID, Data: data, Text: s}, nil
	case strings.HasPrefix(s, "@@"):
		return nonEmptyIdentity(IDRFC822, s[2:], s)
	case strings.HasPrefix(s, "@"):
		return nonEmptyIdentity(IDFQDN, s[1:], s)
	case dn.Looks(s):
		return dnIdentity(s, s)
	case strings.Contains(s, "@"):
		return Identity{Type: IDRFC822, Data: []byte(s), Text: s}, nil
	}
	return Identity{Type: IDFQDN, Data: []byte(s), Text: s}, nil
}

// dnIdentity reads a distinguished name ("C=CH, O=Example, CN=gw"; values may be "*" in remote
// identities) into its DER form.
func dnIdentity(val, text string) (Identity, error) {
	der, err := dn.Parse(val)
	if err != nil {
		return Identity{}, fmt.Errorf("invalid identity %q: %v", text, err)
	}
	return Identity{Type: IDASN1DN, Data: der, Text: text}, nil
}

func ipIdentity(a netip.Addr, text string) Identity {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return Identity{Type: IDIPv4, Data: b[:], Text: text}
	}
	b := a.As16()
	return Identity{Type: IDIPv6, Data: b[:], Text: text}
}

// hexData decodes a "#hex" identity value; ok is false when the value does not start with "#".
func hexData(val string) (data []byte, ok bool, err error) {
	rest, ok := strings.CutPrefix(val, "#")
	if !ok {
		return nil, false, nil
	}
	data, err = hex.DecodeString(strings.ReplaceAll(rest, ":", ""))
	if err == nil && len(data) == 0 {
		err = errors.New("empty")
	}
	return data, true, err
}

func typedIdentity(typ IDType, val, text string) (Identity, error) {
	if data, ok, err := hexData(val); ok {
		if err != nil {
			return Identity{}, fmt.Errorf("invalid identity %q (expected hex after #)", text)
		}
		return Identity{Type: typ, Data: data, Text: text}, nil
	}
	return nonEmptyIdentity(typ, val, text)
}

func nonEmptyIdentity(typ IDType, val, text string) (Identity, error) {
	if val == "" {
		return Identity{}, fmt.Errorf("invalid identity %q (empty)", text)
	}
	return Identity{Type: typ, Data: []byte(val), Text: text}, nil
}

// parseEnum checks that s is one of the allowed words.
func parseEnum(s string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if s == a {
			return s, nil
		}
	}
	return "", fmt.Errorf("invalid value %q (expected %s)", s, orList(allowed))
}

// orList formats words as "a, b or c".
func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// TFCPadding is the Traffic Flow Confidentiality padding setting (RFC 4303 §2.7): pad to the path
// MTU, or to at least Bytes bytes (0 disables it).
type TFCPadding struct {
	MTU   bool
	Bytes uint16
}

func parseTFCPadding(s string) (TFCPadding, error) {
	if s == "mtu" {
		return TFCPadding{MTU: true}, nil
	}
	n, err := parseUint(s, math.MaxUint16)
	if err != nil {
		return TFCPadding{}, fmt.Errorf("invalid value %q (expected a number of bytes or mtu)", s)
	}
	return TFCPadding{Bytes: uint16(n)}, nil
}

// parseIfID reads an XFRM interface ID (strongSwan's if_id_in/out): a number; 0 is none.
// %unique and %unique-dir are read by loader.ifID.
func parseIfID(s string) (uint32, error) {
	v, err := parseUint(s, math.MaxUint32)
	if err != nil {
		return 0, fmt.Errorf("invalid value %q (expected a number, %%unique or %%unique-dir)", s)
	}
	return uint32(v), nil
}

// parseUnique recognises strongSwan's %unique and %unique-dir.
func parseUnique(s string) (Unique, bool) {
	switch s {
	case "%unique":
		return UniqueChild, true
	case "%unique-dir":
		return UniqueDir, true
	}
	return UniqueNone, false
}

// parseMark reads strongSwan's mark syntax "value[/mask]" (mask default 0xffffffff), where value
// may be %unique or %unique-dir; "0" and the table's default "0/0x00000000" are no mark.
func parseMark(s string) (Mark, error) {
	return parseMarkValue(s, false)
}

// parseSetMark reads set_mark_in/out: like a mark, but the value may be %same (mark_in's or
// mark_out's value) and not %unique.
func parseSetMark(s string) (Mark, error) {
	return parseMarkValue(s, true)
}

func parseMarkValue(s string, set bool) (Mark, error) {
	val, mask, hasMask := strings.Cut(s, "/")
	m := uint64(math.MaxUint32)
	if hasMask {
		var err error
		if m, err = parseUint(mask, math.MaxUint32); err != nil {
			return Mark{}, err
		}
	}
	if u, ok := parseUnique(val); ok {
		if set {
			return Mark{}, fmt.Errorf("%s is not allowed here (expected value[/mask] or %%same[/mask])", val)
		}
		if m != math.MaxUint32 {
			// A unique value is a counter: under a narrower mask two Child SAs could share it.
			return Mark{}, fmt.Errorf("%s with a mask is not supported by goipsec (give %s alone)", val, val)
		}
		return Mark{Unique: u, Mask: uint32(m)}, nil
	}
	if val == "%same" {
		if !set {
			return Mark{}, fmt.Errorf("%%same is only allowed in set_mark_in and set_mark_out")
		}
		return Mark{Same: true, Mask: uint32(m)}, nil
	}
	if strings.HasPrefix(val, "%") {
		want := "value[/mask], %unique or %unique-dir"
		if set {
			want = "value[/mask] or %same[/mask]"
		}
		return Mark{}, fmt.Errorf("invalid value %q (expected %s)", s, want)
	}
	v, err := parseUint(val, math.MaxUint32)
	if err != nil {
		return Mark{}, err
	}
	if v == 0 && (!hasMask || m == 0) {
		return Mark{}, nil
	}
	if uint32(v)&^uint32(m) != 0 {
		return Mark{}, fmt.Errorf("mark %#x has bits outside its mask %#x", v, m)
	}
	return Mark{Value: uint32(v), Mask: uint32(m)}, nil
}

// parseIfName checks a network interface name (empty: none).
func parseIfName(s string) (string, error) {
	if len(s) > maxIfNameLen || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n") {
		return "", fmt.Errorf("invalid interface name %q (at most %d bytes, no '/', ':' or blanks)", s, maxIfNameLen)
	}
	return s, nil
}

// MSSClamp is the mss_clamp setting of a child or manual SA: TCP MSS clamping of SYNs that cross
// the tunnel. The zero value is off.
type MSSClamp struct {
	Auto  bool   // from the path MTU and the IPsec overhead
	Bytes uint16 // a fixed bound (when not Auto); 0 with Auto false is off
}

// minClampMSS is the smallest MSS mss_clamp accepts: Linux's TCP_MIN_MSS.
const minClampMSS = 88

// mssClamp reads mss_clamp; without it, clamping is automatic in tunnel mode and off in transport
// mode (where the peer is the end host and sees its own path).
func (l *loader) mssClamp(sec *Section, mode Mode) MSSClamp {
	kv := explicit(sec, "mss_clamp")
	if kv == nil {
		return MSSClamp{Auto: mode != ModeTransport}
	}
	c, err := parseMSSClamp(kv.Value)
	if err != nil {
		l.valueError(kv, err)
	}
	return c
}

func parseMSSClamp(s string) (MSSClamp, error) {
	switch s {
	case "auto", "yes":
		return MSSClamp{Auto: true}, nil
	case "no":
		return MSSClamp{}, nil
	}
	n, err := parseUint(s, math.MaxUint16)
	if err != nil || n < minClampMSS {
		return MSSClamp{}, fmt.Errorf("invalid value %q (expected auto, no or a number of bytes from %d to 65535)", s, minClampMSS)
	}
	return MSSClamp{Bytes: uint16(n)}, nil
}
