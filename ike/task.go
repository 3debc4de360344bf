package ike

import (
	"fmt"
	"time"

	"github.com/goipsec/goipsec/ike/wire"
)

// TaskKind names a kind of exchange work. Each kind is one type in this package: it builds its
// request, processes the response, answers the peer's request of its kind and owns the collision
// rules that involve it (RFC 7296 §2.25).
type TaskKind uint8

const (
	TaskInit         TaskKind = iota // IKE_SA_INIT
	TaskAuth                         // IKE_AUTH
	TaskChildCreate                  // a new Child SA (in IKE_AUTH or CREATE_CHILD_SA)
	TaskChildRekey                   // CREATE_CHILD_SA with REKEY_SA
	TaskChildDelete                  // INFORMATIONAL with an ESP/AH Delete
	TaskIKERekey                     // CREATE_CHILD_SA with an IKE proposal
	TaskIKEDelete                    // INFORMATIONAL with an IKE Delete
	TaskLiveness                     // empty INFORMATIONAL (dead peer detection)
	TaskIntermediate                 // IKE_INTERMEDIATE with an additional key exchange (RFC 9242, RFC 9370)
	TaskFollowupKE                   // IKE_FOLLOWUP_KE after a CREATE_CHILD_SA (RFC 9370 §2.2.4)
	TaskConfig                       // configuration payload in IKE_AUTH (task_cp.go)
	TaskMOBIKE                       // INFORMATIONAL with UPDATE_SA_ADDRESSES (task_mobike.go)
	TaskRedirect                     // INFORMATIONAL with REDIRECT (task_redirect.go)
)

var taskNames = [...]string{"IKE_SA_INIT", "IKE_AUTH", "create Child SA", "rekey Child SA", "delete Child SA",
	"rekey IKE SA", "delete IKE SA", "liveness check", "IKE_INTERMEDIATE", "IKE_FOLLOWUP_KE",
	"configuration request", "MOBIKE address update", "redirect"}

func (k TaskKind) String() string {
	if int(k) < len(taskNames) {
		return taskNames[k]
	}
	return fmt.Sprintf("task-%d", uint8(k))
}

// Message is an IKE message as tasks see it: its exchange and (decrypted) payloads.
type Message struct {
	Exchange wire.ExchangeType
	Payloads []wire.Payload
	// Raw is the whole encoded message, for IKE_SA_INIT only (AUTH signs it).
	Raw []byte
	// IntAuth is wire.IntAuthData of a received IKE_INTERMEDIATE message, which the driver
	// computes from the decrypted (and reassembled) message: IKE_AUTH authenticates it (RFC 9242
	// §3.3.2).
	IntAuth []byte
}

func (m *Message) add(ps ...wire.Payload) { m.Payloads = append(m.Payloads, ps...) }

// initiatorTask is an exchange we start. Several tasks may share one exchange (IKE_AUTH carries
// the authentication and the first Child SA); they build and process in queue order.
type initiatorTask interface {
	Kind() TaskKind
	Exchange() wire.ExchangeType
	// build adds the task's payloads to the request.
	build(sa *SA, req *Message) error
	// process handles the response. again asks for another request of the same exchange (an
	// IKE_SA_INIT retry, a further authentication round).
	process(sa *SA, resp *Message) (again bool, err error)
	// abort undoes the task's state when the exchange is given up or the IKE SA goes away.
	abort(sa *SA)
}

// deferred is a task waiting until a moment (after TEMPORARY_FAILURE, RFC 7296 §2.25).
type deferred struct {
	task      initiatorTask
	notBefore time.Time
}

// Busy reports whether a request of ours is outstanding.
func (sa *SA) Busy() bool { return len(sa.active) > 0 }

// HasWork reports whether tasks are waiting to be started.
func (sa *SA) HasWork() bool { return len(sa.queue) > 0 }

// ActiveKind returns the kind of the first outstanding task (for logs), ok false when none.
func (sa *SA) ActiveKind() (TaskKind, bool) {
	if len(sa.active) == 0 {
		return 0, false
	}
	return sa.active[0].Kind(), true
}

func (sa *SA) enqueue(t initiatorTask) { sa.queue = append(sa.queue, t) }

// hasTask reports whether an outstanding or queued task matches: the Queue methods do not start
// the same work twice.
func (sa *SA) hasTask(match func(initiatorTask) bool) bool {
	for _, list := range [][]initiatorTask{sa.active, sa.queue} {
		for _, t := range list {
			if match(t) {
				return true
			}
		}
	}
	return false
}

