package strongswan

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/credentials/pki"
	"github.com/goipsec/goipsec/internal/testnet"
)

// Recording golden IKEv2 traffic from two charons for the ike/wire codec tests.
//
// GOIPSEC_RECORD=1 go test -run TestRecordGolden ./internal/testnet/strongswan/ re-records every
// scenario into goldenDir (replacing it). Without the variable the test records the first scenario
// into a temporary directory and checks it, so the recorder keeps working against the installed
// strongSwan; the committed data is what the codec tests read.

const (
	recordEnv = "GOIPSEC_RECORD"
	goldenDir = "../../../ike/wire/testdata/strongswan"
	// dpdDelay is short so the DPD exchange comes soon after the rekeys, long enough that it does not
	// fire in the middle of them (DPD waits for dpd_delay without inbound traffic).
	dpdDelay = "2s"
	// exchangeTimeout guards every wait for an exchange; it is not a speed requirement.
	exchangeTimeout = 30 * time.Second
	// fragmentSize is charon.fragment_size for the fragmentation scenario: small enough that IKE_AUTH
	// with the extra traffic selectors must be sent as SKF fragments.
	fragmentSize = 500
	// nonESPMarkerLen: four zero bytes precede IKE messages on port 4500 (RFC 3948 section 2.2).
	nonESPMarkerLen = 4
	natTPort        = 4500
	ikePort         = 500
)

// IKE header layout (RFC 7296 section 3.1) and the payload numbers the recorder looks at.
const (
	ikeHeaderLen     = 28
	ikeOffSPIi       = 0
	ikeOffSPIr       = 8
	ikeOffNext       = 16
	ikeOffVersion    = 17
	ikeOffExchange   = 18
	ikeOffFlags      = 19
	ikeOffMessageID  = 20
	ikeOffLength     = 24
	ikeFlagInitiator = 0x08
	ikeFlagResponse  = 0x20
	payloadSK        = 46
	payloadSKF       = 53 // RFC 7383 section 2.5
	genericHeaderLen = 4
	skfHeaderLen     = 8 // generic header + fragment number + total fragments
	skfOffNumber     = 4
	skfOffTotal      = 6
)

