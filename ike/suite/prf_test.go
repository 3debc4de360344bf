package suite

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// RFC 4868 §2.7.1 PRF test vectors (PRF-1 to PRF-6, the RFC 4231 HMAC test
// cases with untruncated output).
var rfc4868PRFCases = []struct {
	name           string
	key, data      []byte
	sha256, sha384 string
	sha512         string
}{
	{
		name: "PRF-1", key: repeatByte(0x0b, 20), data: []byte("Hi There"),
		sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
		sha384: "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c" +
			"faea9ea9076ede7f4af152e8b2fa9cb6",
		sha512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde" +
			"daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
	},
	{
		name: "PRF-2", key: []byte("Jefe"), data: []byte("what do ya want for nothing?"),
		sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		sha384: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e" +
			"8e2240ca5e69e2c78b3239ecfab21649",
		sha512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554" +
			"9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
	},
	{
		name: "PRF-3", key: repeatByte(0xaa, 20), data: repeatByte(0xdd, 50),
		sha256: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
		sha384: "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b" +
			"2a5ab39dc13814b94e3ab6e101a34f27",
		sha512: "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39" +
			"bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
	},
	{
		name: "PRF-4", key: seq(0x01, 25), data: repeatByte(0xcd, 50),
		sha256: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
		sha384: "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e" +
			"6801dd23c4a7d679ccf8a386c674cffb",
		sha512: "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db" +
			"a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
	},
	{
		name: "PRF-5", key: repeatByte(0xaa, 131), data: []byte("Test Using Larger Than Block-Size Key - Hash Key First"),
		sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
		sha384: "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6" +
			"0c2ef6ab4030fe8296248df163f44952",
		sha512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352" +
			"6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
	},
	{
		name: "PRF-6", key: repeatByte(0xaa, 131),
		data: []byte("This is a test using a larger than block-size key and a larger than block-size data. " +
			"The key needs to be hashed before being used by the HMAC algorithm."),
		sha256: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
		sha384: "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5" +
			"a678cc31e799176d3860e6110c46523e",
		sha512: "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944" +
			"b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
	},
}

func TestPRFRFC4868Vectors(t *testing.T) {
	for _, c := range rfc4868PRFCases {
		for _, v := range []struct {
			id   uint16
			want string
		}{{PRF_HMAC_SHA2_256, c.sha256}, {PRF_HMAC_SHA2_384, c.sha384}, {PRF_HMAC_SHA2_512, c.sha512}} {
			p, err := NewPRF(v.id)
			if err != nil {
				t.Fatal(err)
			}
			want := unhex(t, v.want)
			if got := p.Compute(c.key, c.data); !bytes.Equal(got, want) {
				t.Errorf("%s PRF %d = %x, want %x", c.name, v.id, got, want)
			}
			if p.Size() != len(want) {
				t.Errorf("PRF %d Size() = %d, want %d", v.id, p.Size(), len(want))
			}
			// The data may come in parts and the result may be appended.
			half := len(c.data) / 2
			got := p.AppendCompute([]byte("prefix"), c.key, c.data[:half], nil, c.data[half:])
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Errorf("%s PRF %d AppendCompute in parts = %x", c.name, v.id, got)
			}
		}
	}
}

func TestNewPRFUnsupported(t *testing.T) {
	for _, id := range []uint16{0, 1, 2, 4, 8, 0xffff} {
		if _, err := NewPRF(id); !errors.Is(err, ErrUnsupportedTransform) {
			t.Errorf("NewPRF(%d) error = %v, want ErrUnsupportedTransform", id, err)
		}
	}
}

// refPRFPlus is prf+ written straight from RFC 7296 §2.13 with fresh HMACs
// and explicit concatenation, as an independent check of PRF.Plus.
func refPRFPlus(p PRF, key, seed []byte, n int) []byte {
	var out, prev []byte
	for k := 1; len(out) < n; k++ {
		msg := append(append(append([]byte{}, prev...), seed...), byte(k))
		m := hmac.New(p.newHash, key)
		m.Write(msg)
		prev = m.Sum(nil)
		out = append(out, prev...)
	}
	return out[:n]
}