// NextRequest starts the next queued exchange, when none is outstanding, and returns its request
// (nil when there is nothing to send). IKE_SA_INIT requests carry Raw; the others are to be
// protected by the driver.
func (sa *SA) NextRequest() (*Message, error) {
	if len(sa.active) > 0 || sa.state == StateDead {
		return nil, nil
	}
	for len(sa.queue) > 0 {
		first := sa.queue[0]
		if !sa.canStart(first) {
			return nil, nil
		}
		n := 1
		for n < len(sa.queue) && sa.queue[n].Exchange() == first.Exchange() && first.Exchange() == wire.ExchangeIKEAuth {
			n++
		}
		sa.active = append(sa.active[:0], sa.queue[:n]...)
		sa.queue = append(sa.queue[:0], sa.queue[n:]...)
		req, err := sa.buildRequest()
		if err == nil {
			return req, nil
		}
		failed := sa.active
		sa.active = nil
		for _, t := range failed {
			t.abort(sa)
		}
		if first.Kind() == TaskInit || first.Kind() == TaskAuth {
			return nil, err
		}
		sa.emit(Failed{Conn: sa.name(), Err: fmt.Errorf("cannot start %s: %w", first.Kind(), err)})
	}
	return nil, nil
}

// canStart: only the initial exchanges run before the IKE SA is up, and none after it is deleting.
func (sa *SA) canStart(t initiatorTask) bool {
	switch t.Exchange() {
	case wire.ExchangeIKESAInit:
		return sa.state == StateInitSent
	case wire.ExchangeIKEAuth:
		return sa.state == StateInitDone || sa.state == StateAuthSent
	case wire.ExchangeIKEIntermediate:
		return sa.state == StateIntermediate
	}
	if t.Kind() == TaskIKEDelete {
		return sa.state.Authenticated() && sa.state != StateDeleting
	}
	return sa.state == StateEstablished || (sa.state == StateRekeyed && t.Kind() == TaskChildDelete)
}

