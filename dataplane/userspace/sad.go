package userspace

import (
	"net/netip"

	"github.com/goipsec/goipsec/dataplane"
)

// sad finds inbound SAs by (protocol, SPI). Inbound SPIs are chosen by this host, so the SPI alone
// normally identifies the SA (RFC 4301 §4.1); the destination address disambiguates manual SAs
// that reuse an SPI for different local addresses. Readers take no lock (rcuTable); the engine
// inserts and removes under Engine.mu, in O(1).
type sad struct {
	table *rcuTable[spiKey, *saState]
}

type spiKey struct {
	proto dataplane.Protocol
	spi   uint32
}

func newSAD(seed uint64) *sad {
	return &sad{table: newRCUTable[spiKey, *saState](func(k spiKey) uint64 {
		return mix64(seed ^ uint64(k.spi) ^ uint64(k.proto)<<32)
	})}
}

// lookup returns the inbound SA for a packet: the only SA with this protocol and SPI, or among
// several the one whose destination is dst.
func (s *sad) lookup(proto dataplane.Protocol, spi uint32, dst netip.Addr) *saState {
	k := spiKey{proto, spi}
	var first *saState
	for n := s.table.head(k); n != nil; n = n.next {
		if n.key != k {
			continue
		}
		if first == nil {
			first = n.val
			continue
		}
		// Several SAs share the SPI: choose by destination.
		for n := s.table.head(k); n != nil; n = n.next {
			if n.key == k && n.val.addr.Load().dst == dst {
				return n.val
			}
		}
		return nil
	}
	return first
}

// find returns the SA installed under key exactly (writer, or listing).
func (s *sad) find(key dataplane.SAKey) *saState {
	k := spiKey{key.Protocol, key.SPI}
	for n := s.table.head(k); n != nil; n = n.next {
		if n.key == k && n.val.addr.Load().dst == key.Dst {
			return n.val
		}
	}
	return nil
}

func (s *sad) add(sa *saState) {
	k := sa.key()
	s.table.insert(spiKey{k.Protocol, k.SPI}, sa)
}

func (s *sad) remove(sa *saState) {
	k := sa.key()
	s.table.remove(spiKey{k.Protocol, k.SPI}, sa)
}
