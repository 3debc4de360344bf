package interop

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// TestTsharkDecryptsGoipsecIKE: with key logging on, tshark decrypts a goipsec<->strongSwan
// handshake with the ikev2_decryption_table rows goipsec wrote, and reports the ICV of both IKE_AUTH
// messages correct; the rows are byte for byte the keys charon logged; and the esp_sa rows decrypt
// the tunnel's ESP to the inner echo requests. AES-GCM and AES-CBC+HMAC-SHA-256 (tshark 4.0 cannot
// decrypt ChaCha20-Poly1305 IKE), goipsec in both roles.
func TestTsharkDecryptsGoipsecIKE(t *testing.T) {
	for _, tc := range []interopCase{interopCases[0], interopCases[3]} {
		for _, goipsecInitiates := range []bool{true, false} {
			role := "goipsec-responder"
			if goipsecInitiates {
				role = "goipsec-initiator"
			}
			t.Run(tc.ike+"/"+role, func(t *testing.T) {
				testnet.Require(t, "tshark", "tcpdump")
				_, left, right, _, rightIf := setupOuter(t, leftOuter+"/24", rightOuter+"/24")
				capture := right.Capture(t, rightIf, "udp")
				keys := filepath.Join(t.TempDir(), "goipsec.keys")
				c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: charonConf(rightOuter, leftOuter, tc.ike, tc.esp, !goipsecInitiates, "")})
				cc := connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
					ikeProposal: tc.ike, espProposal: tc.esp, keylog: keys,
					localTS: leftNet4 + "," + leftNet6, remoteTS: rightNet4 + "," + rightNet6}
				if goipsecInitiates {
					cc.startAction = "start"
				}
				g := startGoipsec(t, left, cc.String())
				if !goipsecInitiates {
					c.Initiate(t, "net")
				}
				c.WaitEstablished(t, "gt", 30*time.Second)
				g.waitLog(t, "Child SA established", 10*time.Second)
				if out, err := left.Output("ping", "-4", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-p", pingPattern, rightInner4); err != nil {
					t.Fatalf("ping through the tunnel: %v\n%s", err, out)
				}
				pcap := capture.Stop()

				kl := readKeylog(t, keys)
				ikes := kl.ikeSAs(t)
				if len(ikes) != 1 {
					t.Fatalf("key log has %d IKE SAs, want 1: %q", len(ikes), kl.ikeRows)
				}
				charonKeys := c.Keys()
				if len(charonKeys) != 1 {
					t.Fatalf("charon logged %d IKE SAs, want 1", len(charonKeys))
				}
				want, err := charonKeys[0].Tshark()
				if err != nil {
					t.Fatal(err)
				}
				checkSameTsharkIKESA(t, ikes[0], want)

				// tshark with the rows as goipsec wrote them, byte for byte.
				out := tsharkWithRows(t, pcap, "ikev2_decryption_table", kl.ikeRows, "-V", "-Y", "isakmp.exchangetype == 35")
				correct, incorrect := testnet.TsharkICVCounts(out)
				if correct < 2 || incorrect != 0 {
					t.Fatalf("tshark with goipsec's key log rows: IKE_AUTH ICVs %d correct, %d incorrect; want >= 2 and 0:\n%s",
						correct, incorrect, testnet.Tail(out, 80))
				}
				for _, s := range []string{"Identification - Initiator", "Identification - Responder", "Authentication", "Traffic Selector - Initiator"} {
					if !strings.Contains(out, s) {
						t.Errorf("decrypted IKE_AUTH lacks %q", s)
					}
				}
				// The same through testnet's table writer, over the whole handshake.
				out = testnet.TsharkDecryptIKE(t, pcap, ikes)
				if correct, incorrect := testnet.TsharkICVCounts(out); correct < 2 || incorrect != 0 {
					t.Fatalf("testnet.TsharkDecryptIKE: ICVs %d correct, %d incorrect; want >= 2 and 0", correct, incorrect)
				}

				esp := testnet.TsharkDecryptESP(t, pcap, kl.espSAs(t), "-Y", "esp && icmp.type == 8", "-T", "fields",
					"-e", "ip.src", "-e", "ip.dst", "-e", "data.data")
				requests := 0
				for _, l := range strings.Split(strings.TrimSpace(esp), "\n") {
					// Outer addresses first, then the inner ones (tshark lists each IP layer).
					if strings.Contains(l, leftOuter+","+leftInner4) && strings.Contains(l, rightOuter+","+rightInner4) &&
						strings.Contains(l, strings.Repeat(pingPattern, 4)) {
						requests++
					}
				}
				if requests < 2 {
					t.Fatalf("decrypted ESP shows %d inner echo requests %s -> %s, want 2:\n%s", requests, leftInner4, rightInner4, esp)
				}
			})
		}
	}
}

// checkSameTsharkIKESA compares goipsec's key log row with the one made from charon's keys.
func checkSameTsharkIKESA(t *testing.T, got, want testnet.TsharkIKESA) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want []byte
	}{
		{"SPIi", got.SPIi, want.SPIi}, {"SPIr", got.SPIr, want.SPIr},
		{"SK_ei", got.SKei, want.SKei}, {"SK_er", got.SKer, want.SKer},
		{"SK_ai", got.SKai, want.SKai}, {"SK_ar", got.SKar, want.SKar},
	} {
		if !bytes.Equal(f.got, f.want) {
			t.Errorf("key log %s = %x, charon derived %x", f.name, f.got, f.want)
		}
	}
	if got.Encr != want.Encr || got.Integ != want.Integ {
		t.Errorf("key log algorithms %q / %q, want %q / %q", got.Encr, got.Integ, want.Encr, want.Integ)
	}
}

// tsharkWithRows runs tshark over pcap with a private configuration directory whose UAT file table
// holds rows exactly as given: the check that goipsec's key log lines can be pasted into Wireshark.
func tsharkWithRows(t *testing.T, pcap, table string, rows []string, args ...string) string {
	t.Helper()
	conf := t.TempDir()
	body := "# goipsec key log rows\n" + strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(conf, table), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tshark", append([]string{"-n", "-r", pcap}, args...)...)
	// tshark reads its personal configuration (UAT files) from $WIRESHARK_CONFIG_DIR.
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	// tshark complains on stderr about UAT rows it cannot parse, and goes on without them. The only
	// other line it prints here is its warning about running as root.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.HasPrefix(line, "Running as user") {
			t.Fatalf("tshark complained about the key log rows:\n%s", stderr.String())
		}
	}
	return stdout.String()
}
