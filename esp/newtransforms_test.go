package esp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"testing"

	"github.com/goipsec/goipsec/internal/aesmac"
	"github.com/goipsec/goipsec/internal/ccm"
)

// TestRFC3686 runs the nine test vectors of RFC 3686 §6 (AES-CTR with 128-, 192- and 256-bit keys,
// 16, 32 and 36 octets) through the key stream ESP uses: the 4-byte nonce from the end of the
// key material, the 8-byte IV, a block counter from 1.
func TestRFC3686(t *testing.T) {
	for i, v := range []struct{ keyNonce, iv, pt, ct string }{
		{"AE6852F8121067CC4BF7A5765577F39E 00000030", "0000000000000000",
			"53696E676C6520626C6F636B206D7367", "E4095D4FB7A7B3792D6175A3261311B8"},
		{"7E24067817FAE0D743D6CE1F32539163 006CB6DB", "C0543B59DA48D90B",
			"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"5104A106168A72D9790D41EE8EDAD388EB2E1EFC46DA57C8FCE630DF9141BE28"},
		{"7691BE035E5020A8AC6E618529F9A0DC 00E0017B", "27777F3F4A1786F0",
			"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20212223",
			"C1CF48A89F2FFDD9CF4652E9EFDB72D74540A42BDE6D7836D59A5CEAAEF3105325B2072F"},
		{"16AF5B145FC9F579C175F93E3BFB0EED863D06CCFDB78515 00000048", "36733C147D6D93CB",
			"53696E676C6520626C6F636B206D7367", "4B55384FE259C9C84E7935A003CBE928"},
		{"7C5CB2401B3DC33C19E7340819E0F69C678C3DB8E6F6A91A 0096B03B", "020C6EADC2CB500D",
			"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"453243FC609B23327EDFAAFA7131CD9F8490701C5AD4A79CFC1FE0FF42F4FB00"},
		{"02BF391EE8ECB159B959617B0965279BF59B60A786D3E0FE 0007BDFD", "5CBD60278DCC0912",
			"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20212223",
			"96893FC55E5C722F540B7DD1DDF7E758D288BC95C69165884536C811662F2188ABEE0935"},
		{"776BEFF2851DB06F4C8A0542C8696F6C6A81AF1EEC96B4D37FC1D689E6C1C104 00000060", "DB5672C97AA8F0B2",
			"53696E676C6520626C6F636B206D7367", "145AD01DBF824EC7560863DC71E3E0C0"},
		{"F6D66D6BD52D59BB0796365879EFF886C66DD51A5B6A99744B50590C87A23884 00FAAC24", "C1585EF15A43D875",
			"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"F05E231B3894612C49EE000B804EB2A9B8306B508F839D6A5530831D9344AF1C"},
		{"FF7A617CE69148E4F1726E2F43581DE2AA62D9F805532EDFF1EED687FB54153D 001CC5B7", "51A51D70A1C11148",
			"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20212223",
			"EB6C52821D0BBBF7CE7594462ACA4FAAB407DF866569FD07F48CC0B583D6071F1EC0E6B8"},
	} {
		sa := mustSA(t, Params{Encryption: EncrAESCTR, EncKey: unhex(t, v.keyNonce), Integrity: IntegAESXCBC96, IntegKey: make([]byte, 16)})
		k := sa.keys.Load()
		s := k.getScratch()
		data := unhex(t, v.pt)
		ctrXOR(k.macKeys, s, k.salt[:], unhex(t, v.iv), data)
		k.putScratch(s)
		if want := unhex(t, v.ct); !bytes.Equal(data, want) {
			t.Errorf("test vector #%d: %x, want %x", i+1, data, want)
		}
	}
}

// TestCTRKeyStream compares ctrXOR, which takes most of its key stream from GCM, with the standard
// library's CTR mode for every length up to 300 bytes and a few large ones, in place and with
// bytes after the data that must stay untouched.
func TestCTRKeyStream(t *testing.T) {
	for _, keyLen := range []int{20, 28, 36} {
		sa := mustSA(t, Params{Encryption: EncrAESCTR, EncKey: payloadOf(keyLen), Integrity: IntegAESCMAC96, IntegKey: make([]byte, 16)})
		k := sa.keys.Load()
		s := k.getScratch()
		iv := []byte{1, 2, 3, 4, 5, 6, 7, 8}
		ctr := append(append(append([]byte(nil), k.salt[:]...), iv...), 0, 0, 0, 1)
		lengths := []int{1024, 1400, 1500, 4096, 65000}
		for n := 0; n <= 300; n++ {
			lengths = append(lengths, n)
		}
		for _, n := range lengths {
			buf := append(payloadOf(n), bytes.Repeat([]byte{0xee}, 32)...)
			want := append([]byte(nil), buf...)
			cipher.NewCTR(k.block, ctr).XORKeyStream(want[:n], want[:n])
			ctrXOR(k.macKeys, s, k.salt[:], iv, buf[:n])
			if !bytes.Equal(buf, want) {
				t.Fatalf("key %d bytes, length %d: ctrXOR differs from crypto/cipher's CTR", keyLen, n)
			}
		}
		k.putScratch(s)
	}
}

// espPlaintext is what an ESP packet encrypts for payload: the payload, monotonic padding to the
// 4-byte boundary, Pad Length and Next Header (RFC 4303 §2.4).
func espPlaintext(payload []byte, nh byte) []byte {
	p := append([]byte(nil), payload...)
	for i := 1; (len(p)+2)%4 != 0; i++ {
		p = append(p, byte(i))
	}
	return append(p, byte(len(p)-len(payload)), nh)
}

// espHeader is SPI, sequence number and IV.
func espHeader(spi uint32, seq uint64, iv []byte) []byte {
	h := binary.BigEndian.AppendUint32(nil, spi)
	h = binary.BigEndian.AppendUint32(h, uint32(seq))
	return append(h, iv...)
}

// ivOf is the IV Seal uses: the 64-bit sequence number.
func ivOf(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// checkAgainst seals payload with sa and compares it with want, the packet built independently
// from the RFC's description; then Open must return the payload.
func checkAgainst(t *testing.T, p Params, seq uint64, payload []byte, want []byte) {
	t.Helper()
	out := mustSA(t, p)
	got, err := out.Seal(nil, seq, 4, payload, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%v/%v esn=%v:\n got %x\nwant %x", p.Encryption, p.Integrity, p.ESN, got, want)
	}
	in := mustSA(t, p)
	if seq > 1 {
		in.window.Commit(seq - 1)
	}
	pl, nh, s, err := in.Open(got)
	if err != nil || !bytes.Equal(pl, payload) || nh != 4 || s != seq {
		t.Fatalf("Open: %x %d %#x %v", pl, nh, s, err)
	}
}

// TestCTRLayout: AES-CTR ESP (RFC 3686 §3, §4) with AES-XCBC-MAC-96 and AES-CMAC-96, built from the
// RFCs with the standard library's CTR mode and package aesmac (checked against RFC 3566 and RFC
// 4493): the ciphertext is the plaintext XOR the key stream from counter block nonce|IV|1, the
// ICV the first 12 bytes of the MAC over SPI through ciphertext (and the ESN's high half).
func TestCTRLayout(t *testing.T) {
	key, mkey := payloadOf(28), payloadOf(16)[4:]
	mkey = append(mkey, 1, 2, 3, 4)
	payload := payloadOf(101)
	for _, integ := range []Integrity{IntegAESXCBC96, IntegAESCMAC96} {
		for _, esn := range []bool{false, true} {
			seq := uint64(0x1_0000_0005)
			if !esn {
				seq = 5
			}
			block, _ := aes.NewCipher(key[:24])
			iv := ivOf(seq)
			ctr := append(append(append([]byte(nil), key[24:]...), iv...), 0, 0, 0, 1)
			ct := espPlaintext(payload, 4)
			cipher.NewCTR(block, ctr).XORKeyStream(ct, ct)
			pkt := append(espHeader(0x1234, seq, iv), ct...)
			newMAC := aesmac.NewXCBC
			if integ == IntegAESCMAC96 {
				newMAC = aesmac.NewCMAC
			}
			m, _ := newMAC(mkey)
			m.Write(pkt)
			if esn {
				m.Write(binary.BigEndian.AppendUint32(nil, uint32(seq>>32)))
			}
			want := append(pkt, m.Sum(nil)[:12]...)
			checkAgainst(t, Params{SPI: 0x1234, Encryption: EncrAESCTR, EncKey: key, Integrity: integ, IntegKey: mkey, ESN: esn}, seq, payload, want)
		}
	}
}

// TestCCMLayout: AES-CCM ESP (RFC 4309): nonce = 3-byte salt | 8-byte IV (§4), AAD = SPI | sequence
// number, or SPI | ESN high | ESN low (§5), the ICV of 8, 12 or 16 bytes after the ciphertext
// (§3). Built with package ccm, which is checked against RFC 3610 and NIST SP 800-38C.
func TestCCMLayout(t *testing.T) {
	payload := payloadOf(77)
	for _, enc := range []Encryption{EncrAESCCM8, EncrAESCCM12, EncrAESCCM16} {
		for _, keyLen := range []int{16, 24, 32} {
			for _, esn := range []bool{false, true} {
				key := payloadOf(keyLen + 3)
				seq := uint64(0x2_0000_0009)
				if !esn {
					seq = 9
				}
				block, _ := aes.NewCipher(key[:keyLen])
				c, _ := ccm.New(block, 11, aeadTagLen(enc))
				iv := ivOf(seq)
				hdr := espHeader(0x4309, seq, iv)
				aad := hdr[:8]
				if esn {
					aad = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x4309), uint32(seq>>32))
					aad = binary.BigEndian.AppendUint32(aad, uint32(seq))
				}
				want := c.Seal(hdr, append(append([]byte(nil), key[keyLen:]...), iv...), espPlaintext(payload, 4), aad)
				checkAgainst(t, Params{SPI: 0x4309, Encryption: enc, EncKey: key, ESN: esn}, seq, payload, want)
			}
		}
	}
}

// TestGMACKnownAnswer: the GMAC that ENCR_NULL_AUTH_AES_GMAC computes is GCM with no plaintext.
// IEEE 802.1AE's test vectors 2.1.1 and 2.1.2 ("54-byte packet authentication", IEEE 802.1
// document bn-randall-test-vectors-0511-v1) check it through the SA's own cipher.
func TestGMACKnownAnswer(t *testing.T) {
	aad := unhex(t, "D609B1F056637A0D46DF998D88E5222AB2C2846512153524C0895E8108000F101112131415161718191A1B1C1D1E1F"+
		"202122232425262728292A2B2C2D2E2F30313233340001")
	for _, v := range []struct{ key, icv string }{
		{"AD7A2BD03EAC835A6F620FDCB506B345", "F09478A9B09007D06F46E9B6A1DA25DD"},
		{"E3C08A8F06C6E3AD95A70557B23F75483CE33021A9C72B7025666204C69C0B72", "2F0BC5AF409E06D609EA8B7D0FA5EA50"},
	} {
		// The nonce 12153524C0895E81B2C28465 is the salt 12153524 and the IV C0895E81B2C28465.
		sa := mustSA(t, Params{Encryption: EncrNullAESGMAC, EncKey: append(unhex(t, v.key), 0x12, 0x15, 0x35, 0x24)})
		k := sa.keys.Load()
		s := k.getScratch()
		got := mustAEAD(t, sa).Seal(nil, k.nonce(s, unhex(t, "C0895E81B2C28465")), nil, aad)
		k.putScratch(s)
		if want := unhex(t, v.icv); !bytes.Equal(got, want) {
			t.Errorf("GMAC with a %d-byte key = %x, want %x", len(v.key)/2, got, want)
		}
	}
}

// TestGMACLayout: ENCR_NULL_AUTH_AES_GMAC ESP (RFC 4543 §3): the payload, padding and trailer in
// the clear; the 16-byte ICV is GMAC with nonce salt|IV over SPI, sequence number (with the ESN's
// high half between them), IV and the plaintext.
func TestGMACLayout(t *testing.T) {
	payload := payloadOf(63)
	for _, keyLen := range []int{16, 24, 32} {
		for _, esn := range []bool{false, true} {
			key := payloadOf(keyLen + 4)
			seq := uint64(0x3_0000_0002)
			if !esn {
				seq = 2
			}
			block, _ := aes.NewCipher(key[:keyLen])
			gcm, _ := cipher.NewGCM(block)
			iv := ivOf(seq)
			pkt := append(espHeader(0x4543, seq, iv), espPlaintext(payload, 4)...)
			aad := pkt
			if esn {
				aad = append(append(append([]byte(nil), pkt[:4]...), binary.BigEndian.AppendUint32(nil, uint32(seq>>32))...), pkt[4:]...)
			}
			want := gcm.Seal(pkt, append(append([]byte(nil), key[keyLen:]...), iv...), nil, aad)
			checkAgainst(t, Params{SPI: 0x4543, Encryption: EncrNullAESGMAC, EncKey: key, ESN: esn}, seq, payload, want)
			// Integrity only: a changed payload byte is refused.
			in := mustSA(t, Params{SPI: 0x4543, Encryption: EncrNullAESGMAC, EncKey: key, ESN: esn})
			if seq > 1 {
				in.window.Commit(seq - 1)
			}
			bad := append([]byte(nil), want...)
			bad[20] ^= 1
			if _, _, _, err := in.Open(bad); err != ErrAuth {
				t.Fatalf("a changed payload byte: %v", err)
			}
		}
	}
}
