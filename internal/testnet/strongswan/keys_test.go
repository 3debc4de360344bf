package strongswan

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// logBuilder writes lines in the shape of strongSwan 5.9.8's file logger with ike_name = yes.
type logBuilder struct{ strings.Builder }

func (b *logBuilder) line(thread int, group, ctx, msg string) {
	if ctx != "" {
		ctx = "<" + ctx + "> "
	}
	fmt.Fprintf(&b.Builder, "%02d[%s] %s%s\n", thread, group, ctx, msg)
}

// dump writes a %B chunk dump: a header line, then 16 bytes per line as hex and printable text.
func (b *logBuilder) dump(thread int, group, ctx, label string, data []byte) {
	b.line(thread, group, ctx, fmt.Sprintf("%s => %d bytes @ 0x7f0d880367c0", label, len(data)))
	for off := 0; off < len(data); off += 16 {
		chunk := data[off:min(off+16, len(data))]
		var hexPart, text strings.Builder
		for _, c := range chunk {
			fmt.Fprintf(&hexPart, "%02X ", c)
			if c >= 0x20 && c < 0x7f {
				text.WriteByte(c)
			} else {
				text.WriteByte('.')
			}
		}
		b.line(thread, group, ctx, fmt.Sprintf("%4d: %-48s %s", off, hexPart.String(), text.String()))
	}
}

// seq returns n bytes starting at first and counting up, so every key is distinct and recognisable.
func seq(first byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = first + byte(i)
	}
	return out
}

