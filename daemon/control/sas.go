package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/internal/logging"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/status"
	"github.com/goipsec/goipsec/ts"
	"github.com/goipsec/goipsec/vici"
)

func (s *Service) saCommands(r *vici.Registry) {
	r.Handle("list-sas", s.listSAs)
	r.Handle("list-policies", s.listPolicies)
	r.Handle("initiate", s.initiate)
	r.Handle("terminate", s.terminate)
	r.Handle("rekey", s.rekey)
}

// swanNames gives strongSwan's names of a proposal's transforms, as swanctl prints them.
func swanNames(p proposal.Proposal) (encr, keysize, integ, prf, dh string) {
	for _, t := range p.Transforms {
		switch t.Type {
		case proposal.TypeEncryption:
			switch t.ID {
			case proposal.EncrAESGCM16:
				encr = "AES_GCM_16"
			case proposal.EncrAESGCM12:
				encr = "AES_GCM_12"
			case proposal.EncrAESCCM8, proposal.EncrAESCCM12, proposal.EncrAESCCM16:
				encr = fmt.Sprintf("AES_CCM_%d", map[uint16]int{proposal.EncrAESCCM8: 8, proposal.EncrAESCCM12: 12, proposal.EncrAESCCM16: 16}[t.ID])
			case proposal.EncrNullAESGMAC:
				encr = "NULL_AES_GMAC"
			case proposal.EncrAESCTR:
				encr = "AES_CTR"
			case proposal.EncrAESCBC:
				encr = "AES_CBC"
			case proposal.Encr3DES:
				encr = "3DES_CBC"
			case proposal.EncrChaCha20Poly1305:
				encr = "CHACHA20_POLY1305"
			case proposal.EncrNull:
				encr = "NULL"
			default:
				encr = fmt.Sprintf("ENCR_%d", t.ID)
			}
			if t.KeyLength != 0 {
				keysize = strconv.Itoa(int(t.KeyLength))
			} else if t.ID == proposal.EncrChaCha20Poly1305 {
				keysize = "256"
			}
		case proposal.TypeIntegrity:
			integ = map[uint16]string{proposal.IntegHMACSHA2256128: "HMAC_SHA2_256_128", proposal.IntegHMACSHA2384192: "HMAC_SHA2_384_192",
				proposal.IntegHMACSHA2512256: "HMAC_SHA2_512_256", proposal.IntegAESXCBC96: "AES_XCBC_96", proposal.IntegAESCMAC96: "AES_CMAC_96",
				proposal.IntegHMACSHA196: "HMAC_SHA1_96"}[t.ID]
		case proposal.TypePRF:
			prf = map[uint16]string{proposal.PRFHMACSHA2256: "PRF_HMAC_SHA2_256", proposal.PRFHMACSHA2384: "PRF_HMAC_SHA2_384",
				proposal.PRFHMACSHA2512: "PRF_HMAC_SHA2_512"}[t.ID]
		case proposal.TypeKeyExchange:
			dh = map[uint16]string{proposal.KEMODP2048: "MODP_2048", proposal.KEMODP3072: "MODP_3072", proposal.KEMODP4096: "MODP_4096",
				proposal.KEECP256: "ECP_256", proposal.KEECP384: "ECP_384", proposal.KEECP521: "ECP_521", proposal.KECurve25519: "CURVE_25519",
				proposal.KEMLKEM512: "ML_KEM_512", proposal.KEMLKEM768: "ML_KEM_768", proposal.KEMLKEM1024: "ML_KEM_1024"}[t.ID]
		}
	}
	return
}

func hex16(v uint64) string { return fmt.Sprintf("%016x", v) }

func tsStrings(list []ts.Selector) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.String())
	}
	return out
}

