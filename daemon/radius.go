package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"

	"layeh.com/radius/rfc2866"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/eap"
	"github.com/goipsec/goipsec/radius"
)

// radiusState is the RADIUS client of remote.auth = eap-radius, its accounting sessions and the
// Disconnect/CoA listener. Every RADIUS exchange blocks: EAP steps run through ike.Async, and
// accounting records are sent from goroutines of their own.
type radiusState struct {
	mu     sync.Mutex
	cfg    *config.Radius
	client *radius.Client
	dae    *radius.DAE
	// sessions are the accounted IKE SAs, by SPIs.
	sessions map[[2]uint64]*acctSession
	sent     sync.WaitGroup
}

// acctSession is one accounted IKE SA.
type acctSession struct {
	rec      radius.Record
	children map[uint32]dataplane.SAKey // live Child SAs: inbound SPI → inbound SA (and out in outs)
	outs     map[uint32]dataplane.SAKey
	done     radius.Usage // counters of Child SAs that are gone
	interim  *time.Timer
	timeout  *time.Timer
	ike      ike.IKEInfo
}

func (d *Daemon) radiusState() *radiusState {
	d.radiusOnce.Do(func() { d.rad = &radiusState{sessions: map[[2]uint64]*acctSession{}} })
	return d.rad
}

// applyRadius builds the RADIUS client (and DAE listener) of the configuration's radius section.
func (d *Daemon) applyRadius(cfg *config.Config) error {
	rs := d.radiusState()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if reflect.DeepEqual(rs.cfg, cfg.Radius) {
		return nil
	}
	if rs.dae != nil {
		rs.dae.Close()
		rs.dae = nil
	}
	rs.cfg, rs.client = cfg.Radius, nil
	if cfg.Radius == nil {
		return nil
	}
	r := cfg.Radius
	var servers []radius.Server
	for _, s := range r.Servers {
		servers = append(servers, radius.Server{Name: s.Name, Addr: s.Addr, AuthPort: s.AuthPort, AcctPort: s.AcctPort, Secret: s.Secret, Preference: s.Preference})
	}
	c, err := radius.New(radius.Config{Servers: servers, NASIdentifier: r.NASIdentifier, Timeout: r.Timeout, Retry: r.Retry, Log: d.log})
	if err != nil {
		return fmt.Errorf("%s:%d: radius: %w", r.File, r.Line, err)
	}
	rs.client = c
	if r.DAE != nil {
		conn, err := net.ListenPacket("udp", netip.AddrPortFrom(r.DAE.Listen, r.DAE.Port).String())
		if err != nil {
			return fmt.Errorf("%s:%d: radius.dae: %w", r.File, r.Line, err)
		}
		dae := &radius.DAE{Secret: r.DAE.Secret, Log: d.log, Disconnect: d.daeDisconnect, Reauthorize: d.daeCoA}
		rs.dae = dae
		go func() {
			if err := dae.Serve(conn); err != nil {
				d.log.Warn("RADIUS DAE listener stopped", "err", err)
			}
		}()
		d.log.Info("RADIUS DAE listening", "addr", conn.LocalAddr().String())
	}
	return nil
}

func (d *Daemon) radiusClient() *radius.Client {
	rs := d.radiusState()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.client
}

// radiusEAP is remote.auth = eap-radius: EAP relayed to the RADIUS servers. With eap_id = %any
// the client's EAP identity is asked for here first (strongSwan's eap-identity before
// eap-radius); otherwise its IKE identity is the RADIUS User-Name.
func (d *Daemon) radiusEAP(ask bool, fixed string) func(ike.EAPPeer) (ike.EAPServer, error) {
	return func(peer ike.EAPPeer) (ike.EAPServer, error) {
		c := d.radiusClient()
		if c == nil {
			return nil, errors.New("remote auth = eap-radius needs a radius { servers { } } section")
		}
		s := &identityRelay{c: c, peer: peer, ask: ask, user: fixed}
		if s.user == "" && !ask {
			s.user = peer.ID.String()
		}
		return s, nil
	}
}

// identityRelay asks for the EAP identity itself (when configured) and relays the rest.
type identityRelay struct {
	c     *radius.Client
	peer  ike.EAPPeer
	ask   bool
	user  string
	relay *radius.EAPRelay
	id    uint8
}

func (r *identityRelay) session() radius.Session {
	return radius.Session{ID: sessionID(r.peer.SPIi, r.peer.SPIr), User: r.user, Local: r.peer.Local, Remote: r.peer.Remote, NASPort: uint32(r.peer.SPIr)}
}

