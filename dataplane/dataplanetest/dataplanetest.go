// Package dataplanetest provides Backend, a recording fake of dataplane.Backend for tests of the
// control plane (the IKE engine, the daemon). It never touches the network and needs no
// privileges.
//
// The fake keeps the SAs and policies installed through it, checks parameters the way the
// userspace engine does (algorithms and key lengths through packages esp and ah, outer addresses,
// selectors, duplicate keys), and logs every call in order with a sequence number. A test can
// simulate traffic against the installed state — Receive (an authenticated inbound packet on an
// SA) and Send (an outbound packet looked up in the SPD) — and the fake raises the Events the
// engine would (FirstInbound, Acquire), and Expire on request. Because packets and events are in
// the same log as the calls, a test can ask afterwards what was installed when they happened:
//
//	fake := dataplanetest.New()
//	... drive the IKE engine, which installs SAs through fake ...
//	seq, err := fake.Receive(newInbound)   // the peer sends on the new SA
//	if !fake.InstalledAt(newInbound, seq) { ... }
//	for _, c := range fake.Calls() { ... } // the exact order of installs and deletes
package dataplanetest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/goipsec/goipsec/ah"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ts"
)

// Op names what a logged call or event was.
type Op uint8

// Logged operations: the Backend methods that change state, then the fake's own events.
const (
	OpInstallSA Op = iota + 1
	OpDeleteSA
	OpUpdateSAAddresses
	OpInstallPolicy
	OpSetPolicySA
	OpDeletePolicy
	OpClose
	OpReceive // Receive: a simulated inbound packet
	OpSend    // Send: a simulated outbound packet
	OpExpire  // Expire: a simulated lifetime event
	OpMark    // Mark: a test's own marker
)

var opNames = [...]string{OpInstallSA: "InstallSA", OpDeleteSA: "DeleteSA", OpUpdateSAAddresses: "UpdateSAAddresses",
	OpInstallPolicy: "InstallPolicy", OpSetPolicySA: "SetPolicySA", OpDeletePolicy: "DeletePolicy", OpClose: "Close",
	OpReceive: "Receive", OpSend: "Send", OpExpire: "Expire", OpMark: "Mark"}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Call is one entry of the log. Only the fields of its Op are set.
type Call struct {
	Seq int // position in the log, from 1
	Op  Op
	// SA: the parameters of InstallSA, with their keys (copied).
	SA dataplane.SAParams
	// Key: the SA of DeleteSA, UpdateSAAddresses (before the move), SetPolicySA, Receive, Expire,
	// and the SA a Send used.
	Key dataplane.SAKey
	// NewKey: the SA's key after UpdateSAAddresses.
	NewKey dataplane.SAKey
	Update dataplane.AddressUpdate
	// Policy: the parameters of InstallPolicy.
	Policy dataplane.PolicyParams
	// PolicyID: InstallPolicy's result, the policy of SetPolicySA and DeletePolicy, the policy a
	// Send matched.
	PolicyID dataplane.PolicyID
	// Label: Mark's label.
	Label string
	// Err is what the call returned (for Receive and Send: why the packet was dropped).
	Err error
}

func (c Call) String() string {
	s := fmt.Sprintf("#%d %s", c.Seq, c.Op)
	switch c.Op {
	case OpInstallSA:
		s += fmt.Sprintf(" %s %s spi 0x%08x %s→%s", c.SA.Name, c.SA.Direction, c.SA.SPI, c.SA.Src, c.SA.Dst)
	case OpDeleteSA, OpReceive, OpExpire:
		s += " " + c.Key.String()
	case OpUpdateSAAddresses:
		s += fmt.Sprintf(" %s → %s", c.Key, c.NewKey)
	case OpInstallPolicy, OpDeletePolicy:
		s += fmt.Sprintf(" policy %d", c.PolicyID)
	case OpSetPolicySA:
		s += fmt.Sprintf(" policy %d → %s", c.PolicyID, c.Key)
	case OpSend:
		s += fmt.Sprintf(" policy %d sa %s", c.PolicyID, c.Key)
	case OpMark:
		s += " " + c.Label
	}
	if c.Err != nil {
		s += ": " + c.Err.Error()
	}
	return s
}

