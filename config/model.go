package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goipsec/goipsec/proposal"
)

// Config is a loaded and validated configuration.
type Config struct {
	Connections []*Connection // in order of appearance
	Secrets     Secrets
	Pools       []*Pool
	Radius      *Radius      // nil without a radius section
	Manual      []*ManualSA  // in order of appearance
	Authorities []*Authority // in order of appearance
	Daemon      Daemon
	L2TP        *L2TP // nil without an l2tp section
	// Files lists every file that was read, the main file first.
	Files []string
}

// Connection is one IKEv2 connection (connections.<conn>).
type Connection struct {
	Name string
	File string // where the connection section was first opened
	Line int

	// Version is 2 (IKEv2 only), 1 (IKEv1 only) or 0 (strongSwan's default: initiate IKEv2,
	// accept either).
	Version int
	// Aggressive: IKEv1 Aggressive Mode when initiating.
	Aggressive bool
	// WeakAlgorithms: the connection (IKEv1 only) may use 3DES, SHA-1 and MODP1024.
	WeakAlgorithms bool
	LocalAddrs     []Address
	RemoteAddrs    []Address
	LocalPort      uint16
	RemotePort     uint16
	Proposals      []proposal.Proposal
	Encap          bool
	// EncapTCP: encap = tcp, IKE and ESP in TCP (RFC 9329) to TCPPort from the start.
	EncapTCP bool
	TCPPort  uint16
	// PPKID names the post-quantum preshared key (RFC 8784, RFC 9867) to use; PPKRequired refuses
	// IKE SAs without one; PPKIntermediate (ppk_intermediate, default yes) allows RFC 9867.
	PPKID           string
	PPKRequired     bool
	PPKIntermediate bool
	MOBIKE          bool
	// Fragmentation is "yes", "accept" (receive fragments, never send them) or "no".
	Fragmentation string
	SendCertReq   bool
	SendCert      string // always, never or ifasked
	DPDDelay      time.Duration
	DPDTimeout    time.Duration // IKEv1 only; kept for completeness
	KeyingTries   uint32        // 0 means forever
	Unique        string        // never, no, keep or replace
	Childless     string        // allow, prefer, force or never (RFC 6023)
	RekeyTime     time.Duration
	ReauthTime    time.Duration
	OverTime      time.Duration
	RandTime      time.Duration

	Local  Auth
	Remote Auth
	// LocalRounds and RemoteRounds are every authentication round in order (RFC 4739); the first
	// of each is Local and Remote.
	LocalRounds, RemoteRounds []Auth
	// VIPs are the virtual IPs to request (0.0.0.0 and :: for any); Pools the pools a responder
	// assigns them from (IKEv2 configuration payload, IKEv1 Mode Config).
	VIPs  []netip.Addr
	Pools []string
	// RedirectTo sends every new client to another gateway (RFC 5685), an address or a name.
	RedirectTo string
	Children   []*Child // in order of appearance
}

// legacy reports whether the connection's proposals may name the legacy algorithms.
func (c *Connection) legacy() bool { return c.WeakAlgorithms && c.Version == 1 }

// AuthMethod is an authentication method of an authentication round.
type AuthMethod string

// Authentication methods goipsec supports.
const (
	AuthPSK    AuthMethod = "psk"
	AuthPubkey AuthMethod = "pubkey" // signatures: pubkey, rsa, rsa/pss, ecdsa, ed25519 (Auth.Constraints)
	AuthEAP    AuthMethod = "eap"    // EAP (Auth.EAP names the method)
)

// Auth is one authentication round (connections.<conn>.local<suffix> or remote<suffix>).
type Auth struct {
	Section string // the section name, e.g. "local" or "remote-psk"
	Method  AuthMethod
	// Constraints is the auth value of a pubkey round as written (pubkey-sha256, rsa/pss, ...).
	Constraints string
	// ID is the identity. For the local side IsAny means "use the certificate's subject or the
	// local IP address", for the remote side "accept any identity".
	ID Identity
	// Certificate settings (creds.go): certs, pubkeys, cacerts, ca_id, cert_policy, revocation.
	CertSettings
	// EAP is the method of an eap round: "" (any, client side), md5, mschapv2, tls, ttls,
	// dynamic or radius.
	EAP string
	// EAPID is eap_id (IsAny: the IKE identity, or for a server "ask with EAP-Identity" when
	// set to %any); AAAID is aaa_id.
	EAPID, AAAID Identity
	EAPIDSet     bool
	Round        int
	// XAuth: a second remote round with auth = xauth (IKEv1 only): after phase 1 the client
	// authenticates with a user name and password (secrets.xauth<suffix>/eap<suffix>).
	XAuth bool
}

// Mode is an IPsec mode.
type Mode string

// IPsec modes.
const (
	ModeTunnel    Mode = "tunnel"
	ModeTransport Mode = "transport"
)

// Action is a start, close or DPD action of a CHILD SA.
type Action string

