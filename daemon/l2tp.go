package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/l2tp"
	"github.com/goipsec/goipsec/pool"
	"github.com/goipsec/goipsec/ppp"
	"github.com/goipsec/goipsec/radius"
	"github.com/goipsec/goipsec/ts"
)

// The L2TP/IPsec service: an L2TP server (LNS) and clients (LACs) on plain UDP sockets. Their
// datagrams are protected by transport-mode Child SAs like any other traffic (the sockets carry
// no fwmark, so the kernel routes them into goipsec's TUN device and the data plane seals them).
// A PPP client's IP packets are written into the TUN device (dataplane.Injector); packets for
// its address reach the service through a Deliver policy. One lock guards the service: L2TP
// processing is cheap and the numbers are small (one tunnel per client).

type l2tpService struct {
	d   *Daemon
	log *slog.Logger
	tun string

	// users is the configuration whose secrets hold the PPP users; read without mu because the
	// PPP verifier runs while mu is held.
	users atomic.Pointer[config.Config]

	mu   sync.Mutex
	cfg  *config.Config
	srv  *l2tp.Server
	conn *net.UDPConn
	// pool holds our own PPP address (local) under l2tpServerLease while the service runs.
	pool  *pool.Pool
	local netip.Addr
	// clients by PPP address: their Deliver policy and where their packets go.
	clients map[netip.Addr]*l2tpClient
	lacs    map[string]*lacConn
	timer   *time.Timer
	addrs   []netip.Prefix // addresses we put on the TUN device
	// verifying counts RADIUS checks of PPP users in flight (close waits for them).
	verifying sync.WaitGroup
	closed    bool
}

// l2tpServerLease is the identity our own PPP address is held under in the pool.
const l2tpServerLease = "l2tp-server"

type l2tpClient struct {
	tunnel, session uint16
	policy          dataplane.PolicyID
	user            string
	peer            netip.AddrPort
	since           time.Time
	lac             *lacConn // nil: a client of our LNS
}

type lacConn struct {
	cfg  *config.LAC
	conn *net.UDPConn
	t    *l2tp.Tunnel
	up   *l2tp.SessionUp
}

// applyL2TP starts, restarts or stops the L2TP service for a new configuration.
func (d *Daemon) applyL2TP(cfg *config.Config) error {
	d.l2tpMu.Lock()
	defer d.l2tpMu.Unlock()
	old := d.l2tp
	if old != nil && old.cfg != nil && sameL2TP(old.cfg, cfg) {
		old.mu.Lock()
		old.cfg = cfg
		old.mu.Unlock()
		old.users.Store(cfg) // secrets may have changed: the verifier reads them live
		return nil
	}
	if old != nil {
		old.close("configuration changed")
		d.l2tp = nil
	}
	if cfg.L2TP == nil {
		return nil
	}
	s := &l2tpService{d: d, log: d.opts.Logs.Logger("l2tp"), tun: cfg.Daemon.TunName, cfg: cfg,
		clients: map[netip.Addr]*l2tpClient{}, lacs: map[string]*lacConn{}}
	s.users.Store(cfg)
	if err := s.start(); err != nil {
		s.close("start failed")
		return err
	}
	d.l2tp = s
	return nil
}

func sameL2TP(a, b *config.Config) bool {
	return reflect.DeepEqual(a.L2TP, b.L2TP) && reflect.DeepEqual(a.Pools, b.Pools) && a.Daemon.TunName == b.Daemon.TunName
}

