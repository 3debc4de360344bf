package wire

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// captureIndex is the part of testdata/strongswan/*/keys.json (see the
// README there) this test reads.
type captureIndex struct {
	IKESAs []struct {
		Encr  string `json:"encr"`
		Integ string `json:"integ"`
		SKai  string `json:"sk_ai"`
		SKar  string `json:"sk_ar"`
		SKei  string `json:"sk_ei"`
		SKer  string `json:"sk_er"`
	} `json:"ike_sas"`
	Messages []struct {
		File          string `json:"file"`
		Exchange      string `json:"exchange"`
		MessageID     uint32 `json:"message_id"`
		Response      bool   `json:"response"`
		InitiatorFlag bool   `json:"initiator_flag"`
		IKESA         int    `json:"ike_sa"`
		Fragment      int    `json:"fragment"`
		Fragments     int    `json:"fragments"`
	} `json:"messages"`
}

// captureOpener is a real IKEv2 SK opener for the transforms strongSwan
// used in the captures, written here so that this package's tests depend
// on no other goipsec package. It remembers the last plaintext.
type captureOpener struct {
	aead      cipher.AEAD // AES-GCM-16 or ChaCha20-Poly1305, with salt
	salt      []byte
	block     cipher.Block // AES-CBC with HMAC-SHA2-256-128
	integKey  []byte
	lastPlain []byte
}

func newCaptureOpener(t *testing.T, encr, integ, ek, ak string) *captureOpener {
	t.Helper()
	key, _ := hex.DecodeString(ek)
	integKey, _ := hex.DecodeString(ak)
	switch {
	case strings.HasPrefix(encr, "AES_GCM_16_"):
		block, err := aes.NewCipher(key[:len(key)-4])
		if err != nil {
			t.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		return &captureOpener{aead: aead, salt: key[len(key)-4:]}
	case encr == "CHACHA20_POLY1305":
		aead, err := chacha20poly1305.New(key[:32])
		if err != nil {
			t.Fatal(err)
		}
		return &captureOpener{aead: aead, salt: key[32:]}
	case strings.HasPrefix(encr, "AES_CBC_") && integ == "HMAC_SHA2_256_128":
		block, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		return &captureOpener{block: block, integKey: integKey}
	}
	t.Fatalf("capture uses %s/%s, which this test does not implement", encr, integ)
	return nil
}

func (o *captureOpener) Open(dst, aad, body []byte) ([]byte, error) {
	var padded []byte
	if o.aead != nil {
		const ivLen = 8
		if len(body) < ivLen {
			return nil, errAuth
		}
		nonce := append(bytes.Clone(o.salt), body[:ivLen]...)
		out, err := o.aead.Open(nil, nonce, body[ivLen:], aad)
		if err != nil {
			return nil, errAuth
		}
		padded = out
	} else {
		const icvLen = 16
		bs := o.block.BlockSize()
		if len(body) < bs+bs+icvLen || (len(body)-bs-icvLen)%bs != 0 {
			return nil, errAuth
		}
		mac := hmac.New(sha256.New, o.integKey)
		mac.Write(aad)
		mac.Write(body[:len(body)-icvLen])
		if !hmac.Equal(mac.Sum(nil)[:icvLen], body[len(body)-icvLen:]) {
			return nil, errAuth
		}
		padded = make([]byte, len(body)-bs-icvLen)
		cipher.NewCBCDecrypter(o.block, body[:bs]).CryptBlocks(padded, body[bs:len(body)-icvLen])
	}
	padLen := int(padded[len(padded)-1])
	if padLen+1 > len(padded) {
		return nil, errAuth
	}
	o.lastPlain = padded[:len(padded)-1-padLen]
	return append(dst, o.lastPlain...), nil
}

// TestStrongSwanCaptures opens every protected message strongSwan sent in
// the recorded conversations with the logged keys (proving the AAD and ICV
// ranges match a real implementation's), checks that the inner payloads
// re-encode to the exact plaintext, reassembles the SKF fragments, and
// checks every message against the grammar table. Sets without keys.json
// are covered by TestRoundTripTestdata alone.
func TestStrongSwanCaptures(t *testing.T) {
	indexes, err := filepath.Glob(filepath.Join("testdata", "strongswan", "*", "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d captured conversations", len(indexes))
	for _, index := range indexes {
		dir := filepath.Dir(index)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(index)
			if err != nil {
				t.Fatal(err)
			}
			var idx captureIndex
			if err := json.Unmarshal(raw, &idx); err != nil {
				t.Fatal(err)
			}
			reassemblers := map[string]*Reassembler{}
			opened, reassembled := 0, 0
			for _, msg := range idx.Messages {
				b, err := os.ReadFile(filepath.Join(dir, msg.File))
				if err != nil {
					t.Fatal(err)
				}
				m, err := Decode(b)
				if err != nil {
					t.Fatalf("%s: %v", msg.File, err)
				}
				if m.Exchange.String() != msg.Exchange || m.MessageID != msg.MessageID ||
					m.IsResponse() != msg.Response || m.IsInitiator() != msg.InitiatorFlag {
					t.Fatalf("%s: header %+v disagrees with the index", msg.File, m.Header)
				}
				if m.Exchange == ExchangeIKESAInit {
					if err := CheckGrammar(m, nil); err != nil {
						t.Fatalf("%s: %v", msg.File, err)
					}
					continue
				}
				sa := idx.IKESAs[msg.IKESA]
				ek, ak := sa.SKer, sa.SKar
				if msg.InitiatorFlag {
					ek, ak = sa.SKei, sa.SKai
				}
				o := newCaptureOpener(t, sa.Encr, sa.Integ, ek, ak)
				o2, err := Open(b, o)
				if err != nil {
					t.Fatalf("%s: %v", msg.File, err)
				}
				opened++
				inner := o2.Inner
				if o2.Fragment != nil {
					f := o2.Fragment
					if int(f.Number) != msg.Fragment || int(f.Total) != msg.Fragments {
						t.Fatalf("%s: fragment %d/%d, index says %d/%d", msg.File, f.Number, f.Total, msg.Fragment, msg.Fragments)
					}
					key := fmt.Sprintf("%d/%v", msg.IKESA, msg.InitiatorFlag)
					r := reassemblers[key]
					if r == nil {
						r = NewReassembler(16, 1<<16)
						reassemblers[key] = r
					}
					var done bool
					if inner, done, err = r.Add(m.MessageID, *f); err != nil {
						t.Fatalf("%s: %v", msg.File, err)
					}
					if !done {
						continue
					}
					reassembled++
				} else {
					_, plain, err := EncodePayloads(inner)
					if err != nil || !bytes.Equal(plain, o.lastPlain) {
						t.Fatalf("%s: inner payloads re-encode differently (%v):\n got %x\nwant %x", msg.File, err, plain, o.lastPlain)
					}
				}
				if err := CheckGrammar(m, inner); err != nil {
					t.Fatalf("%s: %v", msg.File, err)
				}
			}
			if opened == 0 || (strings.HasPrefix(filepath.Base(dir), "fragmented") && reassembled == 0) {
				t.Fatalf("opened %d messages, reassembled %d", opened, reassembled)
			}
			t.Logf("opened %d protected messages, reassembled %d fragmented ones", opened, reassembled)
		})
	}
}