var exchangeNames = map[byte]string{34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL"}

// scenario is one recording.
type scenario struct {
	name string // directory name under goldenDir
	cfg  pairConfig
}

func scenarios() []scenario {
	var extraLeft, extraRight []string
	for i := 0; i < 24; i++ {
		extraLeft = append(extraLeft, fmt.Sprintf("10.11.%d.0/24", i))
		extraRight = append(extraRight, fmt.Sprintf("10.12.%d.0/24", i))
	}
	return []scenario{
		{"aes256gcm16-prfsha256-x25519", pairConfig{ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16", dpdDelay: dpdDelay}},
		{"aes128gcm16-prfsha256-ecp256", pairConfig{ikeProposal: "aes128gcm16-prfsha256-ecp256", espProposal: "aes128gcm16", dpdDelay: dpdDelay}},
		{"chacha20poly1305-prfsha256-x25519", pairConfig{ikeProposal: "chacha20poly1305-prfsha256-x25519", espProposal: "chacha20poly1305", dpdDelay: dpdDelay}},
		{"aes256-sha256-modp2048", pairConfig{ikeProposal: "aes256-sha256-modp2048", espProposal: "aes256-sha256", dpdDelay: dpdDelay}},
		// Certificate authentication (credentials written next to keys.json): the AUTH payloads
		// of strongSwan's signatures, for ike/auth's known-answer tests.
		{"cert-ed25519", pairConfig{ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16", dpdDelay: dpdDelay, certKey: pki.Ed25519, auth: "pubkey"}},
		{"cert-rsa-pkcs1", pairConfig{ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16", dpdDelay: dpdDelay, certKey: pki.RSA2048, auth: "pubkey"}},
		{"cert-rsa-pss", pairConfig{ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16", dpdDelay: dpdDelay, certKey: pki.RSA2048, auth: "rsa/pss-sha256"}},
		{"cert-ecdsa-p256", pairConfig{ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16", dpdDelay: dpdDelay, certKey: pki.ECDSA256, auth: "pubkey"}},
		{"fragmented-aes256gcm16-prfsha256-x25519", pairConfig{
			ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16", dpdDelay: dpdDelay,
			charonConf:  fmt.Sprintf("fragment_size = %d", fragmentSize),
			extraLeftTS: extraLeft, extraRightTS: extraRight,
		}},
	}
}

func TestRecordGolden(t *testing.T) {
	if os.Getenv(recordEnv) == "1" {
		for _, sc := range scenarios() {
			t.Run(sc.name, func(t *testing.T) {
				dir := filepath.Join(goldenDir, sc.name)
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				record(t, sc, dir)
				verifyGolden(t, dir)
			})
		}
		return
	}
	sc := scenarios()[0]
	dir := t.TempDir()
	record(t, sc, dir)
	verifyGolden(t, dir)
}

// reResponse matches a whole response the initiator processed (not a single fragment of one).
var reResponse = regexp.MustCompile(`parsed \S+ response \d+ \[ (?:[^E]|E[^F])`)

// waitResponses waits until left has processed n responses: each exchange left starts ends there.
func waitResponses(t *testing.T, c *Charon, n int) {
	t.Helper()
	deadline := time.Now().Add(exchangeTimeout)
	for {
		got := len(reResponse.FindAllString(c.Log(), -1))
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left processed %d responses, want %d", got, n)
		}
		time.Sleep(pollInterval)
	}
}

// record runs the full life of an IKE SA between the two charons and writes every IKE message and
// the keys to dir. All exchanges are started by left, so left is the initiator of every SA.
func record(t *testing.T, sc scenario, dir string) {
	p := newPair(t, sc.cfg)
	p.establish(t) // IKE_SA_INIT, IKE_AUTH
	waitResponses(t, p.l, 2)
	p.l.Swanctl(t, "--rekey", "--child", childName) // CREATE_CHILD_SA, INFORMATIONAL (delete old)
	waitResponses(t, p.l, 4)
	p.l.Swanctl(t, "--rekey", "--ike", connName) // CREATE_CHILD_SA, INFORMATIONAL (delete old)
	waitResponses(t, p.l, 6)
	// DPD: an empty INFORMATIONAL once nothing arrived for dpd_delay.
	p.l.WaitLog(t, regexp.MustCompile(`parsed INFORMATIONAL response \d+ \[ \]`), exchangeTimeout)
	waitResponses(t, p.l, 7)
	p.l.Swanctl(t, "--terminate", "--ike", connName, "--timeout", initiateTimeout) // INFORMATIONAL (delete)
	waitResponses(t, p.l, 8)
	pcap := p.capture.Stop()

	lIKE, lChild := p.l.Keys(), p.l.ChildKeys()
	rIKE, rChild := p.r.Keys(), p.r.ChildKeys()
	if len(lIKE) != 2 || len(rIKE) != 2 || len(lChild) != 2 || len(rChild) != 2 {
		t.Fatalf("keys in logs: left %d IKE %d CHILD, right %d IKE %d CHILD; want 2 of each",
			len(lIKE), len(lChild), len(rIKE), len(rChild))
	}
	for i := range lIKE {
		checkSameIKEKeys(t, lIKE[i], rIKE[i])
		checkMatchingChildKeys(t, lChild[i], rChild[i])
		if !lChild[i].Initiator {
			t.Errorf("left did not initiate CHILD_SA %s{%d}", lChild[i].Name, lChild[i].ID)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	g := golden{
		Recording:   sc.name,
		Software:    "strongSwan 5.9.8 charon (Debian 12 packages), kernel-libipsec, both peers",
		IKEConfig:   sc.cfg.ikeProposal,
		ESPConfig:   sc.cfg.espProposal,
		CharonConf:  sc.cfg.charonConf,
		Initiator:   leftOuter,
		Responder:   rightOuter,
		PSK:         testPSK,
		Description: "left (initiator of every exchange): IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA rekeying the CHILD_SA, INFORMATIONAL deleting the old CHILD_SA, CREATE_CHILD_SA rekeying the IKE SA, INFORMATIONAL deleting the old IKE SA, INFORMATIONAL DPD (empty), INFORMATIONAL deleting the IKE SA",
	}
	for _, k := range lIKE {
		g.IKESAs = append(g.IKESAs, toGoldenIKESA(k))
	}
	for _, k := range lChild {
		g.ChildSAs = append(g.ChildSAs, toGoldenChildSA(k))
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range p.credentials {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		g.Credentials = append(g.Credentials, name)
	}
	sort.Strings(g.Credentials)
	g.Auth = sc.cfg.auth
	pkts, err := testnet.ReadPcap(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pkt := range pkts {
		d, err := pkt.UDP()
		if err != nil {
			t.Fatalf("captured packet: %v", err)
		}
		msg, ok := ikeMessage(d)
		if !ok {
			continue
		}
		m, err := describeMessage(msg, g.IKESAs)
		if err != nil {
			t.Fatalf("captured IKE message %d: %v", len(g.Messages)+1, err)
		}
		m.SentBy = "initiator"
		if d.Src.Addr().String() == rightOuter {
			m.SentBy = "responder"
		}
		m.UDPSrcPort, m.UDPDstPort = d.Src.Port(), d.Dst.Port()
		rr := "req"
		if m.Response {
			rr = "resp"
		}
		m.File = fmt.Sprintf("%03d-%s-%s.bin", len(g.Messages)+1, strings.ToLower(m.Exchange), rr)
		if err := os.WriteFile(filepath.Join(dir, m.File), msg, 0o644); err != nil {
			t.Fatal(err)
		}
		g.Messages = append(g.Messages, m)
	}
	js, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ikeMessage returns the IKE message in a datagram on port 500 or 4500: on 4500 only datagrams with
// the non-ESP marker carry IKE (the others are ESP or NAT keepalives), and the marker is removed.
func ikeMessage(d testnet.UDPDatagram) ([]byte, bool) {
	switch {
	case d.Src.Port() == natTPort || d.Dst.Port() == natTPort:
		if len(d.Payload) < nonESPMarkerLen || binary.BigEndian.Uint32(d.Payload) != 0 {
			return nil, false
		}
		return d.Payload[nonESPMarkerLen:], true
	case d.Src.Port() == ikePort || d.Dst.Port() == ikePort:
		return d.Payload, true
	}
	return nil, false
}

// describeMessage reads the few header fields the index needs; the codec proper lives in ike/wire.
func describeMessage(msg []byte, sas []goldenIKESA) (goldenMessage, error) {
	var m goldenMessage
	if len(msg) < ikeHeaderLen {
		return m, fmt.Errorf("%d bytes, shorter than an IKE header", len(msg))
	}
	if n := binary.BigEndian.Uint32(msg[ikeOffLength:]); int(n) != len(msg) {
		return m, fmt.Errorf("IKE length field %d, datagram carries %d bytes", n, len(msg))
	}
	name, ok := exchangeNames[msg[ikeOffExchange]]
	if !ok {
		return m, fmt.Errorf("exchange type %d", msg[ikeOffExchange])
	}
	m.Exchange = name
	m.MessageID = binary.BigEndian.Uint32(msg[ikeOffMessageID:])
	m.Response = msg[ikeOffFlags]&ikeFlagResponse != 0
	m.InitiatorFlag = msg[ikeOffFlags]&ikeFlagInitiator != 0
	m.SPIi = hex.EncodeToString(msg[ikeOffSPIi:ikeOffSPIr])
	m.SPIr = hex.EncodeToString(msg[ikeOffSPIr:ikeOffNext])
	m.FirstPayload = int(msg[ikeOffNext])
	m.IKESA = -1
	for i, sa := range sas {
		// An IKE_SA_INIT request carries a zero responder SPI.
		if sa.SPIi == m.SPIi && (sa.SPIr == m.SPIr || m.Exchange == "IKE_SA_INIT") {
			m.IKESA = i
		}
	}
	if m.FirstPayload == payloadSKF {
		if len(msg) < ikeHeaderLen+skfHeaderLen {
			return m, fmt.Errorf("SKF payload truncated")
		}
		m.Fragment = int(binary.BigEndian.Uint16(msg[ikeHeaderLen+skfOffNumber:]))
		m.Fragments = int(binary.BigEndian.Uint16(msg[ikeHeaderLen+skfOffTotal:]))
	}
	return m, nil
}

// golden is keys.json.
type golden struct {
	Recording   string `json:"recording"`
	Software    string `json:"software"`
	Description string `json:"description"`
	IKEConfig   string `json:"ike_proposal_config"`
	ESPConfig   string `json:"esp_proposal_config"`
	CharonConf  string `json:"charon_conf,omitempty"`
	Initiator   string `json:"initiator_address"`
	Responder   string `json:"responder_address"`
	PSK         string `json:"psk"`
	// Auth and Credentials: certificate scenarios name the auth value both sides used and the
	// PEM files (CA, certificates, private keys of left and right) next to keys.json.
	Auth        string          `json:"auth,omitempty"`
	Credentials []string        `json:"credentials,omitempty"`
	IKESAs      []goldenIKESA   `json:"ike_sas"`
	ChildSAs    []goldenChildSA `json:"child_sas"`
	Messages    []goldenMessage `json:"messages"`
}

type goldenIKESA struct {
	Proposal string `json:"proposal"` // as charon logs it
	Encr     string `json:"encr"`
	Integ    string `json:"integ,omitempty"`
	PRF      string `json:"prf"`
	KE       string `json:"ke"`
	SPIi     string `json:"spi_i"`
	SPIr     string `json:"spi_r"`
	DHSecret string `json:"dh_shared_secret"`
	SKEYSEED string `json:"skeyseed"`
	SKd      string `json:"sk_d"`
	SKai     string `json:"sk_ai,omitempty"`
	SKar     string `json:"sk_ar,omitempty"`
	SKei     string `json:"sk_ei"`
	SKer     string `json:"sk_er"`
	SKpi     string `json:"sk_pi"`
	SKpr     string `json:"sk_pr"`
}

type goldenChildSA struct {
	Name     string `json:"name"`
	Proposal string `json:"proposal"`
	Encr     string `json:"encr"`
	Integ    string `json:"integ,omitempty"`
	ESN      string `json:"esn"`
	// Keys as charon logs them: initiator keys protect initiator->responder traffic.
	EncrI  string `json:"encryption_initiator_key"`
	EncrR  string `json:"encryption_responder_key"`
	IntegI string `json:"integrity_initiator_key,omitempty"`
	IntegR string `json:"integrity_responder_key,omitempty"`
	// SPIs of the two ESP SAs: the one carrying initiator->responder traffic (chosen by the
	// responder) and the one carrying responder->initiator traffic (chosen by the initiator).
	SPIInitiatorToResponder string `json:"spi_initiator_to_responder"`
	SPIResponderToInitiator string `json:"spi_responder_to_initiator"`
}

type goldenMessage struct {
	File          string `json:"file"`
	Exchange      string `json:"exchange"`
	MessageID     uint32 `json:"message_id"`
	Response      bool   `json:"response"`
	InitiatorFlag bool   `json:"initiator_flag"`
	SentBy        string `json:"sent_by"` // "initiator" (left) or "responder" (right)
	UDPSrcPort    uint16 `json:"udp_src_port"`
	UDPDstPort    uint16 `json:"udp_dst_port"`
	SPIi          string `json:"spi_i"`
	SPIr          string `json:"spi_r"`
	IKESA         int    `json:"ike_sa"` // index into ike_sas
	FirstPayload  int    `json:"first_payload"`
	Fragment      int    `json:"fragment,omitempty"`
	Fragments     int    `json:"fragments,omitempty"`
}

func toGoldenIKESA(k IKESAKeys) goldenIKESA {
	p := ParseProposal(k.Proposal)
	h := hex.EncodeToString
	return goldenIKESA{
		Proposal: k.Proposal, Encr: p.Encr, Integ: p.Integ, PRF: p.PRF, KE: p.KE,
		SPIi: h(k.SPIi), SPIr: h(k.SPIr),
		DHSecret: h(k.DHSecret), SKEYSEED: h(k.SKEYSEED), SKd: h(k.SKd),
		SKai: h(k.SKai), SKar: h(k.SKar), SKei: h(k.SKei), SKer: h(k.SKer), SKpi: h(k.SKpi), SKpr: h(k.SKpr),
	}
}

// toGoldenChildSA converts keys seen by the initiator of the CHILD_SA.
func toGoldenChildSA(k ChildSAKeys) goldenChildSA {
	p := ParseProposal(k.Proposal)
	h := hex.EncodeToString
	return goldenChildSA{
		Name: k.Name, Proposal: k.Proposal, Encr: p.Encr, Integ: p.Integ, ESN: p.ESN,
		EncrI: h(k.EncrI), EncrR: h(k.EncrR), IntegI: h(k.IntegI), IntegR: h(k.IntegR),
		SPIInitiatorToResponder: fmt.Sprintf("%08x", k.Out.SPI),
		SPIResponderToInitiator: fmt.Sprintf("%08x", k.In.SPI),
	}
}