func TestParseLogInitiator(t *testing.T) {
	var b logBuilder
	b.line(14, "MGR", "", "created IKE_SA (unnamed)[1]")
	b.line(14, "MGR", "t|1", "checkin IKEv2 SA t[1] with SPIs 307f4e492027878e_i 0000000000000000_r")
	b.line(2, "ENC", "t|1", "parsed IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) ]")
	b.line(2, "CFG", "t|1", "selected proposal: IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048")
	b.dump(2, "IKE", "t|1", "natd_chunk", seq(0xf0, 22)) // ignored dump
	b.dump(2, "IKE", "t|1", "shared Diffie Hellman secret", seq(0x10, 40))
	b.dump(2, "IKE", "t|1", "SKEYSEED", seq(0x20, 32))
	b.dump(2, "IKE", "t|1", "Sk_d secret", seq(0x30, 32))
	// Another thread's line between two dumps does not disturb this thread's record.
	b.line(5, "CFG", "", "vici client 1 connected")
	b.dump(2, "IKE", "t|1", "Sk_ai secret", seq(0x40, 32))
	b.dump(2, "IKE", "t|1", "Sk_ar secret", seq(0x50, 32))
	b.dump(2, "IKE", "t|1", "Sk_ei secret", seq(0x60, 32))
	b.dump(2, "IKE", "t|1", "Sk_er secret", seq(0x70, 32))
	b.dump(2, "IKE", "t|1", "Sk_pi secret", seq(0x80, 32))
	b.dump(2, "IKE", "t|1", "Sk_pr secret", seq(0x90, 32))
	b.dump(2, "IKE", "t|1", "secret", []byte("lab-psk")) // the PSK: not a key we report
	b.line(2, "MGR", "t|1", "checkin IKEv2 SA t[1] with SPIs 307f4e492027878e_i e44d75f8234df4d1_r")
	// IKE_AUTH response: the CHILD_SA, initiator side.
	b.line(4, "ENC", "t|1", "parsed IKE_AUTH response 1 [ IDr AUTH SA TSi TSr ]")
	b.line(4, "CFG", "t|1", "selected proposal: ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ")
	b.dump(4, "CHD", "t|1", "encryption initiator key", seq(0xa0, 32))
	b.dump(4, "CHD", "t|1", "integrity initiator key", seq(0xb0, 32))
	b.dump(4, "CHD", "t|1", "encryption responder key", seq(0xc0, 32))
	b.dump(4, "CHD", "t|1", "integrity responder key", seq(0xd0, 32))
	b.line(4, "CHD", "t|1", "adding inbound ESP SA")
	b.line(4, "CHD", "t|1", "  SPI 0x2187ede9, src 192.168.77.2 dst 192.168.77.1")
	b.line(4, "CHD", "t|1", "adding outbound ESP SA")
	b.line(4, "CHD", "t|1", "  SPI 0xe3ecfece, src 192.168.77.1 dst 192.168.77.2")
	b.line(4, "IKE", "t|1", "CHILD_SA net{1} established with SPIs 2187ede9_i e3ecfece_o and TS 10.1.0.0/24 === 10.2.0.0/24")
	// IKE rekey: the new SA's keys are logged in the old SA's context, and the new SA checks in first.
	b.line(16, "ENC", "t|1", "parsed CREATE_CHILD_SA response 4 [ SA No KE ]")
	b.line(16, "CFG", "t|1", "selected proposal: IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048")
	b.dump(16, "IKE", "t|1", "shared Diffie Hellman secret", seq(0x11, 40))
	b.dump(16, "IKE", "t|1", "SKEYSEED", seq(0x21, 32))
	b.dump(16, "IKE", "t|1", "Sk_ei secret", seq(0x61, 32))
	b.dump(16, "IKE", "t|1", "Sk_er secret", seq(0x71, 32))
	b.line(16, "MGR", "t|1", "checkin IKEv2 SA t[2] with SPIs e77192e05969aa0f_i d0773f70b236749d_r")
	b.line(16, "MGR", "t|1", "checkin IKEv2 SA t[1] with SPIs 307f4e492027878e_i e44d75f8234df4d1_r")

	ikes, children, err := ParseLog(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(ikes) != 2 {
		t.Fatalf("%d IKE SAs, want 2", len(ikes))
	}
	first := ikes[0]
	if first.Name != "t" || first.ID != 1 || fmt.Sprintf("%x/%x", first.SPIi, first.SPIr) != "307f4e492027878e/e44d75f8234df4d1" {
		t.Errorf("first IKE SA: %s[%d] %x/%x", first.Name, first.ID, first.SPIi, first.SPIr)
	}
	for _, f := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"DH", first.DHSecret, seq(0x10, 40)}, {"SKEYSEED", first.SKEYSEED, seq(0x20, 32)},
		{"SK_d", first.SKd, seq(0x30, 32)}, {"SK_ai", first.SKai, seq(0x40, 32)}, {"SK_ar", first.SKar, seq(0x50, 32)},
		{"SK_ei", first.SKei, seq(0x60, 32)}, {"SK_er", first.SKer, seq(0x70, 32)},
		{"SK_pi", first.SKpi, seq(0x80, 32)}, {"SK_pr", first.SKpr, seq(0x90, 32)},
		{"rekeyed SK_ei", ikes[1].SKei, seq(0x61, 32)}, {"rekeyed DH", ikes[1].DHSecret, seq(0x11, 40)},
	} {
		if !bytes.Equal(f.got, f.want) {
			t.Errorf("%s = %x, want %x", f.name, f.got, f.want)
		}
	}
	if ikes[1].ID != 2 || fmt.Sprintf("%x", ikes[1].SPIi) != "e77192e05969aa0f" {
		t.Errorf("rekeyed IKE SA: [%d] %x", ikes[1].ID, ikes[1].SPIi)
	}
	if want := "IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"; first.Proposal != want || ikes[1].Proposal != want {
		t.Errorf("proposals %q, %q", first.Proposal, ikes[1].Proposal)
	}

	if len(children) != 1 {
		t.Fatalf("%d CHILD_SAs, want 1", len(children))
	}
	c := children[0]
	if c.Name != "net" || c.ID != 1 || !c.Initiator || c.Proposal != "ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ" {
		t.Errorf("child %s{%d} initiator=%v %q", c.Name, c.ID, c.Initiator, c.Proposal)
	}
	wantOut := ESPKeys{SPI: 0xe3ecfece, Src: "192.168.77.1", Dst: "192.168.77.2", EncrKey: seq(0xa0, 32), IntegKey: seq(0xb0, 32)}
	wantIn := ESPKeys{SPI: 0x2187ede9, Src: "192.168.77.2", Dst: "192.168.77.1", EncrKey: seq(0xc0, 32), IntegKey: seq(0xd0, 32)}
	if fmt.Sprint(c.Out) != fmt.Sprint(wantOut) || fmt.Sprint(c.In) != fmt.Sprint(wantIn) {
		t.Errorf("child directions:\n out %+v\nwant %+v\n  in %+v\nwant %+v", c.Out, wantOut, c.In, wantIn)
	}
}