// Actions. ActionClear, ActionTrap and ActionRestart are the DPD actions; ActionNone, ActionTrap
// and ActionStart the start and close actions.
const (
	ActionNone    Action = "none"
	ActionTrap    Action = "trap"
	ActionStart   Action = "start"
	ActionClear   Action = "clear"
	ActionRestart Action = "restart"
)

// Child is one CHILD SA configuration (connections.<conn>.children.<child>).
type Child struct {
	Name string
	File string
	Line int

	LocalTS      []TrafficSelector
	RemoteTS     []TrafficSelector
	ESPProposals []proposal.Proposal // empty when only AH is configured
	AHProposals  []proposal.Proposal
	Mode         Mode
	StartAction  Action
	CloseAction  Action
	DPDAction    Action

	RekeyTime    time.Duration
	LifeTime     time.Duration
	RandTime     time.Duration
	RekeyBytes   uint64
	LifeBytes    uint64
	RandBytes    uint64
	RekeyPackets uint64
	LifePackets  uint64
	RandPackets  uint64

	ReplayWindow uint32
	Inactivity   time.Duration
	TFCPadding   TFCPadding
	MSSClamp     MSSClamp
	CopyDF       bool
	CopyECN      bool
	CopyDSCP     string // out, in, yes or no
	HostAccess   bool

	// Policy settings; all but Priority need the kernel data plane (daemon.dataplane = kernel).
	Priority        uint32 // 0: computed from the selectors
	IfIDIn, IfIDOut uint32
	MarkIn, MarkOut Mark
	Interface       string
	PoliciesFwdOut  bool

	// ahFirst: ah_proposals is written before esp_proposals (see Proposals).
	ahFirst bool
	// Updown is the updown script (empty: none).
	Updown string
}

// Mark is an XFRM mark: packets match when (mark & Mask) == Value.
type Mark struct {
	Value, Mask uint32
}

// Secrets holds the credentials of the secrets section.
type Secrets struct {
	IKE []*PSK // in order of appearance
	PPK []*PPK // post-quantum preshared keys, in order of appearance
	// Keys are the passphrases of encrypted private keys (private-, rsa-, ecdsa-, pkcs8-,
	// pkcs12- sections).
	Keys []*KeySecret
	// Users are user names and passwords (secrets.eap<suffix>, secrets.xauth<suffix>): EAP
	// users and our own EAP password, IKEv1 XAuth users, the L2TP server's PPP users.
	Users []*UserSecret
}

// PPK is a post-quantum preshared key (secrets.ppk<suffix>, RFC 8784).
type PPK struct {
	Name   string
	File   string
	Line   int
	IDs    []string // PPK identities (ppk_id)
	Secret []byte
}

// PSK is an IKE preshared key (secrets.ike<suffix>).
type PSK struct {
	Name   string
	File   string
	Line   int
	IDs    []Identity // empty: the key matches any identity
	Secret []byte
}

// DefaultReplayWindow is goipsec's default anti-replay window. strongSwan uses 32 for the kernel;
// a userspace data plane with parallel workers reorders more, and a bitmap of 1024 bits is cheap.
const DefaultReplayWindow = 1024

// MaxReplayWindow bounds replay_window so that a window costs at most 8 KiB per SA.
const MaxReplayWindow = 65536

// Load reads, parses and checks a configuration file from the operating system.
func Load(path string) (*Config, error) { return (&Parser{}).Load(path) }

// Load reads, parses and checks a configuration file.
func (p *Parser) Load(path string) (*Config, error) {
	tree, err := p.ParseFile(path)
	if tree == nil {
		return nil, err
	}
	if cerr := p.cancelled(path); cerr != nil {
		return nil, cerr
	}
	cfg, err2 := fromTree(tree, p)
	if err == nil {
		return cfg, err2
	}
	// Syntax problems the parser went on after, and the checks of what it read: all at once.
	var all ErrorList
	for _, e := range []error{err, err2} {
		var list ErrorList
		var one *Error
		switch {
		case errors.As(e, &list):
			all = append(all, list...)
		case errors.As(e, &one):
			all = append(all, one)
		}
	}
	return nil, sortErrors(all, tree.Files)
}

// FromTree checks a parsed tree and builds the typed configuration. It reports every problem it
// finds: one as an *Error, several as an ErrorList sorted by file and line.
func FromTree(tree *Tree) (*Config, error) { return fromTree(tree, &Parser{}) }

