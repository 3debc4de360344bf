package config

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

func load(src string) (*Config, error) {
	return (&Parser{FS: fstest.MapFS{"swanctl.conf": {Data: []byte(src)}}}).Load("swanctl.conf")
}

func mustLoad(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := load(src)
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	return cfg
}

const fullConfig = `# A configuration using most of what goipsec supports.
connections {
    home {
        version = 2
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2, vpn.example.com, 10.0.0.0/8, 10.1.0.1-10.1.0.9, %any6
        proposals = aes256gcm16-prfsha256-x25519, aes128-sha256-modp3072
        encap = yes
        mobike = no
        fragmentation = accept
        dpd_delay = 30s
        keyingtries = 1
        unique = no
        rekey_time = 2h
        send_certreq = no
        aggressive = no
        local {
            auth = psk
            id = moon.example.com
        }
        remote {
            auth = psk
            id = @sun
        }
        children {
            net {
                local_ts = 10.1.0.0/24, dynamic[tcp/80]
                remote_ts = 10.2.0.0/16[udp/1000-2000]
                esp_proposals = aes256gcm16-ecp256-esn
                mode = tunnel
                start_action = start
                close_action = trap
                dpd_action = restart
                rekey_time = 30m
                rekey_bytes = 1000000
                life_packets = 0x100
                replay_window = 4096
                inactivity = 0s
                tfc_padding = mtu
                copy_df = no
                copy_dscp = no
                policies = yes
            }
            host {
                esp_proposals = aes128-sha256
                mode = transport
            }
        }
    }
}

secrets {
    ike-home {
        id = moon.example.com
        id-sun = @sun
        secret = "correct horse # battery"
    }
    ike-hex {
        secret = 0x0102:0304
    }
    ike-b64 {
        secret = 0sAQIDBA==
    }
}

manual {
    site {
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        encap = yes
        remote_port = 4501
        local_ts = 10.1.0.0/24
        remote_ts = 10.2.0.0/24
        proposal = aes256gcm16-esn
        tfc_padding = 100
        outbound {
            spi = 0x00001001
            enc_key = 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223
        }
        inbound {
            spi = 0x00002001
            enc_key = 0x00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f:20:21:22:23
        }
    }
    hosts {
        local_addrs = 2001:db8::1
        remote_addrs = 2001:db8::2
        mode = transport
        protocol = ah
        proposal = sha512
        replay_window = 0
        outbound {
            spi = 4096
            integ_key = 0x` + "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000f" + `
        }
        inbound {
            spi = 4097
            integ_key = 0x` + "1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000f" + `
        }
    }
}

daemon {
    tun_name = ipsec9
    mtu = 1380
    metrics_listen = 127.0.0.1:9100
    retransmit_base = 2
    retransmit_limit = 1m
    fragment_size = 576
    log {
        level = debug
        format = json
    }
}
`

func TestLoadFull(t *testing.T) {
	cfg := mustLoad(t, fullConfig)
	if len(cfg.Connections) != 1 {
		t.Fatalf("%d connections", len(cfg.Connections))
	}
	c := cfg.Connections[0]
	if c.Name != "home" || c.File != "swanctl.conf" || c.Line != 3 || c.Version != 2 {
		t.Errorf("connection header %q %s:%d v%d", c.Name, c.File, c.Line, c.Version)
	}
	var remote []string
	for _, a := range c.RemoteAddrs {
		remote = append(remote, a.String())
	}
	if got := strings.Join(remote, ", "); got != "192.0.2.2, vpn.example.com, 10.0.0.0/8, 10.1.0.1-10.1.0.9, %any6" {
		t.Errorf("remote_addrs = %s", got)
	}
	if c.RemoteAddrs[2].Kind != AddrPrefix || c.RemoteAddrs[2].End != netip.MustParseAddr("10.255.255.255") || c.RemoteAddrs[1].Kind != AddrHost {
		t.Errorf("remote_addrs kinds: %+v", c.RemoteAddrs)
	}
	if got := proposal.FormatList(c.Proposals); got != "aes256gcm16-prfsha256-x25519, aes128-sha256-prfsha256-modp3072" {
		t.Errorf("proposals = %s", got)
	}
	if !c.Encap || c.MOBIKE || c.Fragmentation != "accept" || c.DPDDelay != 30*time.Second || c.KeyingTries != 1 ||
		c.Unique != "no" || c.SendCertReq || c.SendCert != "ifasked" || c.LocalPort != 500 || c.RemotePort != 500 {
		t.Errorf("connection options: %+v", c)
	}
	if c.RekeyTime != 2*time.Hour || c.ReauthTime != 0 || c.OverTime != 12*time.Minute || c.RandTime != 12*time.Minute {
		t.Errorf("IKE times rekey %v reauth %v over %v rand %v", c.RekeyTime, c.ReauthTime, c.OverTime, c.RandTime)
	}
	if c.Local.Method != AuthPSK || c.Local.ID.Type != IDFQDN || string(c.Local.ID.Data) != "moon.example.com" || c.Local.Section != "local" {
		t.Errorf("local auth %+v", c.Local)
	}
	if c.Remote.Method != AuthPSK || c.Remote.ID.Type != IDFQDN || string(c.Remote.ID.Data) != "sun" {
		t.Errorf("remote auth %+v", c.Remote)
	}
	if len(c.Children) != 2 {
		t.Fatalf("%d children", len(c.Children))
	}
	n := c.Children[0]
	var lts []string
	for _, s := range n.LocalTS {
		lts = append(lts, s.String())
	}
	if strings.Join(lts, ", ") != "10.1.0.0/24, dynamic[tcp/80]" || !n.LocalTS[1].Dynamic {
		t.Errorf("local_ts = %v", lts)
	}
	if n.RemoteTS[0].Selector.Protocol != ts.ProtoUDP || n.RemoteTS[0].Selector.StartPort != 1000 || n.RemoteTS[0].Selector.EndPort != 2000 {
		t.Errorf("remote_ts = %+v", n.RemoteTS)
	}
	if proposal.FormatList(n.ESPProposals) != "aes256gcm16-ecp256-esn" || n.AHProposals != nil {
		t.Errorf("child proposals ESP %v AH %v", n.ESPProposals, n.AHProposals)
	}
	if n.Mode != ModeTunnel || n.StartAction != ActionStart || n.CloseAction != ActionTrap || n.DPDAction != ActionRestart {
		t.Errorf("child modes/actions %+v", n)
	}
	if n.RekeyTime != 30*time.Minute || n.LifeTime != 33*time.Minute || n.RandTime != 3*time.Minute {
		t.Errorf("child times %v %v %v", n.RekeyTime, n.LifeTime, n.RandTime)
	}
	if n.RekeyBytes != 1000000 || n.LifeBytes != 1100000 || n.RandBytes != 100000 {
		t.Errorf("child bytes %d %d %d", n.RekeyBytes, n.LifeBytes, n.RandBytes)
	}
	if n.RekeyPackets != 0 || n.LifePackets != 256 || n.RandPackets != 256 {
		t.Errorf("child packets %d %d %d", n.RekeyPackets, n.LifePackets, n.RandPackets)
	}
	if n.ReplayWindow != 4096 || n.Inactivity != 0 || !n.TFCPadding.MTU || n.CopyDF || n.CopyECN || n.CopyDSCP != "no" || n.HostAccess {
		t.Errorf("child data plane options %+v", n)
	}
	h := c.Children[1]
	if proposal.FormatList(h.ESPProposals) != "aes128-sha256-noesn" || h.AHProposals != nil || h.Mode != ModeTransport || h.ReplayWindow != DefaultReplayWindow {
		t.Errorf("AH child %+v", h)
	}

	if len(cfg.Secrets.IKE) != 3 {
		t.Fatalf("%d PSKs", len(cfg.Secrets.IKE))
	}
	psk := cfg.Secrets.IKE[0]
	if psk.Name != "ike-home" || len(psk.IDs) != 2 || psk.IDs[1].Text != "@sun" || string(psk.Secret) != "correct horse # battery" {
		t.Errorf("PSK %+v", psk)
	}
	if !bytes.Equal(cfg.Secrets.IKE[1].Secret, []byte{1, 2, 3, 4}) || !bytes.Equal(cfg.Secrets.IKE[2].Secret, []byte{1, 2, 3, 4}) {
		t.Errorf("hex/base64 secrets %x %x", cfg.Secrets.IKE[1].Secret, cfg.Secrets.IKE[2].Secret)
	}
	if len(cfg.Secrets.IKE[1].IDs) != 0 {
		t.Errorf("PSK without id has IDs %v", cfg.Secrets.IKE[1].IDs)
	}

	if len(cfg.Manual) != 2 {
		t.Fatalf("%d manual SAs", len(cfg.Manual))
	}
	m := cfg.Manual[0]
	if m.Local != netip.MustParseAddr("192.0.2.1") || m.Remote != netip.MustParseAddr("192.0.2.2") || m.Mode != ModeTunnel ||
		m.Protocol != proposal.ProtoESP || !m.Encap || m.LocalPort != 4500 || m.RemotePort != 4501 || !m.ESN ||
		m.ReplayWindow != 1024 || m.TFCPadding.Bytes != 100 {
		t.Errorf("manual SA %+v", m)
	}
	if m.Proposal.String() != "aes256gcm16-esn" || m.Outbound.SPI != 0x1001 || m.Inbound.SPI != 0x2001 ||
		len(m.Outbound.EncKey) != 36 || m.Outbound.EncKey[35] != 0x23 || !bytes.Equal(m.Outbound.EncKey, m.Inbound.EncKey) || m.Outbound.IntegKey != nil {
		t.Errorf("manual SA keys %+v", m)
	}
	if m.LocalTS[0].String() != "10.1.0.0/24" || m.RemoteTS[0].String() != "10.2.0.0/24" {
		t.Errorf("manual selectors %v %v", m.LocalTS, m.RemoteTS)
	}
	a := cfg.Manual[1]
	if a.Protocol != proposal.ProtoAH || a.Mode != ModeTransport || a.Encap || a.LocalPort != 0 || a.ReplayWindow != 0 ||
		a.Proposal.String() != "sha512-noesn" || len(a.Outbound.IntegKey) != 64 || a.Inbound.IntegKey[0] != 0x10 || a.Outbound.EncKey != nil {
		t.Errorf("manual AH SA %+v", a)
	}
	// dynamic resolves to the outer addresses.
	if a.LocalTS[0] != ts.Host(netip.MustParseAddr("2001:db8::1")) || a.RemoteTS[0] != ts.Host(netip.MustParseAddr("2001:db8::2")) {
		t.Errorf("manual dynamic selectors %v %v", a.LocalTS, a.RemoteTS)
	}

	d := cfg.Daemon
	want := Daemon{Dataplane: "userspace", TunName: "ipsec9", MTU: 1380, VICISocket: "/run/goipsec/vici.sock", MetricsListen: "127.0.0.1:9100",
		IKEPort: 500, NATTPort: 4500, RetransmitTimeout: 4 * time.Second, RetransmitBase: 2, RetransmitTries: 5,
		RetransmitLimit: time.Minute, FragmentSize: 576, FwMark: 0x4500, RouteTable: 4500, RulePriority: 4500, Log: Log{Level: "debug", Format: "json"},
		StateDir: "/var/lib/goipsec", ResolvConf: "/etc/resolv.conf", UpdownTimeout: 10 * time.Second}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("daemon\n got %+v\nwant %+v", d, want)
	}
}

