package daemon

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/dataplane/dataplanetest"
)

// ringBackend is a backend whose data plane sends raw ESP through AF_PACKET TX rings while on.
type ringBackend struct {
	*dataplanetest.Backend
	on bool
	st dataplane.PacketRingStats
}

func (b *ringBackend) PacketRingStats() (dataplane.PacketRingStats, bool) { return b.st, b.on }

// TestStatusTXRing: the TX ring counters of the data plane appear in the status snapshot as
// dataplane.tx_ring, field for field, and not at all while the data plane has no ring.
func TestStatusTXRing(t *testing.T) {
	b := &ringBackend{Backend: dataplanetest.New(),
		st: dataplane.PacketRingStats{Rings: 2, Sent: 1000, Sendtos: 40, Retries: 3, Broken: 1, Recovered: 7, RawSocket: 5}}
	d, err := New(Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Status().DataPlane.TXRing; r != nil {
		t.Fatalf("tx_ring %+v while the data plane has no ring", r)
	}
	b.on = true
	js, err := json.Marshal(d.Status().DataPlane)
	if err != nil {
		t.Fatal(err)
	}
	want := `"tx_ring":{"rings":2,"sent_packets":1000,"sendto_calls":40,"retries":3,"broken":1,"recovered_packets":7,"raw_socket_packets":5}`
	if !strings.Contains(string(js), want) {
		t.Fatalf("status dataplane = %s, want it to hold %s", js, want)
	}
}
