package radius

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc3576"
)

// DAE answers Disconnect-Request and CoA-Request packets of a RADIUS server (Dynamic
// Authorization Extensions, RFC 5176) on UDP port 3799.
type DAE struct {
	Secret []byte
	Log    *slog.Logger
	// Disconnect ends the sessions a request names (by Acct-Session-Id, User-Name or
	// Framed-IP-Address; zero values match any) and returns how many it ended.
	Disconnect func(sessionID, user string, vip netip.Addr) int
	// Reauthorize applies a CoA: ok false when no session matches; unsupported lists attributes
	// it cannot apply. (Session-Timeout is applied: the session ends after it.)
	Reauthorize func(sessionID, user string, vip netip.Addr, sessionTimeout uint32) (ok bool)

	mu     sync.Mutex
	srv    *radius.PacketServer
	closed bool
}

// Serve listens on conn until Close.
func (d *DAE) Serve(conn net.PacketConn) error {
	srv := &radius.PacketServer{Handler: radius.HandlerFunc(d.handle), SecretSource: radius.StaticSecretSource(d.Secret)}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return conn.Close()
	}
	d.srv = srv
	d.mu.Unlock()
	err := srv.Serve(conn)
	if errors.Is(err, radius.ErrServerShutdown) {
		return nil
	}
	return err
}

// Close stops the server.
func (d *DAE) Close() error {
	d.mu.Lock()
	srv := d.srv
	d.closed = true
	d.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(context.Background())
}

// known are the attributes a request may carry besides those we act on (RFC 5176 §3: NAS and
// session identification).
var known = map[radius.Type]bool{
	rfc2865.UserName_Type: true, rfc2865.NASIPAddress_Type: true, rfc2865.NASIdentifier_Type: true,
	rfc2866.AcctSessionID_Type: true, rfc2865.FramedIPAddress_Type: true, rfc2865.CallingStationID_Type: true,
	rfc2865.CalledStationID_Type: true, rfc2865.NASPort_Type: true, rfc2865.NASPortType_Type: true,
	rfc2865.State_Type: true, rfc2865.ProxyState_Type: true, 80: true, // Message-Authenticator
	55: true, // Event-Timestamp
}

func (d *DAE) handle(w radius.ResponseWriter, r *radius.Request) {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sid := rfc2866.AcctSessionID_GetString(r.Packet)
	user := rfc2865.UserName_GetString(r.Packet)
	var vip netip.Addr
	if ip := rfc2865.FramedIPAddress_Get(r.Packet); ip != nil {
		vip, _ = netip.AddrFromSlice(ip.To4())
	}
	if sid == "" && user == "" && !vip.IsValid() {
		d.answer(w, r, false, rfc3576.ErrorCause_Value_MissingAttribute)
		return
	}
	switch r.Code {
	case radius.CodeDisconnectRequest:
		for _, a := range r.Attributes {
			if !known[a.Type] {
				d.answer(w, r, false, rfc3576.ErrorCause_Value_UnsupportedAttribute)
				return
			}
		}
		n := d.Disconnect(sid, user, vip)
		log.Info("RADIUS Disconnect-Request", "from", r.RemoteAddr, "session", sid, "user", user, "vip", vip, "ended", n)
		if n == 0 {
			d.answer(w, r, false, rfc3576.ErrorCause_Value_SessionContextNotFound)
			return
		}
		d.answer(w, r, true, 0)
	case radius.CodeCoARequest:
		for _, a := range r.Attributes {
			if !known[a.Type] && a.Type != rfc2865.SessionTimeout_Type {
				d.answer(w, r, false, rfc3576.ErrorCause_Value_UnsupportedAttribute)
				return
			}
		}
		timeout := uint32(rfc2865.SessionTimeout_Get(r.Packet))
		ok := d.Reauthorize(sid, user, vip, timeout)
		log.Info("RADIUS CoA-Request", "from", r.RemoteAddr, "session", sid, "user", user, "session_timeout", timeout, "applied", ok)
		if !ok {
			d.answer(w, r, false, rfc3576.ErrorCause_Value_SessionContextNotFound)
			return
		}
		d.answer(w, r, true, 0)
	default:
		log.Debug("ignoring RADIUS packet on the DAE port", "code", r.Code.String(), "from", r.RemoteAddr)
	}
}

func (d *DAE) answer(w radius.ResponseWriter, r *radius.Request, ack bool, cause rfc3576.ErrorCause) {
	code := map[bool]map[radius.Code]radius.Code{
		true:  {radius.CodeDisconnectRequest: radius.CodeDisconnectACK, radius.CodeCoARequest: radius.CodeCoAACK},
		false: {radius.CodeDisconnectRequest: radius.CodeDisconnectNAK, radius.CodeCoARequest: radius.CodeCoANAK},
	}[ack][r.Code]
	resp := r.Response(code)
	if !ack {
		rfc3576.ErrorCause_Set(resp, cause)
	}
	if err := w.Write(resp); err != nil && d.Log != nil {
		d.Log.Warn("cannot answer a RADIUS DAE request", "to", r.RemoteAddr, "err", fmt.Sprint(err))
	}
}
