package wire

import (
	"encoding/binary"
	"fmt"
)

// Sealer protects the content of an SK or SKF payload for one direction
// of an IKE SA. ike/suite's Protector implements it.
type Sealer interface {
	// SealedLen is the length of IV | ciphertext | ICV that Seal produces
	// for a plaintext of n bytes (padding and Pad Length included).
	SealedLen(n int) int
	// Seal pads and encrypts plaintext (an inner payload chain), appends
	// IV | ciphertext | ICV to dst and returns the result. aad is the
	// message from the first octet of the IKE header through the end of the
	// SK payload header (the SKF header including Fragment Number and Total
	// Fragments), with every length field already final: it is the AEAD
	// associated data (RFC 5282 §5.1, RFC 7383 §2.5), and for a
	// cipher-plus-MAC transform the ICV covers aad | IV | ciphertext
	// (RFC 7296 §3.14). aad may be the prefix of dst.
	Seal(dst, aad, plaintext []byte) ([]byte, error)
}

// Opener verifies and decrypts the content of an SK or SKF payload.
// ike/suite's Protector implements it.
type Opener interface {
	// Open verifies the ICV of body (IV | ciphertext | ICV) over aad, as
	// Seal defines it, decrypts it, strips the padding and appends the
	// plaintext to dst.
	Open(dst, aad, body []byte) ([]byte, error)
}

// Encrypted is the Encrypted payload, SK, as it travels (RFC 7296 §3.14).
// First is its Next Payload field: the type of the first inner payload.
// Data is IV | ciphertext | ICV.
type Encrypted struct {
	First PayloadType
	Data  []byte
}

// Type implements Payload.
func (p *Encrypted) Type() PayloadType                   { return PayloadSK }
func (p *Encrypted) appendBody(b []byte) ([]byte, error) { return append(b, p.Data...), nil }

// EncryptedFragment is the Encrypted Fragment payload, SKF, as it travels
// (RFC 7383 §2.5). First is the type of the first inner payload in
// fragment 1 and zero in the others. Data is IV | ciphertext | ICV.
type EncryptedFragment struct {
	Number uint16
	Total  uint16
	First  PayloadType
	Data   []byte
}

// Offsets of the SKF fields after the generic payload header.
const (
	skfNumberOff = 0
	skfTotalOff  = 2
	skfHeaderLen = 4
)

// Type implements Payload.
func (p *EncryptedFragment) Type() PayloadType { return PayloadSKF }

func (p *EncryptedFragment) appendBody(b []byte) ([]byte, error) {
	if err := checkFragmentNumbers(p.Number, p.Total); err != nil {
		return nil, encodeError("%v", err)
	}
	b = binary.BigEndian.AppendUint16(b, p.Number)
	b = binary.BigEndian.AppendUint16(b, p.Total)
	return append(b, p.Data...), nil
}

// checkFragmentNumbers applies RFC 7383 §2.5: both fields are non-zero and
// the number does not exceed the total.
func checkFragmentNumbers(number, total uint16) error {
	switch {
	case number == 0:
		return fmt.Errorf("Fragment Number 0")
	case total == 0:
		return fmt.Errorf("Total Fragments 0")
	case number > total:
		return fmt.Errorf("Fragment Number %d exceeds Total Fragments %d", number, total)
	}
	return nil
}

// decodeProtected decodes the body of an SK or SKF payload whose Next
// Payload field was next.
func decodeProtected(t PayloadType, next PayloadType, body []byte, base int) (Payload, error) {
	if t == PayloadSK {
		return &Encrypted{First: next, Data: body}, nil
	}
	if len(body) < skfHeaderLen {
		return nil, syntaxError(base, "SKF body of %d bytes is shorter than %d", len(body), skfHeaderLen)
	}
	f := &EncryptedFragment{
		Number: binary.BigEndian.Uint16(body[skfNumberOff:]),
		Total:  binary.BigEndian.Uint16(body[skfTotalOff:]),
		First:  next,
		Data:   body[skfHeaderLen:],
	}
	if err := checkFragmentNumbers(f.Number, f.Total); err != nil {
		return nil, syntaxError(base, "%v", err)
	}
	return f, nil
}

