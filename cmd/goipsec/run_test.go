package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/netlab"
)

// binary is the goipsec executable built once for the end-to-end tests.
var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

func goipsecBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "goipsec-bin")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "goipsec")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode: this namespace test runs without -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, TUN); run `sudo make test`, or -short to leave it out")
	}
}

// daemonProc is a `goipsec run` process in a namespace, its log captured.
type daemonProc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	log bytes.Buffer
}

func (p *daemonProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *daemonProc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitLog waits until the log contains s.
func (p *daemonProc) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Log(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log does not show %q after %s:\n%s", s, timeout, p.Log())
}

func startDaemon(t *testing.T, ns *netlab.NS, conf string) *daemonProc {
	t.Helper()
	p := &daemonProc{cmd: ns.Command(goipsecBinary(t), "run", "-c", conf)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("goipsec log in %s:\n%s", ns.Name, p.Log())
		}
	})
	p.waitLog(t, "goipsec running", 10*time.Second)
	return p
}

const manualTemplate = `# manual SAs for the run test
manual {
    {{name}} {
        local_addrs = {{local}}
        remote_addrs = {{remote}}
        encap = yes
        local_ts = {{lts}}
        remote_ts = {{rts}}
        proposal = aes256gcm16
        outbound {
            spi = {{outspi}}
            enc_key = 0x{{outkey}}
        }
        inbound {
            spi = {{inspi}}
            enc_key = 0x{{inkey}}
        }
    }
}
`

func manualConf(name, local, remote, lts, rts string, outSPI, inSPI uint32, outKey, inKey []byte) string {
	r := strings.NewReplacer("{{name}}", name, "{{local}}", local, "{{remote}}", remote, "{{lts}}", lts, "{{rts}}", rts,
		"{{outspi}}", fmt.Sprintf("0x%08x", outSPI), "{{inspi}}", fmt.Sprintf("0x%08x", inSPI),
		"{{outkey}}", hex.EncodeToString(outKey), "{{inkey}}", hex.EncodeToString(inKey))
	return r.Replace(manualTemplate)
}

func TestRunManualKeys(t *testing.T) {
	requireRoot(t)
	var id [3]byte
	rand.Read(id[:])
	a, err := netlab.NewNS(fmt.Sprintf("gr%xa", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Delete() })
	b, err := netlab.NewNS(fmt.Sprintf("gr%xb", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Delete() })
	if err := netlab.Link(a, "veth0", []string{"192.0.2.1/24"}, b, "veth0", []string{"192.0.2.2/24"}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		ns    *netlab.NS
		addrs []string
	}{{a, []string{"10.1.0.1/24", "10.11.0.1/24"}}, {b, []string{"10.2.0.1/24", "10.12.0.1/24"}}} {
		for _, addr := range x.addrs {
			if err := x.ns.AddAddr("lo", addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	k1, k2, k3, k4 := randBytes(36), randBytes(36), randBytes(36), randBytes(36)
	dir := t.TempDir()
	confA, confB := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
	labA := manualConf("lab", "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", 0x1001, 0x2001, k1, k2)
	labB := manualConf("lab", "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", 0x2001, 0x1001, k2, k1)
	// Each daemon gets its own control socket (the default path is shared by all namespaces).
	labA += "daemon {\n  vici_socket = " + filepath.Join(dir, "a.sock") + "\n}\n"
	labB += "daemon {\n  vici_socket = " + filepath.Join(dir, "b.sock") + "\n}\n"
	writeFile(t, confA, labA)
	writeFile(t, confB, labB)
	da := startDaemon(t, a, confA)
	startDaemon(t, b, confB)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	expectTraffic := func(src, dst string) {
		t.Helper()
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
		ping, err := a.Ping(s, d, 2, 50*time.Millisecond, 2*time.Second)
		if err != nil || ping.Received != 2 {
			t.Fatalf("ping %s -> %s: %v %v", src, dst, ping, err)
		}
		if err := netlab.Echo(ctx, a, s, b, netip.AddrPortFrom(d, 7000), 1<<20); err != nil {
			t.Fatalf("TCP echo %s -> %s: %v", src, dst, err)
		}
	}
	expectTraffic("10.1.0.1", "10.2.0.1")

	// A broken edit is refused with file and line, and the tunnel keeps running.
	writeFile(t, confA, labA+"\nmanual {\n    broken {\n        local_addrs = 192.0.2.1\n        remote_addrs = 192.0.2.2\n        proposal = aes256gcm16\n        outbound {\n            spi = 0x3001\n            enc_key = 0x0011\n        }\n        inbound {\n            spi = 0x4001\n            enc_key = 0x0011\n        }\n    }\n}\n")
	da.cmd.Process.Signal(syscall.SIGHUP)
	da.waitLog(t, "reload refused", 5*time.Second)
	if !strings.Contains(da.Log(), confA+":") || !strings.Contains(da.Log(), "enc_key") {
		t.Fatalf("refused reload does not name file, line and key:\n%s", da.Log())
	}
	expectTraffic("10.1.0.1", "10.2.0.1")

	// Adding a second SA brings it up without touching the first.
	labA2 := labA + manualConf("second", "192.0.2.1", "192.0.2.2", "10.11.0.0/24", "10.12.0.0/24", 0x1002, 0x2002, k3, k4)
	labB2 := labB + manualConf("second", "192.0.2.2", "192.0.2.1", "10.12.0.0/24", "10.11.0.0/24", 0x2002, 0x1002, k4, k3)
	writeFile(t, confA, labA2)
	writeFile(t, confB, labB2)
	before := strings.Count(da.Log(), "SA installed")
	da.cmd.Process.Signal(syscall.SIGHUP)
	da.waitLog(t, "configuration reloaded", 5*time.Second)
	b2 := exec.Command("ip", "netns", "exec", b.Name, "pkill", "-HUP", "-f", confB)
	if out, err := b2.CombinedOutput(); err != nil {
		t.Fatalf("SIGHUP to B: %v %s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(da.Log(), "manual SA removed") {
		t.Fatalf("reload removed an unchanged SA:\n%s", da.Log())
	}
	if got := strings.Count(da.Log(), "SA installed") - before; got != 2 {
		t.Fatalf("reload installed %d SAs, want 2 (only the new pair):\n%s", got, da.Log())
	}
	expectTraffic("10.11.0.1", "10.12.0.1")
	expectTraffic("10.1.0.1", "10.2.0.1")
}

func TestRunRefusesBadConfig(t *testing.T) {
	bin := goipsecBinary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "bad.conf")
	writeFile(t, conf, "manual {\n  x {\n    local_addrs = 192.0.2.1\n    remote_addrs = 192.0.2.2\n    proposal = aes256gcm16\n    outbound {\n      spi = 0x1001\n      enc_key = 0x00112233\n    }\n    inbound {\n      spi = 0x2001\n      enc_key = 0x00112233\n    }\n  }\n}\n")
	out, err := exec.Command(bin, "run", "-c", conf).CombinedOutput()
	if err == nil {
		t.Fatalf("goipsec run accepted a 4-byte AES-256-GCM key:\n%s", out)
	}
	msg := string(out)
	if !strings.Contains(msg, conf+":8:") || !strings.Contains(msg, "enc_key") || !strings.Contains(msg, "36") {
		t.Fatalf("error does not name file:line, key and expected length:\n%s", msg)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
