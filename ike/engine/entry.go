package engine

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
)

// Ownership. Each IKE SA lives in an entry with an inbox. Whoever has work for the SA (a received
// message, a timer, a command) puts it in the inbox; the first piece of work schedules the entry
// on the run queue, and one worker at a time drains it. So each IKE SA is worked on by one
// goroutine at a time, different IKE SAs in parallel, and nobody waits for a busy SA. An idle SA
// costs no goroutine.
//
// The owner holds entry.mu while it works on the SA; status listings take it too, briefly. The
// owner never blocks: what its work wants done outside (data plane installs, events, sending) is
// recorded as effects and queued on the entry, and an applier goroutine carries them out in order,
// after the owner let go of the SA. Lock order: entry.mu, then entry.qmu; the engine's index locks
// and the scheduler's lock are taken alone.
type entry struct {
	spi uint64 // our IKE SPI: the key in the SA table

	qmu      sync.Mutex
	inbox    []work
	queued   bool // on the run queue or being drained
	effects  []effect
	applying bool // on the apply queue or being applied
	gone     bool // removed from the table: new work is dropped

	mu sync.Mutex // held by the owner while it works on s
	s  *ikeSA     // set once, before the entry is published

	// remoteHint is the peer's address as last known, readable without mu (unique = keep).
	remoteHint atomic.Pointer[netip.AddrPort]
	// idPos is the entry's position in its identity list of the indexes (guarded by their lock).
	idPos int

	// Guarded by the scheduler's lock.
	wakeAt  instant
	wakeSeq uint64
}

// workKind says what a piece of work is.
type workKind uint8

const (
	workDatagram workKind = iota // a received message for the SA
	workTimer                    // a deadline came
	workFunc                     // a command run by the owner
)

type work struct {
	kind          workKind
	b             []byte
	h             wire.Header
	local, remote netip.AddrPort
	fn            func(*ikeSA)
	tcp           bool // the datagram came in a TCP connection (RFC 9329)
}

// maxInbox bounds the datagrams waiting for one SA; more are dropped (the peer retransmits).
const maxInbox = 64

// effect is what an applier carries out: an ike.Effect or one of the driver's own.
type effect any

// sendEffect sends IKE datagrams, or with tcp messages in a TCP connection (RFC 9329), which the
// sender may open when dial is set.
type sendEffect struct {
	local, remote netip.AddrPort
	msgs          [][]byte
	tcp, dial     bool
	en            *entry // the sender, told when TCP fails (nil: none)
}

// keepaliveEffect sends a NAT-keepalive.
type keepaliveEffect struct{ local, remote netip.AddrPort }

// handshakeEffect reports a completed handshake's duration.
type handshakeEffect struct{ took time.Duration }

// post gives work to an entry and schedules it when it was idle. It reports false when the entry
// is gone or its inbox is full.
func (e *Engine) post(en *entry, w work) bool {
	en.qmu.Lock()
	if en.gone {
		en.qmu.Unlock()
		return false
	}
	if w.kind == workDatagram && len(en.inbox) >= maxInbox {
		en.qmu.Unlock()
		return false
	}
	en.inbox = append(en.inbox, w)
	schedule := !en.queued
	en.queued = true
	en.qmu.Unlock()
	if schedule {
		e.runq.push(en)
	}
	return true
}

// drainBudget is how many pieces of work one turn of a worker takes from an entry before it goes
// to the back of the run queue (fairness between busy SAs).
const drainBudget = 16

// drain works through an entry's inbox as its owner.
func (e *Engine) drain(en *entry) {
	for range drainBudget {
		en.qmu.Lock()
		if len(en.inbox) == 0 {
			en.queued = false
			en.qmu.Unlock()
			return
		}
		w := en.inbox[0]
		en.inbox[0] = work{}
		en.inbox = en.inbox[1:]
		if len(en.inbox) == 0 {
			en.inbox = nil
		}
		gone := en.gone
		en.qmu.Unlock()
		if gone {
			continue
		}
		en.mu.Lock()
		out := e.handle(en, w)
		en.mu.Unlock()
		e.queueEffects(en, out)
	}
	// More work waits: back of the queue.
	e.runq.push(en)
}

// queueEffects appends effects to the entry's queue and schedules an applier.
func (e *Engine) queueEffects(en *entry, out []effect) {
	if len(out) == 0 {
		return
	}
	en.qmu.Lock()
	en.effects = append(en.effects, out...)
	schedule := !en.applying
	en.applying = true
	en.qmu.Unlock()
	if schedule {
		e.applyq.push(en)
	}
}

// applyAll carries out an entry's queued effects in order, outside every SA.
func (e *Engine) applyAll(en *entry) {
	for {
		en.qmu.Lock()
		batch := en.effects
		en.effects = nil
		if len(batch) == 0 {
			en.applying = false
			en.qmu.Unlock()
			return
		}
		en.qmu.Unlock()
		for _, x := range batch {
			e.apply(x)
		}
	}
}

