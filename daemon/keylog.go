package daemon

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/suite"
)

// keylogger writes key material in the row formats of Wireshark's "IKEv2 Decryption Table"
// (ikev2_decryption_table) and "ESP SAs" (esp_sa) preference tables, one row per line behind the
// table's name and a colon. A debugging aid, off unless daemon.log.keylog_file is set; see
// docs/troubleshooting.md.
type keylogger struct {
	mu sync.Mutex
	w  io.Writer
}

func (k *keylogger) line(table, row string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fmt.Fprintf(k.w, "%s: %s\n", table, row)
}

// Wireshark's names for the algorithms (its UAT choice lists).
func wiresharkIKEEncr(id uint16, bits uint16) string {
	switch id {
	case suite.ENCR_AES_GCM_16:
		return fmt.Sprintf("AES-GCM-%d with 16 octet ICV [RFC5282]", bits)
	case suite.ENCR_AES_CBC:
		return fmt.Sprintf("AES-CBC-%d [RFC3602]", bits)
	}
	return fmt.Sprintf("unsupported-by-wireshark(%d)", id)
}

func wiresharkIKEInteg(id uint16) string {
	switch id {
	case suite.AUTH_HMAC_SHA2_256_128:
		return "HMAC_SHA2_256_128 [RFC4868]"
	case suite.AUTH_HMAC_SHA2_384_192:
		return "HMAC_SHA2_384_192 [RFC4868]"
	case suite.AUTH_HMAC_SHA2_512_256:
		return "HMAC_SHA2_512_256 [RFC4868]"
	}
	return "NONE [RFC4306]"
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\x22`) + `"` }

// keylogIKE writes an IKE SA's keys (an engine event).
func (d *Daemon) keylogIKE(x ike.KeysDerived) {
	if d.keylog == nil {
		return
	}
	t := x.Transforms
	spii := fmt.Sprintf("%016x", x.IKE.SPIi)
	spir := fmt.Sprintf("%016x", x.IKE.SPIr)
	d.keylog.line("ikev2_decryption_table", strings.Join([]string{spii, spir, hex.EncodeToString(x.SKei), hex.EncodeToString(x.SKer),
		quote(wiresharkIKEEncr(t.Encr, uint16(t.EncrKeyBits))), hex.EncodeToString(x.SKai), hex.EncodeToString(x.SKar),
		quote(wiresharkIKEInteg(t.Integ))}, ","))
}

func wiresharkESPEncr(p dataplane.SAParams) string {
	switch p.Encryption {
	case 20:
		return "AES-GCM with 16 octet ICV [RFC4106]"
	case 19:
		return "AES-GCM with 12 octet ICV [RFC4106]"
	case 12:
		return "AES-CBC [RFC3602]"
	case 13:
		return "AES-CTR [RFC3686]"
	case 11:
		return "NULL"
	}
	// Wireshark 4.0 has no AES-CCM, AES-GMAC or ChaCha20-Poly1305 for ESP.
	return fmt.Sprintf("unsupported-by-wireshark(%d)", p.Encryption)
}

func wiresharkESPAuth(p dataplane.SAParams) string {
	switch p.Integrity {
	case 12:
		return "HMAC-SHA-256-128 [RFC4868]"
	case 13:
		return "HMAC-SHA-384-192 [RFC4868]"
	case 14:
		return "HMAC-SHA-512-256 [RFC4868]"
	case 5, 8:
		// AES-XCBC-MAC-96, AES-CMAC-96: Wireshark decrypts but cannot check them.
		return "ANY 96 bit authentication [no checking]"
	}
	return "NULL"
}

// keylogChild writes both ESP SAs of a Child SA. AH SAs need no line: AH does not encrypt, and
// Wireshark shows what AH carries without keys.
func (d *Daemon) keylogChild(in, out dataplane.SAParams) {
	if d.keylog == nil || out.Protocol != dataplane.ESP {
		return
	}
	for _, p := range []dataplane.SAParams{out, in} {
		proto := "IPv4"
		if p.Src.Is6() {
			proto = "IPv6"
		}
		d.keylog.line("esp_sa", strings.Join([]string{quote(proto), quote(p.Src.String()), quote(p.Dst.String()),
			quote(fmt.Sprintf("0x%08x", p.SPI)), quote(wiresharkESPEncr(p)), quote("0x" + hex.EncodeToString(p.EncKey)),
			quote(wiresharkESPAuth(p)), quote(hexOrEmpty(p.IntegKey))}, ","))
	}
}

func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return "0x" + hex.EncodeToString(b)
}
