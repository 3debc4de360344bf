package interop

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
)

// TestHybridMLKEMTshark: goipsec with goipsec on the default proposals negotiates X25519 followed
// by ML-KEM-768 in IKE_INTERMEDIATE; tshark decodes every message of the capture: IKE_SA_INIT in
// the clear, the IKE_INTERMEDIATE exchange with the keys of IKE_SA_INIT (ICVs correct, the KE
// payloads of ML-KEM-768's sizes: a 1184-byte encapsulation key, a 1088-byte ciphertext), IKE_AUTH
// with the keys after the additional key exchange (ICVs correct), and the ESP echo requests with the
// Child SA keys.
func TestHybridMLKEMTshark(t *testing.T) {
	testnet.Require(t, "tshark", "tcpdump")
	_, left, right, _, rightIf := setupOuter(t, leftOuter+"/24", rightOuter+"/24")
	capture := right.Capture(t, rightIf, "udp or esp")
	keys := filepath.Join(t.TempDir(), "goipsec.keys")
	startGoipsec(t, right, connConf{local: rightOuter, remote: leftOuter, localID: rightOuter, remoteID: leftOuter,
		ikeProposal: "default", espProposal: "aes256gcm16", localTS: rightNet4, remoteTS: leftNet4}.String())
	g := startGoipsec(t, left, connConf{local: leftOuter, remote: rightOuter, localID: leftOuter, remoteID: rightOuter,
		ikeProposal: "default", espProposal: "aes256gcm16", localTS: leftNet4, remoteTS: rightNet4, startAction: "start", keylog: keys}.String())
	g.waitLog(t, "Child SA established", 20*time.Second)
	if out, err := left.Output("ping", "-4", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-p", pingPattern, rightInner4); err != nil {
		t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
	pcap := capture.Stop()

	kl := readKeylog(t, keys)
	ikes := kl.ikeSAs(t)
	// One row per key generation: after IKE_SA_INIT, after the additional key exchange.
	if len(ikes) != 2 || string(ikes[0].SPIi) != string(ikes[1].SPIi) {
		t.Fatalf("key log has %d IKE key rows, want 2 of one IKE SA: %q", len(ikes), kl.ikeRows)
	}
	clear := testnet.TsharkDecryptIKE(t, pcap, nil, "-T", "fields", "-e", "isakmp.exchangetype", "-Y", "isakmp")
	if got := strings.Fields(clear); strings.Join(got, " ") != "34 34 43 43 35 35" {
		t.Fatalf("exchanges on the wire: %q, want IKE_SA_INIT, IKE_INTERMEDIATE, IKE_AUTH", got)
	}
	inter := testnet.TsharkDecryptIKE(t, pcap, ikes[:1], "-V", "-Y", "isakmp.exchangetype == 43")
	if correct, incorrect := testnet.TsharkICVCounts(inter); correct != 2 || incorrect != 0 {
		t.Fatalf("IKE_INTERMEDIATE with the first keys: ICVs %d correct, %d incorrect:\n%s", correct, incorrect, testnet.Tail(inter, 60))
	}
	for _, want := range []string{"Key Exchange Data: ", "Payload: Key Exchange (34)"} {
		if !strings.Contains(inter, want) {
			t.Fatalf("decrypted IKE_INTERMEDIATE lacks %q:\n%s", want, testnet.Tail(inter, 60))
		}
	}
	sizes := testnet.TsharkDecryptIKE(t, pcap, ikes[:1], "-T", "fields", "-e", "isakmp.typepayload", "-e", "isakmp.payloadlength", "-Y", "isakmp.exchangetype == 43")
	// Per message: the payload types (SK, then the inner KE) and their lengths.
	if got := strings.Join(strings.Fields(sizes), " "); got != "46,34 1221,1192 46,34 1125,1096" {
		t.Fatalf("KE payload lengths %q, want 1192 (8 + 1184, the encapsulation key) and 1096 (8 + 1088, the ciphertext)", got)
	}
	auth := testnet.TsharkDecryptIKE(t, pcap, ikes[1:], "-V", "-Y", "isakmp.exchangetype == 35")
	if correct, incorrect := testnet.TsharkICVCounts(auth); correct != 2 || incorrect != 0 {
		t.Fatalf("IKE_AUTH with the updated keys: ICVs %d correct, %d incorrect:\n%s", correct, incorrect, testnet.Tail(auth, 60))
	}
	esp := testnet.TsharkDecryptESP(t, pcap, kl.espSAs(t), "-Y", "esp && icmp.type == 8", "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "data.data")
	requests := 0
	for _, l := range strings.Split(strings.TrimSpace(esp), "\n") {
		if strings.Contains(l, leftInner4) && strings.Contains(l, rightInner4) && strings.Contains(l, strings.Repeat(pingPattern, 4)) {
			requests++
		}
	}
	if requests < 2 {
		t.Fatalf("decrypted ESP shows %d inner echo requests, want 2:\n%s", requests, esp)
	}
}