func (s *l2tpService) start() error {
	if _, ok := s.d.backend.(dataplane.Injector); !ok {
		return errors.New("l2tp: the data plane cannot inject packets (the L2TP service needs the userspace data plane)")
	}
	if lns := s.cfg.L2TP.LNS; lns != nil {
		var pc *config.Pool
		for _, p := range s.cfg.Pools {
			if p.Name == lns.Pool {
				pc = p
			}
		}
		if pc == nil {
			return fmt.Errorf("l2tp: no pool %q", lns.Pool)
		}
		local := lns.LocalIP
		if !local.IsValid() {
			// The pool's last address is the server's own.
			local = pc.End
		}
		// The pool is the daemon's, shared with IKEv2 virtual IPs and IKEv1 Mode Config: one
		// lease table per pool, so no address is handed out twice.
		if s.d.vips == nil {
			return errors.New("l2tp: the daemon has no pools")
		}
		p := s.d.vips.store.Get(pc.Name)
		if p == nil {
			return fmt.Errorf("l2tp: pool %q is not set up", pc.Name)
		}
		if !pc.Start.Is4() {
			return fmt.Errorf("l2tp: pool %q is not an IPv4 pool (IPCP assigns IPv4 addresses)", pc.Name)
		}
		if err := p.Reserve(l2tpServerLease, local); err != nil {
			return fmt.Errorf("l2tp: own address %s in pool %s: %w", local, pc.Name, err)
		}
		s.pool, s.local = p, local
		if err := s.addAddr(local); err != nil {
			return fmt.Errorf("l2tp: own address %s on %s: %w", local, s.tun, err)
		}
		var auths []ppp.Auth
		for _, a := range lns.Auth {
			x, _ := ppp.ParseAuth(a)
			auths = append(auths, x)
		}
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(lns.Port)})
		if err != nil {
			return fmt.Errorf("l2tp: listen on UDP %d: %w", lns.Port, err)
		}
		s.conn = conn
		var verifier ppp.Verifier = ppp.SecretsVerifier{Password: s.password}
		// users = radius: PPP reports the credentials (SessionVerify) and a goroutine asks the
		// RADIUS servers (verifyRADIUS), so that a slow server holds up no other client.
		deferred := lns.Users == "radius"
		if deferred {
			verifier = nil
		}
		leases := poolLeases{store: s.d.vips.store, names: []string{pc.Name}}
		s.srv = l2tp.NewServer(l2tp.Config{PPP: func(peer netip.AddrPort) ppp.Config {
			return ppp.Config{Server: true, Auths: auths, Verifier: verifier, Deferred: deferred, LocalIP: local, Pool: leases, DNS: pc.DNS, MRU: lns.MRU,
				LeaseID: func(user string) string { return user + "@" + peer.String() }}
		}})
		go s.read(conn, nil)
		s.log.Info("L2TP server listening", "port", lns.Port, "pool", pc.Name, "local_ip", local, "auth", lns.Auth)
	}
	for _, lc := range s.cfg.L2TP.LACs {
		if lc.Auto {
			if err := s.dial(lc); err != nil {
				s.log.Warn("L2TP client failed to start", "lac", lc.Name, "err", err)
			}
		}
	}
	return nil
}

// password looks a PPP user up in the secrets (the seam a RADIUS client will take over).
func (s *l2tpService) password(user string) (string, bool) {
	cfg := s.users.Load()
	for _, u := range cfg.Secrets.Users {
		for _, id := range u.IDs {
			if id == user {
				return string(u.Secret), true
			}
		}
	}
	return "", false
}

// dial starts a LAC connection.
func (s *l2tpService) dial(lc *config.LAC) error {
	pw, ok := s.password(lc.User)
	if !ok {
		return fmt.Errorf("no secret for user %q", lc.User)
	}
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(lc.Remote))
	if err != nil {
		return err
	}
	s.mu.Lock()
	l := &lacConn{cfg: lc, conn: conn}
	l.t = l2tp.Dial(l2tp.Config{PPP: func(netip.AddrPort) ppp.Config { return ppp.Config{User: lc.User, Password: pw} }}, lc.Remote, time.Now())
	s.lacs[lc.Name] = l
	out := l.t.Take()
	s.mu.Unlock()
	s.log.Info("L2TP client dialling", "lac", lc.Name, "remote", lc.Remote, "user", lc.User)
	s.carry(out, l)
	go s.read(conn, l)
	return nil
}

// read receives datagrams until the socket closes.
func (s *l2tpService) read(conn *net.UDPConn, lac *lacConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		b := buf[:n]
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("L2TP received", "from", from, "what", describe(b))
		}
		now := time.Now()
		s.mu.Lock()
		var out []l2tp.Output
		if lac == nil {
			if err := s.srv.Input(b, from, now); err != nil {
				s.log.Debug("L2TP datagram dropped", "from", from, "err", err)
			}
			out = s.srv.Take()
		} else if h, payload, err := l2tp.DecodeHeader(b); err == nil && h.Tunnel == lac.t.LocalID {
			lac.t.Input(h, payload, now)
			out = lac.t.Take()
		}
		s.mu.Unlock()
		s.carry(out, lac)
	}
}

