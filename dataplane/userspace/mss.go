package userspace

import (
	"encoding/binary"

	"github.com/goipsec/goipsec/dataplane"
)

// TCP MSS clamping: the maximum segment size option (RFC 9293 §3.7.1) of a SYN crossing the
// tunnel is lowered so that full-sized segments of the connection fit the path once encapsulated.
// Both ends of a connection announce an MSS in their SYN, and each sends segments no larger than
// what the other announced, so clamping the SYNs in both directions (entering the tunnel on the
// outbound SA, leaving it on the inbound SA) bounds the segments both ways.

// clampMSS lowers the MSS option of l4 (a TCP segment; ip is the IP header in front of it, with
// IPv6 extension headers) to what sa allows, and updates the TCP checksum incrementally. inner6
// tells the family of the packet, and so its header size.
func (e *Engine) clampMSS(sa *saState, a *saAddr, l4 []byte, inner6 bool) {
	if len(l4) < 20 || l4[13]&tcpSYN == 0 {
		return
	}
	hl := int(l4[12]>>4) * 4
	if hl < 20 || hl > len(l4) {
		return
	}
	limit := e.mssLimit(sa, a, inner6)
	opts := l4[20:hl]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; {
		case kind == 0: // end of options
			return
		case kind == 1: // no-operation
			i++
			continue
		case i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts):
			return // malformed: leave the packet as it is
		case kind == 2 && opts[i+1] == 4:
			old := binary.BigEndian.Uint16(opts[i+2:])
			if int(old) <= limit {
				return
			}
			binary.BigEndian.PutUint16(opts[i+2:], uint16(limit))
			// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
			hc := binary.BigEndian.Uint16(l4[16:])
			acc := csumAddWord(csumAddWord(csumAddWord(0, ^hc), ^old), uint16(limit))
			binary.BigEndian.PutUint16(l4[16:], ^csumFold(acc))
			e.stats.mssClamped.Add(1)
			return
		}
		i += int(opts[i+1])
	}
}

// mssLimit is the MSS an SA's SYNs may announce: its configured bound, or (auto) what fits both
// the TUN device's MTU and the path MTU towards the peer after the outer headers and the IPsec
// overhead of a packet of that size.
func (e *Engine) mssLimit(sa *saState, a *saAddr, inner6 bool) int {
	c := &sa.params
	if c.ClampMSS != clampAuto {
		return int(c.ClampMSS)
	}
	ipHdr := ipv4HeaderLen
	if inner6 {
		ipHdr = ipv6HeaderLen
	}
	tcp := 20
	// The largest inner packet the TUN device passes.
	inner := e.cfg.MTU
	mtu := a.outerMTU
	if mtu <= 0 {
		mtu = 1500
	}
	outer := ipv4HeaderLen
	if a.dst.Is6() {
		outer = ipv6HeaderLen
	}
	if a.encap {
		outer += 8
	}
	// What the IPsec packet carries: the whole inner packet in tunnel mode, the TCP segment in
	// transport mode (whose IP header is the outer one).
	carried := func(inner int) int {
		if c.Mode == dataplane.Transport {
			return inner - ipHdr
		}
		return inner
	}
	fits := func(inner int) bool {
		p := carried(inner)
		if sa.esp != nil {
			return outer+p+sa.esp.Overhead(p) <= mtu
		}
		return outer+p+sa.ah.Overhead(a.dst.Is6()) <= mtu
	}
	for inner > ipHdr+tcp && !fits(inner) {
		inner--
	}
	// Not below the smallest MSS every host must accept (RFC 9293 §3.7.1: 536 for IPv4; IPv6
	// links carry at least 1280 bytes, RFC 8200 §5).
	floor := 536
	if inner6 {
		floor = 1220
	}
	return max(inner-ipHdr-tcp, floor)
}
