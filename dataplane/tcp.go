package dataplane

import (
	"net/netip"
	"time"
)

// TCPStream describes one TCP connection carrying IKE and ESP (RFC 9329), for status listings.
type TCPStream struct {
	Local, Remote netip.AddrPort
	// Originator: this side opened it (and reopens it when it breaks).
	Originator          bool
	Since, LastReceived time.Time
	BytesIn, BytesOut   uint64 // stream bytes, framing included
	ESPIn, ESPOut       uint64 // ESP packets
	IKEIn, IKEOut       uint64 // IKE messages
}
