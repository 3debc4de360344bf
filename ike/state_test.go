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
