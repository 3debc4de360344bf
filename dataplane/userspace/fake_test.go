package userspace

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/dataplane/dataplanetest"
	"github.com/goipsec/goipsec/ts"
)

// TestFakeMatchesEngine runs one random sequence of Backend calls against the engine (without
// devices) and against the recording fake of package dataplanetest, and checks that both accept
// and refuse the same calls, list the same SAs, and send the same packets the same way: tests of
// the control plane written against the fake then hold for the engine.
func TestFakeMatchesEngine(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	eng := headless(t, dataplane.Events{})
	fake := dataplanetest.New()
	peers := []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")}
	randKey := func() dataplane.SAKey {
		return dataplane.SAKey{Protocol: dataplane.ESP, SPI: uint32(1 + r.IntN(6)), Dst: peers[r.IntN(2)]}
	}
	var ids []dataplane.PolicyID
	kinds := []error{dataplane.ErrSAExists, dataplane.ErrNoSA, dataplane.ErrNoPolicy}
	same := func(step int, what string, a, b error) {
		t.Helper()
		if (a == nil) != (b == nil) {
			t.Fatalf("step %d %s: engine %v, fake %v", step, what, a, b)
		}
		for _, k := range kinds {
			if errors.Is(a, k) != errors.Is(b, k) {
				t.Fatalf("step %d %s: engine %v, fake %v", step, what, a, b)
			}
		}
	}
	for step := range 3000 {
		switch op := r.IntN(6); op {
		case 0:
			k := randKey()
			p := saParams(dataplane.Out, k.SPI, k.Dst)
			if r.IntN(10) == 0 {
				p.EncKey = p.EncKey[:20+r.IntN(2)] // sometimes a wrong length
			}
			same(step, "InstallSA", eng.InstallSA(p), fake.InstallSA(p))
		case 1:
			k := randKey()
			same(step, "DeleteSA", eng.DeleteSA(k), fake.DeleteSA(k))
		case 2:
			k := randKey()
			u := dataplane.AddressUpdate{Src: netip.MustParseAddr("192.0.2.1"), Dst: peers[r.IntN(2)], Encap: true, SrcPort: 4500, DstPort: uint16(4500 + r.IntN(2))}
			k1, err1 := eng.UpdateSAAddresses(k, u)
			k2, err2 := fake.UpdateSAAddresses(k, u)
			same(step, "UpdateSAAddresses", err1, err2)
			if k1 != k2 {
				t.Fatalf("step %d: moved to %v by the engine, %v by the fake", step, k1, k2)
			}
		case 3:
			p := dataplane.PolicyParams{Local: []ts.Selector{randomSelector(r)}, Remote: []ts.Selector{randomSelector(r)},
				Action: dataplane.Action(r.IntN(3)), Priority: r.IntN(2)}
			if p.Action == dataplane.Protect && r.IntN(4) != 0 {
				p.SA = randKey()
			}
			id1, err1 := eng.InstallPolicy(p)
			id2, err2 := fake.InstallPolicy(p)
			same(step, "InstallPolicy", err1, err2)
			if id1 != id2 {
				t.Fatalf("step %d: policy IDs %d and %d", step, id1, id2)
			}
			ids = append(ids, id1)
		case 4, 5:
			if len(ids) == 0 {
				continue
			}
			id := ids[r.IntN(len(ids))] + dataplane.PolicyID(r.IntN(2)) // sometimes unknown
			if op == 4 {
				k := randKey()
				same(step, "SetPolicySA", eng.SetPolicySA(id, k), fake.SetPolicySA(id, k))
			} else {
				same(step, "DeletePolicy", eng.DeletePolicy(id), fake.DeletePolicy(id))
			}
		}
		a, b := eng.SAs(), fake.SAs()
		if len(a) != len(b) {
			t.Fatalf("step %d: engine lists %d SAs, fake %d", step, len(a), len(b))
		}
		byKey := map[dataplane.SAKey]dataplane.SAInfo{}
		for _, x := range b {
			byKey[x.Key] = x
		}
		for _, x := range a {
			y, ok := byKey[x.Key]
			if !ok || x.Params.Src != y.Params.Src || x.Params.Dst != y.Params.Dst || x.Params.DstPort != y.Params.DstPort || x.Params.Direction != y.Params.Direction {
				t.Fatalf("step %d: engine lists %+v, fake %+v", step, x, y)
			}
		}
		for range 5 {
			f := randomFlow(r)
			pol := eng.spd.lookup(&f)
			o, _ := fake.Send(dataplanetest.Packet{Src: f.src, Dst: f.dst, Protocol: f.proto, SrcPort: f.srcPort, DstPort: f.dstPort, HasPorts: f.hasPorts})
			var id dataplane.PolicyID
			installed := false
			if pol != nil {
				id = pol.rank.ID
				installed = pol.params.Action == dataplane.Protect && pol.sa.Load() != nil
			}
			if id != o.Policy || installed != o.Installed {
				t.Fatalf("step %d: flow %v>%v: engine policy %d (SA bound %v), fake %d (%v)", step, f.src, f.dst, id, installed, o.Policy, o.Installed)
			}
		}
	}
}