func (r *identityRelay) Start() ([]byte, error) {
	if r.ask {
		r.id = 1
		return (&eap.Packet{Code: eap.CodeRequest, Identifier: r.id, Type: eap.TypeIdentity}).Marshal(), nil
	}
	r.relay = r.c.NewEAPRelay(r.session())
	return r.relay.Start()
}

func (r *identityRelay) Process(resp []byte) ([]byte, *eap.Result, error) {
	if r.relay == nil {
		p, err := eap.Parse(resp)
		if err != nil || p.Type != eap.TypeIdentity || p.Identifier != r.id || len(p.Data) == 0 || len(p.Data) > 253 {
			return nil, nil, errors.New("expected an EAP-Identity response")
		}
		r.user = string(p.Data)
		r.relay = r.c.NewEAPRelay(r.session())
		out, err := r.relay.Start()
		return out, nil, err
	}
	return r.relay.Process(resp)
}

// sessionID is Acct-Session-Id: the IKE SPIs, which name the IKE SA on both sides.
func sessionID(spii, spir uint64) string { return fmt.Sprintf("%016X-%016X", spii, spir) }

// --- accounting ---

// acctStart begins accounting for an IKE SA authenticated through RADIUS.
func (d *Daemon) acctStart(x ike.IKEUp) {
	rs := d.radiusState()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.client == nil || rs.cfg == nil || !rs.cfg.Accounting || x.IKE.Initiator || !d.usesRadius(x.IKE.Conn) {
		return
	}
	key := [2]uint64{x.IKE.SPIi, x.IKE.SPIr}
	user := x.IKE.EAPID
	if user == "" {
		user = x.IKE.RemoteID.String()
	}
	s := &acctSession{ike: x.IKE, children: map[uint32]dataplane.SAKey{}, outs: map[uint32]dataplane.SAKey{},
		rec: radius.Record{Status: rfc2866.AcctStatusType_Value_Start, Start: time.Now(), VIPs: x.IKE.RemoteVIPs, Class: x.IKE.AAAClass,
			Session: radius.Session{ID: sessionID(x.IKE.SPIi, x.IKE.SPIr), User: user, Local: x.IKE.Local, Remote: x.IKE.Remote, NASPort: uint32(x.IKE.SPIr)}}}
	rs.sessions[key] = s
	d.acctSend(rs, s.rec)
	if iv := rs.cfg.AccountingInterval; iv > 0 {
		var tick func()
		tick = func() {
			rs.mu.Lock()
			defer rs.mu.Unlock()
			if rs.sessions[key] != s {
				return
			}
			rec := s.rec
			rec.Status = rfc2866.AcctStatusType_Value_InterimUpdate
			rec.Usage = d.usage(s)
			d.acctSend(rs, rec)
			s.interim = time.AfterFunc(iv, tick)
		}
		s.interim = time.AfterFunc(iv, tick)
	}
}

func (d *Daemon) usesRadius(conn string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.conns[conn]
	if c == nil {
		return false
	}
	for _, r := range c.cfg.RemoteRounds {
		if r.Method == config.AuthEAP && r.EAP == "radius" {
			return true
		}
	}
	return contains(c.cfg.Pools, "radius")
}

// acctSend sends a record from a goroutine of its own (it waits for the server).
func (d *Daemon) acctSend(rs *radiusState, rec radius.Record) {
	c := rs.client
	rs.sent.Add(1)
	go func() {
		defer rs.sent.Done()
		if err := c.Account(rec); err != nil {
			d.log.Warn("RADIUS accounting record not delivered", "session", rec.Session.ID, "status", rec.Status.String(), "err", err)
			return
		}
		d.log.Debug("RADIUS accounting", "session", rec.Session.ID, "status", rec.Status.String(), "in", rec.Usage.InOctets, "out", rec.Usage.OutOctets)
	}()
}

// usage sums the session's Child SAs: those gone, and the live ones from the data plane. The
// inbound SAs count what the client sent (Acct-Input), the outbound ones what it received.
func (d *Daemon) usage(s *acctSession) radius.Usage {
	u := s.done
	for spi, in := range s.children {
		if st, ok := d.backend.SAStats(in); ok {
			u.InOctets += st.Bytes
			u.InPackets += st.Packets
		}
		if st, ok := d.backend.SAStats(s.outs[spi]); ok {
			u.OutOctets += st.Bytes
			u.OutPackets += st.Packets
		}
	}
	return u
}

