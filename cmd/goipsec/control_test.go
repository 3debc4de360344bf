package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/daemon"
	"github.com/goipsec/goipsec/internal/netlab"
)

// swanctl runs Debian's swanctl against a goipsec VICI socket.
func swanctl(t *testing.T, dir, sock string, args ...string) (string, error) {
	t.Helper()
	conf := filepath.Join(dir, "strongswan.conf")
	if _, err := os.Stat(conf); err != nil {
		writeFile(t, conf, "swanctl {\n  socket = unix://"+sock+"\n}\n")
	}
	// swanctl takes the command first, then its options.
	cmd := exec.Command("swanctl", append(args, "--uri", "unix://"+sock)...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+conf)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func goipsecCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(goipsecBinary(t), args...).CombinedOutput()
	return string(out), err
}

func connConf(name, local, remote, lts, rts, start string) string {
	return fmt.Sprintf(`connections {
    %s {
        local_addrs = %s
        remote_addrs = %s
        proposals = aes256gcm16-prfsha256-x25519
        local {
            auth = psk
            id = %s
        }
        remote {
            auth = psk
            id = %s
        }
        children {
            net {
                local_ts = %s
                remote_ts = %s
                esp_proposals = aes256gcm16
                start_action = %s
            }
        }
    }
}
secrets {
    ike-1 {
        secret = "control-test-psk"
    }
}
`, name, local, remote, local, remote, lts, rts, start)
}

