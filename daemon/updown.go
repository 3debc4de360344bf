package daemon

import (
	"fmt"
	"sync"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/updown"
)

// updownState runs the children's updown scripts (updown.Runner: off the engine, in order per
// Child SA, with daemon.updown_timeout). A rekey is invisible to the script, as in strongSwan: the
// successor inherits the event of the Child SA it replaces, and the replaced one goes without a
// "down".
type updownState struct {
	runner updown.Runner

	mu     sync.Mutex
	up     map[uint32]*upEvent // by inbound SPI, for the "down" call
	reqids map[policyKey]uint32
	ikeIDs map[[2]uint64]uint32
	next   uint32
}

func (d *Daemon) updownState() *updownState {
	d.updownOnce.Do(func() {
		d.updown = &updownState{up: map[uint32]*upEvent{}, reqids: map[policyKey]uint32{}, ikeIDs: map[[2]uint64]uint32{}}
		d.updown.runner.Timeout = d.opts.Daemon.UpdownTimeout
		d.updown.runner.Log = d.log
	})
	return d.updown
}

type upEvent struct {
	e *updown.Event
	// replaced: a rekey's successor carries the event on; this one's end calls nothing.
	replaced bool
}

// updownChildUp queues the "up" calls of a new Child SA (not of a rekey's successor).
func (d *Daemon) updownChildUp(c *ike.ChildInstall, ch *config.Child, pk policyKey) {
	u := d.updownState()
	u.mu.Lock()
	defer u.mu.Unlock()
	if c.Replaces != 0 {
		if old := u.up[c.Replaces]; old != nil {
			e := *old.e
			e.SPIIn, e.SPIOut = c.SPIIn, c.SPIOut
			u.up[c.SPIIn] = &upEvent{e: &e}
			old.replaced = true
		}
		return
	}
	if ch == nil || ch.Updown == "" {
		return
	}
	reqid := u.reqids[pk]
	if reqid == 0 {
		u.next++
		reqid = u.next
		u.reqids[pk] = reqid
	}
	ikeKey := [2]uint64{c.IKE.SPIi, c.IKE.SPIr}
	uid := u.ikeIDs[ikeKey]
	if uid == 0 {
		u.next++
		uid = u.next
		u.ikeIDs[ikeKey] = uid
	}
	e := &updown.Event{Up: true, Script: ch.Updown, Conn: c.IKE.Conn, Child: c.Name, Interface: d.opts.Daemon.TunName,
		Reqid: reqid, UniqueID: uid, Me: c.IKE.Local.Addr(), Peer: c.IKE.Remote.Addr(),
		MyID: c.IKE.LocalID.String(), PeerID: c.IKE.RemoteID.String(), PeerEAPID: c.IKE.EAPID,
		Local: c.LocalTS, Remote: c.RemoteTS, MySourceIPs: c.IKE.LocalVIPs, PeerSourceIPs: c.IKE.RemoteVIPs,
		Encap: c.Encap, PeerPort: c.IKE.Remote.Port(), HostAccess: ch.HostAccess, SPIIn: c.SPIIn, SPIOut: c.SPIOut,
		IfIDIn: ch.IfIDIn, IfIDOut: ch.IfIDOut, Key: fmt.Sprintf("%s/%s/%d", c.IKE.Conn, c.Name, reqid)}
	if ch.MarkIn != (config.Mark{}) {
		e.MarkIn = fmt.Sprintf("0x%x/0x%x", ch.MarkIn.Value, ch.MarkIn.Mask)
	}
	if ch.MarkOut != (config.Mark{}) {
		e.MarkOut = fmt.Sprintf("0x%x/0x%x", ch.MarkOut.Value, ch.MarkOut.Mask)
	}
	u.up[c.SPIIn] = &upEvent{e: e}
	u.runner.Run(e)
}

// updownChildDown queues the "down" calls of a Child SA that goes for good.
func (d *Daemon) updownChildDown(x ike.ChildDown) {
	u := d.updownState()
	u.mu.Lock()
	e := u.up[x.SPIIn]
	delete(u.up, x.SPIIn)
	u.mu.Unlock()
	if e == nil || e.replaced || x.Reason == ike.ReasonRekeyed || x.Reason == ike.ReasonCollision {
		return
	}
	down := *e.e
	down.Up = false
	u.runner.Run(&down)
}

// updownIKEDown forgets an IKE SA's unique id.
func (d *Daemon) updownIKEDown(x ike.IKEDown) {
	u := d.updownState()
	u.mu.Lock()
	delete(u.ikeIDs, [2]uint64{x.IKE.SPIi, x.IKE.SPIr})
	u.mu.Unlock()
}
