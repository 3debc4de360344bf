package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/internal/logging"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
	"github.com/goipsec/goipsec/vici"
)

// Version is reported by VICI's version command; cmd/goipsec sets it.
var Version = "0.1.0-dev"

// VICI returns the command registry of the control socket: strongSwan's commands that swanctl
// uses, and goipsec's own (goipsec-status, goipsec-reload, goipsec-doctor) for its CLI. Commands
// not listed here are answered by vici.Registry with an error naming them.
func (d *Daemon) VICI() *vici.Registry {
	r := vici.NewRegistry()
	r.Handle("version", d.viciVersion)
	r.Handle("stats", d.viciStats)
	r.Handle("list-conns", d.viciListConns)
	r.Handle("get-conns", d.viciGetConns)
	r.Handle("list-sas", d.viciListSAs)
	r.Handle("list-policies", d.viciListPolicies)
	r.Handle("initiate", d.viciInitiate)
	r.Handle("terminate", d.viciTerminate)
	r.Handle("rekey", d.viciRekey)
	r.Handle("load-conn", d.viciLoadConn)
	r.Handle("unload-conn", d.viciUnloadConn)
	r.Handle("load-shared", d.viciLoadShared)
	r.Handle("unload-shared", d.viciUnloadShared)
	r.Handle("get-shared", d.viciGetShared)
	r.Handle("clear-creds", d.viciClearCreds)
	d.registerCredHandlers(r) // vici_creds.go
	r.Handle("get-counters", d.viciGetCounters)
	r.Handle("goipsec-status", d.viciStatus)
	r.Handle("goipsec-reload", d.viciReload)
	return r
}

// started is when the daemon came up (for stats).
var started = time.Now()

func (d *Daemon) viciVersion(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var u unix.Utsname
	unix.Uname(&u)
	return vici.NewMessage().Set("daemon", "goipsec").Set("version", Version).
		Set("sysname", unix.ByteSliceToString(u.Sysname[:])).Set("release", unix.ByteSliceToString(u.Release[:])).
		Set("machine", unix.ByteSliceToString(u.Machine[:])), nil
}

func (d *Daemon) viciStats(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	m := vici.NewMessage()
	up := m.AddSection("uptime")
	up.Set("running", time.Since(started).Round(time.Second).String()).Set("since", started.Format("Jan 02 15:04:05 2006"))
	w := m.AddSection("workers")
	n := strconv.Itoa(runtime.GOMAXPROCS(0))
	w.Set("total", n).Set("idle", n)
	w.AddSection("active").Set("critical", "0").Set("high", "0").Set("medium", "0").Set("low", "0")
	m.AddSection("queues").Set("critical", "0").Set("high", "0").Set("medium", "0").Set("low", "0")
	m.Set("scheduled", "0")
	total, half := 0, 0
	if d.ike != nil {
		for _, sa := range d.ike.SAs() {
			total++
			if sa.State.String() != "ESTABLISHED" && sa.State.String() != "DELETING" {
				half++
			}
		}
	}
	m.AddSection("ikesas").Set("total", strconv.Itoa(total)).Set("half-open", strconv.Itoa(half))
	m.SetList("plugins", "goipsec-ike", "goipsec-esp-userspace", "goipsec-vici")
	return m, nil
}

// --- connections ---