// checkUnprotected rejects an SK or SKF payload among the payloads meant to
// go in front of the one EncodeEncrypted builds.
func checkUnprotected(ps []Payload) error {
	for i, p := range ps {
		switch p.(type) {
		case *Encrypted, *EncryptedFragment:
			return encodeError("%v payload at position %d of the unprotected payloads", p.Type(), i)
		}
	}
	return nil
}

// EncodeEncrypted encodes the message with inner protected in an SK
// payload: header, m.Payloads unprotected (usually none), then SK. The
// header's Length and the SK Payload Length are final before s.Seal runs,
// so the AAD is exactly what goes on the wire.
func (m *Message) EncodeEncrypted(inner []Payload, s Sealer) ([]byte, error) {
	if err := checkUnprotected(m.Payloads); err != nil {
		return nil, err
	}
	first, plain, err := EncodePayloads(inner)
	if err != nil {
		return nil, err
	}
	outerFirst := PayloadSK
	if len(m.Payloads) > 0 {
		outerFirst = m.Payloads[0].Type()
	}
	sealed := s.SealedLen(len(plain))
	b, err := appendHeader(make([]byte, 0, 256+sealed), &m.Header, outerFirst)
	if err != nil {
		return nil, err
	}
	if b, err = appendChain(b, m.Payloads, PayloadSK); err != nil {
		return nil, err
	}
	skAt := len(b)
	b = append(b, byte(first), 0, 0, 0)
	if err := putLen16(b, skAt+genLengthOff, genHeaderLen+sealed); err != nil {
		return nil, encodeError("SK payload: %v", err)
	}
	return seal(b, sealed, plain, s)
}

// seal sets the final message Length in aad (the message so far, ending in
// the SK or SKF header) and appends the sealed body.
func seal(aad []byte, sealed int, plain []byte, s Sealer) ([]byte, error) {
	total := len(aad) + sealed
	if uint64(total) > maxMessageLen {
		return nil, encodeError("message of %d bytes exceeds the 32-bit Length field", total)
	}
	binary.BigEndian.PutUint32(aad[hdrLengthOff:], uint32(total))
	out, err := s.Seal(aad, aad, plain)
	if err != nil {
		return nil, fmt.Errorf("ike/wire: sealing: %w", err)
	}
	if len(out) != total {
		return nil, encodeError("sealer produced %d bytes, SealedLen promised %d", len(out)-len(aad), sealed)
	}
	return out, nil
}

// fragmentOverhead is what every SKF datagram carries besides the sealed
// body: IKE header, generic payload header, Fragment Number and Total.
const fragmentOverhead = HeaderLen + genHeaderLen + skfHeaderLen

// maxFragments: Total Fragments is 16 bits.
const maxFragments = 0xffff