func fromTree(tree *Tree, p *Parser) (*Config, error) {
	l := &loader{parser: p}
	cfg := &Config{Files: tree.Files}
	root := tree.Root
	l.check(root, "")
	// Pools first: connections name them.
	cfg.Pools = l.pools(root.Section("pools"))
	cfg.Connections = l.connections(root.Section("connections"))
	cfg.Secrets = l.secrets(root.Section("secrets"))
	cfg.Secrets.Users = l.users(root.Section("secrets"))
	l.checkPoolRefs(cfg)
	cfg.L2TP = l.l2tp(root.Section("l2tp"), cfg.Pools)
	cfg.Manual = l.manual(root.Section("manual"))
	cfg.Authorities = l.authorities(root.Section("authorities"))
	cfg.Daemon = l.daemon(root.Section("daemon"))
	cfg.Radius = l.radius(root.Section("radius"))
	if cfg.L2TP != nil && cfg.L2TP.LNS != nil && cfg.L2TP.LNS.Users == "radius" && cfg.Radius == nil {
		l.errorAt(cfg.L2TP.LNS.File, cfg.L2TP.LNS.UsersLine, "l2tp.lns.users = radius needs a radius section with servers")
	}
	if cfg.Daemon.Dataplane != "kernel" {
		for _, kv := range l.kernelOnly {
			l.errorAt(kv.File, kv.Line, "%s is not supported by the userspace data plane: it needs daemon { dataplane = kernel }", kv.Path)
		}
	}
	if len(l.errs) == 0 {
		return cfg, nil
	}
	return nil, sortErrors(l.errs, tree.Files)
}

// loader collects errors while building the model, so that all of them are reported at once.
type loader struct {
	errs   ErrorList
	parser *Parser // for cancellation
	// kernelOnly are settings only the kernel data plane can apply, checked against
	// daemon.dataplane once the daemon section is read.
	kernelOnly []*Setting
}