// Backend is the recording fake. Its zero value is not usable; call New.
type Backend struct {
	mu       sync.Mutex
	events   dataplane.Events
	log      []Call
	sas      map[dataplane.SAKey]*sa
	lifetime map[dataplane.SAKey][]span // every installation of each key, for InstalledAt
	policies map[dataplane.PolicyID]*policy
	nextID   dataplane.PolicyID
	fail     map[Op][]error
	stats    dataplane.Stats
	closed   bool
}

type sa struct {
	params   dataplane.SAParams // with keys
	stats    dataplane.SAStats
	notified bool
}

// span is [from, to) in log sequence numbers; to is 0 while the SA is installed.
type span struct{ from, to int }

type policy struct {
	id     dataplane.PolicyID
	params dataplane.PolicyParams
	rank   dataplane.PolicyRank
}

// New returns an empty fake. Events can be set later with SetEvents (the control plane is usually
// built after its backend).
func New() *Backend {
	return &Backend{sas: map[dataplane.SAKey]*sa{}, lifetime: map[dataplane.SAKey][]span{},
		policies: map[dataplane.PolicyID]*policy{}, fail: map[Op][]error{}}
}

// SetEvents sets the callbacks that Receive, Send and Expire raise.
func (b *Backend) SetEvents(ev dataplane.Events) {
	b.mu.Lock()
	b.events = ev
	b.mu.Unlock()
}

// FailNext makes the next call of op return err and change nothing (it is still logged). Several
// calls queue several failures.
func (b *Backend) FailNext(op Op, err error) {
	b.mu.Lock()
	b.fail[op] = append(b.fail[op], err)
	b.mu.Unlock()
}

// failLocked takes a queued failure for op.
func (b *Backend) failLocked(op Op) error {
	q := b.fail[op]
	if len(q) == 0 {
		return nil
	}
	b.fail[op] = q[1:]
	return q[0]
}

// logLocked appends c to the log and returns its sequence number.
func (b *Backend) logLocked(c Call) int {
	c.Seq = len(b.log) + 1
	b.log = append(b.log, c)
	return c.Seq
}

// Calls returns the log so far.
func (b *Backend) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.log)
}

// CallsOf returns the logged calls of the given operations, in order.
func (b *Backend) CallsOf(ops ...Op) []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Call
	for _, c := range b.log {
		if slices.Contains(ops, c.Op) {
			out = append(out, c)
		}
	}
	return out
}

// Seq returns the sequence number of the last log entry (0 when empty).
func (b *Backend) Seq() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.log)
}

// Mark logs a marker (for example "rekey started") and returns its sequence number.
func (b *Backend) Mark(label string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logLocked(Call{Op: OpMark, Label: label})
}

// Installed returns the parameters (with keys) of the SA installed under key now.
func (b *Backend) Installed(key dataplane.SAKey) (dataplane.SAParams, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sas[key]
	if !ok {
		return dataplane.SAParams{}, false
	}
	return s.params, true
}

// InstalledAt reports whether an SA was installed under key when the log entry seq happened
// (an install at seq counts, a delete or move away at seq does not).
func (b *Backend) InstalledAt(key dataplane.SAKey, seq int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.lifetime[key] {
		if s.from <= seq && (s.to == 0 || seq < s.to) {
			return true
		}
	}
	return false
}

// Policy returns an installed policy's parameters, with the SA it names now.
func (b *Backend) Policy(id dataplane.PolicyID) (dataplane.PolicyParams, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.policies[id]
	if !ok {
		return dataplane.PolicyParams{}, false
	}
	return p.params, true
}

// PolicyIDs returns the installed policies' IDs in rank order (the order the SPD tries them).
func (b *Backend) PolicyIDs() []dataplane.PolicyID {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []dataplane.PolicyID
	for _, p := range b.rankedLocked() {
		out = append(out, p.id)
	}
	return out
}

