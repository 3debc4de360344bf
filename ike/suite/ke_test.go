package suite

import (
	"bytes"
	"crypto/mlkem"
	"errors"
	"io"
	"math/big"
	"testing"
)

// RFC 5903 §8 test vectors: private keys i and r, public values gi = gix |
// giy and gr = grx | gry as they appear in the KE payload (§7), and the
// shared secret girx.
var rfc5903Vectors = []struct {
	group                    uint16
	i, gix, giy, r, grx, gry string
	girx                     string
}{
	{ // §8.1, 256-bit random ECP group
		group: ECP_256,
		i:     "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
		gix:   "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180",
		giy:   "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
		r:     "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
		grx:   "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63",
		gry:   "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
		girx:  "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
	},
	{ // §8.2, 384-bit random ECP group
		group: ECP_384,
		i: "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655" +
			"E35B5380 41E649EE 3FAEF896 783AB194",
		gix: "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6" +
			"DE3AC808 ACB4BDB4 C88732AE E95F41AA",
		giy: "9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E" +
			"EB9FCFF3 C2C947DA E69B4C63 4573A81C",
		r: "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942" +
			"E0308312 916B8ED2 960E4BD5 5A7448FC",
		grx: "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D" +
			"0D1AC43A 0336DEF9 6FDA41D0 774A3571",
		gry: "DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF" +
			"F83FA401 42209DFF 5EAAD96D B9E6386C",
		girx: "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4" +
			"D6031355 69B9E9D0 9CF5D4A2 70F59746",
	},
	{ // §8.3, 521-bit random ECP group
		group: ECP_521,
		i: "0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0" +
			"95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D" +
			"4A52",
		gix: "0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE" +
			"E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C" +
			"ED3E",
		giy: "017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A" +
			"D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F" +
			"9582",
		r: "0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E" +
			"9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168" +
			"5EB9",
		grx: "00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21" +
			"9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9" +
			"460F",
		gry: "015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87" +
			"220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F" +
			"C56A",
		girx: "01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04" +
			"D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3" +
			"DDEA",
	},
}

// The private keys are fed through the injected reader, so these tests
// drive the public constructor exactly as production code does.
func TestECPRFC5903Vectors(t *testing.T) {
	for _, v := range rfc5903Vectors {
		initiator, err := NewKeyExchange(v.group, bytes.NewReader(unhex(t, v.i)))
		if err != nil {
			t.Fatalf("group %d: %v", v.group, err)
		}
		responder, err := NewKeyExchange(v.group, bytes.NewReader(unhex(t, v.r)))
		if err != nil {
			t.Fatalf("group %d: %v", v.group, err)
		}
		gi := append(unhex(t, v.gix), unhex(t, v.giy)...)
		gr := append(unhex(t, v.grx), unhex(t, v.gry)...)
		if !bytes.Equal(initiator.PublicValue(), gi) {
			t.Errorf("group %d: initiator KE data = %x, want gix | giy = %x", v.group, initiator.PublicValue(), gi)
		}
		if n, _ := PublicValueSize(v.group, true); n != len(gi) {
			t.Errorf("group %d: PublicValueSize = %d, want %d", v.group, n, len(gi))
		}
		girx := unhex(t, v.girx)
		pub, secretR, err := responder.Respond(gi)
		if err != nil {
			t.Fatalf("group %d: Respond: %v", v.group, err)
		}
		if !bytes.Equal(pub, gr) {
			t.Errorf("group %d: responder KE data = %x, want grx | gry = %x", v.group, pub, gr)
		}
		secretI, err := initiator.SharedSecret(gr)
		if err != nil {
			t.Fatalf("group %d: SharedSecret: %v", v.group, err)
		}
		if !bytes.Equal(secretI, girx) || !bytes.Equal(secretR, girx) {
			t.Errorf("group %d: g^ir = %x / %x, want girx = %x", v.group, secretI, secretR, girx)
		}
	}
}