func (l *loader) errorAt(file string, line int, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// valueError reports a bad value of a setting, prefixed with the setting's path.
func (l *loader) valueError(kv *Setting, err error) {
	msg := kv.Path + ": " + err.Error()
	if strings.Contains(kv.Value, " = ") {
		// "a = 1 b = 2" is one setting whose value is "1 b = 2".
		msg += "; put each setting on its own line"
	}
	l.errorAt(kv.File, kv.Line, "%s", msg)
}

// where describes a section path for messages; the root is "the top level".
func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

// check compares the settings and subsections of sec with the key table, below the pattern path
// of sec: unknown names, settings used as sections and the reverse, keys that are not supported
// and DefaultOnly keys with another value are reported. It does not descend into subsections.
func (l *loader) check(sec *Section, pattern string) {
	for _, kv := range sec.Settings {
		k, ok := lookupKey(pattern, kv.Key)
		switch {
		case !ok:
			msg := fmt.Sprintf("unknown key %q in %s", kv.Key, where(sec.Path))
			if s := suggestName(kv.Key, childNames(pattern)); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			l.errorAt(kv.File, kv.Line, "%s", msg)
		case k.Section:
			l.errorAt(kv.File, kv.Line, "%s is a section (%s { ... }), not a setting", kv.Path, kv.Key)
		case k.Support == NotSupported:
			l.errorAt(kv.File, kv.Line, "%s is not supported by goipsec yet", kv.Path)
		case k.Support == DefaultOnly && !sameAsDefault(kv.Value, k.Default):
			l.errorAt(kv.File, kv.Line, "%s = %s is not supported by goipsec yet (only %s)", kv.Path, kv.Value, k.Default)
		}
	}
	for _, c := range sec.Sections {
		k, ok := lookupKey(pattern, c.Name)
		switch {
		case !ok:
			msg := fmt.Sprintf("unknown section %q in %s", c.Name, where(sec.Path))
			if s := suggestName(c.Name, childNames(pattern)); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			l.errorAt(c.File, c.Line, "%s", msg)
		case !k.Section:
			l.errorAt(c.File, c.Line, "%s is a setting (%s = ...), not a section", c.Path, c.Name)
		case k.Support == NotSupported:
			l.errorAt(c.File, c.Line, "%s is not supported by goipsec yet", c.Path)
		}
	}
}

// sameAsDefault reports whether a value spells the default: empty, equal, or the same boolean or
// number written differently.
func sameAsDefault(value, def string) bool {
	if value == "" || value == def {
		return true
	}
	if a, err := parseBool(value); err == nil {
		if b, err := parseBool(def); err == nil {
			return a == b
		}
	}
	if a, err := parseUint(value, math.MaxUint64); err == nil {
		if b, err := parseUint(def, math.MaxUint64); err == nil {
			return a == b
		}
	}
	return false
}

// sectionsOf returns the subsections of sec whose table entry is the pattern path want.
func sectionsOf(sec *Section, pattern, want string) []*Section {
	var out []*Section
	if sec == nil {
		return nil
	}
	for _, c := range sec.Sections {
		if k, ok := lookupKey(pattern, c.Name); ok && k.Path == want && k.Section {
			out = append(out, c)
		}
	}
	return out
}

// explicit returns the setting when key is set to a non-empty value in sec (which may be nil).
func explicit(sec *Section, key string) *Setting {
	if sec == nil {
		return nil
	}
	if kv := sec.Setting(key); kv != nil && kv.Value != "" {
		return kv
	}
	return nil
}

// value returns the value of key in sec, or the table default, and the setting it came from (nil
// for a default). Keys missing from the table are a programming error, reported at the section.
func (l *loader) value(sec *Section, pattern, key string) (string, *Setting) {
	if kv := explicit(sec, key); kv != nil {
		return kv.Value, kv
	}
	k, ok := lookupKey(pattern, key)
	if !ok {
		file, line := "", 0
		if sec != nil {
			file, line = sec.File, sec.Line
		}
		l.errorAt(file, line, "internal error: %s.%s is missing from the key table", pattern, key)
	}
	return k.Default, nil
}

// parsed reads key with parse, reporting a bad value. A bad default is a programming error.
func parsed[T any](l *loader, sec *Section, pattern, key string, parse func(string) (T, error)) T {
	v, kv := l.value(sec, pattern, key)
	out, err := parse(v)
	if err != nil {
		if kv != nil {
			l.valueError(kv, err)
		} else {
			l.errorAt("", 0, "internal error: default of %s.%s: %v", pattern, key, err)
		}
	}
	return out
}

func (l *loader) boolean(sec *Section, pattern, key string) bool {
	return parsed(l, sec, pattern, key, parseBool)
}

func (l *loader) duration(sec *Section, pattern, key string) time.Duration {
	return parsed(l, sec, pattern, key, parseDuration)
}

func (l *loader) number(sec *Section, pattern, key string, limit uint64) uint64 {
	return parsed(l, sec, pattern, key, func(s string) (uint64, error) { return parseUint(s, limit) })
}

func (l *loader) port(sec *Section, pattern, key string) uint16 {
	return parsed(l, sec, pattern, key, func(s string) (uint16, error) {
		n, err := parseUint(s, math.MaxUint16)
		if err == nil && n == 0 {
			err = fmt.Errorf("port 0 is not allowed")
		}
		return uint16(n), err
	})
}

func (l *loader) enum(sec *Section, pattern, key string, allowed ...string) string {
	return parsed(l, sec, pattern, key, func(s string) (string, error) { return parseEnum(s, allowed...) })
}

func (l *loader) connections(sec *Section) []*Connection {
	if sec == nil {
		return nil
	}
	l.check(sec, "connections")
	var out []*Connection
	for i, c := range sectionsOf(sec, "connections", conn) {
		if i%cancelEvery == cancelEvery-1 {
			if err := l.parser.cancelled(c.File); err != nil {
				l.errs = append(l.errs, err.(*Error))
				return out
			}
		}
		out = append(out, l.connection(c))
	}
	return out
}

func (l *loader) connection(sec *Section) *Connection {
	c := &Connection{Name: sec.Name, File: sec.File, Line: sec.Line}
	l.check(sec, conn)
	c.Version = parsed(l, sec, conn, "version", func(s string) (int, error) {
		switch s {
		case "0":
			return 0, nil
		case "2":
			return 2, nil
		case "1":
			return 1, nil
		}
		return 0, fmt.Errorf("invalid value %q (expected 2, 1 or 0)", s)
	})
	c.Aggressive = l.boolean(sec, conn, "aggressive")
	c.WeakAlgorithms = l.boolean(sec, conn, "weak_algorithms")
	if kv := explicit(sec, "weak_algorithms"); kv != nil && c.WeakAlgorithms && c.Version != 1 {
		l.valueError(kv, fmt.Errorf("weak algorithms are for IKEv1 connections only; set version = 1"))
	}
	parseIKE := proposal.ParseIKE
	if c.legacy() {
		parseIKE = proposal.ParseIKELegacy
	}
	c.LocalAddrs = parsed(l, sec, conn, "local_addrs", parseAddresses)
	c.RemoteAddrs = parsed(l, sec, conn, "remote_addrs", parseAddresses)
	c.LocalPort = l.port(sec, conn, "local_port")
	c.RemotePort = l.port(sec, conn, "remote_port")
	c.Proposals = parsed(l, sec, conn, "proposals", parseIKE)
	encap := parsed(l, sec, conn, "encap", func(s string) (string, error) {
		if s == "tcp" {
			return s, nil
		}
		b, err := parseBool(s)
		if err != nil {
			return "", fmt.Errorf("invalid value %q (expected yes, no or tcp)", s)
		}
		return strconv.FormatBool(b), nil
	})
	c.Encap, c.EncapTCP = encap == "true", encap == "tcp"
	c.TCPPort = l.port(sec, conn, "tcp_port")
	c.PPKID = parsed(l, sec, conn, "ppk_id", func(s string) (string, error) { return s, nil })
	c.PPKRequired = l.boolean(sec, conn, "ppk_required")
	c.PPKIntermediate = l.boolean(sec, conn, "ppk_intermediate")
	c.MOBIKE = l.boolean(sec, conn, "mobike")
	c.Fragmentation = parsed(l, sec, conn, "fragmentation", func(s string) (string, error) {
		switch s {
		case "force":
			return "", fmt.Errorf("force is IKEv1 only (use yes)")
		case "accept":
			return s, nil
		}
		b, err := parseBool(s)
		if err != nil {
			return "", fmt.Errorf("invalid value %q (expected yes, accept or no)", s)
		}
		if b {
			return "yes", nil
		}
		return "no", nil
	})
	c.SendCertReq = l.boolean(sec, conn, "send_certreq")
	c.SendCert = l.enum(sec, conn, "send_cert", "always", "never", "ifasked")
	c.DPDDelay = l.duration(sec, conn, "dpd_delay")
	c.DPDTimeout = l.duration(sec, conn, "dpd_timeout")
	c.KeyingTries = uint32(l.number(sec, conn, "keyingtries", math.MaxUint32))
	c.Unique = l.enum(sec, conn, "unique", "never", "no", "keep", "replace")
	c.Childless = l.enum(sec, conn, "childless", "allow", "prefer", "force", "never")

	// strongSwan's lifetime rules: rekeying every 4h unless reauthentication is configured;
	// over_time is 10% of the longer interval; rand_time defaults to over_time.
	c.ReauthTime = l.duration(sec, conn, "reauth_time")
	c.RekeyTime = 4 * time.Hour
	if c.ReauthTime > 0 {
		c.RekeyTime = 0
	}
	if kv := explicit(sec, "rekey_time"); kv != nil {
		c.RekeyTime = l.explicitDuration(kv)
	}
	c.OverTime = max(c.RekeyTime, c.ReauthTime) / 10
	if kv := explicit(sec, "over_time"); kv != nil {
		c.OverTime = l.explicitDuration(kv)
	}
	c.RandTime = c.OverTime
	if kv := explicit(sec, "rand_time"); kv != nil {
		c.RandTime = l.explicitDuration(kv)
		if interval := max(c.RekeyTime, c.ReauthTime); interval > 0 && c.RandTime >= interval {
			l.valueError(kv, fmt.Errorf("%v must be shorter than rekey_time/reauth_time (%v)", c.RandTime, interval))
		}
	}

	c.LocalRounds = l.authRounds(sec, true)
	c.RemoteRounds = l.authRounds(sec, false)
	if len(c.LocalRounds) > 0 {
		c.Local = c.LocalRounds[0]
	}
	if len(c.RemoteRounds) > 0 {
		c.Remote = c.RemoteRounds[0]
	}
	if c.Version == 1 && (c.EncapTCP || c.PPKID != "" || c.PPKRequired) {
		l.errorAt(sec.File, sec.Line, "%s: encap = tcp and ppk_id are IKEv2 features, not available with version = 1", sec.Path)
	}
	if c.Remote.XAuth && c.Version != 1 {
		l.errorAt(sec.File, sec.Line, "%s: a remote round with auth = xauth needs version = 1 (XAuth is IKEv1)", sec.Path)
	}
	c.VIPs = parsed(l, sec, conn, "vips", parseAddrList)
	c.Pools = parsed(l, sec, conn, "pools", parseNameList)
	if kv := explicit(sec, "redirect_to"); kv != nil {
		c.RedirectTo = kv.Value
	}

	if children := sec.Section("children"); children != nil {
		l.check(children, conn+".children")
		for _, ch := range sectionsOf(children, conn+".children", child) {
			c.Children = append(c.Children, l.child(ch, c))
		}
	}
	return c
}

func (l *loader) explicitDuration(kv *Setting) time.Duration {
	d, err := parseDuration(kv.Value)
	if err != nil {
		l.valueError(kv, err)
	}
	return d
}

func (l *loader) explicitNumber(kv *Setting) uint64 {
	n, err := parseUint(kv.Value, math.MaxUint64)
	if err != nil {
		l.valueError(kv, err)
	}
	return n
}

// authRounds loads the local or remote authentication rounds (RFC 4739), ordered by round and
// then by name.
func (l *loader) authRounds(connSec *Section, isLocal bool) []Auth {
	pattern, side := remot, "remote"
	if isLocal {
		pattern, side = local, "local"
	}
	rounds := sectionsOf(connSec, conn, pattern)
	if len(rounds) == 0 && shuntsOnly(connSec) {
		// A pass/drop shunt negotiates nothing and needs no authentication; its mode is reported
		// as not supported, which is the real problem.
		return nil
	}
	if len(rounds) == 0 {
		l.errorAt(connSec.File, connSec.Line, "%s has no %s section; add %s { auth = pubkey } (or auth = psk)", connSec.Path, side, side)
		return nil
	}
	var out []Auth
	xauth := false
	for i, sec := range rounds {
		if v := sec.Setting("auth"); i > 0 && !isLocal && v != nil && (v.Value == "xauth" || v.Value == "xauth-generic") {
			// IKEv1's XAuth after phase 1 (checked against the connection's version later): a
			// flag of the first round, not a round of its own.
			l.check(sec, pattern)
			xauth = true
			continue
		}
		out = append(out, l.authRound(sec, pattern, isLocal))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Round != out[j].Round {
			return out[i].Round < out[j].Round
		}
		return out[i].Section < out[j].Section
	})
	if xauth && len(out) > 0 {
		out[0].XAuth = true
	}
	for i, a := range out {
		if i > 0 && a.Method != AuthEAP && !isLocal {
			// A second round is EAP in practice (RFC 4739 §2: certificate, then EAP); a second
			// signature or PSK round is refused rather than silently misunderstood.
			l.errorAt(connSec.File, connSec.Line, "%s: round %d (%s) must be EAP: only the first round may use %s", connSec.Path, i+1, a.Section, a.Method)
		}
	}
	if len(out) > 2 {
		l.errorAt(connSec.File, connSec.Line, "%s: at most two %s authentication rounds are supported", connSec.Path, side)
	}
	return out
}

