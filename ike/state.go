package ike

import "fmt"

// State is the life-cycle state of an IKE SA. It changes only through SA.setState, which follows
// ikeTransitions and refuses (and reports) any other move.
type State uint8

const (
	StateInitSent State = iota // initiator: IKE_SA_INIT request sent
	// StateIntermediate: IKE_SA_INIT chose additional key exchanges (RFC 9370), which run in
	// IKE_INTERMEDIATE exchanges (RFC 9242) and change the keys after each; IKE_AUTH waits.
	StateIntermediate
	StateInitDone    // IKE_SA_INIT (and every IKE_INTERMEDIATE) complete, keys final, IKE_AUTH pending
	StateAuthSent    // initiator: IKE_AUTH request sent
	StateEstablished // authenticated
	StateRekeyed     // replaced by a rekeyed IKE SA; waits for its Delete
	StateDeleting    // our Delete of the IKE SA is under way
	StateDead        // gone, keys wiped
	numStates
)

var stateNames = [...]string{"INIT_SENT", "INTERMEDIATE", "INIT_DONE", "AUTH_SENT", "ESTABLISHED", "REKEYED", "DELETING", "DEAD"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE(%d)", uint8(s))
}

// ikeTransitions lists every legal move of an IKE SA's state.
var ikeTransitions = [numStates][numStates]bool{
	StateInitSent:     {StateInitSent: true, StateIntermediate: true, StateInitDone: true, StateDead: true},
	StateIntermediate: {StateInitDone: true, StateDead: true},
	StateInitDone:     {StateAuthSent: true, StateEstablished: true, StateDead: true},
	StateAuthSent:     {StateAuthSent: true, StateEstablished: true, StateDead: true},
	StateEstablished:  {StateRekeyed: true, StateDeleting: true, StateDead: true},
	StateRekeyed:      {StateDeleting: true, StateDead: true},
	StateDeleting:     {StateDead: true},
	StateDead:         {},
}

// Up reports whether the IKE SA is authenticated and not yet on its way out.
func (s State) Up() bool { return s == StateEstablished }

// Authenticated reports whether the IKE SA completed IKE_AUTH (it may be rekeyed or deleting).
func (s State) Authenticated() bool {
	return s == StateEstablished || s == StateRekeyed || s == StateDeleting
}

// IllegalTransition is reported (through Deps.Illegal) when code asks for a state change the table
// does not allow; the state is left as it was.
type IllegalTransition struct {
	What     string // "IKE SA" or "Child SA"
	From, To string
}

func (e IllegalTransition) Error() string {
	return fmt.Sprintf("illegal %s state change %s -> %s refused", e.What, e.From, e.To)
}

// setState moves the SA to next if the table allows it and reports whether it did.
func (sa *SA) setState(next State) bool {
	if sa.state == next && next != StateInitSent && next != StateAuthSent {
		return true
	}
	if int(sa.state) >= len(ikeTransitions) || int(next) >= len(ikeTransitions) || !ikeTransitions[sa.state][next] {
		sa.deps.illegal(IllegalTransition{What: "IKE SA", From: sa.state.String(), To: next.String()})
		return false
	}
	sa.state = next
	return true
}

// State returns the IKE SA's state.
func (sa *SA) State() State { return sa.state }

// ChildState is the life-cycle state of a Child SA. It changes only through ChildSA.setState.
type ChildState uint8

const (
	// ChildStandby: negotiated as the successor of a Child SA the peer rekeyed. It receives, but
	// our traffic stays on its predecessor until the peer shows it uses the new one (its Delete of
	// the old SA, or a first packet on the new inbound SA): make-before-break (RFC 7296 §2.8).
	ChildStandby   ChildState = iota
	ChildInstalled            // carries our outbound traffic
	ChildRekeying             // our rekey of it is outstanding
	ChildRekeyed              // a successor carries the traffic; waits for its Delete
	ChildDeleting             // our Delete is outstanding
	ChildDeleted
	numChildStates
)

var childStateNames = [...]string{"STANDBY", "INSTALLED", "REKEYING", "REKEYED", "DELETING", "DELETED"}

func (s ChildState) String() string {
	if int(s) < len(childStateNames) {
		return childStateNames[s]
	}
	return fmt.Sprintf("CHILD_STATE(%d)", uint8(s))
}

var childTransitions = [numChildStates][numChildStates]bool{
	ChildStandby:   {ChildInstalled: true, ChildRekeyed: true, ChildDeleting: true, ChildDeleted: true},
	ChildInstalled: {ChildRekeying: true, ChildRekeyed: true, ChildDeleting: true, ChildDeleted: true},
	ChildRekeying:  {ChildInstalled: true, ChildRekeyed: true, ChildDeleting: true, ChildDeleted: true},
	ChildRekeyed:   {ChildDeleting: true, ChildDeleted: true},
	ChildDeleting:  {ChildDeleted: true},
	ChildDeleted:   {},
}

// Live reports whether the Child SA has not been deleted.
func (s ChildState) Live() bool { return s != ChildDeleted }

func (sa *SA) setChildState(c *ChildSA, next ChildState) bool {
	if c.state == next {
		return true
	}
	if int(c.state) >= len(childTransitions) || int(next) >= len(childTransitions) || !childTransitions[c.state][next] {
		sa.deps.illegal(IllegalTransition{What: "Child SA " + c.Name, From: c.state.String(), To: next.String()})
		return false
	}
	c.state = next
	return true
}
