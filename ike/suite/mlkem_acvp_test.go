package suite

import (
	"bufio"
	"bytes"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/cloudflare/circl/kem/mlkem/mlkem512"
)

// acvpVector is one NIST ACVP ML-KEM test case: its name ("encapsulation ML-KEM-768 43") and its
// hex fields.
type acvpVector struct {
	name   string
	fields map[string][]byte
}

// readACVP reads a testdata file of ACVP known answers (see its header for the source).
func readACVP(t *testing.T, path string) []acvpVector {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []acvpVector
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 8192), 8192)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if k == "vector" {
			out = append(out, acvpVector{name: v, fields: map[string][]byte{}})
			continue
		}
		b, err := hex.DecodeString(v)
		if !ok || err != nil || len(out) == 0 {
			t.Fatalf("bad line %q", line)
		}
		out[len(out)-1].fields[k] = b
	}
	return out
}

// TestMLKEMACVPEncapsulation: FIPS 203 encapsulation of NIST's ACVP encapDecap vectors (two each
// for ML-KEM-512, ML-KEM-768 and ML-KEM-1024) gives NIST's ciphertext and shared key, derandomized
// with each vector's m through crypto/mlkem/mlkemtest (circl's EncapsulateTo seed for 512). Our responder accepts each vector's encapsulation key
// (FIPS 203 §7.2 checks) and answers with a ciphertext and secret of the right sizes; our
// initiator refuses the vector's ciphertext cut short or lengthened.
func TestMLKEMACVPEncapsulation(t *testing.T) {
	vs := readACVP(t, "testdata/acvp-mlkem-encap.txt")
	count := map[uint16]int{}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			ek, m, wantC, wantK := v.fields["ek"], v.fields["m"], v.fields["c"], v.fields["k"]
			var group uint16
			var k, c []byte
			var err error
			switch {
			case strings.HasPrefix(v.name, "encapsulation ML-KEM-512 "):
				group = ML_KEM_512
				var key mlkem512.PublicKey
				if err = key.Unpack(ek); err == nil {
					k, c = make([]byte, mlkem512.SharedKeySize), make([]byte, mlkem512.CiphertextSize)
					key.EncapsulateTo(c, k, m)
				}
			case strings.HasPrefix(v.name, "encapsulation ML-KEM-768 "):
				group = ML_KEM_768
				var key *mlkem.EncapsulationKey768
				if key, err = mlkem.NewEncapsulationKey768(ek); err == nil {
					k, c, err = mlkemtest.Encapsulate768(key, m)
				}
			case strings.HasPrefix(v.name, "encapsulation ML-KEM-1024 "):
				group = ML_KEM_1024
				var key *mlkem.EncapsulationKey1024
				if key, err = mlkem.NewEncapsulationKey1024(ek); err == nil {
					k, c, err = mlkemtest.Encapsulate1024(key, m)
				}
			default:
				t.Fatalf("unknown vector %q", v.name)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c, wantC) || !bytes.Equal(k, wantK) {
				t.Fatal("encapsulation differs from NIST's answer")
			}
			count[group]++

			resp, _ := NewKeyExchange(group, nil)
			ct, secret, err := resp.Respond(ek)
			if err != nil || len(ct) != len(wantC) || len(secret) != mlkem.SharedKeySize {
				t.Fatalf("responder with the ACVP encapsulation key: %d-byte ciphertext, %d-byte secret, %v", len(ct), len(secret), err)
			}
			if n, _ := PublicValueSize(group, true); n != len(ek) {
				t.Fatalf("PublicValueSize(initiator) = %d, the vector's key has %d bytes", n, len(ek))
			}
			if n, _ := PublicValueSize(group, false); n != len(wantC) {
				t.Fatalf("PublicValueSize(responder) = %d, the vector's ciphertext has %d bytes", n, len(wantC))
			}
			for _, bad := range [][]byte{wantC[:len(wantC)-1], append(append([]byte(nil), wantC...), 0)} {
				ini, _ := NewKeyExchange(group, nil)
				if _, err := ini.SharedSecret(bad); err == nil {
					t.Fatalf("a ciphertext of %d bytes was accepted", len(bad))
				}
			}
		})
	}
	if count[ML_KEM_512] < 2 || count[ML_KEM_768] < 2 || count[ML_KEM_1024] < 2 {
		t.Fatalf("known answers: %d for ML-KEM-512, %d for ML-KEM-768, %d for ML-KEM-1024; want at least two each", count[ML_KEM_512], count[ML_KEM_768], count[ML_KEM_1024])
	}
}

// TestMLKEMACVPKeyGen: our initiator's ML-KEM key exchange, given NIST's ACVP keyGen seed d || z
// as its randomness (FIPS 203 §7.1 draws exactly these 64 bytes), sends NIST's encapsulation key
// as its public value: two vectors each for ML-KEM-512, ML-KEM-768 and ML-KEM-1024.
func TestMLKEMACVPKeyGen(t *testing.T) {
	vs := readACVP(t, "testdata/acvp-mlkem-keygen.txt")
	count := map[uint16]int{}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			group := uint16(ML_KEM_768)
			switch {
			case strings.HasPrefix(v.name, "keyGen ML-KEM-512 "):
				group = ML_KEM_512
			case strings.HasPrefix(v.name, "keyGen ML-KEM-768 "):
			case strings.HasPrefix(v.name, "keyGen ML-KEM-1024 "):
				group = ML_KEM_1024
			default:
				t.Fatalf("unknown vector %q", v.name)
			}
			seed := append(append([]byte(nil), v.fields["d"]...), v.fields["z"]...)
			ke, err := NewKeyExchange(group, bytes.NewReader(seed))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ke.PublicValue(), v.fields["ek"]) {
				t.Fatal("the encapsulation key differs from NIST's answer")
			}
			count[group]++
		})
	}
	if count[ML_KEM_512] < 2 || count[ML_KEM_768] < 2 || count[ML_KEM_1024] < 2 {
		t.Fatalf("known answers: %d for ML-KEM-512, %d for ML-KEM-768, %d for ML-KEM-1024; want at least two each", count[ML_KEM_512], count[ML_KEM_768], count[ML_KEM_1024])
	}
}
