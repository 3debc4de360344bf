package config

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Daemon holds the settings of the goipsec process (daemon { }).
type Daemon struct {
	// Dataplane is "userspace" (TUN + UDP, goipsec's own ESP/AH) or "kernel" (Linux XFRM).
	Dataplane     string
	TunName       string
	MTU           int
	VICISocket    string // empty: no control socket
	MetricsListen string // host:port, empty: no metrics endpoint
	IKEPort       uint16
	NATTPort      uint16
	// TCPListen are the TCP ports accepting IKE and ESP in TCP (RFC 9329).
	TCPListen []uint16
	// NoRawESPRing (raw_esp_ring = no) sends raw ESP through the raw IP socket alone, not through an
	// AF_PACKET TX ring (userspace data plane).
	NoRawESPRing bool
	// RawESPXDP (raw_esp_xdp = yes) receives raw ESP through AF_XDP sockets fed by an XDP program
	// on the interfaces the inbound raw ESP SAs' packets arrive on (userspace data plane).
	RawESPXDP bool
	// Retransmission of IKE requests: the n-th retransmission (from 0) waits
	// RetransmitTimeout * RetransmitBase^n, at most RetransmitLimit when that is not 0, and the
	// request fails after RetransmitTries retransmissions.
	RetransmitTimeout time.Duration
	RetransmitBase    float64
	RetransmitTries   int
	RetransmitLimit   time.Duration
	// FragmentSize is the largest IKE message (UDP payload) sent whole to a peer that supports
	// IKEv2 fragmentation (RFC 7383); larger ones leave in fragments of at most this size.
	FragmentSize int
	// FwMark marks goipsec's own packets; RouteTable holds the routes into the TUN device and
	// RulePriority is the priority of the rule "not fwmark FwMark lookup RouteTable".
	FwMark       uint32
	RouteTable   uint32
	RulePriority uint32
	Log          Log
	// StateDir keeps pool leases across restarts (empty: memory only); ResolvConf receives the
	// DNS servers of a virtual IP (empty: DNS untouched); UpdownTimeout bounds updown scripts.
	StateDir      string
	ResolvConf    string
	UpdownTimeout time.Duration
}

// Log holds the logging settings (daemon.log { }).
type Log struct {
	Level      string // debug, info, warn or error
	Format     string // text or json
	KeylogFile string // empty: no key log
	// Subsystems overrides Level per subsystem (cfg, ike, net, enc, esp, vici, dataplane), like
	// strongSwan's charondebug.
	Subsystems map[string]string
}

// LogSubsystems are the subsystems whose log level can be set on its own.
var LogSubsystems = []string{"cfg", "ike", "net", "enc", "esp", "vici", "dataplane"}

// minFragmentSize leaves room for content in a fragment after the IKE header, the SKF payload
// header, an IV of up to 16 bytes, padding and an ICV of up to 32 bytes (RFC 7383 §2.5).
const minFragmentSize = 256

// maxIfNameLen is the longest Linux interface name (IFNAMSIZ 16 including the NUL byte).
const maxIfNameLen = 15