// fifo is an unbounded queue of entries with a wake-up for one waiting consumer. Unbounded, so
// that an owner that posts work to another SA never waits (no deadlock between owners).
type fifo struct {
	mu     sync.Mutex
	items  []*entry
	head   int
	signal chan struct{}
}

func newFIFO() *fifo { return &fifo{signal: make(chan struct{}, 1)} }

func (q *fifo) push(en *entry) {
	q.mu.Lock()
	q.items = append(q.items, en)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// tryPop returns the next entry, or nil when the queue is empty.
func (q *fifo) tryPop() *entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return nil
	}
	en := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
	return en
}

func (q *fifo) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// loop runs fn on entries until stop is closed.
func (q *fifo) loop(stop <-chan struct{}, fn func(*entry), busy *sync.WaitGroup) {
	for {
		if en := q.tryPop(); en != nil {
			fn(en)
			// Keep the signal alive for the other consumers while work remains.
			if q.len() > 0 {
				select {
				case q.signal <- struct{}{}:
				default:
				}
			}
			continue
		}
		select {
		case <-q.signal:
		case <-stop:
			busy.Done()
			return
		}
	}
}

// ikeSA is an IKE SA with the driver's state: message IDs, the retransmission of our request, the
// cached response to the peer's last request, and the deadlines.
type ikeSA struct {
	*ike.SA
	en *entry

	started instant // first message, for the handshake duration

	// Our requests (window size 1).
	nextMsgID    uint32
	pendingID    uint32
	pendingMsg   [][]byte // nil: no request outstanding
	retries      int
	retransmitAt instant

	// The peer's requests.
	expectID uint32
	lastResp [][]byte
	hasResp  bool
	respTo   netip.AddrPort // where the cached response went
	// respDropAt is when the cached response is dropped: once no retransmission of its
	// request can come any more (an idle IKE SA then holds no message bytes).
	respDropAt instant
	reasm      *wire.Reassembler

	lastSeen      instant // last authenticated message from the peer
	rekeyAt       instant // IKE SA rekey (zero: none)
	reauthAt      instant // re-authentication by a new IKE SA (zero: none; reauth.go)
	reauthOf      *entry  // the IKE SA this one re-authenticates, deleted once this one is up
	reauthUp      bool    // established: reauthOf goes once the Child SAs are installed
	keepaliveAt   instant
	halfOpenUntil instant // responder: IKE_AUTH must arrive by then

	halfOpenKey *initKey // registered in the half-open table
	// udpPath is where IKE_SA_INIT went over UDP before the fallback to TCP (tcp.go), to go back
	// to when the TCP connection cannot be opened; set once the fallback was tried.
	udpPath  *[2]netip.AddrPort
	identity uint64 // hash of the identities registered in the identity index (0: none)
	conn     string // registered in the connection index

	out []effect // effects of the work being handled

	// heldHdr and heldFrom are the peer's request that waits for blocking work (ike.Async).
	heldHdr  wire.Header
	heldFrom netip.AddrPort
}

// asyncEffect runs an SA's blocking work (ike.Async) off the SA and hands the result back to
// its owner.
type asyncEffect struct {
	en  *entry
	run func() any
}

// RunHeldAsync completes the blocking work held by Config.HoldAsync and reports how much.
func (e *Engine) RunHeldAsync() int {
	e.heldMu.Lock()
	list := e.held
	e.held = nil
	e.heldMu.Unlock()
	for _, fn := range list {
		fn()
	}
	return len(list)
}

// runAsync runs blocking work on a goroutine of its own (appliers must stay available for every
// SA's effects; a RADIUS round trip with failover can take seconds) and resumes the held request
// as the SA's owner. In manual mode (tests in virtual time) it runs inline.
func (e *Engine) runAsync(x asyncEffect) {
	done := func(v any) {
		e.post(x.en, work{kind: workFunc, fn: func(s *ikeSA) {
			if s.HoldsResponse() {
				// The initiator's IKE_AUTH response waited for the responder's certificate to
				// be verified (ike/verify.go): process it now, as receiveResponse would have.
				next, err := s.ResumeResponse(v)
				if err != nil {
					e.logSA(s).Debug("exchange failed", "exchange", "IKE_AUTH", "err", err)
				}
				if next != nil {
					id := s.nextMsgID
					s.nextMsgID++
					e.sendProtected(s, next, id)
				}
				return
			}
			resp := s.Resume(v)
			if resp == nil {
				return
			}
			e.sendResponse(s, s.heldHdr, resp, s.heldFrom)
			if r, closing := s.Closing(); closing {
				s.Kill(r)
			}
		}})
	}
	if e.cfg.Manual {
		if e.cfg.HoldAsync {
			e.heldMu.Lock()
			e.held = append(e.held, func() { done(x.run()) })
			e.heldMu.Unlock()
			return
		}
		done(x.run())
		return
	}
	e.asyncs.Add(1)
	go func() {
		defer e.asyncs.Done()
		done(x.run())
	}()
}
