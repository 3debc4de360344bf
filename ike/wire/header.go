package wire

import (
	"encoding/binary"
	"fmt"
)

// Offsets of the fields of the IKE header (RFC 7296 §3.1).
const (
	hdrSPIiOff        = 0
	hdrSPIrOff        = 8
	hdrNextPayloadOff = 16
	hdrVersionOff     = 17
	hdrExchangeOff    = 18
	hdrFlagsOff       = 19
	hdrMessageIDOff   = 20
	hdrLengthOff      = 24
	// HeaderLen is the length of the IKE header.
	HeaderLen = 28
)

// MajorVersion is the only major version this package speaks (RFC 7296
// §3.1); the encoder always sends it.
const MajorVersion = 2

// maxMinorVersion: the minor version shares its octet with the major one.
const maxMinorVersion = 0x0f

// Header is the fixed IKE header (RFC 7296 §3.1).
//
// The SPIs are the 8-octet values read as big-endian integers, which keeps
// them usable as map keys and readable in logs; zero means "not yet known"
// (SPIr in an IKE_SA_INIT request).
type Header struct {
	SPIi uint64
	SPIr uint64
	// NextPayload is the type of the first payload. Decoding fills it in;
	// encoding computes it from the payloads and ignores this value.
	NextPayload PayloadType
	// MinorVersion is kept as received so that a message re-encodes to the
	// same bytes; RFC 7296 §3.1 says to send 0 and ignore it on receipt.
	MinorVersion uint8
	Exchange     ExchangeType
	Flags        Flags
	MessageID    uint32
	// Length is the length of the whole message. Decoding fills it in;
	// encoding computes it and ignores this value.
	Length uint32
}

// IsResponse reports whether the Response flag is set.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// IsInitiator reports whether the Initiator flag is set, i.e. the sender
// is the original initiator of the IKE SA.
func (h *Header) IsInitiator() bool { return h.Flags&FlagInitiator != 0 }

// DecodeHeader decodes the IKE header at the start of the datagram b (the
// caller strips the non-ESP marker on port 4500). It is cheap and allocates
// nothing, so the engine can demultiplex by SPI before a full Decode. The
// Length field must equal len(b) exactly.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, syntaxError(0, "message of %d bytes is shorter than the %d-byte IKE header", len(b), HeaderLen)
	}
	if major := b[hdrVersionOff] >> 4; major != MajorVersion {
		return Header{}, &Error{
			Notify: InvalidMajorVersion,
			Offset: hdrVersionOff,
			Msg:    fmt.Sprintf("IKE major version %d, only %d is supported", major, MajorVersion),
		}
	}
	h := Header{
		SPIi:         binary.BigEndian.Uint64(b[hdrSPIiOff:]),
		SPIr:         binary.BigEndian.Uint64(b[hdrSPIrOff:]),
		NextPayload:  PayloadType(b[hdrNextPayloadOff]),
		MinorVersion: b[hdrVersionOff] & maxMinorVersion,
		Exchange:     ExchangeType(b[hdrExchangeOff]),
		Flags:        Flags(b[hdrFlagsOff]),
		MessageID:    binary.BigEndian.Uint32(b[hdrMessageIDOff:]),
		Length:       binary.BigEndian.Uint32(b[hdrLengthOff:]),
	}
	if uint64(h.Length) != uint64(len(b)) {
		return Header{}, syntaxError(hdrLengthOff, "header Length %d does not match datagram length %d", h.Length, len(b))
	}
	return h, nil
}

// appendHeader appends h with the given first payload type and a zero
// Length; finishHeader fills the Length in once the message is complete.
func appendHeader(b []byte, h *Header, next PayloadType) ([]byte, error) {
	if h.MinorVersion > maxMinorVersion {
		return nil, encodeError("minor version %d does not fit in 4 bits", h.MinorVersion)
	}
	b = binary.BigEndian.AppendUint64(b, h.SPIi)
	b = binary.BigEndian.AppendUint64(b, h.SPIr)
	b = append(b, byte(next), MajorVersion<<4|h.MinorVersion, byte(h.Exchange), byte(h.Flags))
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return append(b, 0, 0, 0, 0), nil
}

// finishHeader writes the Length of the message msg, which starts with its
// IKE header.
func finishHeader(msg []byte) ([]byte, error) {
	if uint64(len(msg)) > maxMessageLen {
		return nil, encodeError("message of %d bytes exceeds the 32-bit Length field", len(msg))
	}
	binary.BigEndian.PutUint32(msg[hdrLengthOff:], uint32(len(msg)))
	return msg, nil
}

// maxMessageLen bounds the Length field (32 bits). Real messages are far
// smaller; UDP limits them to 64 KiB.
const maxMessageLen = 1<<32 - 1