// TestControlSocket drives a running goipsec with strongSwan's own swanctl (load the config,
// initiate, list SAs, watch events, terminate) and with goipsec's CLI (status, up, down, doctor).
func TestControlSocket(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("swanctl"); err != nil {
		t.Fatal("swanctl is missing: scripts/deps.sh installs strongswan-swanctl")
	}
	var id [3]byte
	copy(id[:], randBytes(3))
	a, err := netlab.NewNS(fmt.Sprintf("gc%xa", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Delete() })
	b, err := netlab.NewNS(fmt.Sprintf("gc%xb", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Delete() })
	if err := netlab.Link(a, "veth0", []string{"192.0.2.1/24"}, b, "veth0", []string{"192.0.2.2/24"}); err != nil {
		t.Fatal(err)
	}
	a.AddAddr("lo", "10.1.0.1/24")
	b.AddAddr("lo", "10.2.0.1/24")
	dir := t.TempDir()
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	// A starts with no connections: swanctl loads them over VICI.
	confA := filepath.Join(dir, "a.conf")
	writeFile(t, confA, "daemon {\n  vici_socket = "+sockA+"\n}\n")
	confB := filepath.Join(dir, "b.conf")
	writeFile(t, confB, connConf("gt", "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", "none")+"daemon {\n  vici_socket = "+sockB+"\n}\n")
	startDaemon(t, a, confA)
	startDaemon(t, b, confB)

	swanDir := filepath.Join(dir, "swanctl")
	for _, sub := range []string{"x509", "x509ca", "x509aa", "x509ocsp", "x509crl", "x509ac", "pubkey", "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"} {
		os.MkdirAll(filepath.Join(swanDir, sub), 0o700)
	}
	writeFile(t, filepath.Join(swanDir, "swanctl.conf"), connConf("gt", "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "none"))
	if out, err := swanctl(t, dir, sockA, "--load-all", "--file", filepath.Join(swanDir, "swanctl.conf")); err != nil || !strings.Contains(out, "loaded connection 'gt'") {
		t.Fatalf("swanctl --load-all: %v\n%s", err, out)
	}
	if out, err := swanctl(t, dir, sockA, "--list-conns"); err != nil || !strings.Contains(out, "gt: IKEv2") || !strings.Contains(out, "10.2.0.0/24") {
		t.Fatalf("swanctl --list-conns: %v\n%s", err, out)
	}

	// Watch SA events while initiating.
	// swanctl's stdout is block-buffered into a pipe: stdbuf makes it flush each line.
	monitor := exec.Command("stdbuf", "-oL", "swanctl", "--monitor-sa", "--uri", "unix://"+sockA)
	monitor.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(dir, "strongswan.conf"))
	var monOut lockedBuffer
	monitor.Stdout, monitor.Stderr = &monOut, &monOut
	if err := monitor.Start(); err != nil {
		t.Fatal(err)
	}
	defer monitor.Process.Kill()
	time.Sleep(300 * time.Millisecond)

	// And the log.
	logger := exec.Command("stdbuf", "-oL", "swanctl", "--log", "--uri", "unix://"+sockA)
	logger.Env = monitor.Env
	var logOut lockedBuffer
	logger.Stdout, logger.Stderr = &logOut, &logOut
	if err := logger.Start(); err != nil {
		t.Fatal(err)
	}
	defer logger.Process.Kill()
	time.Sleep(300 * time.Millisecond)

	if out, err := swanctl(t, dir, sockA, "--initiate", "--child", "net"); err != nil || !strings.Contains(out, "initiate completed successfully") || !strings.Contains(out, "[IKE] ") {
		t.Fatalf("swanctl --initiate (with its control log): %v\n%s", err, out)
	}
	if out, err := swanctl(t, dir, sockA, "--stats"); err != nil || !strings.Contains(out, "IKE_SAs: 1 total, 0 half-open") {
		t.Fatalf("swanctl --stats: %v\n%s", err, out)
	}
	if out, err := swanctl(t, dir, sockA, "--list-pols"); err != nil || !strings.Contains(out, "gt/net, TUNNEL") {
		t.Fatalf("swanctl --list-pols: %v\n%s", err, out)
	}
	ping, err := a.Ping(netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"), 2, 50*time.Millisecond, 2*time.Second)
	if err != nil || ping.Received != 2 {
		t.Fatalf("ping through the tunnel: %v %v", ping, err)
	}
	out, err := swanctl(t, dir, sockA, "--list-sas")
	if err != nil {
		t.Fatalf("swanctl --list-sas: %v\n%s", err, out)
	}
	for _, want := range []string{"gt: #1, ESTABLISHED, IKEv2", "_i* ", "local  '192.0.2.1' @ 192.0.2.1[500]", "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519",
		"net: #", "INSTALLED, TUNNEL, ESP:AES_GCM_16-256", "local  10.1.0.0/24", "remote 10.2.0.0/24"} {
		if !strings.Contains(out, want) {
			t.Fatalf("swanctl --list-sas lacks %q:\n%s", want, out)
		}
	}
	waitFor := func(cond func() bool, what string) {
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s; monitor output:\n%s", what, monOut.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(func() bool { return strings.Contains(monOut.String(), "gt: #") }, "swanctl --monitor-sa saw no child-updown event")
	waitFor(func() bool { return strings.Contains(logOut.String(), "[IKE] IKE SA established") }, "swanctl --log did not show the IKE log")

	// goipsec's own CLI over the same socket.
	out, err = goipsecCLI(t, "status", "--socket", sockA)
	if err != nil || !strings.Contains(out, "gt") || !strings.Contains(out, "established") || !strings.Contains(out, "10.2.0.0/24") {
		t.Fatalf("goipsec status: %v\n%s", err, out)
	}
	out, err = goipsecCLI(t, "status", "--json", "--socket", sockA)
	var st daemon.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Connections) != 1 || st.Connections[0].State != "up" ||
		len(st.Connections[0].IKESAs) != 1 || st.Connections[0].IKESAs[0].Children[0].Out.Packets < 2 {
		t.Fatalf("goipsec status --json: %v\n%s", err, out)
	}
	if out, err = goipsecCLI(t, "down", "gt", "--socket", sockA); err != nil || !strings.Contains(out, "gt is down") {
		t.Fatalf("goipsec down: %v\n%s", err, out)
	}
	// The probe runs in the daemon's namespace (the CLI here runs outside both): the live peer
	// answers, and accepts our proposals.
	if out, err = goipsecCLI(t, "doctor", "gt", "--socket", sockA); err != nil || !strings.Contains(out, "state: DOWN") ||
		!strings.Contains(out, "192.0.2.2:500: ANSWERED: an IKEv2 responder answered and accepts one of our IKE proposals") {
		t.Fatalf("goipsec doctor: %v\n%s", err, out)
	}
	// Operator errors name what is wrong, in the operator's words.
	if out, err = goipsecCLI(t, "down", "nosuch", "--socket", sockA); err == nil || !strings.Contains(out, `no such connection "nosuch" (configured: gt)`) ||
		strings.Contains(out, "vici") {
		t.Fatalf("goipsec down nosuch: %v\n%s", err, out)
	}
	if out, err = goipsecCLI(t, "down", "gt", "--socket", sockA); err != nil || !strings.Contains(out, "gt is already down") {
		t.Fatalf("goipsec down of a down connection: %v\n%s", err, out)
	}
	// up shows the daemon's IKE log lines as progress.
	if out, err = goipsecCLI(t, "up", "gt", "--socket", sockA, "--timeout", "10s"); err != nil || !strings.Contains(out, "gt is up") ||
		!strings.Contains(out, "IKE SA established") {
		t.Fatalf("goipsec up: %v\n%s", err, out)
	}
	// status NAME shows one connection, with identities, SPIs, NAT and timers.
	out, err = goipsecCLI(t, "status", "gt", "--socket", sockA)
	for _, want := range []string{"gt: up", "ike sa", "established, we are initiator", "192.0.2.1:500[192.0.2.1] <=> 192.0.2.2:500[192.0.2.2]", "_i* ", "nat          none detected", "last heard from the peer", "child net", "spis "} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("goipsec status gt lacks %q: %v\n%s", want, err, out)
		}
	}
	if out, err = goipsecCLI(t, "status", "nosuch", "--socket", sockA); err == nil || !strings.Contains(out, `no such connection "nosuch"`) {
		t.Fatalf("goipsec status nosuch: %v\n%s", err, out)
	}
	// Terminating the child alone keeps the IKE SA.
	if out, err = swanctl(t, dir, sockA, "--terminate", "--child", "net"); err != nil || !strings.Contains(out, "terminate completed successfully") {
		t.Fatalf("swanctl --terminate --child: %v\n%s", err, out)
	}
	waitFor(func() bool {
		out, _ := goipsecCLI(t, "status", "--json", "--socket", sockA)
		var st daemon.Status
		return json.Unmarshal([]byte(out), &st) == nil && len(st.Connections) == 1 && len(st.Connections[0].IKESAs) == 1 &&
			len(st.Connections[0].IKESAs[0].Children) == 0
	}, "after --terminate --child the IKE SA should stay, without Child SAs")
	if out, err = swanctl(t, dir, sockA, "--terminate", "--ike", "gt"); err != nil || !strings.Contains(out, "terminate completed successfully") {
		t.Fatalf("swanctl --terminate: %v\n%s", err, out)
	}
	waitFor(func() bool {
		out, _ := goipsecCLI(t, "status", "--json", "--socket", sockB)
		var st daemon.Status
		return json.Unmarshal([]byte(out), &st) == nil && len(st.Connections) == 1 && len(st.Connections[0].IKESAs) == 0
	}, "the peer still lists the IKE SA after terminate")
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
