package ikebench

import (
	"encoding/binary"

	"github.com/goipsec/goipsec/ike/wire"
)

// Layout of what arrives on the sockets.
const (
	// nonESPMarkerLen is the four zero octets before an IKE message on the NAT-T port
	// (RFC 3948 §2.2); anything else there is ESP or a one-octet NAT-keepalive.
	nonESPMarkerLen = 4
	// spiiOff and spiiLen locate the initiator SPI in the IKE header (RFC 7296 §3.1).
	spiiOff = 0
	spiiLen = 8
)

// ikeMessage returns the IKE message in a datagram: the datagram itself on the IKE port, the
// bytes after the non-ESP marker on the NAT-T port. ok is false for anything that cannot be an
// IKE message (ESP, keepalives, runts).
func ikeMessage(datagram []byte, natt bool) (msg []byte, ok bool) {
	if natt {
		if len(datagram) < nonESPMarkerLen || binary.BigEndian.Uint32(datagram) != 0 {
			return nil, false
		}
		datagram = datagram[nonESPMarkerLen:]
	}
	if len(datagram) < wire.HeaderLen {
		return nil, false
	}
	return datagram, true
}

// initiatorSPI reads the initiator SPI of an IKE message without decoding the rest; zero is never
// an initiator SPI (RFC 7296 §3.1), so it is refused.
func initiatorSPI(msg []byte) (uint64, bool) {
	if len(msg) < wire.HeaderLen {
		return 0, false
	}
	spi := binary.BigEndian.Uint64(msg[spiiOff : spiiOff+spiiLen])
	return spi, spi != 0
}
