package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
	"github.com/goipsec/goipsec/internal/testnet"
)

// manualConf is a goipsec configuration with one pair of manually keyed SAs between the guest and
// the host side; guest says which end it is for (SPIs and keys swap).
type manualConf struct {
	dataplane, mode, protocol, proposal string
	encap, esn                          bool
	encKey, integKey                    string // hex, the same both ways (a test, not a deployment)
}

func (m manualConf) forSide(guest bool) string {
	local, remote, lts, rts := guestOuter, hostOuter, guestInner+"/32", hostInner+"/32"
	out, in := "0x1001", "0x2002"
	if !guest {
		local, remote, lts, rts = hostOuter, guestOuter, hostInner+"/32", guestInner+"/32"
		out, in = in, out
	}
	if m.mode == "transport" {
		lts, rts = local+"/32", remote+"/32"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "daemon {\n  dataplane = %s\n}\nmanual {\n  m {\n    local_addrs = %s\n    remote_addrs = %s\n", m.dataplane, local, remote)
	fmt.Fprintf(&b, "    mode = %s\n    protocol = %s\n    proposal = %s\n    local_ts = %s\n    remote_ts = %s\n", m.mode, m.protocol, m.proposal, lts, rts)
	if m.encap {
		b.WriteString("    encap = yes\n")
	}
	if m.esn {
		b.WriteString("    esn = yes\n")
	}
	for _, sa := range []struct{ name, spi string }{{"outbound", out}, {"inbound", in}} {
		fmt.Fprintf(&b, "    %s {\n      spi = %s\n", sa.name, sa.spi)
		if m.encKey != "" {
			fmt.Fprintf(&b, "      enc_key = 0x%s\n", m.encKey)
		}
		if m.integKey != "" {
			fmt.Fprintf(&b, "      integ_key = 0x%s\n", m.integKey)
		}
		b.WriteString("    }\n")
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

// TestKernelManualSAs: manually keyed SAs that IKE cannot negotiate yet (AH) or that exercise
// other kernel features (ESN, AES-CBC with HMAC, UDP encapsulation), between goipsec's kernel data
// plane in the guest and its userspace one on the host side.
func TestKernelManualSAs(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	k32 := strings.Repeat("5a", 32)
	for _, tc := range []struct {
		name string
		m    manualConf
	}{
		{"ah-tunnel", manualConf{mode: "tunnel", protocol: "ah", proposal: "sha256", integKey: k32}},
		{"ah-transport", manualConf{mode: "transport", protocol: "ah", proposal: "sha512", integKey: k32 + k32}},
		{"esp-cbc-esn-udp-tunnel", manualConf{mode: "tunnel", protocol: "esp", proposal: "aes256-sha256", esn: true, encap: true,
			encKey: k32, integKey: k32}},
		{"esp-chacha-transport", manualConf{mode: "transport", protocol: "esp", proposal: "chacha20poly1305", encKey: k32 + "01020304"}},
		// The transforms added later to package esp, against the kernel's implementations.
		{"esp-ccm16-tunnel", manualConf{mode: "tunnel", protocol: "esp", proposal: "aes128ccm16", encKey: k32[:32] + "010203"}},
		{"esp-gmac-transport", manualConf{mode: "transport", protocol: "esp", proposal: "aes128gmac", encKey: k32[:32] + "01020304"}},
		{"esp-ctr-xcbc-tunnel", manualConf{mode: "tunnel", protocol: "esp", proposal: "aes128ctr-aesxcbc", encKey: k32[:32] + "01020304", integKey: k32[:32]}},
		{"ah-cmac-transport", manualConf{mode: "transport", protocol: "ah", proposal: "aescmac", integKey: k32[:32]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.logConsole(t)
			l.logXfrmOnFailure(t)
			g, h := tc.m, tc.m
			g.dataplane, h.dataplane = "kernel", "userspace"
			l.startHostGoipsec(t, h.forSide(false))
			gd := l.startGuest(t, "goipsec", "exec /mnt/host/goipsec run -c "+l.writeShare(t, "manual.conf", g.forSide(true)))
			gd.waitOutput(t, "goipsec running", 30*time.Second)
			l.trafficCheck(t, tc.m.mode)
			st := l.guest(t, "ip xfrm state")
			if !strings.Contains(st, "proto "+tc.m.protocol+" spi 0x00001001") || !strings.Contains(st, "proto "+tc.m.protocol+" spi 0x00002002") {
				t.Fatalf("the kernel does not hold the manual %s SAs:\n%s", tc.m.protocol, st)
			}
			if tc.m.esn && !strings.Contains(st, "esn") {
				t.Fatalf("ESN not set on the kernel SAs:\n%s", st)
			}
			if tc.m.encap && !strings.Contains(st, "encap type espinudp sport 4500 dport 4500") {
				t.Fatalf("UDP encapsulation not set on the kernel SAs:\n%s", st)
			}
			gd.stop(t)
			l.assertNoXfrm(t)
		})
	}
}

// TestKernelDataplaneNeedsESP: on a kernel without ESP (like the development machines' own),
// `goipsec run` with dataplane = kernel refuses to start and says why; where the kernel has ESP it
// starts. The verdict is compared with iproute2's in a fresh namespace of the host.
func TestKernelDataplaneNeedsESP(t *testing.T) {
	testnet.Require(t, "go")
	n := testnet.New(t)
	ns := n.Namespace("noesp")
	_, ipErr := ns.Output("ip", "xfrm", "state", "add", "src", "127.0.0.1", "dst", "127.0.0.1", "proto", "esp", "spi", "0x4242",
		"mode", "transport", "aead", "rfc4106(gcm(aes))", "0x0102030405060708091011121314151617181920", "128")
	hasESP := ipErr == nil
	ns.Output("ip", "xfrm", "state", "flush")
	dir := t.TempDir()
	bin := filepath.Join(dir, "goipsec")
	if err := buildGoipsec(bin); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "goipsec.conf")
	os.WriteFile(conf, []byte("daemon {\n  dataplane = kernel\n  vici_socket = "+filepath.Join(dir, "v.sock")+"\n}\n"), 0o600)
	cmd := exec.Command("ip", "netns", "exec", ns.Name(), "timeout", "5", bin, "run", "-c", conf)
	out, err := cmd.CombinedOutput()
	if hasESP {
		if !strings.Contains(string(out), "goipsec running") {
			t.Fatalf("the kernel has ESP (iproute2 could add an ESP SA) but goipsec did not start:\n%s", out)
		}
		return
	}
	if err == nil || !strings.Contains(string(out), "the kernel has no ESP support") || !strings.Contains(string(out), "dataplane = userspace") {
		t.Fatalf("on a kernel without ESP (iproute2: %v) goipsec should refuse the kernel data plane with a clear message; got %v:\n%s", ipErr, err, out)
	}
	if strings.TrimSpace(ns.Run(t, "ip", "xfrm", "policy")) != "" || strings.TrimSpace(ns.Run(t, "ip", "xfrm", "state")) != "" {
		t.Fatal("the refused start left XFRM state behind")
	}
}