func (d *Daemon) viciListConns(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	want := req.Get("ike")
	for _, c := range d.configSnapshot().Connections {
		if want != "" && c.Name != want {
			continue
		}
		ev := vici.NewMessage()
		s := ev.AddSection(c.Name)
		s.SetList("local_addrs", splitList(addrList(c.LocalAddrs))...)
		s.SetList("remote_addrs", splitList(addrList(c.RemoteAddrs))...)
		s.Set("version", "IKEv2")
		s.Set("reauth_time", "0").Set("rekey_time", secs(c.RekeyTime))
		s.Set("unique", "UNIQUE_NO")
		if c.DPDDelay > 0 {
			s.Set("dpd_delay", secs(c.DPDDelay))
		}
		for _, side := range []struct {
			name string
			a    config.Auth
		}{{"local-1", c.Local}, {"remote-1", c.Remote}} {
			as := s.AddSection(side.name)
			as.Set("id", side.a.ID.Text).Set("class", "pre-shared key")
			as.SetList("groups").SetList("cert_policy").SetList("certs").SetList("cacerts")
		}
		ch := s.AddSection("children")
		for _, child := range c.Children {
			cs := ch.AddSection(child.Name)
			cs.Set("mode", strings.ToUpper(string(child.Mode))).Set("rekey_time", secs(child.RekeyTime)).
				Set("rekey_bytes", strconv.FormatUint(child.RekeyBytes, 10)).Set("rekey_packets", strconv.FormatUint(child.RekeyPackets, 10)).
				Set("dpd_action", string(child.DPDAction)).Set("close_action", string(child.CloseAction))
			cs.SetList("local-ts", splitList(tsConfList(child.LocalTS))...)
			cs.SetList("remote-ts", splitList(tsConfList(child.RemoteTS))...)
		}
		if err := stream.Stream("list-conn", ev); err != nil {
			return nil, err
		}
	}
	return vici.NewMessage(), nil
}

func (d *Daemon) viciGetConns(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var names []string
	for _, c := range d.configSnapshot().Connections {
		names = append(names, c.Name)
	}
	return vici.NewMessage().SetList("conns", names...), nil
}

func splitList(s string) []string { return strings.Split(s, ",") }

func secs(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// configSnapshot is the configuration in force (never nil).
func (d *Daemon) configSnapshot() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg == nil {
		return &config.Config{}
	}
	return d.cfg
}

// --- SAs ---

// strongSwan's names of transforms, as swanctl prints them.
func swanNames(p proposal.Proposal) (encr, keysize, integ, prf, dh string) {
	for _, t := range p.Transforms {
		switch t.Type {
		case proposal.TypeEncryption:
			switch t.ID {
			case proposal.EncrAESGCM16:
				encr = "AES_GCM_16"
			case proposal.EncrAESCBC:
				encr = "AES_CBC"
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
				proposal.IntegHMACSHA2512256: "HMAC_SHA2_512_256"}[t.ID]
		case proposal.TypePRF:
			prf = map[uint16]string{proposal.PRFHMACSHA2256: "PRF_HMAC_SHA2_256", proposal.PRFHMACSHA2384: "PRF_HMAC_SHA2_384",
				proposal.PRFHMACSHA2512: "PRF_HMAC_SHA2_512"}[t.ID]
		case proposal.TypeKeyExchange:
			dh = map[uint16]string{proposal.KEMODP2048: "MODP_2048", proposal.KEMODP3072: "MODP_3072", proposal.KEMODP4096: "MODP_4096",
				proposal.KEECP256: "ECP_256", proposal.KEECP384: "ECP_384", proposal.KEECP521: "ECP_521", proposal.KECurve25519: "CURVE_25519",
				proposal.KEMLKEM768: "ML_KEM_768", proposal.KEMLKEM1024: "ML_KEM_1024"}[t.ID]
		}
	}
	return
}

// ikeSAMessage fills a list-sa style section for one IKE SA (without child-sas).
func ikeSAMessage(s *vici.Message, sa engine.SAInfo, uniqueID int) {
	s.Set("uniqueid", strconv.Itoa(uniqueID)).Set("version", "2").Set("state", sa.State.String())
	s.Set("local-host", sa.Local.Addr().String()).Set("local-port", strconv.Itoa(int(sa.Local.Port()))).Set("local-id", sa.LocalID)
	s.Set("remote-host", sa.Remote.Addr().String()).Set("remote-port", strconv.Itoa(int(sa.Remote.Port()))).Set("remote-id", sa.RemoteID)
	if sa.Initiator {
		s.Set("initiator", "yes")
	}
	s.Set("initiator-spi", hex16(sa.SPIi)).Set("responder-spi", hex16(sa.SPIr))
	if sa.NAT {
		s.Set("nat-any", "yes")
	}
	encr, keysize, integ, prf, dh := swanNames(sa.Transforms)
	if encr != "" {
		s.Set("encr-alg", encr)
		if keysize != "" {
			s.Set("encr-keysize", keysize)
		}
	}
	if integ != "" {
		s.Set("integ-alg", integ)
	}
	if prf != "" {
		s.Set("prf-alg", prf)
	}
	if dh != "" {
		s.Set("dh-group", dh)
	}
	if !sa.Established.IsZero() {
		s.Set("established", secs(time.Since(sa.Established)))
	}
}

