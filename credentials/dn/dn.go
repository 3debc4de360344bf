// Package dn reads and writes X.509 distinguished names in strongSwan's text form
// ("C=CH, O=strongSwan, CN=moon.strongswan.org") and matches them with strongSwan's wildcards
// ("CN=*, O=Example"). It is pure: configuration parsing and the credential store both use it.
package dn

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// attribute types strongSwan knows by name (libstrongswan's x501 names), with their OIDs.
var attrs = []struct {
	names []string // the first is how String writes it
	oid   asn1.ObjectIdentifier
}{
	{[]string{"C"}, asn1.ObjectIdentifier{2, 5, 4, 6}},
	{[]string{"ST", "S"}, asn1.ObjectIdentifier{2, 5, 4, 8}},
	{[]string{"L"}, asn1.ObjectIdentifier{2, 5, 4, 7}},
	{[]string{"O"}, asn1.ObjectIdentifier{2, 5, 4, 10}},
	{[]string{"OU"}, asn1.ObjectIdentifier{2, 5, 4, 11}},
	{[]string{"CN"}, asn1.ObjectIdentifier{2, 5, 4, 3}},
	{[]string{"SN"}, asn1.ObjectIdentifier{2, 5, 4, 4}},
	{[]string{"serialNumber"}, asn1.ObjectIdentifier{2, 5, 4, 5}},
	{[]string{"street"}, asn1.ObjectIdentifier{2, 5, 4, 9}},
	{[]string{"T", "title"}, asn1.ObjectIdentifier{2, 5, 4, 12}},
	{[]string{"D", "description"}, asn1.ObjectIdentifier{2, 5, 4, 13}},
	{[]string{"postalCode"}, asn1.ObjectIdentifier{2, 5, 4, 17}},
	{[]string{"N", "name"}, asn1.ObjectIdentifier{2, 5, 4, 41}},
	{[]string{"G", "GN", "givenName"}, asn1.ObjectIdentifier{2, 5, 4, 42}},
	{[]string{"I", "initials"}, asn1.ObjectIdentifier{2, 5, 4, 43}},
	{[]string{"dnQualifier"}, asn1.ObjectIdentifier{2, 5, 4, 46}},
	{[]string{"pseudonym"}, asn1.ObjectIdentifier{2, 5, 4, 65}},
	{[]string{"ID"}, asn1.ObjectIdentifier{2, 5, 4, 45}},
	{[]string{"E", "Email", "emailAddress"}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}},
	{[]string{"UN", "unstructuredName"}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 2}},
	{[]string{"DC"}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}},
	{[]string{"UID"}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}},
}

var oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
var oidDC = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}

func oidFor(name string) (asn1.ObjectIdentifier, bool) {
	for _, a := range attrs {
		for _, n := range a.names {
			if strings.EqualFold(n, name) {
				return a.oid, true
			}
		}
	}
	return nil, false
}

func nameFor(oid asn1.ObjectIdentifier) string {
	for _, a := range attrs {
		if a.oid.Equal(oid) {
			return a.names[0]
		}
	}
	return oid.String()
}

// Looks reports whether s is written as a distinguished name (strongSwan's test: an '=' in it).
func Looks(s string) bool { return strings.Contains(s, "=") }

// attributeTypeAndValue and the RDN/Name structures of RFC 5280 §4.1.2.4.
type attributeTypeAndValue struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// RDN is one relative distinguished name: an attribute type and its value as text.
type RDN struct {
	Type  asn1.ObjectIdentifier
	Value string
}

// Parse reads a DN in strongSwan's text form, RDNs separated by ',' (or '/' when the text starts
// with '/'), each TYPE=value with TYPE a name (C, O, OU, CN, E, DC, ...) or a dotted OID; '\'
// escapes a separator. It returns the DER encoding: values as PrintableString when they fit
// its alphabet, IA5String for E and DC, UTF8String otherwise (what strongSwan writes).
func Parse(s string) ([]byte, error) {
	rdns, err := ParseRDNs(s)
	if err != nil {
		return nil, err
	}
	return Encode(rdns)
}