// buildRequest asks every active task for its payloads.
func (sa *SA) buildRequest() (*Message, error) {
	req := &Message{Exchange: sa.active[0].Exchange()}
	for _, t := range sa.active {
		if err := t.build(sa, req); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// ProcessResponse hands the response to the outstanding exchange to its tasks. It returns the
// next request of the same exchange when a task asks for another round (then the driver sends it
// with the next message ID), or nil. A non-nil error of the initial exchanges is fatal: the SA is
// dead when it returns.
func (sa *SA) ProcessResponse(resp *Message) (*Message, error) {
	tasks := sa.active
	if len(tasks) == 0 {
		return nil, nil
	}
	if sa.holdForVerification(resp) { // verify.go
		return nil, nil
	}
	sa.received(resp)
	resp, next, handled := sa.followup(resp)
	if handled {
		return next, nil
	}
	defer sa.doneAddKE()
	again := false
	var firstErr error
	for i, t := range tasks {
		a, err := t.process(sa, resp)
		if err != nil {
			// A failed initial exchange (IKE_INTERMEDIATE included: an additional key exchange
			// or a PPK refused) ends the IKE SA, which cannot get to IKE_AUTH.
			if t.Kind() == TaskInit || t.Kind() == TaskAuth || t.Kind() == TaskIntermediate {
				sa.active = nil
				for _, o := range tasks {
					if o != t {
						o.abort(sa)
					}
				}
				sa.fail(err)
				return nil, err
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		if a && i == 0 && t.Kind() == TaskAuth && len(tasks) > 1 {
			// A further IKE_AUTH round (EAP, RFC 4739): the tasks sharing the exchange wait for
			// the last response, and the next request carries only the authentication's payloads.
			req := &Message{Exchange: t.Exchange()}
			if err := t.build(sa, req); err != nil {
				sa.active = nil
				sa.fail(err)
				return nil, err
			}
			return req, nil
		}
		again = again || a
	}
	if sa.state == StateEstablished && sa.hs != nil && !again {
		sa.dropHandshake()
	}
	if again && sa.state != StateDead {
		req, err := sa.buildRequest()
		if err != nil {
			sa.active = nil
			sa.fail(err)
			return nil, err
		}
		return req, nil
	}
	sa.active = nil
	return nil, firstErr
}

// Abort gives up the outstanding exchange (retransmissions exhausted).
func (sa *SA) Abort() {
	tasks := sa.active
	sa.active = nil
	for _, t := range tasks {
		t.abort(sa)
	}
}

// fail ends an SA whose initial exchanges failed.
func (sa *SA) fail(err error) {
	if sa.state == StateDead {
		return
	}
	sa.emit(Failed{Conn: sa.name(), Err: err})
	sa.Kill(ReasonOf(err))
}

func (sa *SA) name() string {
	if sa.Config == nil {
		return ""
	}
	return sa.Config.Name
}

// Kill ends the IKE SA at once, without telling the peer: its Child SAs go down, queued and
// outstanding tasks are dropped, keys are wiped.
func (sa *SA) Kill(reason Reason) {
	if sa.state == StateDead {
		return
	}
	tasks := append(sa.active, sa.queue...)
	sa.active, sa.queue = nil, nil
	for _, t := range tasks {
		t.abort(sa)
	}
	for _, d := range sa.deferredTasks() {
		d.abort(sa)
	}
	sa.dropFollowups()
	wasUp := sa.state.Authenticated()
	replaced := sa.replaced
	for _, c := range sa.Children {
		if c.state != ChildDeleted {
			sa.setChildState(c, ChildDeleted)
			cr := reason
			if cr == ReasonRekeyed {
				cr = ReasonParentGone
			}
			sa.emit(ChildDown{IKE: sa.Info(), Name: c.Name, Protocol: c.Protocol(), SPIIn: c.SPIIn, SPIOut: c.SPIOut, Reason: cr})
		}
	}
	sa.dropChildren()
	sa.emit(IKEDown{IKE: sa.Info(), Reason: reason, Up: wasUp, Replaced: replaced})
	sa.Zero()
}

// Deferred tasks (after TEMPORARY_FAILURE) live in a list of their own.

func (sa *SA) deferredTasks() []initiatorTask {
	if sa.rare == nil {
		return nil
	}
	var out []initiatorTask
	for _, d := range sa.rare.deferredList {
		out = append(out, d.task)
	}
	sa.rare.deferredList = nil
	return out
}

// deferTask retries t after a delay.
func (sa *SA) deferTask(t initiatorTask, after time.Duration) {
	r := sa.rareState()
	r.deferredList = append(r.deferredList, deferred{task: t, notBefore: sa.deps.Now().Add(after)})
}

// NextDeferred returns when the next deferred task is due (zero: none).
func (sa *SA) NextDeferred() time.Time {
	var at time.Time
	if sa.rare == nil {
		return at
	}
	for _, d := range sa.rare.deferredList {
		if at.IsZero() || d.notBefore.Before(at) {
			at = d.notBefore
		}
	}
	return at
}

// RequeueDue moves deferred tasks that are due back into the queue.
func (sa *SA) RequeueDue(now time.Time) {
	r := sa.rare
	if r == nil {
		return
	}
	keep := r.deferredList[:0]
	for _, d := range r.deferredList {
		if !now.Before(d.notBefore) {
			sa.enqueue(d.task)
		} else {
			keep = append(keep, d)
		}
	}
	clear(r.deferredList[len(keep):]) // no task kept alive by the backing array
	r.deferredList = keep
}

// ProcessRequest answers a request of the peer (IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL; the
// driver answers IKE_SA_INIT through RespondInit). The SA may be dead afterwards (an answered IKE
// Delete, a failed authentication).
func (sa *SA) ProcessRequest(req *Message) *Message {
	resp := &Message{Exchange: req.Exchange}
	sa.received(req)
	switch req.Exchange {
	case wire.ExchangeIKEIntermediate:
		sa.respondIntermediate(req, resp)
	case wire.ExchangeIKEFollowupKE:
		sa.respondFollowupKE(req, resp)
	case wire.ExchangeIKEAuth:
		sa.respondAuth(req, resp)
	case wire.ExchangeCreateChildSA:
		sa.respondCreateChildSA(req, resp)
	case wire.ExchangeInformational:
		sa.respondInformational(req, resp)
	default:
		resp.add(&wire.Notify{NotifyType: wire.InvalidSyntax})
	}
	sa.clearRequestAddresses()
	if sa.held != nil {
		return nil // answered by Resume (async.go)
	}
	return resp
}

// respondCreateChildSA dispatches a CREATE_CHILD_SA request to the task kind it is for.
func (sa *SA) respondCreateChildSA(req, resp *Message) {
	if sa.state != StateEstablished || sa.adopting {
		// Rekeyed or deleting: new Child SAs belong on the successor, and the peer will retry
		// (RFC 7296 §2.25).
		resp.add(&wire.Notify{NotifyType: wire.TemporaryFailure})
		return
	}
	saPayload := find[*wire.SA](req.Payloads)
	if saPayload == nil || len(saPayload.Proposals) == 0 {
		resp.add(&wire.Notify{NotifyType: wire.InvalidSyntax})
		return
	}
	if saPayload.Proposals[0].Protocol == wire.ProtoIKE {
		respondIKERekey(sa, req, resp)
		return
	}
	if findNotify(req.Payloads, wire.RekeySA) != nil {
		respondChildRekey(sa, req, resp)
		return
	}
	respondChildCreate(sa, req, resp)
}

// respondInformational handles Delete payloads and, otherwise, answers an empty response (a
// liveness check, RFC 7296 §1.4).
func (sa *SA) respondInformational(req, resp *Message) {
	if sa.respondMOBIKE(req, resp) { // task_mobike.go
		return
	}
	if sa.respondRedirect(req) { // task_redirect.go
		return
	}
	for _, d := range findAll[*wire.Delete](req.Payloads) {
		if d.Protocol == wire.ProtoIKE {
			respondIKEDelete(sa, resp)
			return
		}
	}
	for _, d := range findAll[*wire.Delete](req.Payloads) {
		if d.Protocol == wire.ProtoESP || d.Protocol == wire.ProtoAH {
			respondChildDelete(sa, d, resp)
		}
	}
}
