package daemon

import (
	"strings"
	"testing"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
)

// TestClampMSSWiring: mss_clamp reaches the data plane's SAParams, for manual SAs and for the
// children of IKE connections (by child name).
func TestClampMSSWiring(t *testing.T) {
	key := "0x" + strings.Repeat("00", 36)
	tree, err := config.Parse("swanctl.conf", []byte("manual {\n m {\n local_addrs = 192.0.2.1\n remote_addrs = 192.0.2.2\n proposal = aes256gcm16\n"+
		" outbound { spi = 0x1001\n enc_key = "+key+" }\n inbound { spi = 0x1002\n enc_key = "+key+" }\n }\n"+
		" t {\n local_addrs = 192.0.2.1\n remote_addrs = 192.0.2.3\n mode = transport\n proposal = aes256gcm16\n mss_clamp = 1300\n"+
		" outbound { spi = 0x1003\n enc_key = "+key+" }\n inbound { spi = 0x1004\n enc_key = "+key+" }\n }\n}\n"+
		"connections {\n c {\n remote_addrs = 192.0.2.2\n local { auth = psk }\n remote { auth = psk }\n"+
		" children {\n tun { }\n tr { mode = transport }\n }\n }\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cfg.Manual {
		out, in, _, err := manualParams(m, 1400)
		if err != nil {
			t.Fatal(err)
		}
		want := dataplane.ClampMSSAuto
		if m.Name == "t" {
			want = 1300
		}
		if out.ClampMSS != want || in.ClampMSS != want {
			t.Errorf("manual %s: ClampMSS out %d in %d, want %d", m.Name, out.ClampMSS, in.ClampMSS, want)
		}
	}
	conn := &connection{cfg: cfg.Connections[0]}
	if got := childClampMSS(conn, "tun"); got != dataplane.ClampMSSAuto {
		t.Errorf("tunnel child: %d, want auto", got)
	}
	if got := childClampMSS(conn, "tr"); got != 0 {
		t.Errorf("transport child: %d, want 0", got)
	}
	if got := childClampMSS(conn, "unknown"); got != 0 {
		t.Errorf("unconfigured child: %d, want 0", got)
	}
}