func (b *Backend) rankedLocked() []*policy {
	list := make([]*policy, 0, len(b.policies))
	for _, p := range b.policies {
		list = append(list, p)
	}
	slices.SortFunc(list, func(x, y *policy) int {
		if x.rank.Before(y.rank) {
			return -1
		}
		return 1
	})
	return list
}

// errClosed is returned after Close.
var errClosed = errors.New("dataplanetest: backend closed")

// InstallSA implements dataplane.Backend.
func (b *Backend) InstallSA(p dataplane.SAParams) error {
	p.EncKey = slices.Clone(p.EncKey)
	p.IntegKey = slices.Clone(p.IntegKey)
	b.mu.Lock()
	defer b.mu.Unlock()
	c := Call{Op: OpInstallSA, SA: p}
	c.Err = b.installLocked(&c)
	b.logLocked(c)
	if c.Err == nil {
		k := c.Key
		b.lifetime[k] = append(b.lifetime[k], span{from: len(b.log)})
	}
	return c.Err
}

func (b *Backend) installLocked(c *Call) error {
	if b.closed {
		return errClosed
	}
	if err := b.failLocked(OpInstallSA); err != nil {
		return err
	}
	p := &c.SA
	if err := checkAddresses(p.Src, p.Dst); err != nil {
		return fmt.Errorf("SA %s: %w", p.Name, err)
	}
	c.Key = dataplane.SAKey{Protocol: p.Protocol, SPI: p.SPI, Dst: p.Dst.Unmap()}
	if err := checkTransforms(p); err != nil {
		return fmt.Errorf("SA %s (%s): %w", p.Name, c.Key, err)
	}
	if _, ok := b.sas[c.Key]; ok {
		return fmt.Errorf("SA %s (%s): %w", p.Name, c.Key, dataplane.ErrSAExists)
	}
	stored := *p
	stored.Src, stored.Dst = p.Src.Unmap(), p.Dst.Unmap()
	b.sas[c.Key] = &sa{params: stored}
	return nil
}

func checkAddresses(src, dst netip.Addr) error {
	if !src.IsValid() || !dst.IsValid() || src.Unmap().Is4() != dst.Unmap().Is4() {
		return fmt.Errorf("outer addresses %v and %v must be two addresses of one family", src, dst)
	}
	return nil
}

// checkTransforms builds the SA's transform as the userspace engine would, to refuse what it
// refuses (unknown algorithms, wrong key lengths, AH in UDP).
func checkTransforms(p *dataplane.SAParams) error {
	switch p.Protocol {
	case dataplane.ESP:
		s, err := esp.NewSA(esp.Params{SPI: p.SPI, Encryption: p.Encryption, EncKey: p.EncKey,
			Integrity: p.Integrity, IntegKey: p.IntegKey, ESN: p.ESN, ReplayWindow: p.ReplayWindow})
		if err != nil {
			return err
		}
		s.Zero()
	case dataplane.AH:
		if p.Encap {
			return errors.New("AH cannot be carried in UDP (RFC 3948 encapsulates ESP only)")
		}
		s, err := ah.NewSA(ah.Params{SPI: p.SPI, Integrity: ah.Integrity(p.Integrity), IntegKey: p.IntegKey,
			ESN: p.ESN, ReplayWindow: p.ReplayWindow})
		if err != nil {
			return err
		}
		s.Zero()
	default:
		return fmt.Errorf("unknown protocol %d", p.Protocol)
	}
	if p.Encap && p.Direction == dataplane.Out && p.DstPort == 0 {
		return errors.New("ESP in UDP needs the peer's port")
	}
	return nil
}

