package userspace

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
	"github.com/goipsec/goipsec/internal/testnet"
)

// capturePath is where a test's capture on ifc in ns goes (a test may capture at both ends).
func capturePath(t *testing.T, ns *netlab.NS, ifc string) string {
	return filepath.Join(os.TempDir(), "goipsec-"+strings.ReplaceAll(t.Name(), "/", "_")+"-"+ns.Name+"-"+ifc+".pcap")
}

// startCapture runs tcpdump on ifc in ns (with an optional capture filter) until the returned stop
// function is called, which returns the pcap file.
func startCapture(t *testing.T, ns *netlab.NS, ifc string, filter ...string) (stop func() string) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("tcpdump is missing: scripts/deps.sh installs it")
	}
	path := capturePath(t, ns, ifc)
	cmd := ns.Command(append([]string{"tcpdump", "-i", ifc, "-n", "-s", "0", "-U", "--immediate-mode", "-Z", "root", "-w", path}, filter...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-listening:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("tcpdump did not start")
	}
	stopped := false
	stop = func() string {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGINT)
			cmd.Wait()
		}
		return path
	}
	t.Cleanup(func() { stop(); os.Remove(path) })
	return stop
}

// tsharkNames maps our transforms to the names of tshark's ESP SA table.
func tsharkNames(sc scenario) (encr, auth string) {
	switch sc.enc {
	case esp.EncrAESGCM16:
		encr = testnet.TsharkESPEncrAESGCM16
	case esp.EncrAESGCM12:
		encr = testnet.TsharkESPEncrAESGCM12
	case esp.EncrAESCBC:
		encr = testnet.TsharkESPEncrAESCBC
	case esp.EncrAESCTR:
		encr = testnet.TsharkESPEncrAESCTR
	default:
		encr = "NULL"
	}
	switch sc.integ {
	case esp.IntegHMACSHA2_256_128:
		auth = testnet.TsharkESPAuthSHA256
	case esp.IntegHMACSHA2_384_192:
		auth = testnet.TsharkESPAuthSHA384
	case esp.IntegHMACSHA2_512_256:
		auth = testnet.TsharkESPAuthSHA512
	case esp.IntegAESXCBC96, esp.IntegAESCMAC96:
		auth = testnet.TsharkESPAuthAny96
	default:
		auth = testnet.TsharkESPAuthNull
	}
	return encr, auth
}

