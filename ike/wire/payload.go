package wire

import "encoding/binary"

// Offsets of the generic payload header (RFC 7296 §3.2).
const (
	genNextPayloadOff = 0
	genFlagsOff       = 1
	genLengthOff      = 2
	genHeaderLen      = 4
	// criticalBit is the C bit in the octet after Next Payload; the other
	// seven bits are RESERVED.
	criticalBit = 0x80
	// maxPayloadLen: Payload Length is 16 bits and includes the header.
	maxPayloadLen = 0xffff
)

// Payload is one IKEv2 payload. The set is closed: the types of this
// package, plus *Unknown for payload types it does not implement.
type Payload interface {
	// Type is the payload type that announces this payload in the
	// preceding Next Payload field.
	Type() PayloadType
	// appendBody appends the payload body, everything after the generic
	// payload header.
	appendBody(b []byte) ([]byte, error)
}

// Unknown is a payload whose type this package does not implement. It is
// kept so that the message re-encodes unchanged; a receiver ignores it
// unless Critical is set, in which case decoding fails (RFC 7296 §2.5).
type Unknown struct {
	PayloadType PayloadType
	Critical    bool
	Body        []byte
}

// Type implements Payload.
func (p *Unknown) Type() PayloadType                   { return p.PayloadType }
func (p *Unknown) appendBody(b []byte) ([]byte, error) { return append(b, p.Body...), nil }

// chainKind says where a payload chain sits, which decides whether an SK or
// SKF payload may end it.
type chainKind int

const (
	chainOuter chainKind = iota // the payloads of a datagram
	chainInner                  // the decrypted content of SK or SKF
)

// decodeChain decodes the payload chain that starts with type first at
// b[off:] and must end exactly at len(b). It returns the payloads and the
// offset of the SK or SKF payload's generic header, or -1 if there is none.
func decodeChain(b []byte, off int, first PayloadType, kind chainKind) ([]Payload, int, error) {
	var ps []Payload
	next := first
	for next != PayloadNone {
		if len(b)-off < genHeaderLen {
			return nil, -1, syntaxError(off, "%v payload header needs %d bytes, %d left", next, genHeaderLen, len(b)-off)
		}
		length := int(binary.BigEndian.Uint16(b[off+genLengthOff:]))
		if length < genHeaderLen || length > len(b)-off {
			return nil, -1, syntaxError(off+genLengthOff, "%v Payload Length %d outside %d..%d", next, length, genHeaderLen, len(b)-off)
		}
		this := next
		nextField := PayloadType(b[off+genNextPayloadOff])
		critical := b[off+genFlagsOff]&criticalBit != 0
		body := b[off+genHeaderLen : off+length]
		bodyOff := off + genHeaderLen

		if this == PayloadSK || this == PayloadSKF {
			if kind == chainInner {
				return nil, -1, syntaxError(off, "%v payload inside an encrypted payload", this)
			}
			// The Next Payload of SK/SKF names the first inner payload,
			// so the outer chain ends here, and nothing may follow
			// (RFC 7296 §3.14, RFC 7383 §2.5).
			if off+length != len(b) {
				return nil, -1, syntaxError(off, "%v payload is not the last payload: %d bytes follow it", this, len(b)-off-length)
			}
			p, err := decodeProtected(this, nextField, body, bodyOff)
			if err != nil {
				return nil, -1, err
			}
			return append(ps, p), off, nil
		}

		p, err := decodeBody(this, critical, body, bodyOff)
		if err != nil {
			return nil, -1, err
		}
		ps = append(ps, p)
		off += length
		next = nextField
	}
	if off != len(b) {
		return nil, -1, syntaxError(off, "%d bytes after the last payload", len(b)-off)
	}
	return ps, -1, nil
}