// DeleteSA implements dataplane.Backend.
func (b *Backend) DeleteSA(key dataplane.SAKey) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := Call{Op: OpDeleteSA, Key: key}
	switch {
	case b.closed:
		c.Err = errClosed
	default:
		if c.Err = b.failLocked(OpDeleteSA); c.Err != nil {
			break
		}
		if _, ok := b.sas[key]; !ok {
			c.Err = fmt.Errorf("%s: %w", key, dataplane.ErrNoSA)
			break
		}
		delete(b.sas, key)
	}
	seq := b.logLocked(c)
	if c.Err == nil {
		b.endSpanLocked(key, seq)
	}
	return c.Err
}

func (b *Backend) endSpanLocked(key dataplane.SAKey, seq int) {
	list := b.lifetime[key]
	if n := len(list); n > 0 && list[n-1].to == 0 {
		list[n-1].to = seq
	}
}

// UpdateSAAddresses implements dataplane.Backend: the SA keeps its keys and counters, its key
// takes the new destination, and policies naming it follow.
func (b *Backend) UpdateSAAddresses(key dataplane.SAKey, u dataplane.AddressUpdate) (dataplane.SAKey, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := Call{Op: OpUpdateSAAddresses, Key: key, NewKey: key, Update: u}
	c.Err = b.moveLocked(&c)
	seq := b.logLocked(c)
	if c.Err == nil && c.NewKey != key {
		b.endSpanLocked(key, seq)
		b.lifetime[c.NewKey] = append(b.lifetime[c.NewKey], span{from: seq})
	}
	return c.NewKey, c.Err
}

func (b *Backend) moveLocked(c *Call) error {
	if b.closed {
		return errClosed
	}
	if err := b.failLocked(OpUpdateSAAddresses); err != nil {
		return err
	}
	s, ok := b.sas[c.Key]
	if !ok {
		return fmt.Errorf("%s: %w", c.Key, dataplane.ErrNoSA)
	}
	u := c.Update
	if err := checkAddresses(u.Src, u.Dst); err != nil {
		return fmt.Errorf("%s: move: %w", c.Key, err)
	}
	if u.Encap && s.params.Protocol == dataplane.AH {
		return fmt.Errorf("%s: move: AH cannot be carried in UDP", c.Key)
	}
	if u.Encap && s.params.Direction == dataplane.Out && u.DstPort == 0 {
		return fmt.Errorf("%s: move: ESP in UDP needs the peer's port", c.Key)
	}
	newKey := c.Key
	newKey.Dst = u.Dst.Unmap()
	if _, taken := b.sas[newKey]; taken && newKey != c.Key {
		return fmt.Errorf("%s: move to %s: %w", c.Key, newKey, dataplane.ErrSAExists)
	}
	c.NewKey = newKey
	p := &s.params
	p.Src, p.Dst, p.Encap, p.SrcPort, p.DstPort = u.Src.Unmap(), u.Dst.Unmap(), u.Encap, u.SrcPort, u.DstPort
	if newKey != c.Key {
		delete(b.sas, c.Key)
		b.sas[newKey] = s
		if p.Direction == dataplane.Out {
			for _, pol := range b.policies {
				if pol.params.Action == dataplane.Protect && pol.params.SA == c.Key {
					pol.params.SA = newKey
				}
			}
		}
	}
	return nil
}

// InstallPolicy implements dataplane.Backend.
func (b *Backend) InstallPolicy(p dataplane.PolicyParams) (dataplane.PolicyID, error) {
	p.Local, p.Remote = slices.Clone(p.Local), slices.Clone(p.Remote)
	b.mu.Lock()
	defer b.mu.Unlock()
	c := Call{Op: OpInstallPolicy, Policy: p}
	c.Err = b.installPolicyLocked(&c)
	b.logLocked(c)
	return c.PolicyID, c.Err
}

func (b *Backend) installPolicyLocked(c *Call) error {
	if b.closed {
		return errClosed
	}
	if err := b.failLocked(OpInstallPolicy); err != nil {
		return err
	}
	p := c.Policy
	if len(p.Local) == 0 || len(p.Remote) == 0 {
		return fmt.Errorf("policy %s: needs local and remote traffic selectors", p.Name)
	}
	for _, list := range [][]ts.Selector{p.Local, p.Remote} {
		for _, s := range list {
			if !s.Valid() {
				return fmt.Errorf("policy %s: invalid traffic selector %v", p.Name, s)
			}
		}
	}
	b.nextID++
	c.PolicyID = b.nextID
	b.policies[c.PolicyID] = &policy{id: c.PolicyID, params: p, rank: dataplane.RankOf(c.PolicyID, &p)}
	return nil
}