// ikeSAMessage fills a list-sa style section for one IKE SA (without child-sas).
func ikeSAMessage(m *vici.Message, sa engine.SAInfo, uniqueID int) {
	m.Set("uniqueid", strconv.Itoa(uniqueID)).Set("version", ikeVersion(sa.Version)).Set("state", sa.State.String())
	m.Set("local-host", sa.Local.Addr().String()).Set("local-port", strconv.Itoa(int(sa.Local.Port()))).Set("local-id", sa.LocalID)
	m.Set("remote-host", sa.Remote.Addr().String()).Set("remote-port", strconv.Itoa(int(sa.Remote.Port()))).Set("remote-id", sa.RemoteID)
	if sa.Initiator {
		m.Set("initiator", "yes")
	}
	m.Set("initiator-spi", hex16(sa.SPIi)).Set("responder-spi", hex16(sa.SPIr))
	// strongSwan's names (vici README, list-sa): nat-local/nat-remote for either side, nat-fake
	// for one faked by encap = yes, nat-any for any of them.
	if sa.NATLocal {
		m.Set("nat-local", "yes")
	}
	if sa.NATRemote {
		m.Set("nat-remote", "yes")
	}
	if sa.NATFake {
		m.Set("nat-fake", "yes")
	}
	if sa.NAT || sa.NATLocal || sa.NATRemote || sa.NATFake {
		m.Set("nat-any", "yes")
	}
	encr, keysize, integ, prf, dh := swanNames(sa.Transforms)
	if encr != "" {
		m.Set("encr-alg", encr)
		if keysize != "" {
			m.Set("encr-keysize", keysize)
		}
	}
	if integ != "" {
		m.Set("integ-alg", integ)
	}
	if prf != "" {
		m.Set("prf-alg", prf)
	}
	if dh != "" {
		m.Set("dh-group", dh)
	}
	if !sa.Established.IsZero() {
		m.Set("established", secs(time.Since(sa.Established)))
	}
	if !sa.RekeyAt.IsZero() {
		m.Set("rekey-time", secs(max(0, time.Until(sa.RekeyAt))))
	}
}

