package strongswan

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/internal/testnet"
)

// TestTunnelBetweenTwoCharons proves the harness end to end: two charons, PSK, AES-GCM IKE and ESP,
// traffic through the tunnel, keys read back from both logs, and tshark decrypting the capture with
// those keys.
func TestTunnelBetweenTwoCharons(t *testing.T) {
	testnet.Require(t, "tshark", "ping")
	p := newPair(t, pairConfig{ikeProposal: "aes256gcm16-prfsha256-x25519", espProposal: "aes256gcm16"})
	p.establish(t)

	if ok, out := p.left.Ping(t, rightInner, 3); !ok {
		t.Fatalf("ping through the tunnel failed:\n%s", out)
	}

	var listings []string
	for _, c := range []*Charon{p.l, p.r} {
		out := c.ListSAs(t)
		listings = append(listings, out)
		for _, want := range []string{"ESTABLISHED", "INSTALLED", "TUNNEL-in-UDP", "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519"} {
			if !strings.Contains(out, want) {
				t.Errorf("swanctl --list-sas in %s lacks %q:\n%s", c.ns, want, out)
			}
		}
	}

	lk, rk := p.l.Keys(), p.r.Keys()
	if len(lk) != 1 || len(rk) != 1 {
		t.Fatalf("IKE SAs in logs: left %d, right %d; want 1 each", len(lk), len(rk))
	}
	ike := lk[0]
	checkSameIKEKeys(t, ike, rk[0])
	if got := ike.Proposal; got != "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519" {
		t.Errorf("proposal %q", got)
	}
	// AES-256-GCM: 32 key bytes + 4 salt bytes; no separate integrity keys; SHA-256 PRF: 32-byte SK_d/SK_p.
	for name, want := range map[string]int{"SK_ei": 36, "SK_er": 36, "SK_ai": 0, "SK_ar": 0, "SK_d": 32, "SK_pi": 32, "SK_pr": 32, "SKEYSEED": 32, "DH": 32} {
		got := map[string][]byte{"SK_ei": ike.SKei, "SK_er": ike.SKer, "SK_ai": ike.SKai, "SK_ar": ike.SKar,
			"SK_d": ike.SKd, "SK_pi": ike.SKpi, "SK_pr": ike.SKpr, "SKEYSEED": ike.SKEYSEED, "DH": ike.DHSecret}[name]
		if len(got) != want {
			t.Errorf("%s: %d bytes, want %d", name, len(got), want)
		}
	}
	spiLine := fmt.Sprintf("%x_i* %x_r", ike.SPIi, ike.SPIr)
	if !strings.Contains(listings[0], spiLine) {
		t.Errorf("SPIs from the log (%s) not in the initiator's list-sas:\n%s", spiLine, listings[0])
	}

	lc, rc := p.l.ChildKeys(), p.r.ChildKeys()
	if len(lc) != 1 || len(rc) != 1 {
		t.Fatalf("CHILD_SAs in logs: left %d, right %d; want 1 each", len(lc), len(rc))
	}
	checkMatchingChildKeys(t, lc[0], rc[0])
	if !lc[0].Initiator || rc[0].Initiator {
		t.Errorf("initiator flags: left %v, right %v", lc[0].Initiator, rc[0].Initiator)
	}
	if len(lc[0].EncrI) != 36 || len(lc[0].IntegI) != 0 {
		t.Errorf("ESP AES-256-GCM keys: encr %d bytes, integ %d bytes; want 36, 0", len(lc[0].EncrI), len(lc[0].IntegI))
	}
	for _, s := range []string{fmt.Sprintf("in  %08x", lc[0].In.SPI), fmt.Sprintf("out %08x", lc[0].Out.SPI)} {
		if !strings.Contains(listings[0], s) {
			t.Errorf("%q from the log not in the initiator's list-sas", s)
		}
	}
	if lc[0].Out.Src != leftOuter || lc[0].Out.Dst != rightOuter {
		t.Errorf("outbound SA addresses %s -> %s", lc[0].Out.Src, lc[0].Out.Dst)
	}

	pcap := p.capture.Stop()

	// tshark decrypts IKE_AUTH with the logged keys and verifies each message's ICV.
	row, err := ike.Tshark()
	if err != nil {
		t.Fatal(err)
	}
	out := testnet.TsharkDecryptIKE(t, pcap, []testnet.TsharkIKESA{row}, "-V", "-Y", "isakmp.exchangetype == 35")
	correct, incorrect := testnet.TsharkICVCounts(out)
	if correct != 2 || incorrect != 0 {
		t.Errorf("tshark ICV checks of IKE_AUTH: %d correct, %d incorrect; want 2, 0\n%s", correct, incorrect, out)
	}
	for _, want := range []string{"Identification - Initiator", "Identification - Responder", "Traffic Selector - Initiator", "ID_IPV4_ADDR: " + leftOuter} {
		if !strings.Contains(out, want) {
			t.Errorf("decrypted IKE_AUTH lacks %q", want)
		}
	}
	// The check has teeth: with one key bit flipped tshark reports the ICV as wrong.
	bad := row
	bad.SKei = bytes.Clone(row.SKei)
	bad.SKei[0] ^= 1
	out = testnet.TsharkDecryptIKE(t, pcap, []testnet.TsharkIKESA{bad}, "-V", "-Y", "isakmp.exchangetype == 35")
	if correct, incorrect := testnet.TsharkICVCounts(out); correct != 1 || incorrect != 1 {
		t.Errorf("with a wrong SK_ei: %d correct, %d incorrect; want 1, 1 (only the response verifies)", correct, incorrect)
	}

	// ESP: tshark does not check the GCM ICV, so look at the decrypted inner packets.
	espRows, err := lc[0].Tshark()
	if err != nil {
		t.Fatal(err)
	}
	out = testnet.TsharkDecryptESP(t, pcap, espRows, "-Y", "icmp")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(regexp.QuoteMeta(leftInner) + ` → ` + regexp.QuoteMeta(rightInner) + ` +ICMP .*Echo \(ping\) request`),
		regexp.MustCompile(regexp.QuoteMeta(rightInner) + ` → ` + regexp.QuoteMeta(leftInner) + ` +ICMP .*Echo \(ping\) reply`),
	} {
		if !want.MatchString(out) {
			t.Errorf("decrypted ESP lacks %s:\n%s", want, out)
		}
	}
}

