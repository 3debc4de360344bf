package daemon

import (
	"testing"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
)

// strongSwan's meanings (swanctl.conf): %unique is one value per Child SA, shared by its %unique
// settings; %unique-dir a value per setting (direction); %same copies mark_in's or mark_out's
// value under set_mark's own mask; mark_in reaches the inbound SA only with mark_in_sa.
func TestChildPolicyUnique(t *testing.T) {
	ch := &config.Child{Policies: true,
		MarkIn:       config.Mark{Unique: config.UniqueChild, Mask: 0xffffffff},
		MarkOut:      config.Mark{Unique: config.UniqueDir, Mask: 0xffffffff},
		IfIDInUnique: config.UniqueChild, IfIDOut: 7,
		SetMarkIn:  config.Mark{Same: true, Mask: 0xff},
		SetMarkOut: config.Mark{Value: 0x500, Mask: 0xf00},
	}
	cp := childPolicyFrom(ch)
	if !cp.hasUnique() || cp.noPolicies {
		t.Fatalf("%+v", cp)
	}
	n := uint32(0x120)
	ids := cp.allocUnique(func() uint32 { n++; return n })
	if ids != (uniqueIDs{0x121, 0x122, 0x121, 0}) {
		t.Fatalf("unique values %#x: mark_in and if_id_in (%%unique) share one, mark_out (%%unique-dir) has its own", ids)
	}
	r := cp.withUnique(ids)
	if r.kernel.MarkIn != (dataplane.Mark{Value: 0x121, Mask: 0xffffffff}) || r.kernel.MarkOut != (dataplane.Mark{Value: 0x122, Mask: 0xffffffff}) ||
		r.kernel.IfIDIn != 0x121 || r.kernel.IfIDOut != 7 {
		t.Fatalf("policy options %+v", r.kernel)
	}
	var in, out dataplane.SAParams
	r.saMarks(&in, &out)
	if in.Mark != (dataplane.Mark{}) || out.Mark != r.kernel.MarkOut || in.IfID != 0x121 || out.IfID != 7 {
		t.Fatalf("SA marks: in %+v %d, out %+v %d", in.Mark, in.IfID, out.Mark, out.IfID)
	}
	if in.SetMark != (dataplane.Mark{Value: 0x21, Mask: 0xff}) || out.SetMark != (dataplane.Mark{Value: 0x500, Mask: 0xf00}) {
		t.Fatalf("output marks: in %+v, out %+v", in.SetMark, out.SetMark)
	}
	ch.MarkInSA = true
	in = dataplane.SAParams{}
	childPolicyFrom(ch).withUnique(ids).saMarks(&in, &out)
	if in.Mark != (dataplane.Mark{Value: 0x121, Mask: 0xffffffff}) {
		t.Fatalf("mark_in_sa: inbound SA mark %+v", in.Mark)
	}
	ch.Policies = false
	if !childPolicyFrom(ch).noPolicies || (childPolicy{}).noPolicies {
		t.Fatal("policies = no not carried, or a missing child's zero settings install no policies")
	}
}