func (l *loader) authRound(sec *Section, pattern string, isLocal bool) Auth {
	l.check(sec, pattern)
	a := Auth{Section: sec.Name}
	authValue, kv := l.value(sec, pattern, "auth")
	m, err := parseAuth(authValue)
	if err != nil {
		if kv != nil {
			l.valueError(kv, err)
		}
	}
	a.Method = m
	if m == AuthPubkey {
		a.Constraints = authValue
	}
	if m == AuthEAP {
		a.EAP = strings.TrimPrefix(strings.TrimPrefix(authValue, "eap"), "-")
		if isLocal && (a.EAP == "radius" || a.EAP == "dynamic") && kv != nil {
			l.valueError(kv, fmt.Errorf("auth = %s is for the server side (remote section)", authValue))
		}
		if kv := explicit(sec, "eap_id"); kv != nil {
			a.EAPID, a.EAPIDSet = parsed(l, sec, pattern, "eap_id", parseIdentity), true
		}
		if isLocal {
			if kv := explicit(sec, "aaa_id"); kv != nil {
				a.AAAID = parsed(l, sec, pattern, "aaa_id", parseIdentity)
			}
		}
	}
	a.Round = int(l.number(sec, pattern, "round", 1<<16))
	a.CertSettings = l.certSettings(sec, pattern, isLocal)
	if isLocal {
		// Empty means "the local IP address", decided when the SA is set up.
		if kv := explicit(sec, "id"); kv != nil {
			a.ID = parsed(l, sec, pattern, "id", parseIdentity)
		} else {
			a.ID = Identity{Type: IDAny}
		}
	} else {
		a.ID = parsed(l, sec, pattern, "id", parseIdentity)
	}
	return a
}

