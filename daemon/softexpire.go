package daemon

import "sync"

// softExpiries remembers the Child SAs (by inbound SPI) whose rekey a soft lifetime already
// started, so that the second SA of the pair reaching its own soft limit does not start another.
// Entries are few (Child SAs being rekeyed) and are dropped after maxSoftExpiries.
type softExpiries struct {
	mu   sync.Mutex
	seen map[uint32]bool
}

const maxSoftExpiries = 4096

// add records spiIn and reports whether it was new.
func (s *softExpiries) add(spiIn uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[spiIn] {
		return false
	}
	if s.seen == nil || len(s.seen) >= maxSoftExpiries {
		s.seen = map[uint32]bool{}
	}
	s.seen[spiIn] = true
	return true
}