// carry sends datagrams and acts on events, outside the lock.
func (s *l2tpService) carry(out []l2tp.Output, lac *lacConn) {
	inj, _ := s.d.backend.(dataplane.Injector)
	for _, o := range out {
		if o.B != nil {
			s.write(o.B, o.To, lac)
			continue
		}
		switch e := o.Event.(type) {
		case l2tp.SessionPacket:
			s.mu.Lock()
			c := s.clients[srcAddr(e.B)]
			s.mu.Unlock()
			// Only packets from the address the client was given (no spoofing through PPP).
			if c != nil && c.tunnel == e.Tunnel && c.session == e.Session && inj != nil {
				inj.Inject(e.B)
			} else if lac != nil && inj != nil && lac.up != nil && dstAddr(e.B) == lac.up.PPP.Local {
				inj.Inject(e.B)
			}
		case l2tp.SessionUp:
			s.sessionUp(e, lac)
		case l2tp.SessionDown:
			s.sessionDown(e, lac)
		case l2tp.TunnelDown:
			s.log.Info("L2TP tunnel down", "peer", e.Peer, "why", e.Reason)
		case l2tp.SessionVerify:
			s.mu.Lock()
			closed := s.closed
			if !closed {
				s.verifying.Add(1)
			}
			s.mu.Unlock()
			if !closed {
				go s.verifyRADIUS(e)
			}
		}
	}
	s.arm()
}

func (s *l2tpService) write(b []byte, to netip.AddrPort, lac *lacConn) {
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("L2TP sending", "to", to, "what", describe(b))
	}
	var err error
	if lac != nil {
		_, err = lac.conn.Write(b)
	} else if s.conn != nil {
		_, err = s.conn.WriteToUDPAddrPort(b, to)
	}
	if err != nil {
		s.log.Debug("L2TP send failed", "to", to, "err", err)
	}
}

func srcAddr(pkt []byte) netip.Addr {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte(pkt[12:16]))
}

func dstAddr(pkt []byte) netip.Addr {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte(pkt[16:20]))
}

// sessionUp routes the client's address to the service.
func (s *l2tpService) sessionUp(e l2tp.SessionUp, lac *lacConn) {
	addr, remote := e.PPP.Peer, ts.Host(e.PPP.Peer)
	local := ts.Any(false)
	if lac != nil {
		// We are the client: our PPP address becomes local, the server's reachable through PPP.
		if err := s.addAddr(e.PPP.Local); err != nil {
			s.log.Warn("adding the PPP address failed", "addr", e.PPP.Local, "err", err)
		}
		local = ts.Host(e.PPP.Local)
	}
	c := &l2tpClient{tunnel: e.Tunnel, session: e.Session, user: e.PPP.User, peer: e.Peer, since: time.Now(), lac: lac}
	id, err := s.d.backend.InstallPolicy(dataplane.PolicyParams{Name: "l2tp/" + addr.String(), Local: []ts.Selector{local},
		Remote: []ts.Selector{remote}, Action: dataplane.Deliver, Route: true, Priority: -1, RouteMTU: s.routeMTU(),
		Deliver: func(pkt []byte) { s.deliver(addr, pkt) }})
	if err != nil {
		s.log.Warn("L2TP session: installing its route failed", "addr", addr, "err", err)
	}
	c.policy = id
	s.mu.Lock()
	if lac != nil {
		lac.up = &e
	}
	s.clients[addr] = c
	s.mu.Unlock()
	s.log.Info("L2TP session up", "peer", e.Peer, "user", e.PPP.User, "ppp_local", e.PPP.Local, "ppp_peer", e.PPP.Peer, "auth", e.PPP.Auth.String())
}

func (s *l2tpService) sessionDown(e l2tp.SessionDown, lac *lacConn) {
	s.mu.Lock()
	var c *l2tpClient
	for a, x := range s.clients {
		if x.tunnel == e.Tunnel && x.session == e.Session {
			c = x
			delete(s.clients, a)
		}
	}
	if lac != nil {
		lac.up = nil
	}
	s.mu.Unlock()
	if c != nil && c.policy != 0 {
		s.d.backend.DeletePolicy(c.policy)
	}
	s.log.Info("L2TP session down", "peer", e.Peer, "ppp_peer", e.PeerIP, "why", e.Reason)
}