// shuntsOnly reports whether every child of a connection is a pass or drop shunt.
func shuntsOnly(connSec *Section) bool {
	children := connSec.Section("children")
	if children == nil || len(children.Sections) == 0 {
		return false
	}
	for _, ch := range children.Sections {
		kv := ch.Setting("mode")
		if kv == nil || (kv.Value != "pass" && kv.Value != "drop") {
			return false
		}
	}
	return true
}

func parseAuth(s string) (AuthMethod, error) {
	switch {
	case s == "psk":
		return AuthPSK, nil
	case s == "pubkey", strings.HasPrefix(s, "pubkey-"), strings.HasPrefix(s, "rsa"), strings.HasPrefix(s, "ecdsa"),
		strings.HasPrefix(s, "ed25519"), strings.HasPrefix(s, "ed448"), strings.HasPrefix(s, "ike:"), strings.HasPrefix(s, "bliss"):
		return AuthPubkey, checkPubkeyConstraints(s)
	case s == "eap", s == "eap-md5", s == "eap-mschapv2", s == "eap-tls", s == "eap-ttls", s == "eap-dynamic", s == "eap-radius":
		return AuthEAP, nil
	case strings.HasPrefix(s, "eap-"):
		return "", fmt.Errorf("EAP method %s is not supported by goipsec (use eap-md5, eap-mschapv2, eap-tls, eap-ttls, eap-dynamic or eap-radius)", s)
	case s == "xauth", strings.HasPrefix(s, "xauth-"):
		return "", fmt.Errorf("auth = %s is IKEv1 only (IKEv2 uses EAP: eap-mschapv2, eap-md5, ...)", s)
	}
	return "", fmt.Errorf("invalid value %q (expected pubkey, rsa, rsa/pss, ecdsa, ed25519 (with optional -sha256 style constraints), psk, or eap-md5, eap-mschapv2, eap-tls, eap-ttls, eap-dynamic, eap-radius)", s)
}