func TestECPRejectsBadPeerValues(t *testing.T) {
	for _, v := range rfc5903Vectors {
		gr := append(unhex(t, v.grx), unhex(t, v.gry)...)
		offCurve := bytes.Clone(gr)
		offCurve[len(offCurve)-1] ^= 1
		// x = p is not a reduced coordinate: all-ones is >= p for these primes.
		unreduced := bytes.Clone(gr)
		for i := 0; i < len(gr)/2; i++ {
			unreduced[i] = 0xff
		}
		bad := map[string][]byte{
			"empty":                  nil,
			"one byte short":         gr[:len(gr)-1],
			"one byte long":          append(bytes.Clone(gr), 0),
			"SEC 1 tagged":           append([]byte{0x04}, gr...),
			"off curve":              offCurve,
			"all zeros (infinity)":   make([]byte, len(gr)),
			"unreduced x coordinate": unreduced,
		}
		for name, peer := range bad {
			ke, _ := NewKeyExchange(v.group, nil)
			if s, err := ke.SharedSecret(peer); !errors.Is(err, ErrInvalidPublicValue) || s != nil {
				t.Errorf("group %d %s: error = %v, want ErrInvalidPublicValue", v.group, name, err)
			}
			ke, _ = NewKeyExchange(v.group, nil)
			if p, s, err := ke.Respond(peer); !errors.Is(err, ErrInvalidPublicValue) || p != nil || s != nil {
				t.Errorf("group %d %s: Respond error = %v, want ErrInvalidPublicValue", v.group, name, err)
			}
		}
	}
}

