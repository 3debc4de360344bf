package engine

import "net/netip"

// TimerEntries is the number of items in the engine's deadline heap (tests of its bound).
func (e *Engine) TimerEntries() int { return e.sched.size() }

func netipAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// Hex16 is the SPI formatting of logs and snapshots.
var Hex16 = hex16