func (l *loader) child(sec *Section, c *Connection) *Child {
	ch := &Child{Name: sec.Name, File: sec.File, Line: sec.Line}
	l.check(sec, child)
	ch.LocalTS = parsed(l, sec, child, "local_ts", parseSelectors)
	ch.RemoteTS = parsed(l, sec, child, "remote_ts", parseSelectors)

	// As in strongSwan, ESP with the default proposals is offered unless only AH is configured.
	ah, esp := explicit(sec, "ah_proposals"), explicit(sec, "esp_proposals")
	if ah != nil {
		ch.AHProposals = parsed(l, sec, child, "ah_proposals", proposal.ParseAH)
		ch.ahFirst = esp == nil || settingIndex(sec, ah) < settingIndex(sec, esp)
	}
	if esp != nil || ch.AHProposals == nil {
		ch.ESPProposals = parsed(l, sec, child, "esp_proposals", func(s string) ([]proposal.Proposal, error) {
			if strings.HasPrefix(s, "default ") {
				s = "default" // the table's default is described in words
			}
			if c.legacy() {
				return proposal.ParseESPLegacy(s)
			}
			return proposal.ParseESP(s)
		})
	}

	ch.Mode = parsed(l, sec, child, "mode", parseMode)
	ch.StartAction = Action(l.enum(sec, child, "start_action", "none", "trap", "start"))
	ch.CloseAction = Action(l.enum(sec, child, "close_action", "none", "trap", "start"))
	ch.DPDAction = Action(l.enum(sec, child, "dpd_action", "clear", "trap", "restart"))
	if ch.StartAction != ActionNone {
		specific := false
		for _, a := range c.RemoteAddrs {
			specific = specific || a.Specific()
		}
		if !specific {
			kv := sec.Setting("start_action")
			l.errorAt(kv.File, kv.Line, "%s = %s needs a remote address or host name to initiate to in connections.%s.remote_addrs", kv.Path, kv.Value, c.Name)
		}
	}

	ch.RekeyTime, ch.LifeTime, ch.RandTime = l.childTimes(sec)
	ch.RekeyBytes, ch.LifeBytes, ch.RandBytes = l.childVolume(sec, "bytes")
	ch.RekeyPackets, ch.LifePackets, ch.RandPackets = l.childVolume(sec, "packets")

	ch.ReplayWindow = uint32(l.number(sec, child, "replay_window", MaxReplayWindow))
	ch.Inactivity = l.duration(sec, child, "inactivity")
	ch.TFCPadding = parsed(l, sec, child, "tfc_padding", parseTFCPadding)
	if ch.ESPProposals == nil && ch.AHProposals != nil {
		// UDP encapsulation carries ESP only (RFC 3948), and TFC padding is ESP's (RFC 4303 §2.7).
		switch {
		case c.Encap:
			l.errorAt(ah.File, ah.Line, "%s: AH cannot be UDP-encapsulated (RFC 3948 covers ESP only), but connections.%s.encap = yes forces encapsulation; add esp_proposals or drop encap", ah.Path, c.Name)
		case c.EncapTCP:
			l.errorAt(ah.File, ah.Line, "%s: AH cannot travel in TCP (RFC 9329 carries IKE and ESP only), but connections.%s.encap = tcp asks for it; add esp_proposals or drop encap", ah.Path, c.Name)
		}
		if kv := explicit(sec, "tfc_padding"); kv != nil && ch.TFCPadding != (TFCPadding{}) {
			l.errorAt(kv.File, kv.Line, "%s: TFC padding needs ESP, but this CHILD SA has only ah_proposals", kv.Path)
		}
	}
	ch.MSSClamp = l.mssClamp(sec, ch.Mode)
	ch.CopyDF = l.boolean(sec, child, "copy_df")
	ch.CopyECN = l.boolean(sec, child, "copy_ecn")
	ch.CopyDSCP = l.enum(sec, child, "copy_dscp", "out", "in", "yes", "no")
	ch.HostAccess = l.boolean(sec, child, "hostaccess")
	if kv := explicit(sec, "updown"); kv != nil {
		ch.Updown = kv.Value
	}
	ch.Priority = uint32(l.number(sec, child, "priority", math.MaxUint32))
	ch.IfIDIn = parsed(l, sec, child, "if_id_in", parseIfID)
	ch.IfIDOut = parsed(l, sec, child, "if_id_out", parseIfID)
	ch.MarkIn = parsed(l, sec, child, "mark_in", parseMark)
	ch.MarkOut = parsed(l, sec, child, "mark_out", parseMark)
	ch.Interface = parsed(l, sec, child, "interface", parseIfName)
	ch.PoliciesFwdOut = l.boolean(sec, child, "policies_fwd_out")
	for _, key := range []string{"if_id_in", "if_id_out", "mark_in", "mark_out", "interface", "policies_fwd_out"} {
		if kv := explicit(sec, key); kv != nil && !sameAsDefault(kv.Value, keyDefault(child+"."+key)) {
			l.kernelOnly = append(l.kernelOnly, kv)
		}
	}
	return ch
}

// Proposals returns the CHILD SA's proposals as IKE offers them: ESP and AH proposals are
// alternatives in one SA payload (IKEv2 has no AH+ESP bundles: RFC 7296 §2.7, one protocol per
// proposal), in the order the two keys are written — strongSwan's vici plugin appends both lists
// to one in the order swanctl sends them, which is the file's order.
func (c *Child) Proposals() []proposal.Proposal {
	first, second := c.ESPProposals, c.AHProposals
	if c.ahFirst {
		first, second = second, first
	}
	return append(append([]proposal.Proposal(nil), first...), second...)
}

// settingIndex returns the position of a setting in its section (order of first appearance).
func settingIndex(sec *Section, kv *Setting) int {
	for i, s := range sec.Settings {
		if s == kv {
			return i
		}
	}
	return -1
}