// deliver sends a packet for a client down its PPP link. It runs on the data plane's packet
// path: the lock is held only for the framing.
func (s *l2tpService) deliver(addr netip.Addr, pkt []byte) {
	s.mu.Lock()
	c := s.clients[addr]
	var b []byte
	var to netip.AddrPort
	var lac *lacConn
	switch {
	case c == nil:
	case c.lac != nil:
		lac = c.lac
		b = lac.t.Send(c.session, pkt)
		to = lac.cfg.Remote
	case s.srv != nil:
		b, to = s.srv.Send(c.tunnel, c.session, pkt)
	}
	s.mu.Unlock()
	if b != nil {
		s.write(b, to, lac)
	}
}

// arm points the timer at the earliest deadline of the server and the clients.
func (s *l2tpService) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if s.srv != nil {
		consider(s.srv.NextDeadline())
	}
	for _, l := range s.lacs {
		consider(l.t.NextDeadline())
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if next.IsZero() {
		return
	}
	s.timer = time.AfterFunc(max(0, time.Until(next)), s.tick)
}

func (s *l2tpService) tick() {
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.stepAllLocked(func(srv *l2tp.Server) { srv.Tick(now) }, func(t *l2tp.Tunnel) { t.Tick(now) })
}

// stepAllLocked runs a step on the server and on every LAC tunnel with s.mu held, releases it, and
// then carries what each produced (sending must not hold the service's lock).
func (s *l2tpService) stepAllLocked(srvStep func(*l2tp.Server), lacStep func(*l2tp.Tunnel)) {
	var srvOut []l2tp.Output
	if s.srv != nil {
		srvStep(s.srv)
		srvOut = s.srv.Take()
	}
	type lacOut struct {
		l   *lacConn
		out []l2tp.Output
	}
	var lo []lacOut
	for _, l := range s.lacs {
		lacStep(l.t)
		lo = append(lo, lacOut{l, l.t.Take()})
	}
	s.mu.Unlock()
	s.carry(srvOut, nil)
	for _, x := range lo {
		s.carry(x.out, x.l)
	}
}

// addAddr puts an address (/32) on the TUN device, so the host accepts packets for it.
func (s *l2tpService) addAddr(a netip.Addr) error {
	link, err := netlink.LinkByName(s.tun)
	if err != nil {
		return err
	}
	p := netip.PrefixFrom(a, a.BitLen())
	err = netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	s.mu.Lock()
	s.addrs = append(s.addrs, p)
	s.mu.Unlock()
	return nil
}

// close ends every tunnel (StopCCN) and removes what the service installed.
func (s *l2tpService) close(reason string) {
	s.mu.Lock()
	s.stepAllLocked(func(srv *l2tp.Server) { srv.Close(reason) }, func(t *l2tp.Tunnel) { t.Close(reason) })
	s.mu.Lock()
	s.closed = true
	if s.pool != nil {
		s.pool.ReleaseAddr(l2tpServerLease, s.local)
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	for _, l := range s.lacs {
		l.conn.Close()
	}
	addrs := s.addrs
	s.mu.Unlock()
	s.verifying.Wait() // RADIUS checks in flight find the service closed and drop their verdict
	if link, err := netlink.LinkByName(s.tun); err == nil {
		for _, p := range addrs {
			netlink.AddrDel(link, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}})
		}
	}
}

// L2TPSessions lists the L2TP sessions for status.
func (d *Daemon) L2TPSessions() []L2TPSession {
	d.l2tpMu.Lock()
	s := d.l2tp
	d.l2tpMu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []L2TPSession
	for a, c := range s.clients {
		role := "lns"
		if c.lac != nil {
			role = "lac:" + c.lac.cfg.Name
		}
		out = append(out, L2TPSession{Role: role, Peer: c.peer, User: c.user, Address: a, Since: c.since})
	}
	return out
}

// L2TPSession is one PPP session over L2TP.
type L2TPSession struct {
	Role    string // "lns" or "lac:<name>"
	Peer    netip.AddrPort
	User    string
	Address netip.Addr // the client's PPP address (for a LAC: the server's)
	Since   time.Time
}