func (d *Daemon) childSAMessage(s *vici.Message, ch engine.ChildInfo, st ChildStatus, uniqueID int) {
	s.Set("name", ch.Name).Set("uniqueid", strconv.Itoa(uniqueID)).Set("reqid", strconv.Itoa(uniqueID)).Set("state", "INSTALLED")
	s.Set("mode", strings.ToUpper(ch.Mode.String())).Set("protocol", "ESP")
	if st.Encap {
		s.Set("encap", "yes")
	}
	s.Set("spi-in", fmt.Sprintf("%08x", ch.SPIIn)).Set("spi-out", fmt.Sprintf("%08x", ch.SPIOut))
	encr, keysize, integ, _, _ := swanNames(ch.Transforms)
	if encr != "" {
		s.Set("encr-alg", encr)
		if keysize != "" {
			s.Set("encr-keysize", keysize)
		}
	}
	if integ != "" {
		s.Set("integ-alg", integ)
	}
	if ch.ESN {
		s.Set("esn", "1")
	}
	s.Set("bytes-in", strconv.FormatUint(st.BytesIn, 10)).Set("packets-in", strconv.FormatUint(st.PacketsIn, 10))
	s.Set("bytes-out", strconv.FormatUint(st.BytesOut, 10)).Set("packets-out", strconv.FormatUint(st.PacketsOut, 10))
	if ch.RekeyTime > 0 {
		s.Set("rekey-time", secs(max(0, ch.RekeyTime-time.Since(ch.Created))))
	}
	s.Set("install-time", secs(time.Since(ch.Created)))
	s.SetList("local-ts", splitList(st.LocalTS)...)
	s.SetList("remote-ts", splitList(st.RemoteTS)...)
}

func (d *Daemon) viciListSAs(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	if d.ike == nil {
		return vici.NewMessage(), nil
	}
	wantIKE, wantChild := req.Get("ike"), req.Get("child")
	status := d.Status()
	stats := map[uint32]ChildStatus{}
	for _, c := range status.Connections {
		for _, is := range c.IKESAs {
			for _, ch := range is.Children {
				stats[ch.SPIIn] = ch
			}
		}
	}
	for i, sa := range d.ike.SAs() {
		if wantIKE != "" && sa.Name != wantIKE {
			continue
		}
		ev := vici.NewMessage()
		s := ev.AddSection(sa.Name)
		ikeSAMessage(s, sa, i+1)
		children := s.AddSection("child-sas")
		for j, ch := range sa.Children {
			if wantChild != "" && ch.Name != wantChild {
				continue
			}
			id := 1000*(i+1) + j
			d.childSAMessage(children.AddSection(fmt.Sprintf("%s-%d", ch.Name, id)), ch, stats[ch.SPIIn], id)
		}
		if err := stream.Stream("list-sa", ev); err != nil {
			return nil, err
		}
	}
	return vici.NewMessage(), nil
}

func (d *Daemon) viciListPolicies(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	status := d.Status()
	for _, c := range status.Connections {
		for _, is := range c.IKESAs {
			for _, ch := range is.Children {
				ev := vici.NewMessage()
				s := ev.AddSection(c.Name + "/" + ch.Name)
				s.Set("child", ch.Name).Set("ike", c.Name).Set("mode", strings.ToUpper(ch.Mode))
				s.SetList("local-ts", splitList(ch.LocalTS)...).SetList("remote-ts", splitList(ch.RemoteTS)...)
				if err := stream.Stream("list-policy", ev); err != nil {
					return nil, err
				}
			}
		}
		for _, ch := range c.Children {
			if ch.StartAction != string(config.ActionTrap) || req.Get("trap") == "no" {
				continue
			}
			ev := vici.NewMessage()
			s := ev.AddSection(c.Name + "/" + ch.Name)
			s.Set("child", ch.Name).Set("ike", c.Name).Set("mode", strings.ToUpper(ch.Mode))
			s.SetList("local-ts", splitList(ch.LocalTS)...).SetList("remote-ts", splitList(ch.RemoteTS)...)
			if err := stream.Stream("list-policy", ev); err != nil {
				return nil, err
			}
		}
	}
	return vici.NewMessage(), nil
}