// keyDefault is the table's default of the key at path.
func keyDefault(path string) string {
	for _, k := range keyTable {
		if k.Path == path {
			return k.Default
		}
	}
	return ""
}

func parseMode(s string) (Mode, error) {
	switch s {
	case "tunnel":
		return ModeTunnel, nil
	case "transport":
		return ModeTransport, nil
	case "transport_proxy", "beet", "iptfs", "pass", "drop":
		return "", fmt.Errorf("mode %s is not supported by goipsec yet (use tunnel or transport)", s)
	}
	return "", fmt.Errorf("invalid value %q (expected tunnel or transport)", s)
}

// childTimes applies strongSwan's CHILD SA lifetime rules: rekey_time 1h, life_time 10% longer,
// rand_time the difference.
func (l *loader) childTimes(sec *Section) (rekey, life, rand time.Duration) {
	rekey = l.duration(sec, child, "rekey_time")
	life = rekey + rekey/10
	lifeKV := explicit(sec, "life_time")
	if lifeKV != nil {
		life = l.explicitDuration(lifeKV)
		if rekey > 0 && life > 0 && life <= rekey {
			l.valueError(lifeKV, fmt.Errorf("%v must be longer than rekey_time (%v)", life, rekey))
		}
	}
	rand = 0
	if life > rekey {
		rand = life - rekey
	}
	if kv := explicit(sec, "rand_time"); kv != nil {
		rand = l.explicitDuration(kv)
		if rekey > 0 && rand >= rekey {
			l.valueError(kv, fmt.Errorf("%v must be shorter than rekey_time (%v)", rand, rekey))
		}
	}
	return rekey, life, rand
}

// childVolume applies the same rules to the byte or packet limits, with 0 meaning "no limit".
func (l *loader) childVolume(sec *Section, unit string) (rekey, life, rand uint64) {
	rekey = l.number(sec, child, "rekey_"+unit, math.MaxUint64)
	life = rekey
	if rekey <= math.MaxUint64-rekey/10 {
		life = rekey + rekey/10
	}
	if kv := explicit(sec, "life_"+unit); kv != nil {
		life = l.explicitNumber(kv)
		if rekey > 0 && life > 0 && life <= rekey {
			l.valueError(kv, fmt.Errorf("%d must be larger than rekey_%s (%d)", life, unit, rekey))
		}
	}
	rand = 0
	if life > rekey {
		rand = life - rekey
	}
	if kv := explicit(sec, "rand_"+unit); kv != nil {
		rand = l.explicitNumber(kv)
		if rekey > 0 && rand >= rekey {
			l.valueError(kv, fmt.Errorf("%d must be smaller than rekey_%s (%d)", rand, unit, rekey))
		}
	}
	return rekey, life, rand
}

func (l *loader) secrets(sec *Section) Secrets {
	var s Secrets
	if sec == nil {
		return s
	}
	l.check(sec, "secrets")
	s.Keys = l.keySecrets(sec)
	const pattern = "secrets.ike<suffix>"
	for _, p := range sectionsOf(sec, "secrets", pattern) {
		l.check(p, pattern)
		psk := &PSK{Name: p.Name, File: p.File, Line: p.Line}
		for _, kv := range p.Settings {
			if k, ok := lookupKey(pattern, kv.Key); !ok || k.Path != pattern+".id<suffix>" || kv.Value == "" {
				continue
			}
			id, err := parseIdentity(kv.Value)
			if err != nil {
				l.valueError(kv, err)
				continue
			}
			psk.IDs = append(psk.IDs, id)
		}
		psk.Secret = l.secret(p)
		s.IKE = append(s.IKE, psk)
	}
	const ppkPattern = "secrets.ppk<suffix>"
	for _, p := range sectionsOf(sec, "secrets", ppkPattern) {
		l.check(p, ppkPattern)
		ppk := &PPK{Name: p.Name, File: p.File, Line: p.Line}
		for _, kv := range p.Settings {
			if k, ok := lookupKey(ppkPattern, kv.Key); ok && k.Path == ppkPattern+".id<suffix>" && kv.Value != "" {
				ppk.IDs = append(ppk.IDs, kv.Value)
			}
		}
		if len(ppk.IDs) == 0 {
			l.errorAt(p.File, p.Line, "%s: a PPK needs its identity (id = the ppk_id of the connections that use it)", p.Path)
		}
		ppk.Secret = l.secret(p)
		s.PPK = append(s.PPK, ppk)
	}
	return s
}

// secret reads the required secret of a secrets subsection. Errors never echo the value.
func (l *loader) secret(p *Section) []byte {
	kv := explicit(p, "secret")
	if kv == nil {
		l.errorAt(p.File, p.Line, "%s: secret is required", p.Path)
		return nil
	}
	secret, err := parseSecret(kv.Value)
	if err != nil {
		l.errorAt(kv.File, kv.Line, "%s: %v", kv.Path, err) // no valueError: never echo a secret
	}
	return secret
}