// ParseRDNs reads a DN's text into RDNs without encoding them (patterns keep their "*").
func ParseRDNs(s string) ([]RDN, error) {
	s = strings.TrimSpace(s)
	sep := byte(',')
	if strings.HasPrefix(s, "/") {
		sep, s = '/', s[1:]
	}
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == sep:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	var rdns []RDN
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("distinguished name %q: %q is not TYPE=value", s, p)
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		oid, known := oidFor(k)
		if !known {
			var err error
			if oid, err = parseOID(k); err != nil {
				return nil, fmt.Errorf("distinguished name %q: unknown attribute type %q", s, k)
			}
		}
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("distinguished name %q: value of %s is not UTF-8", s, k)
		}
		rdns = append(rdns, RDN{Type: oid, Value: v})
	}
	if len(rdns) == 0 {
		return nil, fmt.Errorf("distinguished name %q is empty", s)
	}
	return rdns, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, f := range strings.Split(s, ".") {
		n := 0
		if f == "" || len(f) > 9 {
			return nil, errors.New("bad OID")
		}
		for _, c := range f {
			if c < '0' || c > '9' {
				return nil, errors.New("bad OID")
			}
			n = n*10 + int(c-'0')
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, errors.New("bad OID")
	}
	return oid, nil
}

// Encode writes RDNs as a DER Name, one attribute per RDN set.
func Encode(rdns []RDN) ([]byte, error) {
	var seq []asn1.RawValue
	for _, r := range rdns {
		tag := asn1.TagUTF8String
		switch {
		case r.Type.Equal(oidEmail) || r.Type.Equal(oidDC):
			tag = asn1.TagIA5String
		case printable(r.Value):
			tag = asn1.TagPrintableString
		}
		atv, err := asn1.Marshal(attributeTypeAndValue{Type: r.Type, Value: asn1.RawValue{Tag: tag, Bytes: []byte(r.Value)}})
		if err != nil {
			return nil, err
		}
		set, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: atv})
		if err != nil {
			return nil, err
		}
		seq = append(seq, asn1.RawValue{FullBytes: set})
	}
	return asn1.Marshal(seq)
}

// printable reports whether s fits ASN.1 PrintableString (X.680 §41.4).
func printable(s string) bool {
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(" '()+,-./:=?", c)
		if !ok {
			return false
		}
	}
	return true
}

// Decode reads a DER Name into RDNs (multi-valued RDNs are flattened in order).
func Decode(der []byte) ([]RDN, error) {
	var sets []asn1.RawValue
	rest, err := asn1.Unmarshal(der, &sets)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("not a DER distinguished name")
	}
	var out []RDN
	for _, set := range sets {
		if set.Tag != asn1.TagSet || !set.IsCompound {
			return nil, fmt.Errorf("not a DER distinguished name")
		}
		b := set.Bytes
		for len(b) > 0 {
			var atv attributeTypeAndValue
			if b, err = asn1.Unmarshal(b, &atv); err != nil {
				return nil, fmt.Errorf("not a DER distinguished name")
			}
			out = append(out, RDN{Type: atv.Type, Value: string(atv.Value.Bytes)})
		}
	}
	return out, nil
}

// String formats a DER Name as strongSwan does ("C=CH, O=strongSwan, CN=moon"); bytes that are
// not a Name are shown in hex.
func String(der []byte) string {
	rdns, err := Decode(der)
	if err != nil {
		return fmt.Sprintf("%x", der)
	}
	return Format(rdns)
}

// Format writes RDNs as text.
func Format(rdns []RDN) string {
	var b strings.Builder
	for i, r := range rdns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(nameFor(r.Type))
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(r.Value, ",", `\,`))
	}
	return b.String()
}

// Equal compares two DER Names as strongSwan does: the same attribute types in the same order,
// values equal ignoring ASCII case (so PrintableString and UTF8String spellings of one name are
// equal).
func Equal(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	ra, err1 := Decode(a)
	rb, err2 := Decode(b)
	if err1 != nil || err2 != nil || len(ra) != len(rb) {
		return false
	}
	for i := range ra {
		if !ra[i].Type.Equal(rb[i].Type) || !strings.EqualFold(ra[i].Value, rb[i].Value) {
			return false
		}
	}
	return true
}

// Match reports whether the DER Name got matches pattern, whose values may be "*" (any value of
// that attribute). As in strongSwan, both must have the same attribute types in the same order.
// wildcards counts the "*" used (fewer is a better match).
func Match(pattern, got []byte) (ok bool, wildcards int) {
	rp, err1 := Decode(pattern)
	rg, err2 := Decode(got)
	if err1 != nil || err2 != nil || len(rp) != len(rg) {
		return false, 0
	}
	for i := range rp {
		if !rp[i].Type.Equal(rg[i].Type) {
			return false, 0
		}
		if rp[i].Value == "*" {
			wildcards++
			continue
		}
		if !strings.EqualFold(rp[i].Value, rg[i].Value) {
			return false, 0
		}
	}
	return true, wildcards
}

// HasWildcard reports whether a DER Name has a "*" value.
func HasWildcard(der []byte) bool {
	rdns, err := Decode(der)
	if err != nil {
		return false
	}
	for _, r := range rdns {
		if r.Value == "*" {
			return true
		}
	}
	return false
}