// SetPolicySA implements dataplane.Backend.
func (b *Backend) SetPolicySA(id dataplane.PolicyID, key dataplane.SAKey) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := Call{Op: OpSetPolicySA, PolicyID: id, Key: key}
	switch {
	case b.closed:
		c.Err = errClosed
	default:
		if c.Err = b.failLocked(OpSetPolicySA); c.Err != nil {
			break
		}
		p, ok := b.policies[id]
		if !ok {
			c.Err = dataplane.ErrNoPolicy
			break
		}
		p.params.SA = key
	}
	b.logLocked(c)
	return c.Err
}

// DeletePolicy implements dataplane.Backend.
func (b *Backend) DeletePolicy(id dataplane.PolicyID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := Call{Op: OpDeletePolicy, PolicyID: id}
	switch {
	case b.closed:
		c.Err = errClosed
	default:
		if c.Err = b.failLocked(OpDeletePolicy); c.Err != nil {
			break
		}
		if _, ok := b.policies[id]; !ok {
			c.Err = dataplane.ErrNoPolicy
			break
		}
		delete(b.policies, id)
	}
	b.logLocked(c)
	return c.Err
}

// SAs implements dataplane.Backend (parameters without keys, as the engine lists them).
func (b *Backend) SAs() []dataplane.SAInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]dataplane.SAInfo, 0, len(b.sas))
	for k, s := range b.sas {
		p := s.params
		p.EncKey, p.IntegKey = nil, nil
		out = append(out, dataplane.SAInfo{Key: k, Params: p, Stats: s.stats})
	}
	slices.SortFunc(out, func(x, y dataplane.SAInfo) int {
		if x.Params.Name != y.Params.Name {
			if x.Params.Name < y.Params.Name {
				return -1
			}
			return 1
		}
		return int(int64(x.Key.SPI) - int64(y.Key.SPI))
	})
	return out
}

// SAStats implements dataplane.Backend: packets counted by Receive and Send.
func (b *Backend) SAStats(key dataplane.SAKey) (dataplane.SAStats, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sas[key]
	if !ok {
		return dataplane.SAStats{}, false
	}
	return s.stats, true
}

// Stats implements dataplane.Backend.
func (b *Backend) Stats() dataplane.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Close implements dataplane.Backend; later calls fail.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.sas = map[dataplane.SAKey]*sa{}
	seq := b.logLocked(Call{Op: OpClose})
	for k := range b.lifetime {
		b.endSpanLocked(k, seq)
	}
	return nil
}

// Receive simulates an inbound IPsec packet that authenticates on the inbound SA key, and
// returns its log sequence number. Without such an SA the packet is dropped (the error wraps
// dataplane.ErrNoSA, counted as DropNoSA). The first packet on an SA installed with
// NotifyFirstInbound raises Events.FirstInbound, once.
func (b *Backend) Receive(key dataplane.SAKey) (int, error) {
	b.mu.Lock()
	c := Call{Op: OpReceive, Key: key}
	s, ok := b.sas[key]
	var notify func(dataplane.SAKey, string)
	switch {
	case !ok || s.params.Direction != dataplane.In:
		c.Err = fmt.Errorf("%s: %w", key, dataplane.ErrNoSA)
		b.stats.Drops[dataplane.DropNoSA]++
	default:
		s.stats.Packets++
		b.stats.NetPackets++
		if s.params.NotifyFirstInbound && !s.notified {
			s.notified = true
			notify = b.events.FirstInbound
		}
	}
	seq := b.logLocked(c)
	name := ""
	if s != nil {
		name = s.params.Name
	}
	b.mu.Unlock()
	if notify != nil {
		notify(key, name)
	}
	return seq, c.Err
}

