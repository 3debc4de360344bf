package wire

import "encoding/binary"

// Helpers for the contents of CERTREQ payloads, SIGNATURE_HASH_ALGORITHMS notifications and
// RFC 7427 Digital Signature AUTH data. The payloads themselves (CERT, CERTREQ, AUTH, Notify) are
// decoded by the message codec; these functions read and build what they carry.

// CAHashLen is the length of one Certification Authority value of an X.509 CERTREQ: the SHA-1
// hash of a trusted CA's Subject Public Key Info (RFC 7296 §3.7).
const CAHashLen = 20

// CAHashes splits the Certification Authority field of a CERTREQ with X.509 encoding into its
// SHA-1 hashes. Its length must be a multiple of 20 (RFC 7296 §3.7); an empty field is allowed
// (it asks for any certificate).
func CAHashes(data []byte) ([][CAHashLen]byte, error) {
	if len(data)%CAHashLen != 0 {
		return nil, syntaxError(0, "CERTREQ Certification Authority of %d bytes is not a multiple of %d", len(data), CAHashLen)
	}
	out := make([][CAHashLen]byte, len(data)/CAHashLen)
	for i := range out {
		copy(out[i][:], data[i*CAHashLen:])
	}
	return out, nil
}

// AppendCAHashes builds a CERTREQ Certification Authority field.
func AppendCAHashes(b []byte, hashes [][CAHashLen]byte) []byte {
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// HashAlgorithm is a hash algorithm identifier of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §7; IANA
// "IKEv2 Hash Algorithms").
type HashAlgorithm uint16

// Hash algorithms.
const (
	HashSHA1     HashAlgorithm = 1
	HashSHA2_256 HashAlgorithm = 2
	HashSHA2_384 HashAlgorithm = 3
	HashSHA2_512 HashAlgorithm = 4
	HashIdentity HashAlgorithm = 5 // RFC 8420: the data itself, for EdDSA
)

func (h HashAlgorithm) String() string {
	switch h {
	case HashSHA1:
		return "SHA1"
	case HashSHA2_256:
		return "SHA2_256"
	case HashSHA2_384:
		return "SHA2_384"
	case HashSHA2_512:
		return "SHA2_512"
	case HashIdentity:
		return "IDENTITY"
	}
	return "HASH_" + itoa(int(h))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [8]byte
	i := len(b)
	for n > 0 && i > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

const hashAlgLen = 2

// HashAlgorithms reads the Notification Data of SIGNATURE_HASH_ALGORITHMS: a list of 16-bit
// hash algorithm identifiers (RFC 7427 §4). An empty or odd-length list is malformed.
func HashAlgorithms(data []byte) ([]HashAlgorithm, error) {
	if len(data) == 0 || len(data)%hashAlgLen != 0 {
		return nil, syntaxError(0, "SIGNATURE_HASH_ALGORITHMS data of %d bytes, want a non-empty multiple of %d", len(data), hashAlgLen)
	}
	out := make([]HashAlgorithm, len(data)/hashAlgLen)
	for i := range out {
		out[i] = HashAlgorithm(binary.BigEndian.Uint16(data[i*hashAlgLen:]))
	}
	return out, nil
}

// AppendHashAlgorithms builds the Notification Data of SIGNATURE_HASH_ALGORITHMS.
func AppendHashAlgorithms(b []byte, algs []HashAlgorithm) []byte {
	for _, a := range algs {
		b = binary.BigEndian.AppendUint16(b, uint16(a))
	}
	return b
}

// maxAlgIDLen: the ASN.1 Length field of RFC 7427 §3 is one octet.
const maxAlgIDLen = 0xff

// DigitalSignature splits the Authentication Data of method 14 (RFC 7427 §3): a one-octet length,
// the DER AlgorithmIdentifier of that length, and the signature value. Both parts must be
// non-empty.
func DigitalSignature(data []byte) (algID, sig []byte, err error) {
	if len(data) < 1 {
		return nil, nil, syntaxError(0, "Digital Signature AUTH data is empty")
	}
	n := int(data[0])
	if n == 0 || 1+n >= len(data) {
		return nil, nil, syntaxError(0, "Digital Signature ASN.1 Length %d leaves no signature in %d bytes", n, len(data))
	}
	return data[1 : 1+n], data[1+n:], nil
}

// AppendDigitalSignature builds the Authentication Data of method 14.
func AppendDigitalSignature(b, algID, sig []byte) ([]byte, error) {
	if len(algID) == 0 || len(algID) > maxAlgIDLen {
		return nil, encodeError("AlgorithmIdentifier of %d bytes does not fit the one-octet ASN.1 Length", len(algID))
	}
	b = append(b, byte(len(algID)))
	b = append(b, algID...)
	return append(b, sig...), nil
}
