package interop

import (
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/goipsec/goipsec/internal/testnet"
)

// keylog is what goipsec wrote to its key log (daemon { log { keylog_file } }): one
// "<table>: <row>" line per IKE SA (ikev2_decryption_table) and per ESP SA (esp_sa), each row in the
// format of Wireshark's UAT file of that name.
type keylog struct {
	ikeRows, espRows []string
}

// readKeylog reads and splits a key log; a line of another form fails the test.
func readKeylog(t *testing.T, path string) keylog {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("key log: %v", err)
	}
	var k keylog
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		table, row, ok := strings.Cut(line, ": ")
		switch {
		case !ok:
			t.Fatalf("key log line %d has no table name: %q", i+1, line)
		case table == "ikev2_decryption_table":
			k.ikeRows = append(k.ikeRows, row)
		case table == "esp_sa":
			k.espRows = append(k.espRows, row)
		default:
			t.Fatalf("key log line %d: unknown table %q", i+1, table)
		}
	}
	return k
}

// splitUATRow splits one row of a Wireshark UAT file: comma-separated fields, each either a
// double-quoted string (in which Wireshark writes a quote, a backslash and non-printable bytes as
// \xNN) or a bare value (hex byte fields). It is strict, so a row Wireshark would misread fails here.
func splitUATRow(row string) ([]string, error) {
	var fields []string
	for i := 0; ; {
		if i < len(row) && row[i] == '"' {
			var b strings.Builder
			j := i + 1
			for ; j < len(row) && row[j] != '"'; j++ {
				if row[j] == '\\' {
					if j+3 >= len(row) || row[j+1] != 'x' {
						return nil, fmt.Errorf("bad escape at %d in %q", j, row)
					}
					v, err := strconv.ParseUint(row[j+2:j+4], 16, 8)
					if err != nil {
						return nil, fmt.Errorf("bad escape at %d in %q", j, row)
					}
					b.WriteByte(byte(v))
					j += 3
					continue
				}
				b.WriteByte(row[j])
			}
			if j >= len(row) {
				return nil, fmt.Errorf("unterminated string in %q", row)
			}
			fields = append(fields, b.String())
			i = j + 1
		} else {
			j := strings.IndexByte(row[i:], ',')
			if j < 0 {
				j = len(row) - i
			}
			field := row[i : i+j]
			if strings.ContainsAny(field, "\" ") {
				return nil, fmt.Errorf("bare field %q in %q", field, row)
			}
			fields = append(fields, field)
			i += j
		}
		if i == len(row) {
			return fields, nil
		}
		if row[i] != ',' {
			return nil, fmt.Errorf("want ',' at %d in %q", i, row)
		}
		i++
	}
}

// parseHexField reads a hex byte field: bare hex (IKE table) or "0x..." (ESP table); empty is nil.
func parseHexField(s string) ([]byte, error) {
	s = strings.TrimPrefix(s, "0x")
	if s == "" {
		return nil, nil
	}
	return hex.DecodeString(s)
}

// ikeSAs turns the key log's IKE rows into tshark's decryption table entries.
func (k keylog) ikeSAs(t *testing.T) []testnet.TsharkIKESA {
	t.Helper()
	var out []testnet.TsharkIKESA
	for _, row := range k.ikeRows {
		f, err := splitUATRow(row)
		if err == nil && len(f) != 8 {
			err = fmt.Errorf("%d fields, want 8", len(f))
		}
		var bs [6][]byte
		for i, idx := range []int{0, 1, 2, 3, 5, 6} {
			if err != nil {
				break
			}
			bs[i], err = parseHexField(f[idx])
		}
		if err != nil {
			t.Fatalf("key log ikev2_decryption_table row %q: %v", row, err)
		}
		if len(bs[0]) != 8 || len(bs[1]) != 8 {
			t.Fatalf("key log ikev2_decryption_table row %q: SPIs of %d and %d bytes", row, len(bs[0]), len(bs[1]))
		}
		out = append(out, testnet.TsharkIKESA{SPIi: bs[0], SPIr: bs[1], SKei: bs[2], SKer: bs[3], Encr: f[4], SKai: bs[4], SKar: bs[5], Integ: f[7]})
	}
	return out
}

// espSAs turns the key log's ESP rows into tshark's ESP SA entries.
func (k keylog) espSAs(t *testing.T) []testnet.TsharkESPSA {
	t.Helper()
	var out []testnet.TsharkESPSA
	for _, row := range k.espRows {
		f, err := splitUATRow(row)
		if err == nil && len(f) != 8 {
			err = fmt.Errorf("%d fields, want 8", len(f))
		}
		var spi uint64
		var encKey, authKey []byte
		if err == nil {
			if f[0] != "IPv4" && f[0] != "IPv6" {
				err = fmt.Errorf("protocol %q", f[0])
			}
		}
		if err == nil {
			spi, err = strconv.ParseUint(strings.TrimPrefix(f[3], "0x"), 16, 32)
		}
		if err == nil {
			encKey, err = parseHexField(f[5])
		}
		if err == nil {
			authKey, err = parseHexField(f[7])
		}
		if err != nil {
			t.Fatalf("key log esp_sa row %q: %v", row, err)
		}
		out = append(out, testnet.TsharkESPSA{Src: f[1], Dst: f[2], SPI: uint32(spi), Encr: f[4], EncrKey: encKey, Auth: f[6], AuthKey: authKey})
	}
	return out
}

func TestSplitUATRow(t *testing.T) {
	for _, tc := range []struct {
		row  string
		want []string
		err  bool
	}{
		{`"IPv4","1.2.3.4","*","0x00000100","AES-GCM with 16 octet ICV [RFC4106]","0xab","NULL",""`,
			[]string{"IPv4", "1.2.3.4", "*", "0x00000100", "AES-GCM with 16 octet ICV [RFC4106]", "0xab", "NULL", ""}, false},
		{`0102,0304,aa,bb,"AES-CBC-128 [RFC3602]",,,"NONE [RFC4306]"`,
			[]string{"0102", "0304", "aa", "bb", "AES-CBC-128 [RFC3602]", "", "", "NONE [RFC4306]"}, false},
		{`"a\x22b"`, []string{`a"b`}, false},
		{`"open`, nil, true},
		{`"a"x`, nil, true},
		{`a b`, nil, true},
		{`"\q"`, nil, true},
	} {
		got, err := splitUATRow(tc.row)
		if (err != nil) != tc.err || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("splitUATRow(%q) = %q, %v; want %q, error %v", tc.row, got, err, tc.want, tc.err)
		}
	}
}
