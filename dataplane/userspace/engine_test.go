package userspace

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
	"github.com/goipsec/goipsec/ts"
)

// requireNetTests fails (never skips, except in -short mode) when the namespace tests cannot run:
// CI installs everything they need, so a missing piece there is an error.
func requireNetTests(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode: this namespace test runs without -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("namespace tests need root (network namespaces, TUN); run `sudo make test`, or -short to leave them out")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("iproute2 (`ip`) is missing: scripts/deps.sh installs it")
	}
}

type side struct {
	ns      *netlab.NS
	outer   netip.Addr
	inner   netip.Addr
	inner6  netip.Addr
	subnet  netip.Prefix
	subnet6 netip.Prefix
	eng     *Engine
}

// newPair makes two namespaces joined by a veth with IPv4 and IPv6 outer addresses, an inner IPv4
// and IPv6 subnet on each side's loopback, and an engine in each.
func newPair(t testing.TB) (a, b *side) {
	t.Helper()
	return newPairWith(t, Config{})
}

// newPairWith is newPair with an engine configuration (the TUN name and ports stay the defaults).
func newPairWith(t testing.TB, cfg Config) (a, b *side) {
	t.Helper()
	requireNetTests(t)
	var id [3]byte
	rand.Read(id[:])
	a = &side{outer: netip.MustParseAddr("192.0.2.1"), inner: netip.MustParseAddr("10.1.0.1"), subnet: netip.MustParsePrefix("10.1.0.0/24"),
		inner6: netip.MustParseAddr("fd01::1"), subnet6: netip.MustParsePrefix("fd01::/64")}
	b = &side{outer: netip.MustParseAddr("192.0.2.2"), inner: netip.MustParseAddr("10.2.0.1"), subnet: netip.MustParsePrefix("10.2.0.0/24"),
		inner6: netip.MustParseAddr("fd02::1"), subnet6: netip.MustParsePrefix("fd02::/64")}
	for i, s := range []*side{a, b} {
		ns, err := netlab.NewNS(fmt.Sprintf("gu%x%c", id, 'a'+i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Delete() })
		s.ns = ns
	}
	if err := netlab.Link(a.ns, "veth0", []string{"192.0.2.1/24", "2001:db8::1/64"}, b.ns, "veth0", []string{"192.0.2.2/24", "2001:db8::2/64"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*side{a, b} {
		for _, addr := range []string{netip.PrefixFrom(s.inner, 24).String(), netip.PrefixFrom(s.inner6, 64).String()} {
			if err := s.ns.AddAddr("lo", addr); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ns.Do(func() error {
			var err error
			s.eng, err = New(cfg)
			return err
		}); err != nil {
			t.Fatalf("engine in %s: %v", s.ns.Name, err)
		}
		eng := s.eng
		t.Cleanup(func() { eng.Close() })
	}
	return a, b
}

type scenario struct {
	name       string
	proto      dataplane.Protocol
	mode       dataplane.Mode
	encap      bool
	enc        esp.Encryption
	encKeyLen  int
	integ      esp.Integrity
	integLen   int
	esn        bool
	outer6     bool // IPv6 outer addresses
	inner6     bool // IPv6 inner traffic (tunnel mode)
	tfcPadding int
	clampMSS   int
}

func randKey(n int) []byte {
	k := make([]byte, n)
	rand.Read(k)
	return k
}

// installed describes a scenario set up between two sides.
type installed struct {
	src, dst       netip.Addr // addresses to send test traffic between (a to b)
	outerA, outerB netip.Addr
	keys           map[uint32][2][]byte // SPI → encryption key, integrity key
}

// install sets up both directions between a and b for sc (SPI 0x1001 from a to b, 0x2001 back).
func install(t testing.TB, sc scenario, a, b *side) installed {
	t.Helper()
	outerA, outerB := a.outer, b.outer
	if sc.outer6 {
		outerA, outerB = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	}
	keys := map[uint32][2][]byte{
		0x1001: {randKey(sc.encKeyLen), randKey(sc.integLen)},
		0x2001: {randKey(sc.encKeyLen), randKey(sc.integLen)},
	}
	res := installed{outerA: outerA, outerB: outerB, keys: keys}
	setup := func(local, remote *side, lOuter, rOuter netip.Addr, outSPI, inSPI uint32) {
		var lts, rts []ts.Selector
		switch {
		case sc.mode == dataplane.Transport:
			lts, rts = []ts.Selector{ts.Host(lOuter)}, []ts.Selector{ts.Host(rOuter)}
		case sc.inner6:
			lts, rts = []ts.Selector{ts.FromPrefix(local.subnet6)}, []ts.Selector{ts.FromPrefix(remote.subnet6)}
		default:
			lts, rts = []ts.Selector{ts.FromPrefix(local.subnet)}, []ts.Selector{ts.FromPrefix(remote.subnet)}
		}
		base := dataplane.SAParams{Name: sc.name, Protocol: sc.proto, Mode: sc.mode, Encap: sc.encap,
			SrcPort: 4500, DstPort: 4500, Encryption: sc.enc, Integrity: sc.integ, ESN: sc.esn,
			TFCPadding: sc.tfcPadding, Local: lts, Remote: rts, ClampMSS: sc.clampMSS}
		out, in := base, base
		out.Direction, out.SPI, out.Src, out.Dst = dataplane.Out, outSPI, lOuter, rOuter
		out.EncKey, out.IntegKey = keys[outSPI][0], keys[outSPI][1]
		in.Direction, in.SPI, in.Src, in.Dst = dataplane.In, inSPI, rOuter, lOuter
		in.EncKey, in.IntegKey = keys[inSPI][0], keys[inSPI][1]
		if sc.proto == dataplane.AH {
			out.EncKey, in.EncKey, out.Encryption, in.Encryption = nil, nil, 0, 0
		}
		for _, p := range []dataplane.SAParams{out, in} {
			if err := local.eng.InstallSA(p); err != nil {
				t.Fatalf("InstallSA: %v", err)
			}
		}
		if _, err := local.eng.InstallPolicy(dataplane.PolicyParams{Name: sc.name, Local: lts, Remote: rts, Action: dataplane.Protect,
			SA: dataplane.SAKey{Protocol: sc.proto, SPI: outSPI, Dst: rOuter}, Route: true, Mode: sc.mode}); err != nil {
			t.Fatalf("InstallPolicy: %v", err)
		}
	}
	setup(a, b, outerA, outerB, 0x1001, 0x2001)
	setup(b, a, outerB, outerA, 0x2001, 0x1001)
	switch {
	case sc.mode == dataplane.Transport:
		res.src, res.dst = outerA, outerB
	case sc.inner6:
		res.src, res.dst = a.inner6, b.inner6
	default:
		res.src, res.dst = a.inner, b.inner
	}
	return res
}

// TestMultiQueue runs traffic through engines with three pipelines (TUN queues and NAT-T sockets),
// more than the default on a two-CPU machine.
func TestMultiQueue(t *testing.T) {
	for _, sc := range []scenario{
		{name: "esp-tunnel-udp-aes256gcm", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36},
		{name: "ah-transport-sha256", proto: dataplane.AH, mode: dataplane.Transport, integ: esp.IntegHMACSHA2_256_128, integLen: 32},
	} {
		t.Run(sc.name, func(t *testing.T) {
			a, b := newPairWith(t, Config{Queues: 3})
			inst := install(t, sc, a, b)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7778), 4<<20); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTunnels(t *testing.T) {
	scenarios := []scenario{
		{name: "esp-tunnel-udp-aes256gcm", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36},
		{name: "esp-tunnel-raw-chacha20poly1305", proto: dataplane.ESP, enc: esp.EncrChaCha20Poly1305, encKeyLen: 36},
		{name: "esp-tunnel-udp-aes128cbc-sha256-esn", proto: dataplane.ESP, encap: true, enc: esp.EncrAESCBC, encKeyLen: 16, integ: esp.IntegHMACSHA2_256_128, integLen: 32, esn: true},
		{name: "esp-tunnel-raw-null-sha512", proto: dataplane.ESP, enc: esp.EncrNULL, integ: esp.IntegHMACSHA2_512_256, integLen: 64},
		{name: "esp-tunnel-udp-tfc", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 20, tfcPadding: 1000},
		{name: "esp-transport-raw-aes128gcm", proto: dataplane.ESP, mode: dataplane.Transport, enc: esp.EncrAESGCM16, encKeyLen: 20},
		{name: "esp-transport-udp-aes256cbc-sha384", proto: dataplane.ESP, mode: dataplane.Transport, encap: true, enc: esp.EncrAESCBC, encKeyLen: 32, integ: esp.IntegHMACSHA2_384_192, integLen: 48},
		{name: "ah-tunnel-sha256", proto: dataplane.AH, integ: esp.IntegHMACSHA2_256_128, integLen: 32},
		{name: "ah-transport-sha512-esn", proto: dataplane.AH, mode: dataplane.Transport, integ: esp.IntegHMACSHA2_512_256, integLen: 64, esn: true},
		{name: "esp-tunnel-udp-outer6", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36, outer6: true},
		{name: "esp-tunnel-raw-outer6-inner6", proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36, outer6: true, inner6: true},
		{name: "esp-tunnel-udp-inner6-outer4", proto: dataplane.ESP, encap: true, enc: esp.EncrChaCha20Poly1305, encKeyLen: 36, inner6: true},
		{name: "esp-transport-raw-outer6", proto: dataplane.ESP, mode: dataplane.Transport, enc: esp.EncrAESGCM16, encKeyLen: 36, outer6: true},
		{name: "ah-tunnel-outer6", proto: dataplane.AH, integ: esp.IntegHMACSHA2_384_192, integLen: 48, outer6: true},
		{name: "ah-transport-outer6", proto: dataplane.AH, mode: dataplane.Transport, integ: esp.IntegHMACSHA2_256_128, integLen: 32, outer6: true},
		// The transforms of RFC 4309, 4543, 3686, 3566 and 4494, with 192-bit AES.
		{name: "esp-tunnel-udp-aes128ccm8", proto: dataplane.ESP, encap: true, enc: esp.EncrAESCCM8, encKeyLen: 19},
		{name: "esp-tunnel-raw-aes192ccm12-esn", proto: dataplane.ESP, enc: esp.EncrAESCCM12, encKeyLen: 27, esn: true},
		{name: "esp-transport-udp-aes256ccm16", proto: dataplane.ESP, mode: dataplane.Transport, encap: true, enc: esp.EncrAESCCM16, encKeyLen: 35},
		{name: "esp-tunnel-udp-aes256gmac-esn", proto: dataplane.ESP, encap: true, enc: esp.EncrNullAESGMAC, encKeyLen: 36, esn: true},
		{name: "esp-tunnel-raw-aes128gmac-outer6", proto: dataplane.ESP, enc: esp.EncrNullAESGMAC, encKeyLen: 20, outer6: true},
		{name: "esp-tunnel-udp-aes192gcm12", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM12, encKeyLen: 28},
		{name: "esp-tunnel-udp-aes256ctr-xcbc-esn", proto: dataplane.ESP, encap: true, enc: esp.EncrAESCTR, encKeyLen: 36, integ: esp.IntegAESXCBC96, integLen: 16, esn: true},
		{name: "esp-transport-raw-aes192cbc-cmac", proto: dataplane.ESP, mode: dataplane.Transport, enc: esp.EncrAESCBC, encKeyLen: 24, integ: esp.IntegAESCMAC96, integLen: 16},
		{name: "ah-tunnel-xcbc", proto: dataplane.AH, integ: esp.IntegAESXCBC96, integLen: 16},
		{name: "ah-transport-cmac-esn-outer6", proto: dataplane.AH, mode: dataplane.Transport, integ: esp.IntegAESCMAC96, integLen: 16, esn: true, outer6: true},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			a, b := newPair(t)
			inst := install(t, sc, a, b)
			src, dst := inst.src, inst.dst
			ping, err := a.ns.Ping(src, dst, 3, 50*time.Millisecond, 5*time.Second) // 5 s: a loaded CI machine stalls namespaces for seconds
			if err != nil {
				t.Fatal(err)
			}
			if ping.Received != 3 {
				t.Fatalf("ping %s -> %s: %s; engine A %+v, engine B %+v", src, dst, ping, a.eng.Stats(), b.eng.Stats())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := netlab.Echo(ctx, a.ns, src, b.ns, netip.AddrPortFrom(dst, 7777), 2<<20); err != nil {
				t.Fatalf("TCP echo through %s: %v", sc.name, err)
			}
			for _, s := range []*side{a, b} {
				for _, sa := range s.eng.SAs() {
					if sa.Stats.Packets == 0 {
						t.Errorf("%s: SA %s %s carried no packets", s.ns.Name, sa.Params.Direction, sa.Key)
					}
					if d := sa.Stats.Drops; d[dataplane.DropAuth] != 0 || d[dataplane.DropPadding] != 0 || d[dataplane.DropPolicy] != 0 || d[dataplane.DropMalformed] != 0 {
						t.Errorf("%s: SA %s drops %v", s.ns.Name, sa.Key, d)
					}
				}
			}
		})
	}
}
