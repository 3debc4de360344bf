package credentials

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
	"net/netip"
	"strings"

	"github.com/goipsec/goipsec/credentials/dn"
)

// IDType is an identification type; the values are those of IKEv2 (RFC 7296 §3.5), which IKEv1
// shares for these types (RFC 2407 §4.6.2.1).
type IDType uint8

// Identification types the store binds to certificates.
const (
	IDAny    IDType = 0
	IDIPv4   IDType = 1
	IDFQDN   IDType = 2
	IDRFC822 IDType = 3
	IDIPv6   IDType = 5
	IDDN     IDType = 9
	IDKeyID  IDType = 11
)

// Identity is an identity as carried in an ID payload: its type and data (a DER Name for IDDN).
type Identity struct {
	Type IDType
	Data []byte
}

// IsAny reports whether the identity is %any.
func (id Identity) IsAny() bool { return id.Type == IDAny }

func (id Identity) String() string {
	switch id.Type {
	case IDAny:
		return "%any"
	case IDIPv4, IDIPv6:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	case IDFQDN, IDRFC822:
		return string(id.Data)
	case IDDN:
		return dn.String(id.Data)
	case IDKeyID:
		return fmt.Sprintf("keyid:%x", id.Data)
	}
	return fmt.Sprintf("id(%d):%x", id.Type, id.Data)
}

// Equal reports whether two identities are the same (DNs compared as dn.Equal does).
func (id Identity) Equal(o Identity) bool {
	if id.Type != o.Type {
		return false
	}
	switch id.Type {
	case IDDN:
		return dn.Equal(id.Data, o.Data)
	case IDFQDN, IDRFC822:
		return strings.EqualFold(string(id.Data), string(o.Data))
	}
	return bytes.Equal(id.Data, o.Data)
}

// IsPattern reports whether the identity has wildcards: %any, a DN with a "*" value, or an FQDN or
// RFC 822 name starting with "*".
func (id Identity) IsPattern() bool {
	switch id.Type {
	case IDAny:
		return true
	case IDDN:
		return dn.HasWildcard(id.Data)
	case IDFQDN, IDRFC822:
		return bytes.HasPrefix(id.Data, []byte("*"))
	}
	return false
}

// Matches reports whether got satisfies pattern as strongSwan matches identities: %any matches
// everything; a DN with "*" values matches any value of those attributes (same attributes, same
// order); an FQDN or RFC 822 pattern starting with "*" matches names that end with the rest
// ("*.example.com", "*@example.com"); otherwise they must be equal.
func Matches(pattern, got Identity) bool {
	if pattern.IsAny() {
		return true
	}
	if pattern.Type != got.Type {
		return false
	}
	switch pattern.Type {
	case IDDN:
		ok, _ := dn.Match(pattern.Data, got.Data)
		return ok
	case IDFQDN, IDRFC822:
		if rest, ok := bytes.CutPrefix(pattern.Data, []byte("*")); ok {
			return len(got.Data) >= len(rest) && strings.EqualFold(string(got.Data[len(got.Data)-len(rest):]), string(rest))
		}
	}
	return pattern.Equal(got)
}

// CertHasIdentity reports whether a certificate holds an identity, as strongSwan's x509 plugin
// decides: the subject DN, a subjectAltName of the matching kind (dNSName for FQDN, rfc822Name for
// RFC 822, iPAddress for IPv4/IPv6; a SAN starting with "*" matches like a pattern), or, for a key
// ID, the subjectKeyIdentifier or the SHA-1 of the public key.
func CertHasIdentity(c *x509.Certificate, id Identity) bool {
	switch id.Type {
	case IDDN:
		return dn.Equal(c.RawSubject, id.Data)
	case IDFQDN:
		for _, n := range c.DNSNames {
			if Matches(Identity{IDFQDN, []byte(n)}, id) {
				return true
			}
		}
	case IDRFC822:
		for _, n := range c.EmailAddresses {
			if Matches(Identity{IDRFC822, []byte(n)}, id) {
				return true
			}
		}
	case IDIPv4, IDIPv6:
		a, ok := netip.AddrFromSlice(id.Data)
		if !ok {
			return false
		}
		for _, ip := range c.IPAddresses {
			if b, ok := netip.AddrFromSlice(ip); ok && b.Unmap() == a.Unmap() {
				return true
			}
		}
	case IDKeyID:
		if len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, id.Data) {
			return true
		}
		return bytes.Equal(PublicKeyID(c.RawSubjectPublicKeyInfo), id.Data)
	}
	return false
}

// CertIdentities lists what a certificate can be matched against, for messages.
func CertIdentities(c *x509.Certificate) string {
	parts := []string{`"` + dn.String(c.RawSubject) + `"`}
	parts = append(parts, c.DNSNames...)
	parts = append(parts, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		parts = append(parts, ip.String())
	}
	return strings.Join(parts, ", ")
}

// SubjectIdentity is a certificate's subject as a DN identity.
func SubjectIdentity(c *x509.Certificate) Identity { return Identity{IDDN, c.RawSubject} }

// PublicKeyID is strongSwan's key identifier of a public key (KEYID_PUBKEY_SHA1): the SHA-1 of the
// subjectPublicKey bits of a DER SubjectPublicKeyInfo (RFC 5280 §4.2.1.2 method 1). It names keys
// in VICI (load-key, get-keys, unload-key).
func PublicKeyID(spki []byte) []byte {
	bits := subjectPublicKeyBits(spki)
	sum := sha1.Sum(bits)
	return sum[:]
}

// SPKIHash is the SHA-1 of a whole SubjectPublicKeyInfo: the CA identifier of a CERTREQ (RFC 7296
// §3.7).
func SPKIHash(spki []byte) [20]byte { return sha1.Sum(spki) }
