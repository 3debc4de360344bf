package wire

// Message is a whole IKE message: the header and the payloads in order.
// For a protected message the last payload is *Encrypted or
// *EncryptedFragment, still encrypted; Open decrypts it.
type Message struct {
	Header
	Payloads []Payload
}

// Decode decodes a whole datagram (without the non-ESP marker). The
// payloads alias b.
func Decode(b []byte) (*Message, error) {
	m, _, err := decode(b)
	return m, err
}

// decode also returns the offset of the SK or SKF payload header, or -1.
func decode(b []byte) (*Message, int, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return nil, -1, err
	}
	ps, protectedAt, err := decodeChain(b, HeaderLen, h.NextPayload, chainOuter)
	if err != nil {
		return nil, -1, err
	}
	return &Message{Header: h, Payloads: ps}, protectedAt, nil
}

// Encode encodes the message as it stands: header, then the payloads. A
// payload list ending in an *Encrypted or *EncryptedFragment reproduces an
// already protected message (a captured one, or a retransmission); to
// protect new content use EncodeEncrypted. The header's NextPayload and
// Length are computed, not taken from m.
func (m *Message) Encode() ([]byte, error) {
	b, err := appendHeader(make([]byte, 0, 512), &m.Header, firstType(m.Payloads))
	if err != nil {
		return nil, err
	}
	if b, err = appendChain(b, m.Payloads, PayloadNone); err != nil {
		return nil, err
	}
	return finishHeader(b)
}