func TestPRFPlusMatchesReference(t *testing.T) {
	seed := seq(0x40, 77)
	key := seq(0x90, 33)
	for _, id := range []uint16{PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384, PRF_HMAC_SHA2_512} {
		p, _ := NewPRF(id)
		for _, n := range []int{0, 1, p.Size() - 1, p.Size(), p.Size() + 1, 3*p.Size() + 5, 255 * p.Size()} {
			got, err := p.Plus(key, n, seed[:10], seed[10:])
			if err != nil {
				t.Fatalf("PRF %d Plus(%d): %v", id, n, err)
			}
			if want := refPRFPlus(p, key, seed, n); !bytes.Equal(got, want) {
				t.Fatalf("PRF %d Plus(%d) differs from reference", id, n)
			}
			if cap(got) != n {
				t.Errorf("PRF %d Plus(%d) leaves cap %d: unrequested key bytes reachable", id, n, cap(got))
			}
		}
	}
}

func TestPRFPlusLimit(t *testing.T) {
	p, _ := NewPRF(PRF_HMAC_SHA2_256)
	for _, n := range []int{255*32 + 1, -1} {
		if _, err := p.Plus([]byte("k"), n, []byte("s")); !errors.Is(err, ErrPRFPlusTooLong) {
			t.Errorf("Plus(%d) error = %v, want ErrPRFPlusTooLong", n, err)
		}
	}
}

// TestHMACMatchesStdlib checks the pooled HMAC (hmac.go) against crypto/hmac for every PRF, keys
// shorter than, equal to and longer than the block size, and data in one piece or several.
func TestHMACMatchesStdlib(t *testing.T) {
	legacy, err := NewLegacyPRF(PRF_HMAC_SHA1)
	if err != nil {
		t.Fatal(err)
	}
	prfs := []PRF{legacy}
	for _, id := range []uint16{PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384, PRF_HMAC_SHA2_512} {
		p, err := NewPRF(id)
		if err != nil {
			t.Fatal(err)
		}
		prfs = append(prfs, p)
	}
	for _, p := range prfs {
		for _, keyLen := range []int{0, 1, 20, 32, 63, 64, 65, 127, 128, 129, 300} {
			for _, dataLen := range []int{0, 1, 55, 56, 64, 200, 1000} {
				key, data := seq(byte(keyLen), keyLen), seq(byte(dataLen+7), dataLen)
				ref := hmac.New(p.newHash, key)
				ref.Write(data)
				want := ref.Sum(nil)
				if got := p.Compute(key, data); !bytes.Equal(got, want) {
					t.Fatalf("PRF %d key %d data %d: %x, want %x", p.ID(), keyLen, dataLen, got, want)
				}
				half := dataLen / 2
				if got := p.AppendCompute([]byte{0xee}, key, data[:half], nil, data[half:]); !bytes.Equal(got, append([]byte{0xee}, want...)) {
					t.Fatalf("PRF %d key %d data %d in parts: %x", p.ID(), keyLen, dataLen, got)
				}
			}
		}
	}
}

// TestPRFAllocatesNothing: a PRF computation into a buffer with room allocates nothing (the
// hash states and pads come from a pool), and prf+ allocates only its output.
func TestPRFAllocatesNothing(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under coverage or the race detector")
	}
	p, err := NewPRF(PRF_HMAC_SHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	key, a, b := seq(1, 32), seq(2, 100), seq(3, 40)
	dst := make([]byte, 0, 64)
	p.AppendCompute(dst, key, a, b) // fill the pool
	if n := testing.AllocsPerRun(100, func() { p.AppendCompute(dst[:0], key, a, b) }); n != 0 {
		t.Fatalf("AppendCompute allocates %.1f times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { p.Plus(key, 224, a, b) }); n != 1 {
		t.Fatalf("Plus allocates %.1f times, want 1 (its output)", n)
	}
}

// TestHMACConcurrent runs PRFs on many goroutines at once (the pool is shared); with -race it
// also checks that no scratch is used by two of them.
func TestHMACConcurrent(t *testing.T) {
	p, err := NewPRF(PRF_HMAC_SHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := seq(byte(g), 32+g)
			ref := hmac.New(sha256.New, key)
			ref.Write([]byte("data"))
			want := ref.Sum(nil)
			for range 500 {
				if got := p.Compute(key, []byte("data")); !bytes.Equal(got, want) {
					errs <- fmt.Sprintf("goroutine %d: %x, want %x", g, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
