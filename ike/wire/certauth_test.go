package wire

import (
	"bytes"
	"testing"
)

func TestCAHashes(t *testing.T) {
	var a, b [CAHashLen]byte
	for i := range a {
		a[i], b[i] = byte(i), byte(0xff-i)
	}
	data := AppendCAHashes(nil, [][CAHashLen]byte{a, b})
	got, err := CAHashes(data)
	if err != nil || len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("CAHashes = %x, %v", got, err)
	}
	if got, err := CAHashes(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty CERTREQ: %v %v", got, err)
	}
	if _, err := CAHashes(data[:39]); err == nil {
		t.Fatal("39 bytes accepted")
	}
}

func TestHashAlgorithms(t *testing.T) {
	// strongSwan 5.9.8 sends 0002 0003 0004 0005 (SHA2-256/384/512, Identity), as recorded in
	// testdata/strongswan: the notify of its IKE_SA_INIT request.
	data := unhex(t, "0002000300040005")
	algs, err := HashAlgorithms(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []HashAlgorithm{HashSHA2_256, HashSHA2_384, HashSHA2_512, HashIdentity}
	if len(algs) != len(want) {
		t.Fatalf("got %v", algs)
	}
	for i := range want {
		if algs[i] != want[i] {
			t.Fatalf("got %v", algs)
		}
	}
	if !bytes.Equal(AppendHashAlgorithms(nil, algs), data) {
		t.Fatal("re-encoding differs")
	}
	for _, bad := range []string{"", "00", "000200"} {
		if _, err := HashAlgorithms(unhex(t, bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The notify in a recorded strongSwan IKE_SA_INIT request decodes to the list above.
func TestHashAlgorithmsInStrongSwanInit(t *testing.T) {
	m, err := Decode(readTestdata(t, "strongswan/aes256gcm16-prfsha256-x25519/001-ike_sa_init-req.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Payloads {
		if n, ok := p.(*Notify); ok && n.NotifyType == SignatureHashAlgorithms {
			algs, err := HashAlgorithms(n.Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(algs) != 4 || algs[0] != HashSHA2_256 || algs[3] != HashIdentity {
				t.Fatalf("strongSwan's hash algorithms: %v", algs)
			}
			return
		}
	}
	t.Fatal("no SIGNATURE_HASH_ALGORITHMS in strongSwan's IKE_SA_INIT request")
}

func TestDigitalSignature(t *testing.T) {
	alg := unhex(t, "300506032b6570") // id-Ed25519 (RFC 8420 §2)
	sig := bytes.Repeat([]byte{0xab}, 64)
	data, err := AppendDigitalSignature(nil, alg, sig)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != 7 {
		t.Fatalf("length octet %d", data[0])
	}
	a, s, err := DigitalSignature(data)
	if err != nil || !bytes.Equal(a, alg) || !bytes.Equal(s, sig) {
		t.Fatalf("DigitalSignature = %x %x %v", a, s, err)
	}
	for _, bad := range [][]byte{nil, {0}, {7, 1, 2, 3}, append([]byte{7}, alg...)} {
		if _, _, err := DigitalSignature(bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
	if _, err := AppendDigitalSignature(nil, make([]byte, 256), sig); err == nil {
		t.Error("256-byte AlgorithmIdentifier accepted")
	}
}

// FuzzCertAuth: the CERTREQ, SIGNATURE_HASH_ALGORITHMS and Digital Signature readers never panic,
// and what they accept re-encodes to the input.
func FuzzCertAuth(f *testing.F) {
	f.Add([]byte{0, 2, 0, 3, 0, 4, 0, 5})
	f.Add(append([]byte{7}, unhex(f, "300506032b6570abababab")...))
	f.Add(bytes.Repeat([]byte{1}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		if hs, err := CAHashes(b); err == nil && !bytes.Equal(AppendCAHashes(nil, hs), b) {
			t.Fatal("CA hashes differ after a round trip")
		}
		if algs, err := HashAlgorithms(b); err == nil && !bytes.Equal(AppendHashAlgorithms(nil, algs), b) {
			t.Fatal("hash algorithms differ after a round trip")
		}
		if a, s, err := DigitalSignature(b); err == nil {
			out, err := AppendDigitalSignature(nil, a, s)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("digital signature differs after a round trip: %v", err)
			}
		}
	})
}
