package userspace

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
)

// TestTooBig: with a TUN MTU above what the path carries once encapsulated, packets that may not
// be fragmented are refused with an ICMP "fragmentation needed" (IPv4) or ICMPv6 "packet too big"
// that the sender's kernel acts on: ping reports the smaller MTU, the drops are counted, and TCP
// adapts its segment size and gets through.
func TestTooBig(t *testing.T) {
	for _, inner6 := range []bool{false, true} {
		name, family := "inner4", "-4"
		if inner6 {
			name, family = "inner6", "-6"
		}
		t.Run(name, func(t *testing.T) {
			a, b := newPairWith(t, Config{MTU: 1600})
			sc := scenario{name: "toobig", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36, inner6: inner6}
			inst := install(t, sc, a, b)
			var out string
			for i := 0; i < 3; i++ {
				o, _ := a.ns.Exec("ping", family, "-M", "do", "-s", "1550", "-c", "1", "-W", "1", inst.dst.String())
				out += o
			}
			if !strings.Contains(out, "mtu") && !strings.Contains(out, "Frag needed") && !strings.Contains(out, "Packet too big") {
				t.Fatalf("ping with DF did not learn a smaller MTU:\n%s", out)
			}
			st, _ := a.eng.SAStats(dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x1001, Dst: inst.outerB})
			if st.Drops[dataplane.DropTooBig] == 0 {
				t.Fatalf("no too_big drop counted: %v", st.Drops)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7790), 2<<20); err != nil {
				t.Fatalf("TCP through the tunnel after PMTU discovery: %v", err)
			}
		})
	}
}