// acctChildUp and acctChildDown keep the session's Child SAs; a Child SA's counters are added to
// the session before its SAs are deleted.
func (d *Daemon) acctChildUp(c *ike.ChildInstall, in, out dataplane.SAKey) {
	rs := d.radiusState()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if s := rs.sessions[[2]uint64{c.IKE.SPIi, c.IKE.SPIr}]; s != nil {
		s.children[c.SPIIn], s.outs[c.SPIIn] = in, out
	}
}

func (d *Daemon) acctChildDown(x ike.ChildDown, in, out dataplane.SAKey) {
	rs := d.radiusState()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, s := range rs.sessions {
		if _, ok := s.children[x.SPIIn]; !ok {
			continue
		}
		if st, ok := d.backend.SAStats(in); ok {
			s.done.InOctets += st.Bytes
			s.done.InPackets += st.Packets
		}
		if st, ok := d.backend.SAStats(out); ok {
			s.done.OutOctets += st.Bytes
			s.done.OutPackets += st.Packets
		}
		delete(s.children, x.SPIIn)
		delete(s.outs, x.SPIIn)
	}
}

// acctRekeyed moves a session to the IKE SA that replaced its own.
func (d *Daemon) acctRekeyed(x ike.IKERekeyed) {
	rs := d.radiusState()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	old, nw := [2]uint64{x.Old.SPIi, x.Old.SPIr}, [2]uint64{x.New.SPIi, x.New.SPIr}
	if s := rs.sessions[old]; s != nil {
		delete(rs.sessions, old)
		rs.sessions[nw] = s
		s.ike = x.New
	}
}

// acctStop ends accounting for an IKE SA that is gone.
func (d *Daemon) acctStop(x ike.IKEDown) {
	if x.Replaced {
		return
	}
	rs := d.radiusState()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	key := [2]uint64{x.IKE.SPIi, x.IKE.SPIr}
	s := rs.sessions[key]
	if s == nil {
		return
	}
	delete(rs.sessions, key)
	if s.interim != nil {
		s.interim.Stop()
	}
	if s.timeout != nil {
		s.timeout.Stop()
	}
	rec := s.rec
	rec.Status = rfc2866.AcctStatusType_Value_Stop
	rec.Usage = d.usage(s)
	rec.Cause = radius.TerminateCause(x.Reason == ike.ReasonDeletedByPeer, x.Reason == ike.ReasonDeadPeer,
		x.Reason == ike.ReasonDeleted, x.Reason == ike.ReasonShutdown)
	d.acctSend(rs, rec)
}

// --- Disconnect and CoA ---

func (rs *radiusState) match(sid, user string, vip netip.Addr) []*acctSession {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []*acctSession
	for _, s := range rs.sessions {
		if sid != "" && !strings.EqualFold(s.rec.Session.ID, sid) {
			continue
		}
		if user != "" && s.rec.Session.User != user {
			continue
		}
		if vip.IsValid() && !contains(addrStrings(s.rec.VIPs), vip.String()) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func addrStrings(list []netip.Addr) []string {
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.String()
	}
	return out
}

// daeDisconnect ends the matching sessions' IKE SAs (RFC 5176 Disconnect-Request).
func (d *Daemon) daeDisconnect(sid, user string, vip netip.Addr) int {
	n := 0
	for _, s := range d.radiusState().match(sid, user, vip) {
		if d.ike != nil && d.ike.TerminateSA(s.ike.SPIi, s.ike.SPIr) {
			n++
		}
	}
	return n
}

// daeCoA applies a CoA-Request: a Session-Timeout ends the session after that many seconds.
func (d *Daemon) daeCoA(sid, user string, vip netip.Addr, timeout uint32) bool {
	list := d.radiusState().match(sid, user, vip)
	for _, s := range list {
		if timeout == 0 {
			continue
		}
		spii, spir := s.ike.SPIi, s.ike.SPIr
		d.radiusState().mu.Lock()
		if s.timeout != nil {
			s.timeout.Stop()
		}
		s.timeout = time.AfterFunc(time.Duration(timeout)*time.Second, func() {
			d.log.Info("RADIUS Session-Timeout reached: closing the IKE SA", "session", sessionID(spii, spir))
			if d.ike != nil {
				d.ike.TerminateSA(spii, spir)
			}
		})
		d.radiusState().mu.Unlock()
	}
	return len(list) > 0
}

// closeRadius stops the DAE listener and waits for the last accounting records.
func (d *Daemon) closeRadius() {
	if d.rad == nil {
		return
	}
	d.rad.mu.Lock()
	if d.rad.dae != nil {
		d.rad.dae.Close()
	}
	d.rad.mu.Unlock()
	d.rad.sent.Wait()
}