// RFC 7748 §6.1 X25519 test vector, which RFC 8031 uses unchanged.
func TestX25519RFC7748Vector(t *testing.T) {
	alicePriv := unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	alicePub := unhex(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	bobPriv := unhex(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
	bobPub := unhex(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
	shared := unhex(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

	alice, err := NewKeyExchange(CURVE25519, bytes.NewReader(alicePriv))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewKeyExchange(CURVE25519, bytes.NewReader(bobPriv))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(alice.PublicValue(), alicePub) || !bytes.Equal(bob.PublicValue(), bobPub) {
		t.Fatalf("public values %x / %x, want %x / %x", alice.PublicValue(), bob.PublicValue(), alicePub, bobPub)
	}
	pub, secretB, err := bob.Respond(alicePub)
	if err != nil || !bytes.Equal(pub, bobPub) {
		t.Fatalf("Respond: %x, %v", pub, err)
	}
	secretA, err := alice.SharedSecret(bobPub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(secretA, shared) || !bytes.Equal(secretB, shared) {
		t.Errorf("shared secret %x / %x, want %x", secretA, secretB, shared)
	}
}

// RFC 8031 recipient tests: a peer value that makes the shared secret all zeros must
// be refused. The zero point and u = 1 (RFC 7748 §5 low-order points) do.
func TestX25519RefusesAllZeroSecret(t *testing.T) {
	one := make([]byte, 32)
	one[0] = 1
	bad := map[string][]byte{
		"u=0":      make([]byte, 32),
		"u=1":      one,
		"31 bytes": make([]byte, 31),
		"33 bytes": make([]byte, 33),
		"empty":    nil,
	}
	for name, peer := range bad {
		ke, _ := NewKeyExchange(CURVE25519, nil)
		if s, err := ke.SharedSecret(peer); !errors.Is(err, ErrInvalidPublicValue) || s != nil {
			t.Errorf("%s: error = %v, want ErrInvalidPublicValue", name, err)
		}
	}
}

func TestMODPKnownExponent(t *testing.T) {
	for _, group := range []uint16{MODP_2048, MODP_3072, MODP_4096} {
		params := modpGroups[group]
		xi := seq(0x01, params.expSize)
		xr := seq(0x80, params.expSize)
		ini, err := NewKeyExchange(group, bytes.NewReader(xi))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := NewKeyExchange(group, bytes.NewReader(xr))
		if err != nil {
			t.Fatal(err)
		}
		p := params.prime
		wantGi := new(big.Int).Exp(big.NewInt(2), new(big.Int).SetBytes(xi), p)
		if got := ini.PublicValue(); len(got) != params.size || new(big.Int).SetBytes(got).Cmp(wantGi) != 0 {
			t.Errorf("group %d: g^i wrong or not %d bytes", group, params.size)
		}
		pub, secretR, err := resp.Respond(ini.PublicValue())
		if err != nil {
			t.Fatal(err)
		}
		secretI, err := ini.SharedSecret(pub)
		if err != nil {
			t.Fatal(err)
		}
		wantGir := new(big.Int).Exp(wantGi, new(big.Int).SetBytes(xr), p)
		if !bytes.Equal(secretI, secretR) || len(secretI) != params.size || new(big.Int).SetBytes(secretI).Cmp(wantGir) != 0 {
			t.Errorf("group %d: g^ir wrong", group)
		}
	}
}

// g^ir and public values keep their leading zero bytes (RFC 7296 §2.14).
func TestMODPLeftPadding(t *testing.T) {
	params := modpGroups[MODP_2048]
	// y = 2^8 raised to 1 is small: the secret y^x for x = 1 is y itself.
	ke := &modpKE{group: MODP_2048, params: params, x: big.NewInt(1)}
	peer := make([]byte, params.size)
	peer[len(peer)-1] = 5
	s, err := ke.SharedSecret(peer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s, peer) {
		t.Errorf("shared secret not left-padded to %d bytes: %x", params.size, s)
	}
}

func TestMODPRejectsBadPeerValues(t *testing.T) {
	for _, group := range []uint16{MODP_2048, MODP_3072, MODP_4096} {
		params := modpGroups[group]
		pad := func(v *big.Int) []byte { return v.FillBytes(make([]byte, params.size)) }
		p := params.prime
		bad := map[string][]byte{
			"0":          pad(big.NewInt(0)),
			"1":          pad(big.NewInt(1)),
			"p-1":        pad(new(big.Int).Sub(p, big.NewInt(1))),
			"p":          pad(p),
			"p+1":        pad(new(big.Int).Add(p, big.NewInt(1))),
			"all ones":   repeatByte(0xff, params.size),
			"short":      make([]byte, params.size-1),
			"long":       append(pad(big.NewInt(2)), 0),
			"unpadded 2": []byte{2},
			"empty":      nil,
		}
		for name, peer := range bad {
			ke, _ := NewKeyExchange(group, nil)
			if s, err := ke.SharedSecret(peer); !errors.Is(err, ErrInvalidPublicValue) || s != nil {
				t.Errorf("group %d %s: error = %v, want ErrInvalidPublicValue", group, name, err)
			}
		}
		// 2 and p-2 are the extremes of the accepted range.
		for _, y := range []*big.Int{big.NewInt(2), new(big.Int).Sub(p, big.NewInt(2))} {
			ke, _ := NewKeyExchange(group, nil)
			if _, err := ke.SharedSecret(pad(y)); err != nil {
				t.Errorf("group %d: y = %v refused: %v", group, y, err)
			}
		}
	}
}

func TestMLKEMRoundTrip(t *testing.T) {
	for _, c := range []struct {
		group        uint16
		ekLen, ctLen int
	}{{ML_KEM_512, 800, 768}, {ML_KEM_768, mlkem.EncapsulationKeySize768, mlkem.CiphertextSize768}, {ML_KEM_1024, mlkem.EncapsulationKeySize1024, mlkem.CiphertextSize1024}} {
		ini, err := NewKeyExchange(c.group, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := NewKeyExchange(c.group, nil)
		if err != nil {
			t.Fatal(err)
		}
		ek := ini.PublicValue()
		if n, _ := PublicValueSize(c.group, true); len(ek) != c.ekLen || n != c.ekLen {
			t.Errorf("group %d: encapsulation key %d bytes, size says %d, want %d", c.group, len(ek), n, c.ekLen)
		}
		ct, secretR, err := resp.Respond(ek)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := PublicValueSize(c.group, false); len(ct) != c.ctLen || n != c.ctLen || !bytes.Equal(resp.PublicValue(), ct) {
			t.Errorf("group %d: ciphertext %d bytes, size says %d, want %d", c.group, len(ct), n, c.ctLen)
		}
		secretI, err := ini.SharedSecret(ct)
		if err != nil {
			t.Fatal(err)
		}
		if len(secretI) != mlkem.SharedKeySize || !bytes.Equal(secretI, secretR) {
			t.Errorf("group %d: secrets differ", c.group)
		}
		if !IsKEM(c.group) {
			t.Errorf("IsKEM(%d) = false", c.group)
		}
		// Bad lengths in both directions.
		for _, n := range []int{0, c.ctLen - 1, c.ctLen + 1} {
			if _, err := ini.SharedSecret(make([]byte, n)); !errors.Is(err, ErrInvalidPublicValue) {
				t.Errorf("group %d: %d-byte ciphertext: error = %v", c.group, n, err)
			}
		}
		for _, n := range []int{0, c.ekLen - 1, c.ekLen + 1} {
			r, _ := NewKeyExchange(c.group, nil)
			if _, _, err := r.Respond(make([]byte, n)); !errors.Is(err, ErrInvalidPublicValue) {
				t.Errorf("group %d: %d-byte encapsulation key: error = %v", c.group, n, err)
			}
		}
		// FIPS 203 §7.2 modulus check: coefficients of 0xfff exceed q = 3329.
		r, _ := NewKeyExchange(c.group, nil)
		if _, _, err := r.Respond(repeatByte(0xff, c.ekLen)); !errors.Is(err, ErrInvalidPublicValue) {
			t.Errorf("group %d: unreduced encapsulation key: error = %v", c.group, err)
		}
	}
}

// The seed comes from the injected reader, so a fixed reader gives a fixed
// encapsulation key.
func TestMLKEMDeterministicKeyGen(t *testing.T) {
	seed := seq(0x21, mlkem.SeedSize)
	a, _ := NewKeyExchange(ML_KEM_768, bytes.NewReader(seed))
	b, _ := NewKeyExchange(ML_KEM_768, bytes.NewReader(seed))
	dk, _ := mlkem.NewDecapsulationKey768(seed)
	if !bytes.Equal(a.PublicValue(), b.PublicValue()) || !bytes.Equal(a.PublicValue(), dk.EncapsulationKey().Bytes()) {
		t.Error("ML-KEM key generation does not follow the injected seed")
	}
}

func TestKeyExchangeRolesAndZero(t *testing.T) {
	for _, group := range []uint16{MODP_2048, ECP_256, CURVE25519, ML_KEM_512, ML_KEM_768} {
		a, _ := NewKeyExchange(group, nil)
		b, _ := NewKeyExchange(group, nil)
		if a.Group() != group {
			t.Errorf("Group() = %d, want %d", a.Group(), group)
		}
		pub, _, err := b.Respond(a.PublicValue())
		if err != nil {
			t.Fatalf("group %d: %v", group, err)
		}
		if _, err := b.SharedSecret(pub); !errors.Is(err, ErrKeyExchangeRole) {
			t.Errorf("group %d: responder used as initiator: error = %v", group, err)
		}
		if _, err := a.SharedSecret(pub); err != nil {
			t.Fatalf("group %d: %v", group, err)
		}
		if _, _, err := a.Respond(b.PublicValue()); !errors.Is(err, ErrKeyExchangeRole) {
			t.Errorf("group %d: initiator used as responder: error = %v", group, err)
		}
		a.Zero()
		if _, err := a.SharedSecret(pub); !errors.Is(err, ErrZeroed) {
			t.Errorf("group %d: after Zero: error = %v, want ErrZeroed", group, err)
		}
	}
}

func TestUnsupportedGroups(t *testing.T) {
	for _, g := range []uint16{0, 1, 2, 5, 22, 23, 24, 25, 26, 32, 34, 38, 0xffff} {
		if _, err := NewKeyExchange(g, nil); !errors.Is(err, ErrUnsupportedGroup) {
			t.Errorf("NewKeyExchange(%d): error = %v, want ErrUnsupportedGroup", g, err)
		}
		if _, err := PublicValueSize(g, true); !errors.Is(err, ErrUnsupportedGroup) {
			t.Errorf("PublicValueSize(%d): error = %v, want ErrUnsupportedGroup", g, err)
		}
	}
}

func TestKeyExchangeReaderFailure(t *testing.T) {
	for _, group := range []uint16{MODP_2048, ECP_384, CURVE25519, ML_KEM_512, ML_KEM_1024} {
		if _, err := NewKeyExchange(group, bytes.NewReader([]byte{1, 2, 3})); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("group %d with a short reader: error = %v, want io.ErrUnexpectedEOF", group, err)
		}
	}
	// A reader that only yields out-of-range scalars must not loop forever.
	if _, err := NewKeyExchange(ECP_256, bytes.NewReader(repeatByte(0xff, 32*maxScalarTries))); err == nil {
		t.Error("P-256 accepted an all-ones scalar source")
	}
}