func TestParseLogResponder(t *testing.T) {
	var b logBuilder
	// The responder selects the proposal while handling IKE_SA_INIT on one thread ...
	b.line(11, "ENC", "1", "parsed IKE_SA_INIT request 0 [ SA KE No ]")
	b.line(11, "CFG", "1", "selected proposal: IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519")
	b.line(11, "MGR", "1", "checkin IKEv2 SA (unnamed)[1] with SPIs 307f4e492027878e_i e44d75f8234df4d1_r")
	// ... and derives the keys on another when IKE_AUTH arrives, before it can parse it.
	b.dump(10, "IKE", "1", "SKEYSEED", seq(0x20, 32))
	b.dump(10, "IKE", "1", "Sk_ei secret", seq(0x60, 36))
	b.dump(10, "IKE", "1", "Sk_er secret", seq(0x70, 36))
	b.line(10, "ENC", "1", "parsed IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ]")
	b.line(10, "CFG", "gt|1", "selected proposal: ESP:AES_GCM_16_256/NO_EXT_SEQ")
	b.dump(10, "CHD", "gt|1", "encryption initiator key", seq(0xa0, 36))
	b.dump(10, "CHD", "gt|1", "encryption responder key", seq(0xc0, 36))
	b.line(10, "CHD", "gt|1", "adding inbound ESP SA")
	b.line(10, "CHD", "gt|1", "  SPI 0xe3ecfece, src 192.168.77.1 dst 192.168.77.2")
	b.line(10, "CHD", "gt|1", "adding outbound ESP SA")
	b.line(10, "CHD", "gt|1", "  SPI 0x2187ede9, src 192.168.77.2 dst 192.168.77.1")
	b.line(10, "IKE", "gt|1", "CHILD_SA net{1} established with SPIs e3ecfece_i 2187ede9_o and TS 10.2.0.0/24 === 10.1.0.0/24")
	b.line(10, "MGR", "gt|1", "checkin IKEv2 SA gt[1] with SPIs 307f4e492027878e_i e44d75f8234df4d1_r")
	// CHILD_SA rekey as responder: inbound installed now, outbound on another thread later.
	b.line(12, "ENC", "gt|1", "parsed CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No TSi TSr ]")
	b.line(12, "CFG", "gt|1", "selected proposal: ESP:AES_GCM_16_256/NO_EXT_SEQ")
	b.dump(12, "CHD", "gt|1", "encryption initiator key", seq(0xa1, 36))
	b.dump(12, "CHD", "gt|1", "encryption responder key", seq(0xc1, 36))
	b.line(12, "CHD", "gt|1", "adding inbound ESP SA")
	b.line(12, "CHD", "gt|1", "  SPI 0x9525ceb0, src 192.168.77.1 dst 192.168.77.2")
	b.line(12, "CHD", "gt|1", "registering outbound ESP SA")
	b.line(12, "CHD", "gt|1", "  SPI 0x512390bf, src 192.168.77.2 dst 192.168.77.1")
	b.line(12, "IKE", "gt|1", "inbound CHILD_SA net{2} established with SPIs 9525ceb0_i 512390bf_o and TS 10.2.0.0/24 === 10.1.0.0/24")
	b.line(14, "CHD", "gt|1", "adding outbound ESP SA")
	b.line(14, "CHD", "gt|1", "  SPI 0x512390bf, src 192.168.77.2 dst 192.168.77.1")
	b.line(14, "IKE", "gt|1", "outbound CHILD_SA net{2} established with SPIs 9525ceb0_i 512390bf_o and TS 10.2.0.0/24 === 10.1.0.0/24")

	ikes, children, err := ParseLog(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(ikes) != 1 || ikes[0].Name != "gt" || ikes[0].Proposal != "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519" ||
		!bytes.Equal(ikes[0].SKei, seq(0x60, 36)) || ikes[0].SKai != nil {
		t.Fatalf("IKE SAs: %+v", ikes)
	}
	if len(children) != 2 {
		t.Fatalf("%d CHILD_SAs, want 2", len(children))
	}
	for i, c := range children {
		if c.Initiator {
			t.Errorf("child %d: responder parsed as initiator", i)
		}
		// The responder receives with the initiator's key.
		if !bytes.Equal(c.In.EncrKey, c.EncrI) || !bytes.Equal(c.Out.EncrKey, c.EncrR) || c.In.IntegKey != nil {
			t.Errorf("child %d: keys assigned to the wrong directions", i)
		}
	}
	if c := children[1]; c.ID != 2 || c.In.SPI != 0x9525ceb0 || c.Out.SPI != 0x512390bf || c.Out.Src != "192.168.77.2" ||
		!bytes.Equal(c.EncrI, seq(0xa1, 36)) {
		t.Errorf("rekeyed child: %+v", c)
	}
}

func TestParseLogErrors(t *testing.T) {
	for _, c := range []struct {
		name, log, want string
	}{
		{"dump cut short", "02[IKE] <t|1> Sk_ei secret => 20 bytes @ 0x1\n02[IKE] <t|1>    0: 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F  ................\n02[IKE] <t|1> next message\n",
			"strongswan: log line 3: hex dump ended 4 bytes early"},
		{"bad hex", "02[IKE] <t|1> Sk_ei secret => 2 bytes @ 0x1\n02[IKE] <t|1>    0: 0G 01  ..\n",
			`strongswan: log line 2: hex dump line "0G 01  ..": byte 0: `},
		{"short dump line", "02[IKE] <t|1> Sk_ei secret => 4 bytes @ 0x1\n02[IKE] <t|1>    0: 00 01\n",
			`strongswan: log line 2: hex dump line "00 01" too short for 4 bytes`},
		{"huge dump", "02[IKE] <t|1> Sk_ei secret => 2000000000 bytes @ 0x1\n",
			"strongswan: log line 1: hex dump of 2000000000 bytes, more than 65536"},
	} {
		_, _, err := ParseLog(c.log)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// Keys derived for an exchange that never completed (no checkin with SPIs) are not reported.
	var b logBuilder
	b.dump(3, "IKE", "t|1", "SKEYSEED", seq(1, 32))
	b.dump(3, "IKE", "t|1", "Sk_ei secret", seq(2, 32))
	b.line(3, "MGR", "t|1", "checkin IKEv2 SA t[1] with SPIs 307f4e492027878e_i 0000000000000000_r")
	if ikes, _, err := ParseLog(b.String()); err != nil || len(ikes) != 0 {
		t.Errorf("incomplete SA: %+v, %v", ikes, err)
	}
}

func FuzzParseLog(f *testing.F) {
	var b logBuilder
	b.line(2, "CFG", "t|1", "selected proposal: IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519")
	b.dump(2, "IKE", "t|1", "Sk_ei secret", seq(0x60, 36))
	b.line(2, "MGR", "t|1", "checkin IKEv2 SA t[1] with SPIs 307f4e492027878e_i e44d75f8234df4d1_r")
	b.line(4, "ENC", "t|1", "parsed IKE_AUTH response 1 [ IDr AUTH SA TSi TSr ]")
	b.dump(4, "CHD", "t|1", "encryption initiator key", seq(0xa0, 20))
	b.line(4, "CHD", "t|1", "  SPI 0x2187ede9, src 192.168.77.2 dst 192.168.77.1")
	b.line(4, "IKE", "t|1", "CHILD_SA net{1} established with SPIs 2187ede9_i e3ecfece_o and TS 10.1.0.0/24 === 10.2.0.0/24")
	f.Add(b.String())
	f.Add("02[IKE] <t|1> Sk_ei secret => 99999999999999999999 bytes @ 0x1\n")
	f.Add("02[IKE] <t|1> SKEYSEED => 3 bytes @ 0x1\n02[IKE] <t|1>    0: 00 01 02\n")
	f.Fuzz(func(t *testing.T, log string) {
		ikes, children, err := ParseLog(log)
		if err != nil {
			return
		}
		for _, k := range ikes {
			if len(k.SPIi) != 8 || len(k.SPIr) != 8 {
				t.Fatalf("IKE SA with SPIs %x/%x", k.SPIi, k.SPIr)
			}
		}
		_ = children
	})
}

func TestParseProposal(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Proposal
	}{
		{"IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519", Proposal{Protocol: "IKE", Encr: "AES_GCM_16_256", PRF: "PRF_HMAC_SHA2_256", KE: "CURVE_25519"}},
		{"IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048", Proposal{Protocol: "IKE", Encr: "AES_CBC_256", Integ: "HMAC_SHA2_256_128", PRF: "PRF_HMAC_SHA2_256", KE: "MODP_2048"}},
		{"IKE:CHACHA20_POLY1305/PRF_HMAC_SHA2_256/ECP_256", Proposal{Protocol: "IKE", Encr: "CHACHA20_POLY1305", PRF: "PRF_HMAC_SHA2_256", KE: "ECP_256"}},
		{"ESP:AES_GCM_16_128/NO_EXT_SEQ", Proposal{Protocol: "ESP", Encr: "AES_GCM_16_128", ESN: "NO_EXT_SEQ"}},
		{"ESP:AES_CBC_128/AES_XCBC_96/ECP_384/EXT_SEQ", Proposal{Protocol: "ESP", Encr: "AES_CBC_128", Integ: "AES_XCBC_96", KE: "ECP_384", ESN: "EXT_SEQ"}},
		{"AES_CTR_128", Proposal{Encr: "AES_CTR_128"}},
	} {
		if got := ParseProposal(c.in); got != c.want {
			t.Errorf("ParseProposal(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestTsharkRows(t *testing.T) {
	k := IKESAKeys{Proposal: "IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"}
	row, err := k.Tshark()
	if err != nil || row.Encr != "AES-CBC-256 [RFC3602]" || row.Integ != "HMAC_SHA2_256_128 [RFC4868]" {
		t.Errorf("CBC row %+v, %v", row, err)
	}
	k.Proposal = "IKE:CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519"
	if _, err := k.Tshark(); err == nil || err.Error() != "strongswan: tshark cannot decrypt IKE with CHACHA20_POLY1305" {
		t.Errorf("ChaCha20 IKE: %v", err)
	}
	c := ChildSAKeys{Proposal: "ESP:AES_GCM_16_256/NO_EXT_SEQ", In: ESPKeys{SPI: 1}, Out: ESPKeys{SPI: 2}}
	rows, err := c.Tshark()
	if err != nil || len(rows) != 2 || rows[0].SPI != 1 || rows[1].Encr != "AES-GCM with 16 octet ICV [RFC4106]" || rows[1].Auth != "NULL" {
		t.Errorf("ESP rows %+v, %v", rows, err)
	}
}