// minimalConn is the smallest connection that loads; extra lines are inserted at line 6.
func minimalConn(extra string) string {
	return "connections {\n  home {\n    remote_addrs = 192.0.2.2\n    local { auth = psk }\n    remote { auth = psk }\n" + extra + "  }\n}\n"
}

func TestDefaults(t *testing.T) {
	cfg := mustLoad(t, minimalConn("    children { net { } }\n"))
	c := cfg.Connections[0]
	if c.Version != 0 || len(c.LocalAddrs) != 1 || c.LocalAddrs[0].Kind != AddrAny || c.LocalPort != 500 || c.RemotePort != 500 ||
		c.Encap || c.MOBIKE || c.Fragmentation != "yes" || !c.SendCertReq || c.SendCert != "ifasked" || c.DPDDelay != 0 ||
		c.KeyingTries != 1 || c.Unique != "no" {
		t.Errorf("connection defaults %+v", c)
	}
	if c.RekeyTime != 4*time.Hour || c.ReauthTime != 0 || c.OverTime != 24*time.Minute || c.RandTime != 24*time.Minute {
		t.Errorf("IKE time defaults %v %v %v %v", c.RekeyTime, c.ReauthTime, c.OverTime, c.RandTime)
	}
	def, _ := proposal.Default(proposal.ProtoIKE)
	if !reflect.DeepEqual(c.Proposals, def) {
		t.Errorf("default IKE proposals %s", proposal.FormatList(c.Proposals))
	}
	if !c.Local.ID.IsAny() || !c.Remote.ID.IsAny() || c.Remote.ID.Text != "%any" {
		t.Errorf("default identities %+v %+v", c.Local.ID, c.Remote.ID)
	}
	ch := c.Children[0]
	espDef, _ := proposal.Default(proposal.ProtoESP)
	if !reflect.DeepEqual(ch.ESPProposals, espDef) || ch.AHProposals != nil {
		t.Errorf("default ESP proposals %s", proposal.FormatList(ch.ESPProposals))
	}
	if len(ch.LocalTS) != 1 || !ch.LocalTS[0].Dynamic || ch.LocalTS[0].String() != "dynamic" || !ch.RemoteTS[0].Dynamic {
		t.Errorf("default selectors %v %v", ch.LocalTS, ch.RemoteTS)
	}
	if ch.Mode != ModeTunnel || ch.StartAction != ActionNone || ch.CloseAction != ActionNone || ch.DPDAction != ActionClear {
		t.Errorf("default mode/actions %+v", ch)
	}
	if ch.RekeyTime != time.Hour || ch.LifeTime != 66*time.Minute || ch.RandTime != 6*time.Minute ||
		ch.RekeyBytes != 0 || ch.LifeBytes != 0 || ch.RandBytes != 0 || ch.ReplayWindow != 1024 || ch.Inactivity != 0 ||
		ch.TFCPadding != (TFCPadding{}) || ch.CopyDF || ch.CopyECN || ch.CopyDSCP != "no" || ch.HostAccess {
		t.Errorf("child defaults %+v", ch)
	}
	want := Daemon{Dataplane: "userspace", TunName: "goipsec0", MTU: 1400, VICISocket: "/run/goipsec/vici.sock", IKEPort: 500, NATTPort: 4500,
		RetransmitTimeout: 4 * time.Second, RetransmitBase: 1.8, RetransmitTries: 5, FragmentSize: 1280, FwMark: 0x4500, RouteTable: 4500, RulePriority: 4500,
		Log: Log{Level: "info", Format: "text"}, StateDir: "/var/lib/goipsec", ResolvConf: "/etc/resolv.conf", UpdownTimeout: 10 * time.Second}
	if !reflect.DeepEqual(cfg.Daemon, want) {
		t.Errorf("daemon defaults\n got %+v\nwant %+v", cfg.Daemon, want)
	}

	// An empty value means the default.
	c = mustLoad(t, minimalConn("    rekey_time =\n    local_port =\n")).Connections[0]
	if c.RekeyTime != 4*time.Hour || c.LocalPort != 500 {
		t.Errorf("empty values: %v %d", c.RekeyTime, c.LocalPort)
	}
	// An empty file is a valid configuration.
	if cfg := mustLoad(t, ""); cfg.Connections != nil || cfg.Daemon.MTU != 1400 {
		t.Errorf("empty config %+v", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	const key64 = "0x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
	manual := func(body string) string {
		return "manual {\n  m {\n    local_addrs = 192.0.2.1\n    remote_addrs = 192.0.2.2\n" + body + "  }\n}\n"
	}
	for _, tc := range []struct {
		name, src, want string
	}{
		// Names.
		{"unknown key", minimalConn("    propsals = default\n"), `swanctl.conf:6: unknown key "propsals" in connections.home; did you mean "proposals"?`},
		{"unknown key no suggestion", minimalConn("    frobnicate = 1\n"), `swanctl.conf:6: unknown key "frobnicate" in connections.home`},
		{"unknown section", minimalConn("    chidren { }\n"), `swanctl.conf:6: unknown section "chidren" in connections.home; did you mean "children"?`},
		{"unknown top-level section", "conections {\n}\n", `swanctl.conf:1: unknown section "conections" in the top level; did you mean "connections"?`},
		{"top-level key", "x = 1\n", `swanctl.conf:1: unknown key "x" in the top level`},
		{"pool without addrs", "pools {\n  rw { dns = 10.0.0.1 }\n}\n", `swanctl.conf:2: pools.rw: addrs is required (a subnet such as 10.3.0.0/24, a range a-b or an address)`},
		{"pool attribute name", "pools {\n  rw {\n    addrs = 10.3.0.0/24\n    dsn = 10.0.0.1\n  }\n}\n", `swanctl.conf:4: unknown key "dsn" in pools.rw (expected addrs, dns, nbns, dhcp, netmask, server, subnet, split_include, split_exclude or an attribute number 1-32767)`},
		{"unknown pool", minimalConn("    pools = nope\n"), `swanctl.conf:2: connections.home.pools: no pool named "nope" in the pools section`},
		{"not supported auth key", "connections {\n  home {\n    remote_addrs = 192.0.2.2\n    local {\n      auth = psk\n      xauth_id = a\n    }\n    remote { auth = psk }\n  }\n}\n",
			`swanctl.conf:6: connections.home.local.xauth_id is not supported by goipsec yet`},
		{"not supported child key", minimalConn("    children { net { set_mark_in = 1 } }\n"), `swanctl.conf:6: connections.home.children.net.set_mark_in is not supported by goipsec yet`},
		{"second round not EAP", minimalConn("    remote-2 { auth = psk }\n"), `swanctl.conf:2: connections.home: round 2 (remote-2) must be EAP: only the first round may use psk`},
		{"strongSwan 6 icmp", minimalConn("    children { net { icmp = yes } }\n"), `swanctl.conf:6: connections.home.children.net.icmp = yes is not supported by goipsec yet (only no)`},
		{"strongSwan 6 iptfs", minimalConn("    children { net { mode = iptfs } }\n"), `swanctl.conf:6: connections.home.children.net.mode: mode iptfs is not supported by goipsec yet (use tunnel or transport)`},
		{"shunt without auth", "connections {\n  bypass {\n    children { lan { mode = pass } }\n  }\n}\n", `swanctl.conf:3: connections.bypass.children.lan.mode: mode pass is not supported by goipsec yet (use tunnel or transport)`},
		{"default only", minimalConn("    children { net { ipcomp = yes } }\n"), `swanctl.conf:6: connections.home.children.net.ipcomp = yes is not supported by goipsec yet (only no)`},
		{"default only spelled differently", minimalConn("    aggressive = false\n    pull = 1\n    children { net { reqid = 0x0 } }\n"), ""},
		{"setting used as section", minimalConn("    proposals { }\n"), `swanctl.conf:6: connections.home.proposals is a setting (proposals = ...), not a section`},
		{"section used as setting", minimalConn("    children = net\n"), `swanctl.conf:6: connections.home.children is a section (children { ... }), not a setting`},
		{"secret type not supported", "secrets {\n  ntlm-carol { secret = x }\n}\n", `swanctl.conf:2: secrets.ntlm-carol is not supported by goipsec yet`},
		{"lns users unknown", "pools {\n  p { addrs = 10.3.0.0/24 }\n}\nl2tp {\n  lns {\n    pool = p\n    users = ldap\n  }\n}\n", `swanctl.conf:7: l2tp.lns.users: unknown value "ldap" (expected secrets or radius)`},
		{"lns users radius without radius", "pools {\n  p { addrs = 10.3.0.0/24 }\n}\nl2tp {\n  lns {\n    pool = p\n    users = radius\n  }\n}\n", `swanctl.conf:7: l2tp.lns.users = radius needs a radius section with servers`},
		{"lns without pool", "pools {\n  p { addrs = 10.3.0.0/24 }\n}\nl2tp {\n  lns {\n    pool = q\n  }\n}\n", `swanctl.conf:6: l2tp.lns.pool: no pool named "q" in the pools section`},
		{"bad pool", "pools {\n  p { addrs = 10.3.0.9-10.3.0.1 }\n}\n", `swanctl.conf:2: pools.p.addrs: invalid range "10.3.0.9-10.3.0.1" (expected first-last of one family)`},
		{"unknown secret type", "secrets {\n  ikev2 { secret = x }\n  foo { }\n}\n", `swanctl.conf:3: unknown section "foo" in secrets`},

		// Connection values.
		{"weak without IKEv1", minimalConn("    weak_algorithms = yes\n"), `swanctl.conf:6: connections.home.weak_algorithms: weak algorithms are for IKEv1 connections only; set version = 1`},
		{"bad version", minimalConn("    version = 3\n"), `swanctl.conf:6: connections.home.version: invalid value "3" (expected 2, 1 or 0)`},
		{"bad address", minimalConn("    local_addrs = 192.0.2.1, 10.0.0.1-10.0.0.0\n"), `swanctl.conf:6: connections.home.local_addrs: invalid range "10.0.0.1-10.0.0.0" (expected low-high of one address family)`},
		{"bad host", minimalConn("    local_addrs = not_a host!\n"), `swanctl.conf:6: connections.home.local_addrs: invalid address "not_a host!" (expected an IP address, subnet, range a-b, host name or %any)`},
		{"empty list item", minimalConn("    local_addrs = 192.0.2.1,\n"), `swanctl.conf:6: connections.home.local_addrs: empty item in list "192.0.2.1,"`},
		{"bad subnet", minimalConn("    local_addrs = 10.0.0.0/33\n"), `swanctl.conf:6: connections.home.local_addrs: invalid subnet "10.0.0.0/33"`},
		{"port 0", minimalConn("    remote_port = 0\n"), `swanctl.conf:6: connections.home.remote_port: port 0 is not allowed`},
		{"ah_proposals weak", minimalConn("    children { net { ah_proposals = md5 } }\n"), `swanctl.conf:6: connections.home.children.net.ah_proposals: "md5" is a weak algorithm, not offered`},
		{"ah_proposals encryption", minimalConn("    children { net { ah_proposals = aes128-sha256 } }\n"), `swanctl.conf:6: connections.home.children.net.ah_proposals: "aes128" is an encryption algorithm; AH proposals take integrity algorithms only`},
		{"ah_proposals encap", minimalConn("    encap = yes\n    children { net { ah_proposals = sha256 } }\n"),
			`swanctl.conf:7: connections.home.children.net.ah_proposals: AH cannot be UDP-encapsulated (RFC 3948 covers ESP only), but connections.home.encap = yes forces encapsulation; add esp_proposals or drop encap`},
		{"ah_proposals encap tcp", minimalConn("    encap = tcp\n    children { net { ah_proposals = sha256 } }\n"),
			`swanctl.conf:7: connections.home.children.net.ah_proposals: AH cannot travel in TCP (RFC 9329 carries IKE and ESP only), but connections.home.encap = tcp asks for it; add esp_proposals or drop encap`},
		{"ah_proposals encap with ESP", minimalConn("    encap = yes\n    children { net {\n ah_proposals = sha256\n esp_proposals = aes128gcm16\n } }\n"), ""},
		{"ah_proposals tfc", minimalConn("    children { net {\n ah_proposals = sha256\n tfc_padding = mtu\n } }\n"),
			`swanctl.conf:8: connections.home.children.net.tfc_padding: TFC padding needs ESP, but this CHILD SA has only ah_proposals`},
		{"port too big", minimalConn("    remote_port = 65536\n"), `swanctl.conf:6: connections.home.remote_port: 65536 is out of range (at most 65535)`},
		{"weak proposal", minimalConn("    proposals = aes128-sha1-modp1024\n"), `swanctl.conf:6: connections.home.proposals: "sha1" is a weak algorithm, not offered (an IKEv1 connection can opt in with weak_algorithms = yes)`},
		{"proposal typo", minimalConn("    proposals = aes256gcm16-prfsha256-x2519\n"), `swanctl.conf:6: connections.home.proposals: unknown algorithm "x2519"; did you mean "x25519"?`},
		{"bad duration", minimalConn("    dpd_delay = 4x\n"), `swanctl.conf:6: connections.home.dpd_delay: invalid duration "4x" (expected a number of seconds, or a number with s, m, h or d)`},
		{"negative duration", minimalConn("    rekey_time = -1h\n"), `swanctl.conf:6: connections.home.rekey_time: invalid duration "-1h" (expected a number of seconds, or a number with s, m, h or d)`},
		{"huge duration", minimalConn("    rekey_time = 999999999999d\n"), `swanctl.conf:6: connections.home.rekey_time: duration "999999999999d" is too long`},
		{"bad bool", minimalConn("    ppk_required = maybe\n"), `swanctl.conf:6: connections.home.ppk_required: invalid value "maybe" (expected yes or no)`},
		{"fragmentation force", minimalConn("    fragmentation = force\n"), `swanctl.conf:6: connections.home.fragmentation: force is IKEv1 only (use yes)`},
		{"bad enum", minimalConn("    fragmentation = always\n"), `swanctl.conf:6: connections.home.fragmentation: invalid value "always" (expected yes, accept or no)`},
		{"rand_time", minimalConn("    rand_time = 1h\n"), `swanctl.conf:6: connections.home.rand_time is not supported by goipsec yet`},
		{"two settings on one line", minimalConn("    dpd_delay = 30s keyingtries = 3\n"), `swanctl.conf:6: connections.home.dpd_delay: invalid duration "30s keyingtries = 3" (expected a number of seconds, or a number with s, m, h or d); put each setting on its own line`},

		// Authentication.
		{"no local section", "connections {\n  home {\n    remote { auth = psk }\n  }\n}\n", `swanctl.conf:2: connections.home has no local section; add local { auth = pubkey } (or auth = psk)`},
		{"auth constraint typo", "connections {\n  home {\n    local { auth = rsa-sha257 }\n    remote { auth = psk }\n  }\n}\n", `swanctl.conf:3: connections.home.local.auth: auth = rsa-sha257: unknown constraint "sha257" (expected pubkey, rsa, rsa/pss, ecdsa or ed25519, a key size after a key type, sha256, sha384 or sha512)`},
		{"revocation typo", "connections {\n  home {\n    local { auth = psk }\n    remote {\n      revocation = strikt\n    }\n  }\n}\n", `swanctl.conf:5: connections.home.remote.revocation: invalid value "strikt" (expected strict, ifuri or relaxed)`},
		{"authority without cacert", "authorities {\n  ca {\n    crl_uris = http://x/crl\n  }\n}\n", `swanctl.conf:2: authorities.ca: cacert is required (the CA certificate in x509ca/)`},
		{"authority ldap", "authorities {\n  ca {\n    cacert = ca.pem\n    crl_uris = ldap://x/crl\n  }\n}\n", `swanctl.conf:4: authorities.ca.crl_uris: URI "ldap://x/crl": only http:// and https:// are supported`},
		{"key secret without file", "secrets {\n  private-gw {\n    secret = x\n  }\n}\n", `swanctl.conf:2: secrets.private-gw: file is required (the key file in private/ this passphrase is for)`},
		{"three rounds", minimalConn("    local-x { auth = eap }\n    local-y { auth = eap }\n"), `swanctl.conf:2: connections.home: at most two local authentication rounds are supported`},
		{"auth eap unknown", "connections {\n  home {\n    local { auth = psk }\n    remote { auth = eap-aka }\n  }\n}\n", `swanctl.conf:4: connections.home.remote.auth: EAP method eap-aka is not supported by goipsec (use eap-md5, eap-mschapv2, eap-tls, eap-ttls, eap-dynamic or eap-radius)`},
		{"auth typo", "connections {\n  home {\n    local { auth = pks }\n    remote { auth = psk }\n  }\n}\n", `swanctl.conf:3: connections.home.local.auth: invalid value "pks" (expected pubkey, rsa, rsa/pss, ecdsa, ed25519 (with optional -sha256 style constraints), psk, or eap-md5, eap-mschapv2, eap-tls, eap-ttls, eap-dynamic, eap-radius)`},
		{"DN identity", "connections {\n  home {\n    local {\n      auth = psk\n      id = \"C=CH, O=strongSwan, CN\"\n    }\n    remote { auth = psk }\n  }\n}\n", `swanctl.conf:5: connections.home.local.id: invalid identity "C=CH, O=strongSwan, CN": distinguished name "C=CH, O=strongSwan, CN": "CN" is not TYPE=value`},

		// Children.
		{"bad selector", minimalConn("    children { net { local_ts = 10.0.0.0/8[tcp/99999] } }\n"), `swanctl.conf:6: connections.home.children.net.local_ts: invalid traffic selector "10.0.0.0/8[tcp/99999]": "99999" is not a port, service name or port range`},
		{"bad dynamic selector", minimalConn("    children { net { local_ts = dynamic[foo] } }\n"), `swanctl.conf:6: connections.home.children.net.local_ts: invalid traffic selector "dynamic[foo]": unknown protocol "foo" (expected tcp, udp, icmp, ipv6-icmp, sctp, any or a number)`},
		{"ESP AEAD with integrity", minimalConn("    children { net { esp_proposals = aes256gcm16-sha256 } }\n"), `swanctl.conf:6: connections.home.children.net.esp_proposals: "sha256" can't be combined with "aes256gcm16" in an ESP proposal: AEAD algorithms protect integrity themselves`},
		{"mode pass", minimalConn("    children { net { mode = pass } }\n"), `swanctl.conf:6: connections.home.children.net.mode: mode pass is not supported by goipsec yet (use tunnel or transport)`},
		{"mode typo", minimalConn("    children { net { mode = tunel } }\n"), `swanctl.conf:6: connections.home.children.net.mode: invalid value "tunel" (expected tunnel or transport)`},
		{"start without remote", "connections {\n  home {\n    local { auth = psk }\n    remote { auth = psk }\n    children {\n      net {\n        start_action = start\n      }\n    }\n  }\n}\n",
			`swanctl.conf:7: connections.home.children.net.start_action = start needs a remote address or host name to initiate to in connections.home.remote_addrs`},
		{"life_time shorter than rekey_time", minimalConn("    children { net { life_time = 30m } }\n"), `swanctl.conf:6: connections.home.children.net.life_time: 30m0s must be longer than rekey_time (1h0m0s)`},
		{"rand_bytes", minimalConn("    children { net { rekey_bytes = 100\n rand_bytes = 50 } }\n"), `swanctl.conf:7: connections.home.children.net.rand_bytes is not supported by goipsec yet`},
		{"life_packets too small", minimalConn("    children { net { rekey_packets = 100\n life_packets = 50 } }\n"), `swanctl.conf:7: connections.home.children.net.life_packets: 50 must be larger than rekey_packets (100)`},
		{"replay window too big", minimalConn("    children { net { replay_window = 65537 } }\n"), `swanctl.conf:6: connections.home.children.net.replay_window: 65537 is out of range (at most 65536)`},
		{"bad number", minimalConn("    children { net { rekey_bytes = 1k } }\n"), `swanctl.conf:6: connections.home.children.net.rekey_bytes: invalid number "1k"`},
		{"bad tfc", minimalConn("    children { net { tfc_padding = big } }\n"), `swanctl.conf:6: connections.home.children.net.tfc_padding: invalid value "big" (expected a number of bytes or mtu)`},
		{"bad mss_clamp", minimalConn("    children { net { mss_clamp = 40 } }\n"), `swanctl.conf:6: connections.home.children.net.mss_clamp: invalid value "40" (expected auto, no or a number of bytes from 88 to 65535)`},

		// Secrets.
		{"secret missing", "secrets {\n  ike-a {\n    id = a\n  }\n}\n", `swanctl.conf:2: secrets.ike-a: secret is required`},
		{"secret bad hex", "secrets {\n  ike-a {\n    secret = 0xzz\n  }\n}\n", `swanctl.conf:3: secrets.ike-a.secret: the secret starts with 0x but is not valid hex`},
		{"secret bad base64", "secrets {\n  ike-a {\n    secret = 0s!!\n  }\n}\n", `swanctl.conf:3: secrets.ike-a.secret: the secret starts with 0s but is not valid base64`},
		{"secret bad id", "secrets {\n  ike-a {\n    id-x = ipv4:300.1.1.1\n    secret = x\n  }\n}\n", `swanctl.conf:3: secrets.ike-a.id-x: invalid identity "ipv4:300.1.1.1" (expected an IPv4 address)`},

		// Manual SAs.
		{"manual missing everything", "manual {\n  m {\n  }\n}\n", "swanctl.conf:2: manual.m: local_addrs is required (one IP address)\n" +
			"swanctl.conf:2: manual.m: remote_addrs is required (one IP address)\n" +
			"swanctl.conf:2: manual.m: proposal is required (e.g. proposal = aes256gcm16)\n" +
			"swanctl.conf:2: manual.m: the outbound section is required (with spi and keys)\n" +
			"swanctl.conf:2: manual.m: the inbound section is required (with spi and keys)"},
		{"manual address list", "manual {\n  m {\n    local_addrs = 192.0.2.1, 192.0.2.3\n  }\n}\n", "swanctl.conf:2: manual.m: remote_addrs is required (one IP address)\n" +
			"swanctl.conf:2: manual.m: proposal is required (e.g. proposal = aes256gcm16)\n" +
			"swanctl.conf:2: manual.m: the outbound section is required (with spi and keys)\n" +
			"swanctl.conf:2: manual.m: the inbound section is required (with spi and keys)\n" +
			`swanctl.conf:3: manual.m.local_addrs: expected exactly one IP address, got "192.0.2.1, 192.0.2.3"`},
		{"manual mixed families", "manual {\n  m {\n    local_addrs = 192.0.2.1\n    remote_addrs = 2001:db8::1\n    proposal = aes256gcm16\n    outbound { spi = 256\n enc_key = 0x" + strings.Repeat("00", 36) + " }\n    inbound { spi = 257\n enc_key = 0x" + strings.Repeat("00", 36) + " }\n  }\n}\n",
			`swanctl.conf:4: manual.m.remote_addrs: 2001:db8::1 is not of the same address family as local_addrs (192.0.2.1)`},
		{"manual GCM key too short", manual("    proposal = aes256gcm16\n    outbound {\n      spi = 256\n      enc_key = 0x" + strings.Repeat("00", 32) + "\n    }\n    inbound {\n      spi = 257\n      enc_key = 0x" + strings.Repeat("00", 36) + "\n    }\n"),
			`swanctl.conf:8: manual.m.outbound.enc_key: aes256gcm16 needs 36 bytes (a 32-byte key and a 4-byte salt), got 32 bytes`},
		{"manual GCM-128 key", manual("    proposal = aes128gcm16\n    outbound {\n      spi = 256\n      enc_key = 0x" + strings.Repeat("00", 16) + "\n    }\n    inbound {\n      spi = 257\n      enc_key = 0x" + strings.Repeat("00", 20) + "\n    }\n"),
			`swanctl.conf:8: manual.m.outbound.enc_key: aes128gcm16 needs 20 bytes (a 16-byte key and a 4-byte salt), got 16 bytes`},
		{"manual ChaCha key", manual("    proposal = chacha20poly1305\n    outbound {\n      spi = 256\n      enc_key = 0x" + strings.Repeat("00", 32) + "\n    }\n    inbound {\n      spi = 257\n      enc_key = 0x" + strings.Repeat("00", 36) + "\n    }\n"),
			`swanctl.conf:8: manual.m.outbound.enc_key: chacha20poly1305 needs 36 bytes (a 32-byte key and a 4-byte salt), got 32 bytes`},
		{"manual CBC and HMAC lengths", manual("    proposal = aes128-sha256\n    outbound {\n      spi = 256\n      enc_key = 0x" + strings.Repeat("00", 32) + "\n      integ_key = 0x" + strings.Repeat("00", 32) + "\n    }\n    inbound {\n      spi = 257\n      enc_key = 0x" + strings.Repeat("00", 16) + "\n      integ_key = 0x" + strings.Repeat("00", 20) + "\n    }\n"),
			"swanctl.conf:8: manual.m.outbound.enc_key: aes128 needs 16 bytes, got 32 bytes\n" +
				"swanctl.conf:14: manual.m.inbound.integ_key: sha256 needs 32 bytes, got 20 bytes"},
		{"manual integ key with AEAD", manual("    proposal = aes128gcm16\n    outbound {\n      spi = 256\n      enc_key = 0x" + strings.Repeat("00", 20) + "\n      integ_key = 0x00\n    }\n    inbound {\n      spi = 257\n      enc_key = 0x" + strings.Repeat("00", 20) + "\n    }\n"),
			`swanctl.conf:9: manual.m.outbound.integ_key: not used: aes128gcm16 is an AEAD algorithm and protects integrity itself; remove it`},
		{"manual missing keys", manual("    proposal = aes256-sha512\n    outbound {\n      spi = 256\n    }\n    inbound {\n      spi = 257\n      enc_key = 0x" + strings.Repeat("00", 32) + "\n      integ_key = " + key64 + "\n    }\n"),
			"swanctl.conf:6: manual.m.outbound: enc_key is required for aes256 (32 bytes)\n" +
				"swanctl.conf:6: manual.m.outbound: integ_key is required for sha512 (64 bytes)"},
		{"manual AH with enc_key", manual("    protocol = ah\n    proposal = sha512\n    outbound {\n      spi = 256\n      integ_key = " + key64 + "\n      enc_key = 0x00\n    }\n    inbound {\n      spi = 257\n      integ_key = " + key64 + "\n    }\n"),
			`swanctl.conf:10: manual.m.outbound.enc_key: not used: the proposal has no encryption algorithm; remove it`},
		{"manual NULL with enc_key", manual("    proposal = null-sha256\n    outbound {\n      spi = 256\n      enc_key = 0x00\n      integ_key = 0x" + strings.Repeat("00", 32) + "\n    }\n    inbound {\n      spi = 257\n      integ_key = 0x" + strings.Repeat("00", 32) + "\n    }\n"),
			`swanctl.conf:8: manual.m.outbound.enc_key: not used: null takes no key; remove it`},
		{"manual bad key hex", manual("    proposal = aes128gcm16\n    outbound {\n      spi = 256\n      enc_key = 0x0g\n    }\n    inbound {\n      spi = 257\n      enc_key = 00\n    }\n"),
			"swanctl.conf:8: manual.m.outbound.enc_key: invalid key (expected 0x followed by an even number of hex digits)\n" +
				"swanctl.conf:12: manual.m.inbound.enc_key: invalid key (expected 0x followed by hex digits)"},
		{"manual reserved SPI", manual("    proposal = aes128gcm16\n    outbound {\n      spi = 0xff\n      enc_key = 0x" + strings.Repeat("00", 20) + "\n    }\n    inbound {\n      spi = 0x100000000\n      enc_key = 0x" + strings.Repeat("00", 20) + "\n    }\n"),
			"swanctl.conf:7: manual.m.outbound.spi: SPI 255 is reserved (RFC 4303 §2.1 reserves 1-255, 0 is invalid); use 256 or more\n" +
				"swanctl.conf:11: manual.m.inbound.spi: 0x100000000 is out of range (at most 4294967295)"},
		{"manual missing SPI", manual("    proposal = aes128gcm16\n    outbound {\n      enc_key = 0x" + strings.Repeat("00", 20) + "\n    }\n    inbound {\n      spi = 300\n      enc_key = 0x" + strings.Repeat("00", 20) + "\n    }\n"),
			`swanctl.conf:6: manual.m.outbound: spi is required`},
		{"manual two proposals", manual("    proposal = aes128gcm16, aes256gcm16\n"),
			"swanctl.conf:2: manual.m: the outbound section is required (with spi and keys)\n" +
				"swanctl.conf:2: manual.m: the inbound section is required (with spi and keys)\n" +
				`swanctl.conf:5: manual.m.proposal: a manual SA takes exactly one proposal, got 2 (aes128gcm16-noesn, aes256gcm16-noesn)`},
		{"manual alternatives", manual("    proposal = aes128-aes256-sha256\n"),
			"swanctl.conf:2: manual.m: the outbound section is required (with spi and keys)\n" +
				"swanctl.conf:2: manual.m: the inbound section is required (with spi and keys)\n" +
				`swanctl.conf:5: manual.m.proposal: a manual SA needs exactly one encryption algorithm, got 2 (aes128, aes256)`},
		{"manual DH", manual("    proposal = aes128gcm16-modp2048\n    outbound { spi = 256 }\n    inbound { spi = 257 }\n"),
			`swanctl.conf:5: manual.m.proposal: a manual SA has no key exchange; remove "modp2048"`},
		{"manual weak", manual("    proposal = 3des-md5\n    outbound { spi = 256 }\n    inbound { spi = 257 }\n"),
			`swanctl.conf:5: manual.m.proposal: "3des" is a weak algorithm, not offered (an IKEv1 connection can opt in with weak_algorithms = yes)`},
		{"manual gcm8", manual("    proposal = aes192gcm8\n    outbound { spi = 256 }\n    inbound { spi = 257 }\n"),
			`swanctl.conf:5: manual.m.proposal: "aes192gcm8" is not supported by goipsec yet`},
		{"manual CCM key", manual("    proposal = aes128ccm8\n    outbound { spi = 256\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n    inbound { spi = 257\n enc_key = 0x" + strings.Repeat("00", 19) + " }\n"),
			`swanctl.conf:7: manual.m.outbound.enc_key: aes128ccm8 needs 19 bytes (a 16-byte key and a 3-byte salt), got 20 bytes`},
		{"manual ESN conflict", manual("    proposal = aes128gcm16-esn\n    esn = no\n    outbound { spi = 256\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n    inbound { spi = 257\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n"),
			`swanctl.conf:6: manual.m.esn: esn = no contradicts the proposal "aes128gcm16-esn"`},
		{"manual ESN both", manual("    proposal = aes128gcm16-esn-noesn\n    outbound { spi = 256 }\n    inbound { spi = 257 }\n"),
			`swanctl.conf:5: manual.m.proposal: choose one of esn and noesn for a manual SA`},
		{"manual ports without encap", manual("    local_port = 4500\n    proposal = aes128gcm16\n    outbound { spi = 256\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n    inbound { spi = 257\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n"),
			`swanctl.conf:5: manual.m.local_port is only used with encap = yes`},
		{"manual AH encap", manual("    protocol = ah\n    encap = yes\n    proposal = sha256\n    outbound { spi = 256\n integ_key = 0x" + strings.Repeat("00", 32) + " }\n    inbound { spi = 257\n integ_key = 0x" + strings.Repeat("00", 32) + " }\n"),
			`swanctl.conf:6: manual.m.encap: AH cannot be encapsulated in UDP (RFC 3948 covers ESP only)`},
		{"manual transport family", manual("    mode = transport\n    local_ts = 2001:db8::/64\n    proposal = aes128gcm16\n    outbound { spi = 256\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n    inbound { spi = 257\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n"),
			`swanctl.conf:6: manual.m.local_ts: 2001:db8::/64 is not of the address family of the outer address 192.0.2.1, which transport mode requires`},
		{"manual duplicate SPI", "manual {\n" +
			"  a {\n    local_addrs = 192.0.2.1\n    remote_addrs = 192.0.2.2\n    proposal = aes128gcm16\n    outbound { spi = 0x1001\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n    inbound { spi = 0x2001\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n  }\n" +
			"  b {\n    local_addrs = 192.0.2.1\n    remote_addrs = 192.0.2.3\n    proposal = aes128gcm16\n    outbound { spi = 0x1001\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n    inbound { spi = 0x2001\n enc_key = 0x" + strings.Repeat("00", 20) + " }\n  }\n}\n",
			`swanctl.conf:17: manual.b.inbound.spi: SPI 0x00002001 towards 192.0.2.1 is already used by manual.a.inbound.spi (swanctl.conf:8)`},

		// Daemon.
		{"daemon dataplane", "daemon {\n  dataplane = xfrm\n}\n", `swanctl.conf:2: daemon.dataplane: invalid value "xfrm" (expected userspace or kernel)`},
		{"daemon ports equal", "daemon {\n  natt_port = 500\n}\n", `swanctl.conf:2: daemon.natt_port: ike_port and natt_port must differ (both are 500)`},
		{"daemon tun name", "daemon {\n  tun_name = averyveryverylongname\n}\n", `swanctl.conf:2: daemon.tun_name: invalid interface name "averyveryverylongname" (at most 15 bytes, no '/', ':' or blanks)`},
		{"daemon mtu", "daemon {\n  mtu = 500\n}\n", `swanctl.conf:2: daemon.mtu: MTU 500 is below 576, the IPv4 minimum`},
		{"daemon fragment_size", "daemon {\n  fragment_size = 100\n}\n", `swanctl.conf:2: daemon.fragment_size: fragment size 100 is below 256`},
		{"daemon socket", "daemon {\n  vici_socket = run/x.sock\n}\n", `swanctl.conf:2: daemon.vici_socket: "run/x.sock" is not an absolute path`},
		{"daemon metrics", "daemon {\n  metrics_listen = 9100\n}\n", `swanctl.conf:2: daemon.metrics_listen: invalid listen address "9100" (expected host:port, e.g. 127.0.0.1:9100)`},
		{"daemon metrics port", "daemon {\n  metrics_listen = :http\n}\n", `swanctl.conf:2: daemon.metrics_listen: invalid port in listen address ":http"`},
		{"daemon retransmit", "daemon {\n  retransmit_timeout = 0\n  retransmit_base = 0.5\n}\n", "swanctl.conf:2: daemon.retransmit_timeout: must be more than 0\n" +
			`swanctl.conf:3: daemon.retransmit_base: invalid value "0.5" (expected a number from 1 to 10)`},
		{"daemon log", "daemon {\n  log {\n    level = verbose\n    formt = json\n  }\n}\n", "swanctl.conf:3: daemon.log.level: invalid value \"verbose\" (expected debug, info, warn or error)\n" +
			`swanctl.conf:4: unknown key "formt" in daemon.log; did you mean "format"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(tc.src)
			if tc.want == "" {
				if err != nil {
					t.Errorf("unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want\n%s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("got\n%v\nwant\n%s", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("%T does not unwrap to *config.Error", err)
			}
		})
	}
}

func TestErrorsAcrossFiles(t *testing.T) {
	files := fstest.MapFS{
		"swanctl.conf":  {Data: []byte("connections {\n  include conf.d/*.conf\n}\nbogus = 1\n")},
		"conf.d/a.conf": {Data: []byte("a {\n  local { auth = psk }\n  remote { auth = psk }\n  rekey_time = x\n}\n")},
	}
	_, err := (&Parser{FS: files}).Load("swanctl.conf")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("got %v", err)
	}
	// Errors are sorted by the order files were read, then by line.
	want := "swanctl.conf:4: unknown key \"bogus\" in the top level\nconf.d/a.conf:4: connections.a.rekey_time: invalid duration \"x\" (expected a number of seconds, or a number with s, m, h or d)"
	if err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if _, err := Load("/nonexistent/goipsec.conf"); err == nil || !strings.Contains(err.Error(), "cannot read the file") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"0", 0}, {"30", 30 * time.Second}, {"30s", 30 * time.Second}, {"5m", 5 * time.Minute}, {"4h", 4 * time.Hour}, {"2d", 48 * time.Hour}} {
		if d, err := parseDuration(tc.in); err != nil || d != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v", tc.in, d, err)
		}
	}
	for _, bad := range []string{"", "s", "1.5h", "+1", "1w", " 1"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) succeeded", bad)
		}
	}
	for in, want := range map[string]bool{"yes": true, "YES": true, "true": true, "1": true, "no": false, "False": false, "0": false} {
		if b, err := parseBool(in); err != nil || b != want {
			t.Errorf("parseBool(%q) = %v, %v", in, b, err)
		}
	}
	for in, want := range map[string]uint64{"0": 0, "42": 42, "0x10": 16, "0XfF": 255} {
		if n, err := parseUint(in, 1000); err != nil || n != want {
			t.Errorf("parseUint(%q) = %d, %v", in, n, err)
		}
	}
	for _, bad := range []string{"", "0x", "-1", "+1", "0x+1", "1e3", "1001"} {
		if _, err := parseUint(bad, 1000); err == nil {
			t.Errorf("parseUint(%q) succeeded", bad)
		}
	}
}

func TestIdentities(t *testing.T) {
	for _, tc := range []struct {
		in   string
		typ  IDType
		data []byte
	}{
		{"%any", IDAny, nil},
		{"192.0.2.1", IDIPv4, []byte{192, 0, 2, 1}},
		{"2001:db8::1", IDIPv6, netip.MustParseAddr("2001:db8::1").AsSlice()},
		{"ipv4:10.0.0.1", IDIPv4, []byte{10, 0, 0, 1}},
		{"ipv4:#0a000001", IDIPv4, []byte{10, 0, 0, 1}},
		{"moon.example.com", IDFQDN, []byte("moon.example.com")},
		{"@moon", IDFQDN, []byte("moon")},
		{"fqdn:moon", IDFQDN, []byte("moon")},
		{"carol@example.com", IDRFC822, []byte("carol@example.com")},
		{"@@carol", IDRFC822, []byte("carol")},
		{"email:carol@x", IDRFC822, []byte("carol@x")},
		{"@#0102ff", IDKeyID, []byte{1, 2, 0xff}},
		{"keyid:#01:02", IDKeyID, []byte{1, 2}},
		{"keyid:abc", IDKeyID, []byte("abc")},
	} {
		id, err := parseIdentity(tc.in)
		if err != nil || id.Type != tc.typ || !bytes.Equal(id.Data, tc.data) {
			t.Errorf("parseIdentity(%q) = %+v, %v; want type %d data %x", tc.in, id, err, tc.typ, tc.data)
		}
	}
	for in, want := range map[string]string{
		"ipv6:10.0.0.1":    `invalid identity "ipv6:10.0.0.1" (expected an IPv6 address)`,
		"ipv4:#0a00":       `invalid identity "ipv4:#0a00" (expected 4 bytes of hex)`,
		"asn1gn:#3000":     `identity "asn1gn:#3000": general names are not supported by goipsec yet`,
		"{23}:x":           `identity "{23}:x": numeric identity types are not supported by goipsec yet`,
		"@":                `invalid identity "@" (empty)`,
		"@#zz":             `invalid identity "@#zz" (expected hex after @#)`,
		"keyid:#":          `invalid identity "keyid:#" (expected hex after #)`,
		"CN=moon, XX=Test": `invalid identity "CN=moon, XX=Test": distinguished name "CN=moon, XX=Test": unknown attribute type "XX"`,
	} {
		_, err := parseIdentity(in)
		if err == nil || err.Error() != want {
			t.Errorf("parseIdentity(%q) error = %v, want %s", in, err, want)
		}
	}
}

// The key table must be well formed: unique paths, parents that exist and are sections, and the
// placeholders used consistently.
func TestKeyTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Keys() {
		if seen[k.Path] {
			t.Errorf("duplicate key %s", k.Path)
		}
		seen[k.Path] = true
		parent, _ := keyParent(k.Path)
		if parent == "" {
			continue
		}
		found := false
		for _, p := range Keys() {
			if p.Path == parent {
				found = true
				if !p.Section {
					t.Errorf("%s: parent %s is not a section", k.Path, parent)
				}
			}
		}
		if !found {
			t.Errorf("%s: parent %s is not in the table", k.Path, parent)
		}
		if k.Doc == "" {
			t.Errorf("%s has no doc", k.Path)
		}
	}
	// Keys returns a copy.
	ks := Keys()
	ks[0].Path = "changed"
	if Keys()[0].Path == "changed" {
		t.Error("Keys exposes the table")
	}
	for _, tc := range []struct{ parent, name, want string }{
		{"connections.<conn>", "local", "connections.<conn>.local<suffix>"},
		{"connections.<conn>", "local-2", "connections.<conn>.local<suffix>"},
		{"connections.<conn>", "local_addrs", "connections.<conn>.local_addrs"},
		{"connections", "anything", "connections.<conn>"},
		{"secrets.ike<suffix>", "id-peer", "secrets.ike<suffix>.id<suffix>"},
	} {
		if k, ok := lookupKey(tc.parent, tc.name); !ok || k.Path != tc.want {
			t.Errorf("lookupKey(%s, %s) = %s, %v", tc.parent, tc.name, k.Path, ok)
		}
	}
	for _, s := range []Support{Supported, NoEffect, DefaultOnly, NotSupported, 9} {
		if s.String() == "" {
			t.Errorf("Support(%d) has no name", s)
		}
	}
}

// Every setting with a literal default is loaded from that default without error when the key is
// absent; TestDefaults covers this through a whole configuration. Here every DefaultOnly key must
// accept its own default spelled out.
func TestDefaultOnlyAcceptsDefault(t *testing.T) {
	var conn, child strings.Builder
	for _, k := range Keys() {
		if k.Support != DefaultOnly {
			continue
		}
		parent, name := keyParent(k.Path)
		switch parent {
		case "connections.<conn>":
			conn.WriteString("    " + name + " = " + k.Default + "\n")
		case "connections.<conn>.children.<child>":
			child.WriteString("      " + name + " = " + k.Default + "\n")
		default:
			t.Errorf("DefaultOnly key %s is not covered by this test", k.Path)
		}
	}
	mustLoad(t, minimalConn(conn.String()+"    children {\n     c {\n"+child.String()+"     }\n    }\n"))
}

func FuzzLoad(f *testing.F) {
	f.Add(fullConfig)
	f.Add(minimalConn("    children { net { } }\n"))
	f.Add("manual {\n  m {\n    local_addrs = 192.0.2.1\n  }\n}\n")
	f.Add("secrets { ike-x { id = @x\n secret = 0sAA== } }\n")
	f.Add("daemon { log { level = debug } }\ninclude inc.conf\n")
	f.Fuzz(func(t *testing.T, src string) {
		files := fstest.MapFS{
			"swanctl.conf": {Data: []byte(src)},
			"inc.conf":     {Data: []byte("daemon { mtu = 1300 }\n")},
		}
		cfg, err := (&Parser{FS: files}).Load("swanctl.conf")
		if err != nil {
			var ce *Error
			if cfg != nil || !errors.As(err, &ce) {
				t.Fatalf("Load returned %v, %T %v", cfg, err, err)
			}
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("internal error: %v", err)
			}
			return
		}
		if cfg.Daemon.MTU < 576 || cfg.Daemon.TunName == "" {
			t.Fatalf("daemon settings not filled: %+v", cfg.Daemon)
		}
		for _, m := range cfg.Manual {
			if m.Outbound.SPI < minSPI || m.Inbound.SPI < minSPI {
				t.Fatalf("manual SA with reserved SPI: %+v", m)
			}
		}
	})
}

// docs/configuration.md embeds Reference() between two markers. Run the test with
// GOIPSEC_UPDATE_DOCS=1 to rewrite that part after changing the key table.
func TestReferenceDoc(t *testing.T) {
	const path = "../docs/configuration.md"
	const begin, end = "<!-- BEGIN GENERATED: config.Reference() -->\n", "<!-- END GENERATED -->\n"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-section markers", path)
	}
	want := s[:i+len(begin)] + Reference() + s[j:]
	if os.Getenv("GOIPSEC_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != s {
		t.Errorf("%s is out of date with the key table; run GOIPSEC_UPDATE_DOCS=1 go test ./config -run TestReferenceDoc", path)
	}
	// Every default proposal string the docs quote must be the real one.
	for _, d := range []string{proposal.DefaultIKEString, proposal.DefaultESPString, proposal.DefaultAHString} {
		if !strings.Contains(s, d) {
			t.Errorf("%s does not quote the default proposals %q", path, d)
		}
	}
}

func TestLogSubsystemLevels(t *testing.T) {
	tree, err := Parse("s.conf", []byte("daemon {\n  log {\n    ike = debug\n    vici = error\n  }\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := FromTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Daemon.Log.Subsystems, map[string]string{"ike": "debug", "vici": "error"}) {
		t.Fatalf("subsystems %v", cfg.Daemon.Log.Subsystems)
	}
	tree, err = Parse("s.conf", []byte("daemon {\n  log {\n    ike = loud\n  }\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromTree(tree); err == nil || !strings.Contains(err.Error(), "s.conf:3:") {
		t.Fatalf("bad level accepted or error without position: %v", err)
	}
}

// TestIKEv1WeakOptIn: version = 1 with weak_algorithms = yes admits 3DES, SHA-1 and MODP1024 in
// both proposal lists; without the opt-in the same proposals are refused.
func TestIKEv1WeakOptIn(t *testing.T) {
	src := minimalConn("    version = 1\n    aggressive = yes\n    weak_algorithms = yes\n    proposals = 3des-sha1-modp1024\n" +
		"    children { l2tp { esp_proposals = 3des-sha1, aes128-sha1\n mode = transport } }\n")
	c := mustLoad(t, src).Connections[0]
	if c.Version != 1 || !c.Aggressive || !c.WeakAlgorithms || c.Proposals[0].String() != "3des-sha1-prfsha1-modp1024" ||
		c.Children[0].ESPProposals[0].String() != "3des-sha1-noesn" {
		t.Fatalf("loaded %+v / %v / %v", c, c.Proposals, c.Children[0].ESPProposals)
	}
	if _, err := load(strings.Replace(src, "weak_algorithms = yes", "weak_algorithms = no", 1)); err == nil ||
		!strings.Contains(err.Error(), `"3des" is a weak algorithm`) {
		t.Fatalf("without the opt-in: %v", err)
	}
}

func TestL2TPSection(t *testing.T) {
	cfg := mustLoad(t, `pools {
  clients { addrs = 10.3.0.0/24
            dns = 10.3.0.53, 10.3.0.54 }
}
l2tp {
  lns { pool = clients
        auth = pap, chap }
  lac-office { remote = 192.0.2.2
               user = bob }
}
secrets {
  eap-bob { id = bob
            secret = pw }
}
`)
	p := cfg.Pools[0]
	if p.Start.String() != "10.3.0.1" || p.End.String() != "10.3.0.254" || len(p.DNS) != 2 {
		t.Fatalf("pool %+v", p)
	}
	if l := cfg.L2TP.LNS; l.Pool != "clients" || len(l.Auth) != 2 || l.Auth[0] != "pap" || l.MRU != 1360 || l.Port != 1701 {
		t.Fatalf("lns %+v", l)
	}
	if c := cfg.L2TP.LACs[0]; c.Remote.String() != "192.0.2.2:1701" || c.User != "bob" || !c.Auto {
		t.Fatalf("lac %+v", c)
	}
	if u := cfg.Secrets.Users[0]; u.IDs[0] != "bob" || string(u.Secret) != "pw" {
		t.Fatalf("user %+v", u)
	}
}

// The XFRM-only child keys: read with the kernel data plane, refused (naming the key) with the
// userspace one, %unique refused as not supported.
func TestKernelPolicyKeys(t *testing.T) {
	child := "    children { net {\n      if_id_in = 42\n      if_id_out = 0x2b\n      mark_in = 0x10/0xf0\n      mark_out = 7\n" +
		"      interface = eth1\n      policies_fwd_out = yes\n      priority = 1234\n    } }\n"
	cfg := mustLoad(t, "daemon {\n  dataplane = kernel\n}\n"+minimalConn(child))
	ch := cfg.Connections[0].Children[0]
	if ch.IfIDIn != 42 || ch.IfIDOut != 43 || ch.MarkIn != (Mark{0x10, 0xf0}) || ch.MarkOut != (Mark{7, 0xffffffff}) ||
		ch.Interface != "eth1" || !ch.PoliciesFwdOut || ch.Priority != 1234 {
		t.Fatalf("child %+v", ch)
	}
	_, err := load(minimalConn(child))
	if err == nil || !strings.Contains(err.Error(), "swanctl.conf:7: connections.home.children.net.if_id_in is not supported by the userspace data plane: it needs daemon { dataplane = kernel }") ||
		!strings.Contains(err.Error(), "swanctl.conf:12: connections.home.children.net.policies_fwd_out is not supported") {
		t.Fatalf("userspace data plane with XFRM keys: %v", err)
	}
	if strings.Contains(err.Error(), "priority") {
		t.Fatalf("priority works with both data planes: %v", err)
	}
	for _, bad := range []struct{ line, want string }{
		{"if_id_in = %unique", "%unique is not supported by goipsec yet"},
		{"mark_out = 0x11/0x10", "mark 0x11 has bits outside its mask 0x10"},
		{"interface = a/b", `invalid interface name "a/b"`},
	} {
		_, err := load("daemon {\n  dataplane = kernel\n}\n" + minimalConn("    children { net {\n      "+bad.line+"\n    } }\n"))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("%s: %v, want %q", bad.line, err, bad.want)
		}
	}
	// The defaults spelled out load with the userspace data plane too.
	mustLoad(t, minimalConn("    children { net {\n      mark_in = 0/0x00000000\n      if_id_out = 0\n      policies_fwd_out = no\n    } }\n"))
}

// TestMSSClamp: mss_clamp defaults to auto in tunnel mode and off in transport mode; auto, yes,
// no and a number of bytes are understood, in children and manual SAs.
func TestMSSClamp(t *testing.T) {
	cfg := mustLoad(t, minimalConn("    children {\n tun { }\n tr { mode = transport }\n fixed { mss_clamp = 1300 }\n"+
		" off { mss_clamp = no }\n trauto { mode = transport\n mss_clamp = yes }\n }\n"))
	want := map[string]MSSClamp{"tun": {Auto: true}, "tr": {}, "fixed": {Bytes: 1300}, "off": {}, "trauto": {Auto: true}}
	for _, ch := range cfg.Connections[0].Children {
		if ch.MSSClamp != want[ch.Name] {
			t.Errorf("child %s: %+v, want %+v", ch.Name, ch.MSSClamp, want[ch.Name])
		}
	}
	m := mustLoad(t, "manual {\n m {\n local_addrs = 192.0.2.1\n remote_addrs = 192.0.2.2\n proposal = aes256gcm16\n mss_clamp = 1200\n"+
		" outbound { spi = 0x1001\n enc_key = 0x"+strings.Repeat("00", 36)+" }\n inbound { spi = 0x1002\n enc_key = 0x"+strings.Repeat("00", 36)+" }\n }\n}\n")
	if got := m.Manual[0].MSSClamp; got != (MSSClamp{Bytes: 1200}) {
		t.Errorf("manual SA: %+v", got)
	}
}

func TestXAuthAndPools(t *testing.T) {
	src := "pools {\n  vpn { addrs = 10.5.0.0/24 }\n}\n" + strings.Replace(minimalConn("    version = 1\n    pools = vpn\n"),
		"    remote { auth = psk }\n", "    remote { auth = psk }\n    remote-xauth { auth = xauth }\n", 1)
	c := mustLoad(t, src).Connections[0]
	if !c.Remote.XAuth || len(c.Pools) != 1 || c.Pools[0] != "vpn" {
		t.Fatalf("connection %+v", c)
	}
	if _, err := load(strings.Replace(src, "version = 1", "version = 2", 1)); err == nil || !strings.Contains(err.Error(), "xauth needs version = 1") {
		t.Fatalf("XAuth with IKEv2: %v", err)
	}
	if _, err := load(strings.Replace(src, "pools = vpn", "pools = vpn\n    encap = tcp", 1)); err == nil || !strings.Contains(err.Error(), "not available with version = 1") {
		t.Fatalf("IKEv1 in TCP: %v", err)
	}
	if _, err := load(strings.Replace(src, "pools = vpn", "pools = nope", 1)); err == nil || !strings.Contains(err.Error(), `no pool named "nope"`) {
		t.Fatalf("unknown pool: %v", err)
	}
}

// TestChildProposalsOrder: ah_proposals alone replace the default ESP proposals; with both keys
// the child offers both lists as alternatives in the order the keys are written, as strongSwan
// does (its vici plugin keeps one list in the order swanctl sends the keys: the file's order).
func TestChildProposalsOrder(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"ah_proposals = sha256-sha512", "AH:sha256-sha512-noesn"},
		{"ah_proposals = sha384-esn\n esp_proposals = aes128gcm16", "AH:sha384-esn, ESP:aes128gcm16-noesn"},
		{"esp_proposals = aes128gcm16\n ah_proposals = sha384-x25519", "ESP:aes128gcm16-noesn, AH:sha384-x25519-noesn"},
		{"mode = transport", "ESP:" + strings.ReplaceAll(proposal.DefaultESPString, ", ", "-noesn, ESP:") + "-noesn"},
	} {
		cfg := mustLoad(t, minimalConn("    children { net {\n "+tc.body+"\n } }\n"))
		var got []string
		for _, p := range cfg.Connections[0].Children[0].Proposals() {
			got = append(got, p.Protocol.String()+":"+p.String())
		}
		if strings.Join(got, ", ") != tc.want {
			t.Errorf("%q: proposals %s, want %s", tc.body, strings.Join(got, ", "), tc.want)
		}
	}
}

// TestUserSecretWithoutID: main required an id in eap/xauth secrets (a PPP user needs a name);
// remote access also uses an id-less one as our own EAP password (strongSwan's unbound secret).
// It loads, serves UserPassword for any name, and a named secret wins.
func TestUserSecretWithoutID(t *testing.T) {
	cfg, err := load("secrets {\n  eap-any { secret = x }\n  eap-carol { id = carol\n secret = y }\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Secrets.Users) != 2 || len(cfg.Secrets.Users[0].IDs) != 0 {
		t.Fatalf("users %+v", cfg.Secrets.Users)
	}
	if pw, ok := cfg.Secrets.UserPassword("dave"); !ok || string(pw) != "x" {
		t.Fatalf("unbound secret for dave: %q %v", pw, ok)
	}
	if pw, ok := cfg.Secrets.UserPassword("carol"); !ok || string(pw) != "y" {
		t.Fatalf("carol: %q %v", pw, ok)
	}
}
