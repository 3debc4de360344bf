package testnet

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Names tshark 4.0 uses for IKEv2 algorithms in its ikev2_decryption_table.
const (
	TsharkIKEEncrAESGCM128   = "AES-GCM-128 with 16 octet ICV [RFC5282]"
	TsharkIKEEncrAESGCM192   = "AES-GCM-192 with 16 octet ICV [RFC5282]"
	TsharkIKEEncrAESGCM256   = "AES-GCM-256 with 16 octet ICV [RFC5282]"
	TsharkIKEEncrAESCBC128   = "AES-CBC-128 [RFC3602]"
	TsharkIKEEncrAESCBC192   = "AES-CBC-192 [RFC3602]"
	TsharkIKEEncrAESCBC256   = "AES-CBC-256 [RFC3602]"
	TsharkIKEIntegNone       = "NONE [RFC4306]"
	TsharkIKEIntegSHA1       = "HMAC_SHA1_96 [RFC2404]"
	TsharkIKEIntegSHA256     = "HMAC_SHA2_256_128 [RFC4868]"
	TsharkIKEIntegSHA384     = "HMAC_SHA2_384_192 [RFC4868]"
	TsharkIKEIntegSHA512     = "HMAC_SHA2_512_256 [RFC4868]"
	TsharkESPEncrAESGCM16    = "AES-GCM with 16 octet ICV [RFC4106]"
	TsharkESPEncrAESGCM12    = "AES-GCM with 12 octet ICV [RFC4106]"
	TsharkESPEncrAESCBC      = "AES-CBC [RFC3602]"
	TsharkESPEncrAESCTR      = "AES-CTR [RFC3686]"
	TsharkESPAuthNull        = "NULL"
	TsharkESPAuthSHA1        = "HMAC-SHA-1-96 [RFC2404]"
	TsharkESPAuthSHA256      = "HMAC-SHA-256-128 [RFC4868]"
	TsharkESPAuthSHA384      = "HMAC-SHA-384-192 [RFC4868]"
	TsharkESPAuthSHA512      = "HMAC-SHA-512-256 [RFC4868]"
	TsharkESPAuthAny96       = "ANY 96 bit authentication [no checking]" // AES-XCBC-MAC-96, AES-CMAC-96
	tsharkICVCorrectMarker   = "[correct]"
	tsharkICVIncorrectMarker = "[incorrect"
)

// TsharkIKESA is one row of tshark's IKEv2 decryption table: the keys of one IKE SA. Encr and Integ
// are tshark's names (the TsharkIKE* constants); SKai/SKar stay empty with AEAD ciphers.
type TsharkIKESA struct {
	SPIi, SPIr []byte
	SKei, SKer []byte
	Encr       string
	SKai, SKar []byte
	Integ      string
}

// TsharkESPSA is one row of tshark's ESP SA table: one direction of a CHILD_SA. For AES-GCM the
// encryption key includes the 4-byte salt, as IKEv2 derives it.
type TsharkESPSA struct {
	Src, Dst string // IP addresses; "*" matches any
	SPI      uint32
	Encr     string // a TsharkESPEncr* constant
	EncrKey  []byte
	Auth     string // a TsharkESPAuth* constant
	AuthKey  []byte
}

// TsharkDecryptIKE runs tshark over pcap with the IKE SAs' keys and returns its output: by default the
// verbose dissection of all IKEv2 packets (-V -Y isakmp); args, when given, replace those options (for
// example "-V", "-Y", "isakmp.exchangetype == 35"). tshark checks the ICV of every SK payload it decrypts
// and prints "[correct]" or "[incorrect, should be ...]"; see TsharkICVCounts.
func TsharkDecryptIKE(t testing.TB, pcap string, sas []TsharkIKESA, args ...string) string {
	t.Helper()
	var rows []string
	for _, sa := range sas {
		rows = append(rows, strings.Join([]string{
			hex.EncodeToString(sa.SPIi), hex.EncodeToString(sa.SPIr),
			hex.EncodeToString(sa.SKei), hex.EncodeToString(sa.SKer),
			quote(sa.Encr),
			hex.EncodeToString(sa.SKai), hex.EncodeToString(sa.SKar),
			quote(sa.Integ),
		}, ","))
	}
	if len(args) == 0 {
		args = []string{"-V", "-Y", "isakmp"}
	}
	return runTshark(t, pcap, map[string][]string{"ikev2_decryption_table": rows}, nil, args)
}

// TsharkDecryptESP runs tshark over pcap with the ESP SAs' keys and returns its output: by default
// the verbose dissection of all ESP packets (-V -Y esp); args, when given, replace those options. tshark 4.0 does not check AES-GCM ICVs of ESP:
// a wrong key shows up as garbage inner packets, so assert on the decrypted inner headers.
func TsharkDecryptESP(t testing.TB, pcap string, sas []TsharkESPSA, args ...string) string {
	t.Helper()
	var rows []string
	for _, sa := range sas {
		proto := "IPv4"
		if strings.Contains(sa.Src, ":") || strings.Contains(sa.Dst, ":") {
			proto = "IPv6"
		}
		rows = append(rows, strings.Join([]string{
			quote(proto), quote(sa.Src), quote(sa.Dst), quote(fmt.Sprintf("0x%08x", sa.SPI)),
			quote(sa.Encr), quote("0x" + hex.EncodeToString(sa.EncrKey)),
			quote(sa.Auth), quote(hexOrEmpty(sa.AuthKey)),
		}, ","))
	}
	prefs := []string{"esp.enable_encryption_decode:TRUE"}
	if len(args) == 0 {
		args = []string{"-V", "-Y", "esp"}
	}
	return runTshark(t, pcap, map[string][]string{"esp_sa": rows}, prefs, args)
}

// Tshark runs tshark over pcap with a private, empty configuration (no keys) and returns its
// output: for traffic that needs no keys, such as AH, which does not encrypt.
func Tshark(t testing.TB, pcap string, args ...string) string {
	t.Helper()
	return runTshark(t, pcap, nil, nil, args)
}

// TsharkICVCounts counts the SK payload integrity checks tshark reported as correct and incorrect in
// the output of TsharkDecryptIKE.
func TsharkICVCounts(out string) (correct, incorrect int) {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "Integrity Checksum Data") {
			continue
		}
		switch {
		case strings.Contains(line, tsharkICVCorrectMarker):
			correct++
		case strings.Contains(line, tsharkICVIncorrectMarker):
			incorrect++
		}
	}
	return correct, incorrect
}

// runTshark runs tshark with a private configuration directory holding the given UAT tables, so
// neither the user's Wireshark profile nor other tests' keys leak in.
func runTshark(t testing.TB, pcap string, uats map[string][]string, prefs []string, args []string) string {
	t.Helper()
	Require(t, "tshark")
	conf := t.TempDir()
	// tshark looks for its personal configuration in $WIRESHARK_CONFIG_DIR (no "wireshark" subdir).
	for name, rows := range uats {
		body := "# This file is automatically generated, DO NOT MODIFY.\n" + strings.Join(rows, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o600); err != nil {
			t.Fatalf("testnet: tshark config: %v", err)
		}
	}
	argv := []string{"-n", "-r", pcap}
	for _, p := range prefs {
		argv = append(argv, "-o", p)
	}
	argv = append(argv, args...)
	cmd := exec.Command("tshark", argv...)
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testnet: tshark %s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return stdout.String()
}

// quote writes a UAT string field: double quotes, with quote and backslash escaped as \xNN.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, "\\x%02x", c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return "0x" + hex.EncodeToString(b)
}