func (l *loader) daemon(sec *Section) Daemon {
	const pattern = "daemon"
	if sec != nil {
		l.check(sec, pattern)
	}
	var d Daemon
	d.Dataplane = l.enum(sec, pattern, "dataplane", "userspace", "kernel")
	d.TunName = parsed(l, sec, pattern, "tun_name", func(s string) (string, error) {
		if len(s) > maxIfNameLen || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n") {
			return "", fmt.Errorf("invalid interface name %q (at most %d bytes, no '/', ':' or blanks)", s, maxIfNameLen)
		}
		return s, nil
	})
	d.MTU = int(parsed(l, sec, pattern, "mtu", func(s string) (uint64, error) {
		n, err := parseUint(s, math.MaxUint16)
		if err == nil && n < 576 {
			err = fmt.Errorf("MTU %d is below 576, the IPv4 minimum", n)
		}
		return n, err
	}))
	absOrEmpty := func(s string) (string, error) {
		if s != "" && !filepath.IsAbs(s) {
			return "", fmt.Errorf("%q is not an absolute path", s)
		}
		return s, nil
	}
	d.StateDir = parsed(l, sec, pattern, "state_dir", absOrEmpty)
	d.ResolvConf = parsed(l, sec, pattern, "resolv_conf", absOrEmpty)
	d.UpdownTimeout = l.duration(sec, pattern, "updown_timeout")
	d.VICISocket = parsed(l, sec, pattern, "vici_socket", func(s string) (string, error) {
		if s != "" && !filepath.IsAbs(s) {
			return "", fmt.Errorf("%q is not an absolute path", s)
		}
		return s, nil
	})
	d.MetricsListen = parsed(l, sec, pattern, "metrics_listen", func(s string) (string, error) {
		if s == "" {
			return s, nil
		}
		_, port, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("invalid listen address %q (expected host:port, e.g. 127.0.0.1:9100)", s)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", fmt.Errorf("invalid port in listen address %q", s)
		}
		return s, nil
	})
	d.IKEPort = l.port(sec, pattern, "ike_port")
	d.TCPListen = parsed(l, sec, pattern, "tcp_listen", parsePortList)
	d.NATTPort = l.port(sec, pattern, "natt_port")
	d.NoRawESPRing = !l.boolean(sec, pattern, "raw_esp_ring")
	d.RawESPXDP = l.boolean(sec, pattern, "raw_esp_xdp")
	if d.IKEPort == d.NATTPort {
		kv := explicit(sec, "natt_port")
		if kv == nil {
			kv = explicit(sec, "ike_port")
		}
		l.valueError(kv, fmt.Errorf("ike_port and natt_port must differ (both are %d)", d.IKEPort))
	}
	d.RetransmitTimeout = l.duration(sec, pattern, "retransmit_timeout")
	if d.RetransmitTimeout == 0 {
		l.valueError(explicit(sec, "retransmit_timeout"), fmt.Errorf("must be more than 0"))
	}
	d.RetransmitBase = parsed(l, sec, pattern, "retransmit_base", func(s string) (float64, error) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < 1 || f > 10 {
			return 0, fmt.Errorf("invalid value %q (expected a number from 1 to 10)", s)
		}
		return f, nil
	})
	d.RetransmitTries = int(l.number(sec, pattern, "retransmit_tries", 100))
	d.RetransmitLimit = l.duration(sec, pattern, "retransmit_limit")
	d.FragmentSize = int(parsed(l, sec, pattern, "fragment_size", func(s string) (uint64, error) {
		n, err := parseUint(s, math.MaxUint16)
		if err == nil && n < minFragmentSize {
			err = fmt.Errorf("fragment size %d is below %d", n, minFragmentSize)
		}
		return n, err
	}))
	d.FwMark = uint32(l.number(sec, pattern, "fwmark", math.MaxUint32))
	d.RouteTable = uint32(l.number(sec, pattern, "route_table", math.MaxUint32))
	d.RulePriority = uint32(l.number(sec, pattern, "rule_priority", math.MaxUint32))

	var logSec *Section
	if sec != nil {
		logSec = sec.Section("log")
	}
	const logPattern = "daemon.log"
	if logSec != nil {
		l.check(logSec, logPattern)
	}
	d.Log.Level = l.enum(logSec, logPattern, "level", "debug", "info", "warn", "error")
	d.Log.Format = l.enum(logSec, logPattern, "format", "text", "json")
	d.Log.KeylogFile, _ = l.value(logSec, logPattern, "keylog_file")
	for _, sub := range LogSubsystems {
		v := parsed(l, logSec, logPattern, sub, func(s string) (string, error) {
			if s == "" {
				return "", nil
			}
			return parseEnum(s, "debug", "info", "warn", "error")
		})
		if v != "" {
			if d.Log.Subsystems == nil {
				d.Log.Subsystems = map[string]string{}
			}
			d.Log.Subsystems[sub] = v
		}
	}
	return d
}

// parsePortList reads a comma separated list of ports ("4500, 443"); empty is no port.
func parsePortList(s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := parseUint(f, math.MaxUint16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q in %q (expected ports 1-65535, comma separated)", f, s)
		}
		for _, p := range out {
			if p == uint16(n) {
				return nil, fmt.Errorf("port %d is listed twice", n)
			}
		}
		out = append(out, uint16(n))
	}
	return out, nil
}
