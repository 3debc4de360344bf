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
)

// acvpMLKEM768 reads testdata/acvp-mlkem768.txt: NIST ACVP known answers for ML-KEM-768.
func acvpMLKEM768(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/acvp-mlkem768.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 8192), 8192)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		b, err := hex.DecodeString(v)
		if !ok || err != nil {
			t.Fatalf("bad line %q", line)
		}
		out[k] = b
	}
	return out
}

// TestMLKEMACVPEncapsulation: FIPS 203 encapsulation of ACVP encapDecap tcId 43 gives NIST's
// ciphertext and shared key (derandomized with the vector's m through crypto/mlkem/mlkemtest); our
// responder accepts that encapsulation key (FIPS 203 §7.2 checks) and answers with a ciphertext of
// the right size, and our initiator refuses the vector's ciphertext cut short.
func TestMLKEMACVPEncapsulation(t *testing.T) {
	v := acvpMLKEM768(t)
	ek, err := mlkem.NewEncapsulationKey768(v["encap.ek"])
	if err != nil {
		t.Fatal(err)
	}
	k, c, err := mlkemtest.Encapsulate768(ek, v["encap.m"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c, v["encap.c"]) || !bytes.Equal(k, v["encap.k"]) {
		t.Fatal("ML-KEM-768 encapsulation differs from ACVP encapDecap tcId 43")
	}
	resp, _ := NewKeyExchange(ML_KEM_768, nil)
	ct, secret, err := resp.Respond(v["encap.ek"])
	if err != nil || len(ct) != mlkem.CiphertextSize768 || len(secret) != mlkem.SharedKeySize {
		t.Fatalf("responder with the ACVP encapsulation key: %d-byte ciphertext, %d-byte secret, %v", len(ct), len(secret), err)
	}
	ini, _ := NewKeyExchange(ML_KEM_768, nil)
	if _, err := ini.SharedSecret(v["encap.c"][:len(v["encap.c"])-1]); err == nil {
		t.Fatal("a truncated ciphertext was accepted")
	}
}
