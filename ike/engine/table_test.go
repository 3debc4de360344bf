package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/proposal"
)

// TestIdentityIndexRemovesInAnyOrder: many IKE SAs with the same identities (one PSK identity
// for every road warrior) join and leave the identity index in any order; removal is O(1) by
// position and the index always lists exactly the members.
func TestIdentityIndexRemovesInAnyOrder(t *testing.T) {
	var x indexes
	x.init()
	props, err := proposal.ParseIKE("aes256gcm16-prfsha256-x25519")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ike.PeerConfig{Name: "rw", Proposals: props}
	var sas []*ikeSA
	for range 500 {
		sa, err := ike.NewInitiator(cfg, nil, netipAP("192.0.2.1:500"), netipAP("192.0.2.2:500"), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := &ikeSA{SA: sa, en: &entry{}}
		s.en.s = s
		x.addIdentity(s)
		sas = append(sas, s)
	}
	members := map[*entry]bool{}
	for _, s := range sas {
		members[s.en] = true
	}
	for _, i := range rand.Perm(len(sas)) {
		x.mu.Lock()
		x.removeIdentityLocked(sas[i])
		x.mu.Unlock()
		delete(members, sas[i].en)
		if len(members) == 0 {
			break
		}
		var any *ikeSA
		for en := range members {
			any = en.s
			break
		}
		got := x.others(any)
		if len(got) != len(members)-1 {
			t.Fatalf("others lists %d entries, want %d", len(got), len(members)-1)
		}
		for _, en := range got {
			if !members[en] {
				t.Fatal("others lists a removed entry")
			}
		}
	}
	if len(x.ids) != 0 {
		t.Fatalf("%d identity lists left", len(x.ids))
	}
}
