package engine

import (
	"testing"
	"time"
	"unsafe"
)

// TestEntrySize keeps an IKE SA's driver record (entry and ikeSA, one allocation) at most 512
// bytes: larger objects are scanned one by one by the garbage collector, smaller ones span by
// span, and at 100,000 held tunnels the one-by-one scanning was 12% of the responder's CPU
// (docs/performance.md, "IKE with tunnels held"). Deadlines are 8-byte instants for this.
func TestEntrySize(t *testing.T) {
	size := unsafe.Sizeof(struct {
		en entry
		s  ikeSA
	}{})
	t.Logf("entry and ikeSA: %d bytes", size)
	if size > 512 {
		t.Fatalf("entry and ikeSA take %d bytes, more than 512", size)
	}
}

// TestInstant: instants order and subtract as the times they stand for, zero is "none", and a
// time before the epoch still counts as set.
func TestInstant(t *testing.T) {
	now := time.Now()
	ep := newEpoch(now)
	a, b := ep.at(now), ep.at(now.Add(1500*time.Millisecond))
	if a.IsZero() || !a.Before(b) || b.Sub(a) != 1500*time.Millisecond || a.Add(1500*time.Millisecond) != b {
		t.Fatalf("instants %d and %d do not match their times", a, b)
	}
	if !ep.time(b).Equal(now.Add(1500*time.Millisecond)) || !ep.time(0).IsZero() || !ep.at(time.Time{}).IsZero() {
		t.Fatal("instant and time.Time do not round-trip")
	}
	if ep.at(now.Add(-48 * time.Hour)).IsZero() {
		t.Fatal("a time before the epoch became none")
	}
}
