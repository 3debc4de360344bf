package dn

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

func TestParseMatchesCryptoX509(t *testing.T) {
	// crypto/x509/pkix writes the same Name (PrintableString values) for the same RDN sequence.
	der, err := Parse("C=CH, O=strongSwan, CN=moon.strongswan.org")
	if err != nil {
		t.Fatal(err)
	}
	var rdn pkix.RDNSequence
	for _, a := range []struct {
		oid asn1.ObjectIdentifier
		v   string
	}{{[]int{2, 5, 4, 6}, "CH"}, {[]int{2, 5, 4, 10}, "strongSwan"}, {[]int{2, 5, 4, 3}, "moon.strongswan.org"}} {
		rdn = append(rdn, pkix.RelativeDistinguishedNameSET{{Type: a.oid, Value: a.v}})
	}
	want, err := asn1.Marshal(rdn)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(der, want) {
		t.Fatalf("Parse = %x\npkix   %x", der, want)
	}
	if s := String(der); s != "C=CH, O=strongSwan, CN=moon.strongswan.org" {
		t.Fatalf("String = %q", s)
	}
	// The '/' form names the same DN.
	slash, err := Parse("/C=CH/O=strongSwan/CN=moon.strongswan.org")
	if err != nil || !bytes.Equal(slash, der) {
		t.Fatalf("slash form: %x %v", slash, err)
	}
}

func TestEqualAndMatch(t *testing.T) {
	a, _ := Parse("C=CH, O=strongSwan, CN=moon")
	utf := mustUTF8(t)
	if !Equal(a, utf) {
		t.Error("PrintableString and UTF8String spellings differ")
	}
	b, _ := Parse("C=ch, O=StrongSwan, CN=MOON")
	if !Equal(a, b) {
		t.Error("case differs")
	}
	pat, _ := Parse("C=CH, O=strongSwan, CN=*")
	if ok, n := Match(pat, a); !ok || n != 1 {
		t.Errorf("wildcard: %v %d", ok, n)
	}
	reordered, _ := Parse("O=strongSwan, C=CH, CN=moon")
	if ok, _ := Match(pat, reordered); ok || Equal(a, reordered) {
		t.Error("RDN order ignored")
	}
	shorter, _ := Parse("O=strongSwan, CN=*")
	if ok, _ := Match(shorter, a); ok {
		t.Error("RDN count ignored")
	}
	if !HasWildcard(pat) || HasWildcard(a) {
		t.Error("HasWildcard")
	}
}

func mustUTF8(t *testing.T) []byte {
	rdns, _ := ParseRDNs("C=CH, O=strongSwan, CN=moon")
	var seq []asn1.RawValue
	for _, r := range rdns {
		atv, _ := asn1.Marshal(attributeTypeAndValue{Type: r.Type, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(r.Value)}})
		set, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: atv})
		seq = append(seq, asn1.RawValue{FullBytes: set})
	}
	b, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"", "CN", "=x", "XYZ=1", "C=CH, , =a"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	der, err := Parse(`CN=a\, b, O=1.2.3, 2.5.4.11=unit, E=x@y`)
	if err != nil {
		t.Fatal(err)
	}
	if s := String(der); s != `CN=a\, b, O=1.2.3, OU=unit, E=x@y` {
		t.Errorf("String = %q", s)
	}
}

// FuzzDN: Parse and Decode never panic; what Parse accepts decodes to the same RDNs.
func FuzzDN(f *testing.F) {
	f.Add("C=CH, O=strongSwan, CN=moon")
	f.Add("/CN=a/O=b")
	f.Fuzz(func(t *testing.T, s string) {
		der, err := Parse(s)
		Decode([]byte(s))
		if err != nil {
			return
		}
		rdns, err := Decode(der)
		if err != nil {
			t.Fatalf("Parse(%q) wrote %x, which does not decode: %v", s, der, err)
		}
		again, err := Encode(rdns)
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}