// --- initiate / terminate / rekey ---

// controlLog streams the connection's IKE log lines to a client as control-log events while fn runs.
func (d *Daemon) controlLog(stream vici.EventStreamer, conn string, fn func()) {
	if d.opts.Logs == nil || !stream.Registered("control-log") {
		fn()
		return
	}
	cancel := d.opts.Logs.Subscribe(slog.LevelInfo, func(r logging.Record) {
		if r.Subsys != "ike" || !strings.Contains(r.Attrs, "conn="+conn) {
			return
		}
		msg := r.Msg
		if r.Attrs != "" {
			msg += " " + r.Attrs
		}
		stream.Stream("control-log", vici.NewMessage().Set("group", "IKE").Set("level", "1").Set("ikesa-name", conn).Set("msg", msg))
	})
	defer cancel()
	fn()
}

// timeoutOf reads VICI's timeout (milliseconds; negative: do not wait; absent or 0: wait for the
// result, which arrives at the latest when the retransmissions give up).
func (d *Daemon) timeoutOf(req *vici.Message) (time.Duration, bool) {
	v, ok := req.Lookup("timeout")
	if !ok {
		return d.retransmitBudget(), true
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms < 0 {
		return 0, false
	}
	if ms == 0 {
		return d.retransmitBudget(), true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// retransmitBudget is how long an exchange can take before the engine gives up on the peer, with
// a margin: the sum of every retransmission timeout.
func (d *Daemon) retransmitBudget() time.Duration {
	c := d.opts.Daemon
	timeout, base, tries := c.RetransmitTimeout, c.RetransmitBase, c.RetransmitTries
	if timeout == 0 {
		timeout = 4 * time.Second
	}
	if base < 1 {
		base = 1.8
	}
	if tries == 0 {
		tries = 5
	}
	total, step := time.Duration(0), float64(timeout)
	for range tries + 1 {
		t := time.Duration(step)
		if c.RetransmitLimit > 0 && t > c.RetransmitLimit {
			t = c.RetransmitLimit
		}
		total += t
		step *= base
	}
	// IKE_SA_INIT and IKE_AUTH each may need the whole budget.
	return 2*total + 5*time.Second
}

func (d *Daemon) viciInitiate(ctx context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	ikeName, child := req.Get("ike"), req.Get("child")
	if ikeName == "" && child != "" {
		ikeName = d.connOfChild(child)
	}
	if ikeName == "" {
		return nil, errors.New("initiate needs ike or child")
	}
	timeout, wait := d.timeoutOf(req)
	var err error
	d.controlLog(stream, ikeName, func() {
		before := d.failureTime(ikeName)
		if err = d.Initiate(ikeName, child); err != nil || !wait {
			return
		}
		err = d.waitFor(ctx, timeout, func() (bool, error) {
			if d.childUp(ikeName, child) {
				return true, nil
			}
			if f := d.failureTime(ikeName); f.after(before) {
				return false, errors.New(f.err)
			}
			return false, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("establishing %s failed: %v", ikeName, err)
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func (f failure) after(o failure) bool { return f.when.After(o.when) }

func (d *Daemon) failureTime(conn string) failure {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastFailure[conn]
}

func (d *Daemon) connOfChild(child string) string {
	for _, c := range d.configSnapshot().Connections {
		for _, ch := range c.Children {
			if ch.Name == child {
				return c.Name
			}
		}
	}
	return ""
}

// childUp reports whether an IKE SA of conn is established with the named child (any when "").
func (d *Daemon) childUp(conn, child string) bool {
	for _, sa := range d.ike.SAs() {
		if sa.Name != conn || sa.State.String() != "ESTABLISHED" {
			continue
		}
		for _, c := range sa.Children {
			if child == "" || c.Name == child {
				return true
			}
		}
	}
	return false
}

func (d *Daemon) waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := cond()
		if done || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *Daemon) viciTerminate(ctx context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
	if child := req.Get("child"); child != "" && req.Get("ike") == "" && d.ike != nil {
		// Only the named Child SAs; their IKE SA stays.
		n := 0
		for _, sa := range d.ike.SAs() {
			for _, c := range sa.Children {
				if c.Name == child && d.ike.DeleteChild(c.SPIIn) {
					n++
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("no Child SA named %q is up", child)
		}
		return vici.NewMessage().Set("success", "yes").Set("matches", strconv.Itoa(n)).Set("terminated", strconv.Itoa(n)), nil
	}
	ikeName := req.Get("ike")
	if ikeName == "" && req.Get("child") != "" {
		ikeName = d.connOfChild(req.Get("child"))
	}
	if ikeName == "" {
		return nil, errors.New("terminate needs ike or child (by name)")
	}
	timeout, wait := d.timeoutOf(req)
	var n int
	var err error
	d.controlLog(stream, ikeName, func() {
		if n, err = d.Terminate(ikeName); err != nil || !wait {
			return
		}
		err = d.waitFor(ctx, timeout, func() (bool, error) {
			for _, sa := range d.ike.SAs() {
				if sa.Name == ikeName {
					return false, nil
				}
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes").Set("matches", strconv.Itoa(n)).Set("terminated", strconv.Itoa(n)), nil
}

func (d *Daemon) viciRekey(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	if d.ike == nil {
		return nil, errors.New("IKE is not running")
	}
	if name := req.Get("ike"); name != "" {
		if !d.ike.RekeyIKE(name) {
			return nil, fmt.Errorf("no established IKE SA of %q", name)
		}
		return vici.NewMessage().Set("success", "yes").Set("matches", "1"), nil
	}
	if child := req.Get("child"); child != "" {
		n := 0
		for _, sa := range d.ike.SAs() {
			for _, c := range sa.Children {
				if c.Name == child && d.ike.RekeyChild(c.SPIIn) {
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

// --- loading configuration over VICI ---

// sectionToText turns a VICI message carrying a swanctl.conf section back into swanctl.conf
// syntax, so that loading over VICI goes through exactly the same parser and checks as the file.
// Names are checked so that a crafted key cannot inject configuration structure.
func sectionToText(b *strings.Builder, m *vici.Message, indent string) error {
	for _, it := range m.Items() {
		if !validName(it.Key) {
			return fmt.Errorf("invalid name %q in the request", it.Key)
		}
		switch it.Kind {
		case vici.KindValue:
			fmt.Fprintf(b, "%s%s = %s\n", indent, it.Key, quoteValue(it.Value))
		case vici.KindList:
			fmt.Fprintf(b, "%s%s = %s\n", indent, it.Key, quoteValue(strings.Join(it.List, ",")))
		case vici.KindSection:
			fmt.Fprintf(b, "%s%s {\n", indent, it.Key)
			if err := sectionToText(b, it.Section, indent+"    "); err != nil {
				return err
			}
			fmt.Fprintf(b, "%s}\n", indent)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func quoteValue(v string) string {
	if v == "" || strings.ContainsAny(v, "\"\\#{}\n\t") || strings.TrimSpace(v) != v {
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
		return `"` + r.Replace(v) + `"`
	}
	return v
}

// loadWith applies the current configuration changed by edit.
func (d *Daemon) loadWith(edit func(c *config.Config) error) error {
	cur := d.configSnapshot()
	next := *cur
	next.Connections = append([]*config.Connection(nil), cur.Connections...)
	next.Secrets.IKE = append([]*config.PSK(nil), cur.Secrets.IKE...)
	if err := edit(&next); err != nil {
		return err
	}
	return d.Apply(&next)
}

func (d *Daemon) viciLoadConn(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	if err := d.inlineCreds(req); err != nil { // vici_creds.go
		return nil, err
	}
	var b strings.Builder
	b.WriteString("connections {\n")
	if err := sectionToText(&b, req, "    "); err != nil {
		return nil, err
	}
	b.WriteString("}\n")
	tree, err := config.Parse("vici:load-conn", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	parsed, err := config.FromTree(tree)
	if err != nil {
		return nil, err
	}
	if len(parsed.Connections) != 1 {
		return nil, fmt.Errorf("load-conn needs exactly one connection, got %d", len(parsed.Connections))
	}
	conn := parsed.Connections[0]
	err = d.loadWith(func(c *config.Config) error {
		for i, old := range c.Connections {
			if old.Name == conn.Name {
				c.Connections[i] = conn
				return nil
			}
		}
		c.Connections = append(c.Connections, conn)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func (d *Daemon) viciUnloadConn(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	name := req.Get("name")
	err := d.loadWith(func(c *config.Config) error {
		for i, old := range c.Connections {
			if old.Name == name {
				c.Connections = append(c.Connections[:i], c.Connections[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("connection %q not found", name)
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func (d *Daemon) viciLoadShared(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	if t := strings.ToLower(req.Get("type")); t != "ike" {
		return nil, fmt.Errorf("shared secrets of type %q are not supported (only ike)", req.Get("type"))
	}
	id := req.Get("id")
	if id == "" {
		id = fmt.Sprintf("vici-%d", time.Now().UnixNano())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "secrets {\n    ike-%s {\n", sanitizeName(id))
	for i, owner := range req.List("owners") {
		fmt.Fprintf(&b, "        id-%d = %s\n", i+1, quoteValue(owner))
	}
	fmt.Fprintf(&b, "        secret = 0x%s\n    }\n}\n", hex.EncodeToString([]byte(req.Get("data"))))
	tree, err := config.Parse("vici:load-shared", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	parsed, err := config.FromTree(tree)
	if err != nil {
		return nil, err
	}
	psk := parsed.Secrets.IKE[0]
	psk.Name = id
	err = d.loadWith(func(c *config.Config) error {
		for i, old := range c.Secrets.IKE {
			if old.Name == id {
				c.Secrets.IKE[i] = psk
				return nil
			}
		}
		c.Secrets.IKE = append(c.Secrets.IKE, psk)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (d *Daemon) viciUnloadShared(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	id := req.Get("id")
	err := d.loadWith(func(c *config.Config) error {
		for i, old := range c.Secrets.IKE {
			if old.Name == id {
				c.Secrets.IKE = append(c.Secrets.IKE[:i], c.Secrets.IKE[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("shared secret %q not found", id)
	})
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func (d *Daemon) viciGetShared(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	var ids []string
	for _, s := range d.configSnapshot().Secrets.IKE {
		ids = append(ids, s.Name)
	}
	return vici.NewMessage().SetList("keys", ids...), nil
}

func (d *Daemon) viciClearCreds(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	if err := d.loadWith(func(c *config.Config) error { c.Secrets.IKE = nil; return nil }); err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

func (d *Daemon) viciGetCounters(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	st := d.Status()
	m := vici.NewMessage()
	g := m.AddSection("counters").AddSection("")
	g.Set("ike-rekey-init", strconv.FormatUint(st.IKE.Rekeys, 10))
	g.Set("ike-retransmits", strconv.FormatUint(st.IKE.Retransmits, 10))
	g.Set("ike-invalid", strconv.FormatUint(st.IKE.InvalidMessages, 10))
	g.Set("ike-cookies-sent", strconv.FormatUint(st.IKE.CookiesSent, 10))
	g.Set("ike-handshakes-ok", strconv.FormatUint(st.IKE.HandshakesOK, 10))
	g.Set("ike-handshakes-failed", strconv.FormatUint(st.IKE.HandshakesFailed, 10))
	m.Set("success", "yes")
	return m, nil
}

// --- goipsec's own commands ---

func (d *Daemon) viciStatus(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	b, err := json.Marshal(d.Status())
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("json", string(b)), nil
}

// ReloadFunc reloads the configuration file (set by the command that runs the daemon).
var errNoReload = errors.New("this daemon was not started from a configuration file")

func (d *Daemon) viciReload(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	if d.reload == nil {
		return nil, errNoReload
	}
	if err := d.reload(); err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

// SetReload tells the daemon how to reload its configuration file (goipsec reload, SIGHUP).
func (d *Daemon) SetReload(f func() error) { d.reload = f }

// ServeVICI opens the VICI socket at path (mode 0600) and serves it until Close; log records and
// SA up/down events are published to registered clients.
func (d *Daemon) ServeVICI(path string) error {
	ln, err := vici.ListenUnix(path)
	if err != nil {
		return fmt.Errorf("VICI socket %s: %w", path, err)
	}
	logs := d.opts.Logs
	srv := vici.NewServer(d.VICI(), logs.Logger("vici"))
	d.vici.Store(srv)
	go srv.Serve(ln)
	// Log records go to `swanctl --log` / `goipsec log` clients; none are built while nobody
	// listens.
	d.logCancel = logs.SubscribeWhile(slog.LevelDebug, func() bool { return srv.Listening("log") }, func(r logging.Record) {
		level := "1"
		if r.Level < slog.LevelInfo {
			level = "2"
		}
		msg := r.Msg
		if r.Attrs != "" {
			msg += " " + r.Attrs
		}
		srv.Publish("log", vici.NewMessage().Set("group", strings.ToUpper(r.Subsys)).Set("level", level).Set("thread", "0").Set("msg", msg))
	})
	return nil
}

// publishIKE sends ike-updown for an IKE SA (engine lock held by the caller: sa is read here only).
func (d *Daemon) publishIKE(sa *ike.SA, up bool) {
	srv := d.viciServer()
	if srv == nil || !srv.Listening("ike-updown") {
		return
	}
	info := engine.SAInfo{Name: sa.Config.Name, SPIi: sa.SPIi, SPIr: sa.SPIr, Initiator: sa.Initiator, State: sa.State,
		Local: sa.Local, Remote: sa.Remote, LocalID: sa.LocalID.String(), RemoteID: sa.RemoteID.String(),
		Transforms: sa.Proposal, NAT: sa.NAT(), Established: sa.Established}
	m := vici.NewMessage()
	if up {
		m.Set("up", "yes")
	}
	ikeSAMessage(m.AddSection(info.Name), info, 1)
	srv.Publish("ike-updown", m)
}

// publishChild sends child-updown for a Child SA.
func (d *Daemon) publishChild(sa *ike.SA, c *ike.ChildSA, up bool) {
	srv := d.viciServer()
	if srv == nil || !srv.Listening("child-updown") {
		return
	}
	info := engine.SAInfo{Name: sa.Config.Name, SPIi: sa.SPIi, SPIr: sa.SPIr, Initiator: sa.Initiator, State: sa.State,
		Local: sa.Local, Remote: sa.Remote, LocalID: sa.LocalID.String(), RemoteID: sa.RemoteID.String(),
		Transforms: sa.Proposal, NAT: sa.NAT(), Established: sa.Established}
	m := vici.NewMessage()
	if up {
		m.Set("up", "yes")
	}
	s := m.AddSection(info.Name)
	ikeSAMessage(s, info, 1)
	ci := engine.ChildInfo{Name: c.Name, SPIIn: c.SPIIn, SPIOut: c.SPIOut, Mode: c.Mode, Transforms: c.Proposal, ESN: c.ESN,
		LocalTS: c.LocalTS, RemoteTS: c.RemoteTS, Created: c.Created}
	if c.Config != nil {
		ci.RekeyTime = c.Config.RekeyTime
	}
	st := ChildStatus{LocalTS: ts.FormatList(c.LocalTS), RemoteTS: ts.FormatList(c.RemoteTS), Encap: sa.NAT()}
	d.childSAMessage(s.AddSection("child-sas").AddSection(fmt.Sprintf("%s-%d", c.Name, c.SPIIn)), ci, st, 1)
	srv.Publish("child-updown", m)
}

func (d *Daemon) viciServer() *vici.Server { return d.vici.Load() }
