package ike

import (
	"strings"
	"testing"
)

// TestTransitionTables: states change only along the tables; anything else is refused, left as it
// was, and reported.
func TestTransitionTables(t *testing.T) {
	var reported []error
	deps := Deps{Illegal: func(err error) { reported = append(reported, err) }}.WithDefaults()
	sa := &SA{deps: deps, state: StateEstablished}
	if !sa.setState(StateRekeyed) || sa.state != StateRekeyed {
		t.Fatal("ESTABLISHED -> REKEYED refused")
	}
	if sa.setState(StateEstablished) || sa.state != StateRekeyed {
		t.Fatal("REKEYED -> ESTABLISHED allowed")
	}
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), "REKEYED -> ESTABLISHED") {
		t.Fatalf("reported %v", reported)
	}
	c := &ChildSA{Name: "net", state: ChildDeleting}
	if sa.setChildState(c, ChildInstalled) || c.state != ChildDeleting {
		t.Fatal("DELETING -> INSTALLED allowed")
	}
	if len(reported) != 2 || !strings.Contains(reported[1].Error(), "Child SA net") {
		t.Fatalf("reported %v", reported)
	}
	// Every state can reach the end, and the end is final.
	for s := State(0); s < numStates; s++ {
		if s != StateDead && !ikeTransitions[s][StateDead] {
			t.Errorf("%s cannot end", s)
		}
		if ikeTransitions[StateDead][s] {
			t.Errorf("DEAD -> %s allowed", s)
		}
	}
	for s := ChildState(0); s < numChildStates; s++ {
		if s != ChildDeleted && !childTransitions[s][ChildDeleted] {
			t.Errorf("%s cannot be deleted", s)
		}
	}
}

// TestChildListInPlace: the first Child SA lives in the IKE SA's own allocation; removing it
// clears the slot (no dead Child SA kept reachable), and Child SAs handed to the IKE SA that
// replaces this one are copied out (the new SA must not keep the old one alive through it).
func TestChildListInPlace(t *testing.T) {
	sa, c := new(SA), new(ChildSA)
	sa.Children = append(sa.childMem[:0], c)
	sa.removeChild(c)
	if len(sa.Children) != 0 || sa.childMem[0] != nil {
		t.Fatalf("after removeChild: %d children, slot %p", len(sa.Children), sa.childMem[0])
	}
	sa.Children = append(sa.childMem[:0], c)
	next := new(SA)
	sa.state, next.state = StateEstablished, StateEstablished
	sa.moveTo(next)
	if len(next.Children) != 1 || next.Children[0] != c {
		t.Fatalf("moveTo handed over %v", next.Children)
	}
	if &next.Children[0] == &sa.childMem[0] {
		t.Fatal("the new IKE SA's Child SA list aliases the old IKE SA's memory")
	}
	if sa.Children != nil || sa.childMem[0] != nil {
		t.Fatal("the rekeyed IKE SA still references its Child SAs")
	}
}