func childSAMessage(m *vici.Message, ch engine.ChildInfo, st *status.ChildSA, uniqueID int) {
	m.Set("name", ch.Name).Set("uniqueid", strconv.Itoa(uniqueID)).Set("reqid", strconv.Itoa(uniqueID)).Set("state", "INSTALLED")
	// strongSwan's list-sas and child-updown name the protocol "ESP" or "AH".
	proto := "ESP"
	if ch.Transforms.Protocol == proposal.ProtoAH {
		proto = "AH"
	}
	m.Set("mode", strings.ToUpper(ch.Mode.String())).Set("protocol", proto)
	if st.UDPEncap {
		m.Set("encap", "yes")
	}
	m.Set("spi-in", fmt.Sprintf("%08x", ch.SPIIn)).Set("spi-out", fmt.Sprintf("%08x", ch.SPIOut))
	encr, keysize, integ, _, _ := swanNames(ch.Transforms)
	if encr != "" {
		m.Set("encr-alg", encr)
		if keysize != "" {
			m.Set("encr-keysize", keysize)
		}
	}
	if integ != "" {
		m.Set("integ-alg", integ)
	}
	if ch.ESN {
		m.Set("esn", "1")
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	m.Set("bytes-in", u(st.In.Bytes)).Set("packets-in", u(st.In.Packets))
	m.Set("bytes-out", u(st.Out.Bytes)).Set("packets-out", u(st.Out.Packets))
	switch {
	case !ch.RekeyAt.IsZero():
		m.Set("rekey-time", secs(max(0, time.Until(ch.RekeyAt))))
	case ch.RekeyTime > 0:
		m.Set("rekey-time", secs(max(0, ch.RekeyTime-time.Since(ch.Created))))
	}
	if !ch.ExpireAt.IsZero() {
		m.Set("life-time", secs(max(0, time.Until(ch.ExpireAt))))
	}
	m.Set("install-time", secs(time.Since(ch.Created)))
	m.SetList("local-ts", st.LocalTS...)
	m.SetList("remote-ts", st.RemoteTS...)
}

func (s *Service) listSAs(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	if !s.d.IKERunning() {
		return vici.NewMessage(), nil
	}
	wantIKE, wantChild := req.Get("ike"), req.Get("child")
	st := s.d.Status()
	for i, sa := range s.d.SAs() {
		if wantIKE != "" && sa.Name != wantIKE {
			continue
		}
		ev := vici.NewMessage()
		sec := ev.AddSection(sa.Name)
		ikeSAMessage(sec, sa, i+1)
		children := sec.AddSection("child-sas")
		for j, ch := range sa.Children {
			if wantChild != "" && ch.Name != wantChild {
				continue
			}
			cs := st.FindChild(fmt.Sprintf("%08x", ch.SPIIn))
			if cs == nil {
				cs = &status.ChildSA{LocalTS: tsStrings(ch.LocalTS), RemoteTS: tsStrings(ch.RemoteTS)}
			}
			id := 1000*(i+1) + j
			childSAMessage(children.AddSection(fmt.Sprintf("%s-%d", ch.Name, id)), ch, cs, id)
		}
		if err := stream.Stream("list-sa", ev); err != nil {
			return nil, err
		}
	}
	return vici.NewMessage(), nil
}

func (s *Service) listPolicies(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	st := s.d.Status()
	send := func(conn, child, mode string, local, remote []string) error {
		ev := vici.NewMessage()
		sec := ev.AddSection(conn + "/" + child)
		sec.Set("child", child).Set("ike", conn).Set("mode", strings.ToUpper(mode))
		sec.SetList("local-ts", local...).SetList("remote-ts", remote...)
		return stream.Stream("list-policy", ev)
	}
	for _, c := range st.Connections {
		for _, is := range c.IKESAs {
			for _, ch := range is.Children {
				if err := send(c.Name, ch.Name, ch.Mode, ch.LocalTS, ch.RemoteTS); err != nil {
					return nil, err
				}
			}
		}
		if req.Get("trap") == "no" {
			continue
		}
		for _, ch := range c.Children {
			if ch.StartAction != "trap" {
				continue
			}
			if err := send(c.Name, ch.Name, ch.Mode, ch.LocalTS, ch.RemoteTS); err != nil {
				return nil, err
			}
		}
	}
	return vici.NewMessage(), nil
}

// controlLog streams the connection's IKE log lines to a client as control-log events while fn
// runs: swanctl --initiate prints them, and goipsec up shows them as progress.
func (s *Service) controlLog(stream vici.EventStreamer, conn string, fn func()) {
	if !stream.Registered("control-log") {
		fn()
		return
	}
	// The subscriber runs in the logging IKE SA's owner, which must never wait for a client: it
	// only queues (dropping what does not fit), and this command's goroutine streams.
	records := make(chan logging.Record, 256)
	cancel := s.d.SubscribeLog(slog.LevelInfo, nil, func(r logging.Record) {
		if r.Subsys != "ike" || !strings.Contains(r.Attrs, "conn="+conn) {
			return
		}
		select {
		case records <- r:
		default:
		}
	})
	send := func(r logging.Record) {
		stream.Stream("control-log", vici.NewMessage().Set("group", "IKE").Set("level", "1").Set("ikesa-name", conn).Set("msg", recordText(r)))
	}
	// records is never closed: a record being published as cancel runs may still arrive.
	done, streamed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(streamed)
		for {
			select {
			case r := <-records:
				send(r)
			case <-done:
				for {
					select {
					case r := <-records:
						send(r)
					default:
						return
					}
				}
			}
		}
	}()
	fn()
	cancel()
	close(done)
	<-streamed
}

// timeoutOf reads VICI's timeout (milliseconds; negative: do not wait; absent or 0: wait for the
// result, which arrives at the latest when the retransmissions give up).
func (s *Service) timeoutOf(req *vici.Message) (time.Duration, bool) {
	v, ok := req.Lookup("timeout")
	if !ok {
		return s.d.RetransmitBudget(), true
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms < 0 {
		return 0, false
	}
	if ms == 0 {
		return s.d.RetransmitBudget(), true
	}
	return time.Duration(ms) * time.Millisecond, true
}

func (s *Service) connOfChild(child string) string {
	for _, c := range s.d.Config().Connections {
		for _, ch := range c.Children {
			if ch.Name == child {
				return c.Name
			}
		}
	}
	return ""
}

// childUp reports whether an IKE SA of conn is established with the named child (any when "").
// A connection with children configured is up only with a Child SA: an IKE SA alone protects no
// traffic.
func (s *Service) childUp(conn, child string) bool {
	for _, sa := range s.d.SAs() {
		if sa.Name != conn || sa.State.String() != "ESTABLISHED" {
			continue
		}
		if child == "" && len(sa.Children) == 0 && s.childless(conn) {
			return true
		}
		for _, c := range sa.Children {
			if child == "" || c.Name == child {
				return true
			}
		}
	}
	return false
}

func (s *Service) childless(conn string) bool {
	for _, c := range s.d.Config().Connections {
		if c.Name == conn {
			return len(c.Children) == 0
		}
	}
	return false
}

func (s *Service) waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := cond()
		if done || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.opts.Poll):
		}
	}
}

