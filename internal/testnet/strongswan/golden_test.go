package strongswan

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The committed recordings must be self-consistent: the index matches the files, every header field
// it lists is what the bytes say, and every SK/SKF payload authenticates and decrypts with the keys in
// keys.json (AES-GCM and AES-CBC/HMAC-SHA-256 with the standard library; ChaCha20-Poly1305 is left to
// the codec tests, the standard library has no public implementation). This is what makes the keys
// trustworthy as test input for ike/wire and ike/suite.
func TestGoldenDataConsistent(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			verifyGolden(t, filepath.Join(goldenDir, sc.name))
		})
	}
}

// errNoStdlibCipher marks SK payloads this test cannot open.
var errNoStdlibCipher = errors.New("no standard library implementation")

func verifyGolden(t *testing.T, dir string) {
	t.Helper()
	js, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(js, &g); err != nil {
		t.Fatalf("keys.json: %v", err)
	}
	if len(g.IKESAs) != 2 || len(g.ChildSAs) != 2 {
		t.Fatalf("keys.json has %d IKE SAs and %d CHILD_SAs, want 2 and 2", len(g.IKESAs), len(g.ChildSAs))
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{"keys.json": true}
	for _, f := range g.Credentials {
		listed[f] = true
	}
	for _, m := range g.Messages {
		listed[m.File] = true
	}
	for _, e := range entries {
		if !listed[e.Name()] {
			t.Errorf("%s is not listed in keys.json", e.Name())
		}
	}

	var sequence []string
	opened, skMessages, fragments := 0, 0, 0
	for _, m := range g.Messages {
		msg, err := os.ReadFile(filepath.Join(dir, m.File))
		if err != nil {
			t.Fatal(err)
		}
		got, err := describeMessage(msg, g.IKESAs)
		if err != nil {
			t.Fatalf("%s: %v", m.File, err)
		}
		got.File, got.SentBy, got.UDPSrcPort, got.UDPDstPort = m.File, m.SentBy, m.UDPSrcPort, m.UDPDstPort
		if got != m {
			t.Errorf("%s: bytes say %+v, keys.json says %+v", m.File, got, m)
		}
		if m.IKESA < 0 {
			t.Errorf("%s: SPIs %s/%s belong to no IKE SA in keys.json", m.File, m.SPIi, m.SPIr)
			continue
		}
		// The initiator of every exchange is left, which also initiated both IKE SAs.
		if (m.SentBy == "initiator") != m.InitiatorFlag || (m.SentBy == "initiator") == m.Response {
			t.Errorf("%s: sent by %s with I=%v R=%v", m.File, m.SentBy, m.InitiatorFlag, m.Response)
		}
		if m.Fragment <= 1 {
			sequence = append(sequence, fmt.Sprintf("%s %v", m.Exchange, m.Response))
		}
		if m.FirstPayload != payloadSK && m.FirstPayload != payloadSKF {
			continue
		}
		skMessages++
		if m.FirstPayload == payloadSKF {
			fragments++
		}
		pt, err := openSK(msg, g.IKESAs[m.IKESA], m.InitiatorFlag)
		if errors.Is(err, errNoStdlibCipher) {
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", m.File, err)
			continue
		}
		opened++
		checkPlaintext(t, m, msg, pt, g)
	}

	want := []string{
		"IKE_SA_INIT false", "IKE_SA_INIT true", "IKE_AUTH false", "IKE_AUTH true",
		"CREATE_CHILD_SA false", "CREATE_CHILD_SA true", "INFORMATIONAL false", "INFORMATIONAL true",
		"CREATE_CHILD_SA false", "CREATE_CHILD_SA true", "INFORMATIONAL false", "INFORMATIONAL true",
		"INFORMATIONAL false", "INFORMATIONAL true", "INFORMATIONAL false", "INFORMATIONAL true",
	}
	if !slices.Equal(sequence, want) {
		t.Errorf("exchanges (request=false/response=true):\n got %q\nwant %q", sequence, want)
	}
	if ParseProposal(g.IKESAs[0].Proposal).Encr != "CHACHA20_POLY1305" && opened != skMessages {
		t.Errorf("opened %d of %d SK/SKF payloads", opened, skMessages)
	}
	if g.CharonConf != "" && fragments == 0 {
		t.Errorf("fragmentation recording without SKF payloads")
	}
}

// openSK authenticates and decrypts the SK or SKF payload, which strongSwan always sends as the only
// payload, and returns the plaintext without padding.
func openSK(msg []byte, sa goldenIKESA, fromInitiator bool) ([]byte, error) {
	hdrLen := genericHeaderLen
	if msg[ikeOffNext] == payloadSKF {
		hdrLen = skfHeaderLen
	}
	body := msg[ikeHeaderLen+hdrLen:]
	encrKey, integKey := sa.SKer, sa.SKar
	if fromInitiator {
		encrKey, integKey = sa.SKei, sa.SKai
	}
	ke, err := hex.DecodeString(encrKey)
	if err != nil {
		return nil, err
	}
	var pt []byte
	switch sa.Encr {
	case "AES_GCM_16_128", "AES_GCM_16_192", "AES_GCM_16_256":
		// RFC 5282 section 3: 8-byte IV, 16-byte ICV, nonce = salt || IV; section 5.1: the AAD runs from
		// the IKE header to the end of the (fragment) payload header. RFC 7383 section 2.5 for SKF.
		const ivLen, saltLen = 8, 4
		if len(body) < ivLen+16 || len(ke) <= saltLen {
			return nil, fmt.Errorf("SK payload of %d bytes", len(body))
		}
		block, err := aes.NewCipher(ke[:len(ke)-saltLen])
		if err != nil {
			return nil, err
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		nonce := append(bytes.Clone(ke[len(ke)-saltLen:]), body[:ivLen]...)
		pt, err = gcm.Open(nil, nonce, body[ivLen:], msg[:ikeHeaderLen+hdrLen])
		if err != nil {
			return nil, fmt.Errorf("AES-GCM ICV: %w", err)
		}
	case "AES_CBC_128", "AES_CBC_192", "AES_CBC_256":
		if sa.Integ != "HMAC_SHA2_256_128" {
			return nil, errNoStdlibCipher
		}
		// RFC 7296 section 3.14: the ICV covers the whole message up to the ICV itself; RFC 4868:
		// HMAC-SHA-256 truncated to 128 bits.
		const icvLen = 16
		ka, err := hex.DecodeString(integKey)
		if err != nil {
			return nil, err
		}
		if len(body) < aes.BlockSize+icvLen || (len(body)-aes.BlockSize-icvLen)%aes.BlockSize != 0 {
			return nil, fmt.Errorf("SK payload of %d bytes", len(body))
		}
		mac := hmac.New(sha256.New, ka)
		mac.Write(msg[:len(msg)-icvLen])
		if !hmac.Equal(mac.Sum(nil)[:icvLen], msg[len(msg)-icvLen:]) {
			return nil, fmt.Errorf("HMAC-SHA-256-128 ICV mismatch")
		}
		block, err := aes.NewCipher(ke)
		if err != nil {
			return nil, err
		}
		ct := body[aes.BlockSize : len(body)-icvLen]
		pt = make([]byte, len(ct))
		cipher.NewCBCDecrypter(block, body[:aes.BlockSize]).CryptBlocks(pt, ct)
	default:
		return nil, errNoStdlibCipher
	}
	// RFC 7296 section 3.14: padding, then one byte with the padding length.
	if len(pt) == 0 || int(pt[len(pt)-1]) >= len(pt) {
		return nil, fmt.Errorf("bad padding length in %d bytes of plaintext", len(pt))
	}
	return pt[:len(pt)-1-int(pt[len(pt)-1])], nil
}

// checkPlaintext looks inside decrypted messages whose content is known.
func checkPlaintext(t *testing.T, m goldenMessage, msg, pt []byte, g golden) {
	t.Helper()
	inner := msg[ikeHeaderLen] // the SK/SKF header's next payload is the first inner payload
	switch {
	case m.Exchange == "IKE_AUTH" && !m.Response && m.Fragment <= 1:
		const payloadIDi, idIPv4 = 35, 1
		if inner != payloadIDi {
			t.Errorf("%s: first inner payload %d, want IDi", m.File, inner)
		}
		if m.Fragment == 0 {
			// IDi: generic header, ID type, 3 reserved bytes, then the IPv4 address (RFC 7296 3.5).
			want := netip.MustParseAddr(g.Initiator).As4()
			if len(pt) < 12 || pt[4] != idIPv4 || !bytes.Equal(pt[8:12], want[:]) {
				t.Errorf("%s: IDi does not carry %s: % x", m.File, g.Initiator, pt[:min(len(pt), 12)])
			}
		}
	case m.Exchange == "INFORMATIONAL" && inner == 0 && m.Fragment == 0:
		// DPD and the final delete response: an empty SK payload.
		if len(pt) != 0 {
			t.Errorf("%s: empty INFORMATIONAL has %d bytes of content", m.File, len(pt))
		}
	}
}