// TestTsharkDecryptsESP checks our ESP packets against an independent implementation: tshark,
// given the keys, must find the exact inner packet we sent (addresses, protocol, ports, payload).
// tshark 4.0 does not verify AES-GCM ICVs, so the assertion is on the decrypted content. tshark 4.0
// cannot decrypt ChaCha20-Poly1305 ESP at all; that transform is covered byte-exactly by the RFC 7634
// example in package esp. Nor does it know AES-CCM or AES-GMAC, or check AES-XCBC/CMAC ICVs (it
// only skips 96 bits); those have published known answers in package esp and internal/aesmac.
func TestTsharkDecryptsESP(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil && !testing.Short() {
		t.Fatal("tshark is missing: scripts/deps.sh installs it")
	}
	scenarios := []scenario{
		{name: "tunnel-udp-aes128gcm", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 20},
		{name: "tunnel-raw-aes256gcm", proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36},
		{name: "tunnel-raw-aes256cbc-sha256", proto: dataplane.ESP, enc: esp.EncrAESCBC, encKeyLen: 32, integ: esp.IntegHMACSHA2_256_128, integLen: 32},
		{name: "tunnel-udp-aes128cbc-sha512", proto: dataplane.ESP, encap: true, enc: esp.EncrAESCBC, encKeyLen: 16, integ: esp.IntegHMACSHA2_512_256, integLen: 64},
		{name: "tunnel-raw-null-sha384", proto: dataplane.ESP, enc: esp.EncrNULL, integ: esp.IntegHMACSHA2_384_192, integLen: 48},
		{name: "transport-raw-aes256gcm", proto: dataplane.ESP, mode: dataplane.Transport, enc: esp.EncrAESGCM16, encKeyLen: 36},
		{name: "transport-udp-aes128cbc-sha256", proto: dataplane.ESP, mode: dataplane.Transport, encap: true, enc: esp.EncrAESCBC, encKeyLen: 16, integ: esp.IntegHMACSHA2_256_128, integLen: 32},
		{name: "tunnel-raw-outer6-aes256gcm", proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36, outer6: true},
		{name: "tunnel-udp-inner6-aes256gcm", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36, inner6: true},
		{name: "transport-raw-outer6-aes128gcm", proto: dataplane.ESP, mode: dataplane.Transport, enc: esp.EncrAESGCM16, encKeyLen: 20, outer6: true},
		{name: "tunnel-udp-aes192gcm16", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 28},
		{name: "tunnel-raw-aes256gcm12", proto: dataplane.ESP, enc: esp.EncrAESGCM12, encKeyLen: 36},
		{name: "tunnel-raw-aes192cbc-xcbc", proto: dataplane.ESP, enc: esp.EncrAESCBC, encKeyLen: 24, integ: esp.IntegAESXCBC96, integLen: 16},
		{name: "tunnel-udp-aes128ctr-sha256", proto: dataplane.ESP, encap: true, enc: esp.EncrAESCTR, encKeyLen: 20, integ: esp.IntegHMACSHA2_256_128, integLen: 32},
		{name: "tunnel-raw-aes192ctr-cmac", proto: dataplane.ESP, enc: esp.EncrAESCTR, encKeyLen: 28, integ: esp.IntegAESCMAC96, integLen: 16},
		{name: "transport-raw-aes256ctr-sha512", proto: dataplane.ESP, mode: dataplane.Transport, enc: esp.EncrAESCTR, encKeyLen: 36, integ: esp.IntegHMACSHA2_512_256, integLen: 64},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			a, b := newPair(t)
			inst := install(t, sc, a, b)
			// Settle neighbour discovery first, so the captured packet is not held back.
			if r, err := a.ns.Ping(inst.src, inst.dst, 1, 0, 3*time.Second); err != nil || r.Received != 1 {
				t.Fatalf("ping through the tunnel: %v %v", r, err)
			}
			stop := startCapture(t, a.ns, "veth0")
			payload := make([]byte, 48)
			rand.Read(payload)
			copy(payload, "goipsec-tshark:")
			// One UDP datagram from a fixed port, so tshark's view can be matched exactly.
			var conn *net.UDPConn
			if err := a.ns.Do(func() error {
				var err error
				conn, err = net.DialUDP("udp", &net.UDPAddr{IP: inst.src.AsSlice(), Port: 1111}, &net.UDPAddr{IP: inst.dst.AsSlice(), Port: 2222})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			outKey := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x1001, Dst: inst.outerB}
			before, _ := a.eng.SAStats(outKey)
			if _, err := conn.Write(payload); err != nil {
				t.Fatal(err)
			}
			var after dataplane.SAStats
			waitFor(t, func() bool {
				after, _ = a.eng.SAStats(outKey)
				return after.Packets > before.Packets
			})
			// Stop the capture only once tcpdump has written every ESP packet sent since the write
			// (SPI 0x00001001 followed by each sequence number): the kernel may send something of its
			// own through the tunnel at the same moment (IPv6 neighbour or multicast listener
			// traffic), and the datagram is one of those, not necessarily the first.
			wantSeqs := func(data []byte) bool {
				for seq := before.Packets + 1; seq <= after.Packets; seq++ {
					if !bytes.Contains(data, binary.BigEndian.AppendUint32([]byte{0, 0, 0x10, 0x01}, uint32(seq))) {
						return false
					}
				}
				return true
			}
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if data, err := os.ReadFile(capturePath(t, a.ns, "veth0")); err == nil && wantSeqs(data) {
					break
				}
			}
			pcap := stop()
			encr, auth := tsharkNames(sc)
			out := testnet.TsharkDecryptESP(t, pcap, []testnet.TsharkESPSA{{
				Src: inst.outerA.String(), Dst: inst.outerB.String(), SPI: 0x1001,
				Encr: encr, EncrKey: inst.keys[0x1001][0], Auth: auth, AuthKey: inst.keys[0x1001][1],
			}}, "-Y", "esp.spi == 0x00001001", "-T", "fields", "-E", "separator=|",
				"-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
				"-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.payload")
			// Fields with several occurrences (outer and inner headers) are comma-separated; the
			// inner packet is the last occurrence.
			var line string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.Contains(l, "2222") {
					line = l
				}
			}
			f := strings.Split(line, "|")
			if dir := os.Getenv("GOIPSEC_KEEP_PCAP"); dir != "" && len(f) == 7 {
				data, _ := os.ReadFile(pcap)
				os.WriteFile(filepath.Join(dir, sc.name+".pcap"), data, 0o644)
			}
			if len(f) != 7 {
				if dir := os.Getenv("GOIPSEC_KEEP_PCAP"); dir != "" {
					data, _ := os.ReadFile(pcap)
					os.WriteFile(filepath.Join(dir, sc.name+".pcap"), data, 0o644)
					t.Logf("kept %s; key %x", sc.name, inst.keys[0x1001][0])
				}
				t.Fatalf("tshark found no decrypted packet to port 2222:\n%s", out)
			}
			last := func(s string) string { parts := strings.Split(s, ","); return parts[len(parts)-1] }
			srcField, dstField := last(f[0]), last(f[1])
			if inst.src.Is6() {
				srcField, dstField = last(f[2]), last(f[3])
			}
			got := []string{srcField, dstField, last(f[4]), last(f[5]), last(f[6])}
			want := []string{inst.src.String(), inst.dst.String(), "1111", "2222", hex.EncodeToString(payload)}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("tshark decrypted %v, want %v\n%s", got, want, out)
				}
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