// describe names a datagram for debug logs: "SCCRQ tunnel 0 session 0 ns 0 nr 0" or
// "data tunnel 5 session 9 ppp 0xc021".
func describe(b []byte) string {
	h, payload, err := l2tp.DecodeHeader(b)
	if err != nil {
		return "malformed: " + err.Error()
	}
	if !h.Control {
		proto, _, _ := ppp.DecodeFrame(payload)
		return fmt.Sprintf("data tunnel %d session %d ppp 0x%04x", h.Tunnel, h.Session, proto)
	}
	m, err := l2tp.ParseMessage(payload)
	name := "ZLB"
	if err != nil {
		name = "malformed"
	} else if m.Type != 0 {
		name = l2tp.MsgName(m.Type)
	}
	return fmt.Sprintf("%s tunnel %d session %d ns %d nr %d", name, h.Tunnel, h.Session, h.Ns, h.Nr)
}

// routeMTU is the MTU of the routes to PPP peers: the TUN device's less the UDP (28), L2TP (6)
// and PPP (4) headers and 2 spare bytes.
func (s *l2tpService) routeMTU() int {
	mtu := s.d.mtu
	if mtu == 0 {
		mtu = 1400
	}
	return mtu - 40
}

// kick is told that a Child SA towards remote came up: LAC tunnels to that peer resend what the
// trap policy dropped instead of waiting for their retransmission timer.
func (d *Daemon) kickL2TP(remote netip.Addr) {
	d.l2tpMu.Lock()
	s := d.l2tp
	d.l2tpMu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	type lacOut struct {
		l   *lacConn
		out []l2tp.Output
	}
	var lo []lacOut
	for _, l := range s.lacs {
		if l.cfg.Remote.Addr() == remote.Unmap() {
			l.t.RetransmitNow(time.Now())
			lo = append(lo, lacOut{l, l.t.Take()})
		}
	}
	s.mu.Unlock()
	for _, x := range lo {
		s.carry(x.out, x.l)
	}
}

// verifyRADIUS checks a PPP user's credentials with the RADIUS servers (l2tp.lns.users = radius)
// on a goroutine of its own: the exchange may take seconds (timeouts, failover) while the
// service goes on serving its other clients; the verdict then goes back to the session, which
// waited without retransmitting challenges.
func (s *l2tpService) verifyRADIUS(e l2tp.SessionVerify) {
	defer s.verifying.Done()
	c := e.Verify.Credentials
	v := ppp.Verdict{Reason: "no RADIUS client (radius section)"}
	if rc := s.d.radiusClient(); rc != nil {
		a := radius.PPPAuth{User: c.User, Password: c.Password, ID: c.ID, Challenge: c.Challenge, PeerChallenge: c.PeerChallenge, Response: c.Response}
		switch c.Auth {
		case ppp.AuthPAP:
			a.Method = radius.PPPPAP
		case ppp.AuthCHAPMD5:
			a.Method = radius.PPPCHAP
		case ppp.AuthMSCHAPv2:
			a.Method = radius.PPPMSCHAPv2
		}
		sess := radius.Session{ID: fmt.Sprintf("L2TP-%04X-%04X", e.Tunnel, e.Session), User: c.User, Remote: e.Peer,
			NASPort: uint32(e.Tunnel)<<16 | uint32(e.Session)}
		start := time.Now()
		res, err := rc.AuthenticatePPP(sess, a)
		switch {
		case err != nil:
			v.Reason = err.Error()
		case !res.OK:
			v.Reason = res.Reason
		default:
			v = ppp.Verdict{OK: true, AuthenticatorResponse: res.AuthenticatorResponse}
		}
		s.log.Info("PPP user checked by RADIUS", "user", c.User, "auth", c.Auth, "peer", e.Peer, "ok", v.OK, "reason", v.Reason,
			"took", time.Since(start).Round(time.Millisecond))
	}
	s.mu.Lock()
	if s.closed || s.srv == nil {
		s.mu.Unlock()
		return
	}
	s.srv.Verdict(e.Tunnel, e.Session, e.Verify.Token, v)
	out := s.srv.Take()
	s.mu.Unlock()
	s.carry(out, nil)
}