// Outcome is what the SPD decided for a packet given to Send.
type Outcome struct {
	Seq    int // the packet's log sequence number
	Policy dataplane.PolicyID
	Action dataplane.Action
	// SA is the outbound SA a Protect policy named; Installed whether it was installed (if not,
	// the packet was dropped and Acquire raised, as for a trap policy).
	SA        dataplane.SAKey
	Installed bool
}

// Packet describes a plaintext packet for Send. Ports are ignored unless HasPorts (for ICMP they
// carry type<<8|code, as in traffic selectors).
type Packet struct {
	Src, Dst         netip.Addr
	Protocol         uint8
	SrcPort, DstPort uint16
	HasPorts         bool
}

// Send simulates an outbound plaintext packet: the first policy in rank order whose selectors
// match decides, as in the engine. Protect with an installed SA counts the packet on the SA;
// Protect without one raises Acquire (on every such packet; the engine limits it to one a second
// per policy) and drops the packet; no matching policy drops it as no_policy.
func (b *Backend) Send(pkt Packet) (Outcome, error) {
	b.mu.Lock()
	var out Outcome
	var acq func(dataplane.Acquire)
	var acquire dataplane.Acquire
	c := Call{Op: OpSend}
	var match *policy
	for _, p := range b.rankedLocked() {
		if matchesAll(p.params.Local, pkt.Src, pkt, pkt.SrcPort) && matchesAll(p.params.Remote, pkt.Dst, pkt, pkt.DstPort) {
			match = p
			break
		}
	}
	switch {
	case match == nil:
		c.Err = errors.New("no policy matches")
		b.stats.Drops[dataplane.DropNoPolicy]++
	default:
		out.Policy, out.Action, c.PolicyID = match.id, match.params.Action, match.id
		switch match.params.Action {
		case dataplane.Discard:
			b.stats.Drops[dataplane.DropDiscard]++
		case dataplane.Bypass:
			b.stats.Bypassed++
		default:
			out.SA, c.Key = match.params.SA, match.params.SA
			if s, ok := b.sas[match.params.SA]; ok && s.params.Direction == dataplane.Out {
				out.Installed = true
				s.stats.Packets++
			} else {
				c.Err = fmt.Errorf("policy %d: %w", match.id, dataplane.ErrNoSA)
				b.stats.Drops[dataplane.DropNoSA]++
				acq = b.events.Acquire
				acquire = dataplane.Acquire{Policy: match.id, Name: match.params.Name, Src: pkt.Src, Dst: pkt.Dst, Protocol: pkt.Protocol}
			}
		}
	}
	b.stats.TunPackets++
	out.Seq = b.logLocked(c)
	b.mu.Unlock()
	if acq != nil {
		acq(acquire)
	}
	return out, c.Err
}

func matchesAll(list []ts.Selector, a netip.Addr, pkt Packet, port uint16) bool {
	for _, s := range list {
		if s.Matches(a, pkt.Protocol, port, pkt.HasPorts) {
			return true
		}
	}
	return false
}

// Expire raises Events.Expire for an installed SA, as the engine does when a lifetime runs out
// (hard: the SA stops carrying traffic; the fake keeps it installed until DeleteSA, as the engine
// does).
func (b *Backend) Expire(key dataplane.SAKey, hard bool, why string) error {
	b.mu.Lock()
	c := Call{Op: OpExpire, Key: key}
	s, ok := b.sas[key]
	name := ""
	if ok {
		name = s.params.Name
	} else {
		c.Err = fmt.Errorf("%s: %w", key, dataplane.ErrNoSA)
	}
	b.logLocked(c)
	fn := b.events.Expire
	b.mu.Unlock()
	if !ok {
		return c.Err
	}
	if fn != nil {
		fn(dataplane.Expire{SA: key, Name: name, Hard: hard, Why: why})
	}
	return nil
}

var _ dataplane.Backend = (*Backend)(nil)
