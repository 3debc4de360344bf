package config

import (
	"strings"
	"testing"
)

// TestPPKAndTCPKeys: ppk_id, ppk_required, ppk_intermediate, secrets ppk<suffix>, encap = tcp,
// tcp_port and daemon.tcp_listen load into the model with their defaults.
func TestPPKAndTCPKeys(t *testing.T) {
	cfg := mustLoad(t, minimalConn("    encap = tcp\n    tcp_port = 443\n    ppk_id = ppk-one\n    ppk_required = yes\n    ppk_intermediate = no\n    children { net { } }\n")+
		"secrets {\n  ppk-a {\n    id = ppk-one\n    id-2 = ppk-two\n    secret = 0x000102030405060708090a0b0c0d0e0f\n  }\n}\n"+
		"daemon {\n  tcp_listen = 4500, 443\n}\n")
	c := cfg.Connections[0]
	if !c.EncapTCP || c.Encap || c.TCPPort != 443 || c.PPKID != "ppk-one" || !c.PPKRequired || c.PPKIntermediate {
		t.Fatalf("connection %+v", c)
	}
	if len(cfg.Secrets.PPK) != 1 || strings.Join(cfg.Secrets.PPK[0].IDs, ",") != "ppk-one,ppk-two" || len(cfg.Secrets.PPK[0].Secret) != 16 {
		t.Fatalf("PPK secrets %+v", cfg.Secrets.PPK)
	}
	if l := cfg.Daemon.TCPListen; len(l) != 2 || l[0] != 4500 || l[1] != 443 {
		t.Fatalf("tcp_listen %v", l)
	}
	d := mustLoad(t, minimalConn("    children { net { } }\n"))
	if c := d.Connections[0]; c.EncapTCP || c.TCPPort != 4500 || c.PPKID != "" || c.PPKRequired || !c.PPKIntermediate || len(d.Daemon.TCPListen) != 0 {
		t.Fatalf("defaults %+v, tcp_listen %v", c, d.Daemon.TCPListen)
	}
}

func TestPPKAndTCPErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"ppk without id", minimalConn("") + "secrets {\n  ppk-a {\n    secret = abc\n  }\n}\n",
			"swanctl.conf:9: secrets.ppk-a: a PPK needs its identity (id = the ppk_id of the connections that use it)"},
		{"bad encap", minimalConn("    encap = udp\n"), `swanctl.conf:6: connections.home.encap: invalid value "udp" (expected yes, no or tcp)`},
		{"bad ppk_intermediate", minimalConn("    ppk_intermediate = maybe\n"), `swanctl.conf:6: connections.home.ppk_intermediate: invalid value "maybe" (expected yes or no)`},
		{"bad tcp_listen", minimalConn("") + "daemon {\n  tcp_listen = 4500, http\n}\n",
			`swanctl.conf:9: daemon.tcp_listen: invalid port "http" in "4500, http" (expected ports 1-65535, comma separated)`},
		{"twice", minimalConn("") + "daemon {\n  tcp_listen = 443, 443\n}\n", `swanctl.conf:9: daemon.tcp_listen: port 443 is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestRawESPRingKey: daemon.raw_esp_ring is on by default, off with "no", and anything but yes or
// no is an error naming file:line.
func TestRawESPRingKey(t *testing.T) {
	if d := mustLoad(t, minimalConn("    children { net { } }\n")); d.Daemon.NoRawESPRing {
		t.Fatal("raw_esp_ring is off by default")
	}
	if d := mustLoad(t, "daemon {\n  raw_esp_ring = no\n}\n"); !d.Daemon.NoRawESPRing {
		t.Fatal("raw_esp_ring = no did not turn the ring off")
	}
	_, err := load("daemon {\n  raw_esp_ring = maybe\n}\n")
	if want := `swanctl.conf:2: daemon.raw_esp_ring: invalid value "maybe" (expected yes or no)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %s", err, want)
	}
}
