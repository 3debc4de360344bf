package esp

import (
	"bytes"
	"crypto/des"
	"encoding/hex"
	"testing"
)

// TestTripleDES: ENCR_3DES (RFC 2451) for legacy IKEv1 peers.
//
// The key is K1|K2|K3 (RFC 2451 §2.3), as crypto/des takes it: the NIST SP 800-67 Rev. 2
// Appendix B example (K1 = 0123456789ABCDEF, K2 = 23456789ABCDEF01, K3 = 456789ABCDEF0123;
// "The qufck brown fox jump" → A826FD8CE53B855F CCE21C8112256FE6 68D5C05DD9B6B900) checks the
// order. Then an ESP packet sealed with a chosen IV is decrypted here block by block, by a CBC
// written out in the test, and must hold payload, RFC 4303 padding and trailer.
func TestTripleDES(t *testing.T) {
	key, _ := hex.DecodeString("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123")
	pt := []byte("The qufck brown fox jump")
	want, _ := hex.DecodeString("A826FD8CE53B855FCCE21C8112256FE668D5C05DD9B6B900")
	block, err := des.NewTripleDESCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(pt))
	for i := 0; i < len(pt); i += des.BlockSize {
		block.Encrypt(got[i:], pt[i:])
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("TDEA ECB: %x, want %x", got, want)
	}

	integ := make([]byte, 20)
	out, err := NewSA(Params{SPI: 0x1000, Encryption: Encr3DES, EncKey: key, Integrity: IntegHMACSHA1_96, IntegKey: integ, Outbound: true})
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := hex.DecodeString("1122334455667788")
	payload := []byte("legacy L2TP/IPsec client")
	pkt, err := out.seal(nil, 1, 17, payload, 0, iv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pkt[headerLen:headerLen+8], iv) {
		t.Fatalf("IV field %x, want %x", pkt[headerLen:headerLen+8], iv)
	}
	ct := pkt[headerLen+8 : len(pkt)-12] // HMAC-SHA1-96: a 12-byte ICV
	if len(ct)%8 != 0 {
		t.Fatalf("ciphertext of %d bytes is not whole 3DES blocks", len(ct))
	}
	plain := make([]byte, len(ct))
	prev := iv
	for i := 0; i < len(ct); i += 8 {
		block.Decrypt(plain[i:i+8], ct[i:i+8])
		for j := range 8 {
			plain[i+j] ^= prev[j]
		}
		prev = ct[i : i+8]
	}
	n := len(plain)
	padLen := int(plain[n-2])
	if plain[n-1] != 17 || !bytes.Equal(plain[:len(payload)], payload) || len(payload)+padLen+2 != n {
		t.Fatalf("decrypted %x: want the payload, %d bytes of padding, pad length and next header 17", plain, n-len(payload)-2)
	}
	for i := range padLen {
		if plain[len(payload)+i] != byte(i+1) {
			t.Fatalf("padding %x is not 1, 2, 3, ... (RFC 4303 §2.4)", plain[len(payload):n-2])
		}
	}

	in, err := NewSA(Params{SPI: 0x1000, Encryption: Encr3DES, EncKey: key, Integrity: IntegHMACSHA1_96, IntegKey: integ})
	if err != nil {
		t.Fatal(err)
	}
	if p, nh, _, err := in.Open(pkt); err != nil || nh != 17 || !bytes.Equal(p, payload) {
		t.Fatalf("Open: %v", err)
	}
	if _, err := NewSA(Params{SPI: 1, Encryption: Encr3DES, EncKey: key[:16], Integrity: IntegHMACSHA1_96, IntegKey: integ}); err == nil {
		t.Fatal("a 16-byte 3DES key was accepted")
	}
}