// decodeBody decodes the body of a payload that is not SK or SKF. base is
// the offset of body[0] in the whole buffer, for error messages.
func decodeBody(t PayloadType, critical bool, body []byte, base int) (Payload, error) {
	switch t {
	case PayloadSA:
		return decodeSA(body, base)
	case PayloadKE:
		return decodeKE(body, base)
	case PayloadIDi:
		id, err := decodeID(body, base)
		return (*IDi)(id), err
	case PayloadIDr:
		id, err := decodeID(body, base)
		return (*IDr)(id), err
	case PayloadCERT:
		c, err := decodeCert(body, base)
		return (*CERT)(c), err
	case PayloadCERTREQ:
		c, err := decodeCert(body, base)
		return (*CERTREQ)(c), err
	case PayloadAUTH:
		return decodeAUTH(body, base)
	case PayloadNonce:
		return decodeNonce(body, base)
	case PayloadNotify:
		return decodeNotify(body, base)
	case PayloadDelete:
		return decodeDelete(body, base)
	case PayloadVendorID:
		return &VendorID{Data: body}, nil
	case PayloadTSi:
		ts, err := decodeTS(body, base)
		return (*TSi)(ts), err
	case PayloadTSr:
		ts, err := decodeTS(body, base)
		return (*TSr)(ts), err
	case PayloadCP:
		return decodeCP(body, base)
	case PayloadEAP:
		return decodeEAP(body, base)
	}
	if critical {
		// RFC 7296 §2.5: reject the whole message and name the type.
		return nil, &Error{
			Notify: UnsupportedCriticalPayload,
			Data:   []byte{byte(t)},
			Offset: base - genHeaderLen,
			Msg:    "unsupported critical payload " + t.String(),
		}
	}
	return &Unknown{PayloadType: t, Critical: critical, Body: body}, nil
}

// appendChain appends the payload chain ps. Each payload's Next Payload
// names the one after it, and the last one's names after (an SK payload
// appended next, or PayloadNone); an SK or SKF payload must be last, and its
// Next Payload names its first inner payload instead.
func appendChain(b []byte, ps []Payload, after PayloadType) ([]byte, error) {
	for i, p := range ps {
		next := after
		if i+1 < len(ps) {
			next = ps[i+1].Type()
		}
		var flags byte
		switch p := p.(type) {
		case *Encrypted:
			if i+1 != len(ps) {
				return nil, encodeError("SK payload at position %d is not the last payload", i)
			}
			next = p.First
		case *EncryptedFragment:
			if i+1 != len(ps) {
				return nil, encodeError("SKF payload at position %d is not the last payload", i)
			}
			next = p.First
		case *Unknown:
			if p.PayloadType == PayloadNone {
				return nil, encodeError("payload at position %d has type 0", i)
			}
			if p.Critical {
				flags = criticalBit
			}
		case nil:
			return nil, encodeError("nil payload at position %d", i)
		}
		start := len(b)
		b = append(b, byte(next), flags, 0, 0)
		var err error
		if b, err = p.appendBody(b); err != nil {
			return nil, err
		}
		length := len(b) - start
		if length > maxPayloadLen {
			return nil, encodeError("%v payload of %d bytes exceeds the 16-bit Payload Length", p.Type(), length)
		}
		binary.BigEndian.PutUint16(b[start+genLengthOff:], uint16(length))
	}
	return b, nil
}

// firstType is the type of the first payload of a chain, or PayloadNone.
func firstType(ps []Payload) PayloadType {
	if len(ps) == 0 {
		return PayloadNone
	}
	return ps[0].Type()
}

// DecodePayloads decodes an inner payload chain, the plaintext of an SK
// payload after decryption (padding removed) or a reassembled SKF message.
// first is the Next Payload field of the SK payload. Offsets in errors are
// relative to b.
func DecodePayloads(first PayloadType, b []byte) ([]Payload, error) {
	ps, _, err := decodeChain(b, 0, first, chainInner)
	return ps, err
}

// EncodePayloads encodes an inner payload chain and returns the type of its
// first payload, to go into the Next Payload field of the SK payload.
func EncodePayloads(ps []Payload) (first PayloadType, b []byte, err error) {
	for i, p := range ps {
		switch p.(type) {
		case *Encrypted, *EncryptedFragment:
			return PayloadNone, nil, encodeError("%v payload at position %d inside an encrypted payload", p.Type(), i)
		}
	}
	b, err = appendChain(nil, ps, PayloadNone)
	if err != nil {
		return PayloadNone, nil, err
	}
	return firstType(ps), b, nil
}