// checkSameIKEKeys asserts that both peers logged the same keys for one IKE SA.
func checkSameIKEKeys(t *testing.T, a, b IKESAKeys) {
	t.Helper()
	for _, f := range []struct {
		name string
		a, b []byte
	}{
		{"SPIi", a.SPIi, b.SPIi}, {"SPIr", a.SPIr, b.SPIr},
		{"DH secret", a.DHSecret, b.DHSecret}, {"SKEYSEED", a.SKEYSEED, b.SKEYSEED},
		{"SK_d", a.SKd, b.SKd}, {"SK_ai", a.SKai, b.SKai}, {"SK_ar", a.SKar, b.SKar},
		{"SK_ei", a.SKei, b.SKei}, {"SK_er", a.SKer, b.SKer}, {"SK_pi", a.SKpi, b.SKpi}, {"SK_pr", a.SKpr, b.SKpr},
	} {
		if !bytes.Equal(f.a, f.b) {
			t.Errorf("%s differs between peers: %s vs %s", f.name, hex.EncodeToString(f.a), hex.EncodeToString(f.b))
		}
	}
	if a.Proposal != b.Proposal {
		t.Errorf("proposal differs: %q vs %q", a.Proposal, b.Proposal)
	}
}

// checkMatchingChildKeys asserts that what one peer sends is what the other receives.
func checkMatchingChildKeys(t *testing.T, a, b ChildSAKeys) {
	t.Helper()
	for _, d := range []struct {
		name    string
		out, in ESPKeys
	}{{"a->b", a.Out, b.In}, {"b->a", b.Out, a.In}} {
		if d.out.SPI != d.in.SPI || d.out.Src != d.in.Src || d.out.Dst != d.in.Dst ||
			!bytes.Equal(d.out.EncrKey, d.in.EncrKey) || !bytes.Equal(d.out.IntegKey, d.in.IntegKey) {
			t.Errorf("ESP %s: sender has %+v, receiver has %+v", d.name, d.out, d.in)
		}
		if len(d.out.EncrKey) == 0 {
			t.Errorf("ESP %s: no encryption key", d.name)
		}
	}
	if !bytes.Equal(a.EncrI, b.EncrI) || !bytes.Equal(a.EncrR, b.EncrR) {
		t.Errorf("raw child keys differ between peers")
	}
}