// EncodeFragments protects inner in Encrypted Fragment payloads (RFC 7383
// §2.5), each datagram at most maxSize bytes (the IKE message; IP and UDP
// headers and the non-ESP marker are the caller's to subtract). All
// fragments share m's header (and so its Message ID); fragment 1 carries
// the first inner payload type. m.Payloads must be empty: the exchanges
// that fragmentation applies to carry nothing outside SK.
func (m *Message) EncodeFragments(inner []Payload, s Sealer, maxSize int) ([][]byte, error) {
	if len(m.Payloads) != 0 {
		return nil, encodeError("fragmenting a message with %d unprotected payloads", len(m.Payloads))
	}
	first, plain, err := EncodePayloads(inner)
	if err != nil {
		return nil, err
	}
	chunk := maxChunk(s, maxSize-fragmentOverhead)
	if chunk < 1 {
		return nil, encodeError("datagram size %d leaves no room for fragment content", maxSize)
	}
	total := (len(plain) + chunk - 1) / chunk
	if total == 0 {
		total = 1 // an empty chain still travels, in one fragment
	}
	if total > maxFragments {
		return nil, encodeError("%d fragments exceed the 16-bit Total Fragments", total)
	}
	out := make([][]byte, 0, total)
	for i := range total {
		part := plain[min(i*chunk, len(plain)):min((i+1)*chunk, len(plain))]
		next := PayloadNone
		if i == 0 {
			next = first
		}
		sealed := s.SealedLen(len(part))
		b, err := appendHeader(make([]byte, 0, fragmentOverhead+sealed), &m.Header, PayloadSKF)
		if err != nil {
			return nil, err
		}
		skfAt := len(b)
		b = append(b, byte(next), 0, 0, 0)
		if err := putLen16(b, skfAt+genLengthOff, genHeaderLen+skfHeaderLen+sealed); err != nil {
			return nil, encodeError("SKF payload: %v", err)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(i+1))
		b = binary.BigEndian.AppendUint16(b, uint16(total))
		if b, err = seal(b, sealed, part, s); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// maxChunk is the largest plaintext length whose sealed form fits in room
// bytes, found by binary search because only SealedLen knows the padding
// and overhead; it is 0 if nothing fits.
func maxChunk(s Sealer, room int) int {
	lo, hi := 0, room // SealedLen(n) >= n, so n <= room
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if s.SealedLen(mid) <= room {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// Opened is a protected message after Open: the message as received (its
// last payload the *Encrypted or *EncryptedFragment), and either the
// decrypted inner payloads of SK or the decrypted content of one SKF
// fragment, for a Reassembler.
type Opened struct {
	*Message
	Inner    []Payload
	Fragment *Fragment
	// Plain is the decrypted inner payload chain of SK as received (nil for a fragment): RFC
	// 9242 §3.3.2 authenticates IKE_INTERMEDIATE messages over these bytes (IntAuthData).
	Plain []byte
}

// Fragment is the decrypted content of one Encrypted Fragment payload.
type Fragment struct {
	Number uint16
	Total  uint16
	First  PayloadType // meaningful in fragment 1 only
	Data   []byte      // a piece of the inner payload chain, padding removed
}

// Open decodes the datagram b, whose last payload must be SK or SKF, and
// has o verify and decrypt it. The associated data is b from the IKE header
// through the SK header (RFC 5282 §5.1) or through the SKF Total Fragments
// field (RFC 7383 §2.5). b is not modified. Errors from o are wrapped,
// not turned into *Error: a message that fails authentication is dropped
// without a reply (RFC 7296 §2.21.2).
func Open(b []byte, o Opener) (*Opened, error) {
	m, at, err := decode(b)
	if err != nil {
		return nil, err
	}
	if at < 0 {
		return nil, &Error{Notify: InvalidSyntax, Offset: -1, Msg: "message has no SK or SKF payload"}
	}
	switch p := m.Payloads[len(m.Payloads)-1].(type) {
	case *Encrypted:
		aadEnd := at + genHeaderLen
		plain, err := o.Open(nil, b[:aadEnd], b[aadEnd:])
		if err != nil {
			return nil, fmt.Errorf("ike/wire: opening SK payload: %w", err)
		}
		inner, err := DecodePayloads(p.First, plain)
		if err != nil {
			return nil, err
		}
		return &Opened{Message: m, Inner: inner, Plain: plain}, nil
	case *EncryptedFragment:
		aadEnd := at + genHeaderLen + skfHeaderLen
		plain, err := o.Open(nil, b[:aadEnd], b[aadEnd:])
		if err != nil {
			return nil, fmt.Errorf("ike/wire: opening SKF payload %d/%d: %w", p.Number, p.Total, err)
		}
		f := &Fragment{Number: p.Number, Total: p.Total, First: p.First, Data: plain}
		return &Opened{Message: m, Fragment: f}, nil
	}
	// decode reports an offset only for SK and SKF payloads.
	return nil, encodeError("internal: payload at offset %d is not SK or SKF", at)
}