func (s *Service) initiate(ctx context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	conn, child := req.Get("ike"), req.Get("child")
	if conn == "" && child != "" {
		if conn = s.connOfChild(child); conn == "" {
			return nil, fmt.Errorf("no connection has a child named %q", child)
		}
	}
	if conn == "" {
		return nil, errors.New("initiate needs ike or child")
	}
	if !s.hasConn(conn) {
		return nil, noSuchConnection(conn, s.d.Config())
	}
	timeout, wait := s.timeoutOf(req)
	var err error
	s.controlLog(stream, conn, func() {
		before, _ := s.d.LastFailure(conn)
		if err = s.d.Initiate(conn, child); err != nil || !wait {
			return
		}
		err = s.waitFor(ctx, timeout, func() (bool, error) {
			if s.childUp(conn, child) {
				return true, nil
			}
			if at, msg := s.d.LastFailure(conn); at.After(before) {
				return false, errors.New(msg)
			}
			return false, nil
		})
	})
	if errors.Is(err, errTimeout) {
		return nil, fmt.Errorf("%s is not up after %s; the daemon keeps trying in the background (goipsec status %s, goipsec doctor %s)",
			conn, timeout, conn, conn)
	}
	if err != nil {
		return nil, fmt.Errorf("establishing %s failed: %v", conn, err)
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

// errTimeout ends a wait that ran out of time.
var errTimeout = errors.New("timed out")

func (s *Service) terminate(ctx context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	if child := req.Get("child"); child != "" && req.Get("ike") == "" {
		// Only the named Child SAs; their IKE SA stays.
		n := 0
		for _, sa := range s.d.SAs() {
			for _, c := range sa.Children {
				if c.Name == child && s.d.DeleteChild(c.SPIIn) {
					n++
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("no Child SA named %q is up", child)
		}
		return vici.NewMessage().Set("success", "yes").Set("matches", strconv.Itoa(n)).Set("terminated", strconv.Itoa(n)), nil
	}
	conn := req.Get("ike")
	if conn == "" {
		return nil, errors.New("terminate needs ike or child (by name)")
	}
	if !s.hasConn(conn) {
		return nil, noSuchConnection(conn, s.d.Config())
	}
	timeout, wait := s.timeoutOf(req)
	var n int
	var err error
	s.controlLog(stream, conn, func() {
		if n, err = s.d.Terminate(conn); err != nil || !wait {
			return
		}
		err = s.waitFor(ctx, timeout, func() (bool, error) {
			for _, sa := range s.d.SAs() {
				if sa.Name == conn {
					return false, nil
				}
			}
			return true, nil
		})
	})
	if errors.Is(err, errTimeout) {
		return nil, fmt.Errorf("%s: the peer did not confirm the Delete within %s; the SAs are gone here", conn, timeout)
	}
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes").Set("matches", strconv.Itoa(n)).Set("terminated", strconv.Itoa(n)), nil
}

func (s *Service) rekey(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	if !s.d.IKERunning() {
		return nil, errors.New("IKE is not running")
	}
	if name := req.Get("ike"); name != "" {
		if !s.hasConn(name) {
			return nil, noSuchConnection(name, s.d.Config())
		}
		if !s.d.RekeyIKE(name) {
			return nil, fmt.Errorf("no established IKE SA of %q", name)
		}
		return vici.NewMessage().Set("success", "yes").Set("matches", "1"), nil
	}
	if child := req.Get("child"); child != "" {
		n := 0
		for _, sa := range s.d.SAs() {
			for _, c := range sa.Children {
				if c.Name == child && s.d.RekeyChild(c.SPIIn) {
					n++
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("no Child SA named %q", child)
		}
		return vici.NewMessage().Set("success", "yes").Set("matches", strconv.Itoa(n)), nil
	}
	return nil, errors.New("rekey needs ike or child")
}

// ikeVersion is the "version" of list-sas: "1" for an IKEv1 SA, "2" otherwise.
func ikeVersion(v int) string {
	if v == 1 {
		return "1"
	}
	return "2"
}
