// Package heapstat reads the live heap after a full collection, for the tests and benchmarks that
// keep memory per SA within budget (ike/engine, dataplane/userspace).
package heapstat

import (
	"runtime"
	"runtime/metrics"
)

// Live returns the bytes and the number of objects live on the heap after two collections (the
// second sweeps what the first freed, so finalizer-free garbage is gone).
func Live() (bytes, objects uint64) {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/objects:objects"}}
	metrics.Read(s)
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, s[0].Value.Uint64()
}

// Bytes is the live heap in bytes (Live).
func Bytes() uint64 {
	b, _ := Live()
	return b
}

// Objects is the number of live heap objects (Live).
func Objects() uint64 {
	_, n := Live()
	return n
}
