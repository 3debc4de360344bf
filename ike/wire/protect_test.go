package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func authMessage() *Message {
	return &Message{Header: Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718,
		Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1}}
}

func TestEncryptedRoundTrip(t *testing.T) {
	for name, p := range protectors(t) {
		t.Run(name, func(t *testing.T) {
			m := authMessage()
			b, err := m.EncodeEncrypted(innerGoldenPayloads(), p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.NextPayload != PayloadSK || int(got.Length) != len(b) || len(got.Payloads) != 1 {
				t.Fatalf("header %+v, %d payloads", got.Header, len(got.Payloads))
			}
			if sk := got.Payloads[0].(*Encrypted); sk.First != PayloadIDi {
				t.Fatalf("SK Next Payload %v, want IDi", sk.First)
			}
			if g, ok := p.(*gcmProtector); ok && !bytes.Equal(g.lastAAD, b[:HeaderLen+genHeaderLen]) {
				t.Fatalf("AAD %x, want the IKE header and SK header %x", g.lastAAD, b[:HeaderLen+genHeaderLen])
			}
			opened, err := Open(b, p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(opened.Inner, innerGoldenPayloads()) {
				t.Fatalf("inner payloads differ:\n%#v", opened.Inner)
			}
			if opened.Fragment != nil || opened.MessageID != 1 || opened.Exchange != ExchangeIKEAuth {
				t.Fatalf("opened %+v", opened)
			}
			// The sealed bytes re-encode unchanged from the decoded form.
			again, err := got.Encode()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encode: %v", err)
			}
		})
	}
}

// TestEncryptedAuthenticatesEverything flips bits the decoder ignores or
// accepts (SPIs, flags, Message ID, RESERVED octets of the SK header, IV,
// ciphertext, ICV): Open must refuse every one, which shows that the AAD
// covers the header through the SK payload header and the ICV the rest.
func TestEncryptedAuthenticatesEverything(t *testing.T) {
	for name, p := range protectors(t) {
		t.Run(name, func(t *testing.T) {
			b, err := authMessage().EncodeEncrypted(innerGoldenPayloads(), p)
			if err != nil {
				t.Fatal(err)
			}
			positions := []int{hdrSPIiOff, hdrSPIrOff + 7, hdrFlagsOff, hdrMessageIDOff + 3,
				HeaderLen + genFlagsOff, HeaderLen + genHeaderLen, len(b) / 2, len(b) - 1}
			for _, pos := range positions {
				tampered := bytes.Clone(b)
				tampered[pos] ^= 0x01
				if _, err := Open(tampered, p); !errors.Is(err, errAuth) {
					t.Fatalf("flipping byte %d: %v, want the opener's authentication error", pos, err)
				}
			}
		})
	}
}

func TestEncryptedWithUnprotectedPayloadAndEmptyInner(t *testing.T) {
	p := newGCM(t)
	m := authMessage()
	m.Exchange, m.Flags = ExchangeInformational, FlagResponse
	m.Payloads = []Payload{&VendorID{Data: []byte("v")}}
	b, err := m.EncodeEncrypted(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	if b[hdrNextPayloadOff] != byte(PayloadVendorID) || b[HeaderLen] != byte(PayloadSK) {
		t.Fatalf("chain V -> SK not linked: %x", b[:HeaderLen+8])
	}
	skAt := HeaderLen + genHeaderLen + 1
	if !bytes.Equal(p.lastAAD, b[:skAt+genHeaderLen]) {
		t.Fatal("AAD does not end at the SK payload header")
	}
	opened, err := Open(b, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(opened.Inner) != 0 || len(opened.Payloads) != 2 {
		t.Fatalf("opened %+v", opened)
	}
	_, err = (&Message{Payloads: []Payload{&Encrypted{}}}).EncodeEncrypted(nil, p)
	wantError(t, err, InvalidSyntax, -1, "SK payload at position 0 of the unprotected payloads")
}

func TestOpenWithoutProtectedPayload(t *testing.T) {
	_, err := Open(readTestdata(t, "ike_sa_init_request.hex"), newGCM(t))
	wantError(t, err, InvalidSyntax, -1, "message has no SK or SKF payload")
}

// lyingSealer claims one byte less than it produces.
type lyingSealer struct{ *gcmProtector }

func (s lyingSealer) SealedLen(n int) int { return s.gcmProtector.SealedLen(n) - 1 }

func TestSealerMustKeepItsWord(t *testing.T) {
	_, err := authMessage().EncodeEncrypted(nil, lyingSealer{newGCM(t)})
	wantError(t, err, InvalidSyntax, -1, "sealer produced 25 bytes, SealedLen promised 24")
}

func TestFragmentsRoundTrip(t *testing.T) {
	_, plain, err := EncodePayloads(innerGoldenPayloads())
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range protectors(t) {
		for _, maxSize := range []int{80, 100, 150, 300, 1280} {
			m := authMessage()
			frags, err := m.EncodeFragments(innerGoldenPayloads(), p, maxSize)
			if err != nil {
				t.Fatalf("%s/%d: %v", name, maxSize, err)
			}
			if maxSize >= fragmentOverhead+p.SealedLen(len(plain)) && len(frags) != 1 {
				t.Fatalf("%s/%d: %d fragments for a message that fits in one", name, maxSize, len(frags))
			}
			r := NewReassembler(64, 1<<16)
			// Feed them last first: order must not matter.
			for i := len(frags) - 1; i >= 0; i-- {
				f := frags[i]
				if len(f) > maxSize {
					t.Fatalf("%s/%d: fragment %d is %d bytes", name, maxSize, i+1, len(f))
				}
				// With a stream AEAD every fragment but the last is full.
				if name == "aead" && i < len(frags)-1 && len(f) != maxSize {
					t.Fatalf("aead/%d: fragment %d is %d bytes, not full", maxSize, i+1, len(f))
				}
				opened, err := Open(f, p)
				if err != nil {
					t.Fatalf("%s/%d: fragment %d: %v", name, maxSize, i+1, err)
				}
				if g, ok := p.(*gcmProtector); ok && !bytes.Equal(g.lastAAD, f[:fragmentOverhead]) {
					t.Fatalf("AAD does not end after Total Fragments")
				}
				fr := opened.Fragment
				wantFirst := PayloadNone
				if i == 0 {
					wantFirst = PayloadIDi
				}
				if fr == nil || int(fr.Number) != i+1 || int(fr.Total) != len(frags) || fr.First != wantFirst {
					t.Fatalf("%s/%d: fragment %d opened as %+v", name, maxSize, i+1, fr)
				}
				if opened.MessageID != 1 || opened.NextPayload != PayloadSKF {
					t.Fatalf("fragment header %+v", opened.Header)
				}
				inner, done, err := r.Add(opened.MessageID, *fr)
				if err != nil {
					t.Fatal(err)
				}
				if done != (i == 0) {
					t.Fatalf("%s/%d: done=%v after fragment %d", name, maxSize, done, i+1)
				}
				if done && !reflect.DeepEqual(inner, innerGoldenPayloads()) {
					t.Fatalf("%s/%d: reassembled payloads differ", name, maxSize)
				}
			}
		}
	}
}

func TestFragmentTampering(t *testing.T) {
	p := newGCM(t)
	frags, err := authMessage().EncodeFragments(innerGoldenPayloads(), p, 120)
	if err != nil {
		t.Fatal(err)
	}
	// Fragment Number and Total Fragments are authenticated (RFC 7383 §2.5).
	f := bytes.Clone(frags[0])
	f[HeaderLen+genHeaderLen+skfTotalOff+1]++
	if _, err := Open(f, p); !errors.Is(err, errAuth) {
		t.Fatalf("changed Total Fragments: %v", err)
	}
}

func TestFragmentEdgeCases(t *testing.T) {
	p := newGCM(t)
	frags, err := authMessage().EncodeFragments(nil, p, 100)
	if err != nil || len(frags) != 1 {
		t.Fatalf("empty chain: %d fragments, %v", len(frags), err)
	}
	opened, err := Open(frags[0], p)
	if err != nil {
		t.Fatal(err)
	}
	inner, done, err := NewReassembler(4, 100).Add(1, *opened.Fragment)
	if err != nil || !done || len(inner) != 0 {
		t.Fatalf("empty reassembly: %v %v %v", inner, done, err)
	}
	_, err = authMessage().EncodeFragments(nil, p, fragmentOverhead+p.SealedLen(0))
	wantError(t, err, InvalidSyntax, -1, "datagram size 61 leaves no room for fragment content")
	m := authMessage()
	m.Payloads = []Payload{&VendorID{}}
	_, err = m.EncodeFragments(nil, p, 1280)
	wantError(t, err, InvalidSyntax, -1, "fragmenting a message with 1 unprotected payloads")
}

func frag(n, total uint16, data string) Fragment {
	f := Fragment{Number: n, Total: total, Data: []byte(data)}
	if n == 1 {
		f.First = PayloadVendorID
	}
	return f
}

// vendorChain is a Vendor ID payload split across fragments by tests.
func vendorChain(data string) string {
	b, _ := appendChain(nil, []Payload{&VendorID{Data: []byte(data)}}, PayloadNone)
	return string(b)
}

func TestReassemblerRules(t *testing.T) {
	whole := vendorChain("0123456789")
	a, b, c := whole[:5], whole[5:10], whole[10:]

	t.Run("duplicate", func(t *testing.T) {
		r := NewReassembler(8, 1024)
		mustAdd(t, r, 1, frag(1, 2, a), false)
		if _, _, err := r.Add(1, frag(1, 2, a)); err != ErrDuplicateFragment {
			t.Fatalf("got %v", err)
		}
		mustAdd(t, r, 1, frag(2, 2, b+c), true)
	})
	t.Run("smaller total is stale", func(t *testing.T) {
		r := NewReassembler(8, 1024)
		mustAdd(t, r, 1, frag(1, 3, a), false)
		if _, _, err := r.Add(1, frag(2, 2, b+c)); err != ErrStaleFragment {
			t.Fatalf("got %v", err)
		}
		mustAdd(t, r, 1, frag(3, 3, c), false)
		mustAdd(t, r, 1, frag(2, 3, b), true)
	})
	t.Run("larger total restarts", func(t *testing.T) {
		r := NewReassembler(8, 1024)
		mustAdd(t, r, 1, frag(1, 2, "garbage"), false) // dropped by the restart
		mustAdd(t, r, 1, frag(2, 3, b), false)
		mustAdd(t, r, 1, frag(1, 3, a), false)
		mustAdd(t, r, 1, frag(3, 3, c), true)
	})
	t.Run("new message ID restarts", func(t *testing.T) {
		r := NewReassembler(8, 1024)
		mustAdd(t, r, 1, frag(1, 2, "garbage"), false)
		mustAdd(t, r, 2, frag(1, 2, a), false)
		mustAdd(t, r, 2, frag(2, 2, b+c), true)
	})
	t.Run("bounds", func(t *testing.T) {
		r := NewReassembler(2, 12)
		if _, _, err := r.Add(1, frag(1, 3, a)); err != ErrTooManyFragments {
			t.Fatalf("got %v", err)
		}
		mustAdd(t, r, 1, frag(1, 2, a), false)
		if _, _, err := r.Add(1, frag(2, 2, b+c+"more")); err != ErrReassemblyTooLarge {
			t.Fatalf("got %v", err)
		}
		// Everything was dropped: fragment 2 alone does not complete.
		mustAdd(t, r, 1, frag(2, 2, b+c), false)
	})
	t.Run("bad numbers", func(t *testing.T) {
		r := NewReassembler(8, 1024)
		for _, f := range []Fragment{frag(0, 2, a), frag(3, 2, a), frag(1, 0, a)} {
			if _, _, err := r.Add(1, f); err != ErrBadFragmentNumber {
				t.Fatalf("%+v: got %v", f, err)
			}
		}
	})
	t.Run("reset", func(t *testing.T) {
		r := NewReassembler(8, 1024)
		mustAdd(t, r, 1, frag(1, 2, a), false)
		r.Reset()
		mustAdd(t, r, 1, frag(2, 2, b+c), false)
	})
	t.Run("malformed result", func(t *testing.T) {
		r := NewReassembler(8, 1024)
		mustAdd(t, r, 1, frag(1, 2, a), false)
		_, done, err := r.Add(1, frag(2, 2, b))
		wantError(t, err, InvalidSyntax, 2, "V Payload Length 14 outside 4..10")
		if done {
			t.Fatal("done with an error")
		}
	})
	t.Run("data is copied", func(t *testing.T) {
		r := NewReassembler(8, 1024)
		f := frag(1, 2, a)
		mustAdd(t, r, 1, f, false)
		clear(f.Data)
		inner := mustAdd(t, r, 1, frag(2, 2, b+c), true)
		if string(inner[0].(*VendorID).Data) != "0123456789" {
			t.Fatalf("reassembled %q", inner[0].(*VendorID).Data)
		}
	})
}

func mustAdd(t *testing.T, r *Reassembler, id uint32, f Fragment, wantDone bool) []Payload {
	t.Helper()
	inner, done, err := r.Add(id, f)
	if err != nil || done != wantDone {
		t.Fatalf("Add(%d, %d/%d) = done %v, %v; want done %v", id, f.Number, f.Total, done, err, wantDone)
	}
	if done && (len(inner) != 1 || string(inner[0].(*VendorID).Data) != "0123456789") {
		t.Fatalf("reassembled %#v", inner)
	}
	return inner
}
