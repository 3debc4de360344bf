package proposal

import (
	"reflect"
	"strings"
	"testing"
)

func tr(typ TransformType, id, keyLength uint16) Transform {
	return Transform{Type: typ, ID: id, KeyLength: keyLength}
}

// The IANA numbers are the wire values; a typo here would break interoperability, so they are
// checked against the registry ("Internet Key Exchange Version 2 (IKEv2) Parameters",
// Transform Type Values and Transform Type 1-5 tables) once more.
func TestIANANumbers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uint16
	}{
		{"ENCR_NULL", EncrNull, 11}, {"ENCR_AES_CBC", EncrAESCBC, 12}, {"ENCR_AES_CTR", EncrAESCTR, 13},
		{"ENCR_AES_GCM_8", EncrAESGCM8, 18}, {"ENCR_AES_GCM_12", EncrAESGCM12, 19},
		{"ENCR_AES_GCM_16", EncrAESGCM16, 20}, {"ENCR_CHACHA20_POLY1305", EncrChaCha20Poly1305, 28},
		{"PRF_HMAC_SHA2_256", PRFHMACSHA2256, 5}, {"PRF_HMAC_SHA2_384", PRFHMACSHA2384, 6},
		{"PRF_HMAC_SHA2_512", PRFHMACSHA2512, 7},
		{"AUTH_HMAC_SHA2_256_128", IntegHMACSHA2256128, 12}, {"AUTH_HMAC_SHA2_384_192", IntegHMACSHA2384192, 13},
		{"AUTH_HMAC_SHA2_512_256", IntegHMACSHA2512256, 14},
		{"MODP 2048", KEMODP2048, 14}, {"MODP 3072", KEMODP3072, 15}, {"MODP 4096", KEMODP4096, 16},
		{"ECP 256", KEECP256, 19}, {"ECP 384", KEECP384, 20}, {"ECP 521", KEECP521, 21},
		{"Curve25519", KECurve25519, 31}, {"Curve448", KECurve448, 32},
		{"ML-KEM-512", KEMLKEM512, 35}, {"ML-KEM-768", KEMLKEM768, 36}, {"ML-KEM-1024", KEMLKEM1024, 37},
		{"NONE", KENone, 0}, {"No ESN", ESNNo, 0}, {"ESN", ESNYes, 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	types := []struct {
		got  TransformType
		want uint8
	}{{TypeEncryption, 1}, {TypePRF, 2}, {TypeIntegrity, 3}, {TypeKeyExchange, 4}, {TypeESN, 5},
		{TypeAdditionalKE1, 6}, {TypeAdditionalKE7, 12}}
	for _, tc := range types {
		if uint8(tc.got) != tc.want {
			t.Errorf("transform type %s = %d, want %d", tc.got, tc.got, tc.want)
		}
	}
	if ProtoIKE != 1 || ProtoAH != 2 || ProtoESP != 3 {
		t.Error("security protocol IDs differ from RFC 7296 §3.3.1")
	}
}

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		proto Protocol
		in    string
		want  []Transform
		str   string
	}{
		{ProtoIKE, "aes256gcm16-prfsha256-x25519",
			[]Transform{tr(TypeEncryption, EncrAESGCM16, 256), tr(TypePRF, PRFHMACSHA2256, 0), tr(TypeKeyExchange, KECurve25519, 0)},
			"aes256gcm16-prfsha256-x25519"},
		// PRF derived from the integrity algorithm.
		{ProtoIKE, "aes128-sha256-modp2048",
			[]Transform{tr(TypeEncryption, EncrAESCBC, 128), tr(TypeIntegrity, IntegHMACSHA2256128, 0),
				tr(TypePRF, PRFHMACSHA2256, 0), tr(TypeKeyExchange, KEMODP2048, 0)},
			"aes128-sha256-prfsha256-modp2048"},
		// Alternatives keep their order; the order of kinds does not matter.
		{ProtoIKE, "aes128-aes256-sha256-sha384-modp2048-ecp256",
			[]Transform{tr(TypeEncryption, EncrAESCBC, 128), tr(TypeEncryption, EncrAESCBC, 256),
				tr(TypeIntegrity, IntegHMACSHA2256128, 0), tr(TypeIntegrity, IntegHMACSHA2384192, 0),
				tr(TypePRF, PRFHMACSHA2256, 0), tr(TypePRF, PRFHMACSHA2384, 0),
				tr(TypeKeyExchange, KEMODP2048, 0), tr(TypeKeyExchange, KEECP256, 0)},
			"aes128-aes256-sha256-sha384-prfsha256-prfsha384-modp2048-ecp256"},
		{ProtoIKE, "x25519-prfsha384-aes256gcm16",
			[]Transform{tr(TypeEncryption, EncrAESGCM16, 256), tr(TypePRF, PRFHMACSHA2384, 0), tr(TypeKeyExchange, KECurve25519, 0)},
			"aes256gcm16-prfsha384-x25519"},
		// AEAD in IKE: the integrity keyword only yields the PRF and is dropped (strongSwan).
		{ProtoIKE, "aes256gcm16-sha384-ecp384",
			[]Transform{tr(TypeEncryption, EncrAESGCM16, 256), tr(TypePRF, PRFHMACSHA2384, 0), tr(TypeKeyExchange, KEECP384, 0)},
			"aes256gcm16-prfsha384-ecp384"},
		// Aliases print as the canonical keyword.
		{ProtoIKE, "aes128gcm128-prfsha512-curve25519",
			[]Transform{tr(TypeEncryption, EncrAESGCM16, 128), tr(TypePRF, PRFHMACSHA2512, 0), tr(TypeKeyExchange, KECurve25519, 0)},
			"aes128gcm16-prfsha512-x25519"},
		// Hybrid post-quantum key exchange (RFC 9370 + draft-ietf-ipsecme-ikev2-mlkem).
		{ProtoIKE, "aes256gcm16-prfsha384-ecp384-ke1_mlkem768-ke2_none",
			[]Transform{tr(TypeEncryption, EncrAESGCM16, 256), tr(TypePRF, PRFHMACSHA2384, 0), tr(TypeKeyExchange, KEECP384, 0),
				tr(TypeAdditionalKE1, KEMLKEM768, 0), tr(TypeAdditionalKE1+1, KENone, 0)},
			"aes256gcm16-prfsha384-ecp384-ke1_mlkem768-ke2_none"},
		{ProtoIKE, "chacha20poly1305-prfsha256-mlkem1024",
			[]Transform{tr(TypeEncryption, EncrChaCha20Poly1305, 0), tr(TypePRF, PRFHMACSHA2256, 0), tr(TypeKeyExchange, KEMLKEM1024, 0)},
			"chacha20poly1305-prfsha256-mlkem1024"},
		{ProtoESP, "aes256gcm16",
			[]Transform{tr(TypeEncryption, EncrAESGCM16, 256), tr(TypeESN, ESNNo, 0)},
			"aes256gcm16-noesn"},
		{ProtoESP, "aes128-sha256-modp2048",
			[]Transform{tr(TypeEncryption, EncrAESCBC, 128), tr(TypeIntegrity, IntegHMACSHA2256128, 0),
				tr(TypeKeyExchange, KEMODP2048, 0), tr(TypeESN, ESNNo, 0)},
			"aes128-sha256-modp2048-noesn"},
		{ProtoESP, "chacha20poly1305-esn-noesn",
			[]Transform{tr(TypeEncryption, EncrChaCha20Poly1305, 0), tr(TypeESN, ESNYes, 0), tr(TypeESN, ESNNo, 0)},
			"chacha20poly1305-esn-noesn"},
		{ProtoESP, "null-sha512",
			[]Transform{tr(TypeEncryption, EncrNull, 0), tr(TypeIntegrity, IntegHMACSHA2512256, 0), tr(TypeESN, ESNNo, 0)},
			"null-sha512-noesn"},
		{ProtoESP, "aes128gcm12-aes192gcm96-ecp256-modpnone",
			[]Transform{tr(TypeEncryption, EncrAESGCM12, 128), tr(TypeEncryption, EncrAESGCM12, 192),
				tr(TypeKeyExchange, KEECP256, 0), tr(TypeKeyExchange, KENone, 0), tr(TypeESN, ESNNo, 0)},
			"aes128gcm12-aes192gcm12-ecp256-modpnone-noesn"},
		{ProtoESP, "aes128ccm8-aes256ccm96-aes192ccm",
			[]Transform{tr(TypeEncryption, EncrAESCCM8, 128), tr(TypeEncryption, EncrAESCCM12, 256),
				tr(TypeEncryption, EncrAESCCM16, 192), tr(TypeESN, ESNNo, 0)},
			"aes128ccm8-aes256ccm12-aes192ccm16-noesn"},
		{ProtoESP, "aes256gmac-esn",
			[]Transform{tr(TypeEncryption, EncrNullAESGMAC, 256), tr(TypeESN, ESNYes, 0)},
			"aes256gmac-esn"},
		{ProtoESP, "aes192ctr-aes256-aescmac-aesxcbc",
			[]Transform{tr(TypeEncryption, EncrAESCTR, 192), tr(TypeEncryption, EncrAESCBC, 256),
				tr(TypeIntegrity, IntegAESCMAC96, 0), tr(TypeIntegrity, IntegAESXCBC96, 0), tr(TypeESN, ESNNo, 0)},
			"aes192ctr-aes256-aescmac-aesxcbc-noesn"},
		{ProtoIKE, "aes192-sha384-ecp384",
			[]Transform{tr(TypeEncryption, EncrAESCBC, 192), tr(TypeIntegrity, IntegHMACSHA2384192, 0),
				tr(TypePRF, PRFHMACSHA2384, 0), tr(TypeKeyExchange, KEECP384, 0)},
			"aes192-sha384-prfsha384-ecp384"},
		{ProtoAH, "aesxcbc-aescmac",
			[]Transform{tr(TypeIntegrity, IntegAESXCBC96, 0), tr(TypeIntegrity, IntegAESCMAC96, 0), tr(TypeESN, ESNNo, 0)},
			"aesxcbc-aescmac-noesn"},
		{ProtoAH, "sha256-sha512-esn",
			[]Transform{tr(TypeIntegrity, IntegHMACSHA2256128, 0), tr(TypeIntegrity, IntegHMACSHA2512256, 0), tr(TypeESN, ESNYes, 0)},
			"sha256-sha512-esn"},
		// Spaces around keywords are trimmed like strongSwan does.
		{ProtoAH, " sha384 - noesn ",
			[]Transform{tr(TypeIntegrity, IntegHMACSHA2384192, 0), tr(TypeESN, ESNNo, 0)},
			"sha384-noesn"},
	} {
		got, err := parseList(tc.proto, tc.in, false)
		if err != nil {
			t.Errorf("%s %q: %v", tc.proto, tc.in, err)
			continue
		}
		if len(got) != 1 {
			t.Errorf("%s %q: got %d proposals, want 1", tc.proto, tc.in, len(got))
			continue
		}
		want := Proposal{Protocol: tc.proto, Transforms: tc.want}
		if !reflect.DeepEqual(got[0], want) {
			t.Errorf("%s %q:\n got %+v\nwant %+v", tc.proto, tc.in, got[0], want)
		}
		if s := got[0].String(); s != tc.str {
			t.Errorf("%s %q: String() = %q, want %q", tc.proto, tc.in, s, tc.str)
		}
		// Round trip: the printed form parses to the same proposal.
		again, err := parseList(tc.proto, got[0].String(), false)
		if err != nil || len(again) != 1 || !again[0].Equal(got[0]) {
			t.Errorf("%s %q: round trip of %q gave %v, %v", tc.proto, tc.in, got[0].String(), again, err)
		}
	}
}

func TestParseList(t *testing.T) {
	got, err := ParseIKE("aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048")
	if err != nil {
		t.Fatal(err)
	}
	if s := FormatList(got); s != "aes256gcm16-prfsha256-x25519, aes128-sha256-prfsha256-modp2048" {
		t.Errorf("FormatList = %q", s)
	}
	// "default" may stand among explicit proposals.
	got, err = ParseESP("aes128-sha256, default")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1].String() != "aes256gcm16-aes128gcm16-chacha20poly1305-noesn" {
		t.Errorf("ParseESP with default = %s", FormatList(got))
	}
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		proto Protocol
		parse func(string) ([]Proposal, error)
		want  string
	}{
		{ProtoIKE, ParseIKE, "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-x25519-ke1_mlkem768, " +
			"aes256gcm16-aes128gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384-ecp521-modp3072-modp4096, " +
			"aes256-aes128-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384-ecp521-modp3072-modp4096"},
		{ProtoESP, ParseESP, "aes256gcm16-aes128gcm16-chacha20poly1305-noesn, aes256-aes128-sha256-sha384-sha512-noesn"},
		{ProtoAH, ParseAH, "sha256-sha384-sha512-noesn"},
	} {
		d, err := Default(tc.proto)
		if err != nil {
			t.Fatalf("Default(%s): %v", tc.proto, err)
		}
		if s := FormatList(d); s != tc.want {
			t.Errorf("Default(%s) = %q, want %q", tc.proto, s, tc.want)
		}
		viaKeyword, err := tc.parse("default")
		if err != nil || !reflect.DeepEqual(viaKeyword, d) {
			t.Errorf("%s \"default\" = %v, %v; want Default()", tc.proto, viaKeyword, err)
		}
		// Defaults only offer what goipsec implements.
		for _, p := range d {
			for _, x := range p.Transforms {
				if x.Type == TypeEncryption || x.Type == TypeIntegrity {
					if _, ok := KeyMaterialBytes(x); !ok {
						t.Errorf("default %s offers %s without known key material", tc.proto, x)
					}
				}
			}
		}
	}
	if _, err := Default(Protocol(9)); err == nil || err.Error() != "no default proposals for protocol(9)" {
		t.Errorf("Default(9) error = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		proto Protocol
		in    string
		want  string
	}{
		{ProtoIKE, "", "no proposals given"},
		{ProtoIKE, "   ", "no proposals given"},
		{ProtoIKE, "aes128-sha256-x25519,", `empty proposal in "aes128-sha256-x25519,"`},
		{ProtoIKE, "aes128--sha256-x25519", `empty algorithm in proposal "aes128--sha256-x25519"`},
		{ProtoIKE, "aes256gmc16-prfsha256-x25519", `unknown algorithm "aes256gmc16"; did you mean "aes256gcm16"?`},
		{ProtoIKE, "aes128-sha265-x25519", `unknown algorithm "sha265"; did you mean "sha256"?`},
		{ProtoIKE, "aes128-sha256-ke1_mlkem786-x25519", `unknown algorithm "ke1_mlkem786"; did you mean "ke1_mlkem768"?`},
		{ProtoIKE, "aes128-sha256-bogus", `unknown algorithm "bogus"`},
		{ProtoIKE, "3des-sha256-modp2048", `"3des" is a weak algorithm, not offered (an IKEv1 connection can opt in with weak_algorithms = yes)`},
		{ProtoIKE, "aes128-sha1-modp2048", `"sha1" is a weak algorithm, not offered (an IKEv1 connection can opt in with weak_algorithms = yes)`},
		{ProtoIKE, "aes128-md5-modp2048", `"md5" is a weak algorithm, not offered`},
		{ProtoIKE, "aes128-sha256-modp1024", `"modp1024" is a weak algorithm, not offered (an IKEv1 connection can opt in with weak_algorithms = yes)`},
		{ProtoIKE, "aes128-sha256-modp1536", `"modp1536" is a weak algorithm, not offered`},
		{ProtoIKE, "aes128-sha256-prfsha1-modp2048", `"prfsha1" is a weak algorithm, not offered (an IKEv1 connection can opt in with weak_algorithms = yes)`},
		{ProtoESP, "des-sha256", `"des" is a weak algorithm, not offered`},
		{ProtoESP, "aes256gcm8", `"aes256gcm8" is not supported by goipsec yet`},
		{ProtoESP, "aes128gcm64", `"aes128gcm64" is not supported by goipsec yet`},
		{ProtoIKE, "camellia128-sha256-modp2048", `"camellia128" is not supported by goipsec yet`},
		{ProtoIKE, "aes128ctr-sha256-modp2048", `"aes128ctr" is supported for ESP and AH (Child SAs) but not for the IKE SA`},
		{ProtoIKE, "aes128ccm16-prfsha256-modp2048", `"aes128ccm16" is supported for ESP and AH (Child SAs) but not for the IKE SA`},
		{ProtoIKE, "aes128gcm12-prfsha256-modp2048", `"aes128gcm12" is supported for ESP and AH (Child SAs) but not for the IKE SA`},
		{ProtoIKE, "aes128-aesxcbc-prfsha256-modp2048", `"aesxcbc" is supported for ESP and AH (Child SAs) but not for the IKE SA`},
		{ProtoIKE, "aes128gmac-prfsha256-modp2048", `"aes128gmac" is supported for ESP and AH (Child SAs) but not for the IKE SA`},
		{ProtoIKE, "aes128-sha256-x448", `"x448" is not supported by goipsec yet`},
		{ProtoIKE, "aes128-sha256-ke9_mlkem768-x25519", `"ke9_mlkem768": additional key exchanges are numbered ke1_ to ke7_`},
		{ProtoIKE, "aes128-sha256-ke01_mlkem768-x25519", `"ke01_mlkem768": additional key exchanges are numbered ke1_ to ke7_`},
		{ProtoIKE, "aes128-sha256-ke1_aes256-x25519", `"ke1_aes256": ke1_ must be followed by a key exchange method such as mlkem768`},
		{ProtoIKE, "aes128-aes128-sha256-x25519", `"aes128" appears twice in proposal "aes128-aes128-sha256-x25519"`},
		{ProtoIKE, "aes128-sha256-sha2_256-x25519", `"sha256" and "sha2_256" are the same algorithm in proposal "aes128-sha256-sha2_256-x25519"`},
		{ProtoIKE, "prfsha256-x25519", `proposal "prfsha256-x25519" has no encryption algorithm`},
		{ProtoIKE, "aes128-aes128gcm16-sha256-x25519", `proposal "aes128-aes128gcm16-sha256-x25519" mixes classic and combined-mode (AEAD) encryption algorithms; write them as two proposals separated by a comma`},
		{ProtoIKE, "aes128-prfsha256-x25519", `proposal "aes128-prfsha256-x25519" needs an integrity algorithm (e.g. sha256) with classic encryption`},
		{ProtoIKE, "aes256gcm16-x25519", `proposal "aes256gcm16-x25519" needs a PRF (e.g. prfsha256)`},
		{ProtoIKE, "aes256gcm16-prfsha256", `proposal "aes256gcm16-prfsha256" needs a key exchange method (e.g. x25519)`},
		{ProtoIKE, "aes256gcm16-prfsha256-x25519-noesn", `"noesn" can only be used in ESP and AH proposals`},
		{ProtoIKE, "null-sha256-x25519", `"null" encryption is not allowed in IKE proposals`},
		{ProtoIKE, "aes128-sha256-modpnone", `"modpnone" is not allowed in IKE proposals, which need a key exchange`},
		{ProtoESP, "aes256gcm16-sha256", `"sha256" can't be combined with "aes256gcm16" in an ESP proposal: AEAD algorithms protect integrity themselves`},
		{ProtoESP, "aes256", `proposal "aes256" needs an integrity algorithm (e.g. sha256) with "aes256"`},
		{ProtoESP, "null", `proposal "null" needs an integrity algorithm (e.g. sha256) with "null"`},
		{ProtoESP, "sha256", `proposal "sha256" has no encryption algorithm`},
		{ProtoESP, "aes128gcm16-prfsha256", `"prfsha256" can only be used in IKE proposals`},
		{ProtoESP, "aes128gcm16-ke1_mlkem768", `proposal "aes128gcm16-ke1_mlkem768" has additional key exchanges (keN_) but no key exchange method`},
		{ProtoAH, "aes128-sha256", `"aes128" is an encryption algorithm; AH proposals take integrity algorithms only`},
		{ProtoAH, "noesn", `proposal "noesn" needs an integrity algorithm (e.g. sha256)`},
		{ProtoAH, "sha256-prfsha256", `"prfsha256" can only be used in IKE proposals`},
		{Protocol(7), "sha256", "unknown protocol 7"},
	} {
		got, err := parseList(tc.proto, tc.in, false)
		if err == nil {
			t.Errorf("%s %q = %v, want error %q", tc.proto, tc.in, got, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s %q:\n got error %q\nwant error %q", tc.proto, tc.in, err, tc.want)
		}
	}
}

func TestTransformString(t *testing.T) {
	for _, tc := range []struct {
		t    Transform
		want string
	}{
		{tr(TypeEncryption, Encr3DES, 0), "3des"},                         // weak, but still named for error messages
		{tr(TypeKeyExchange, KEMODP1024, 0), "modp1024"},                  // likewise
		{tr(TypeEncryption, EncrAESGCM8, 192), "aes192gcm8"},              // unsupported, named
		{tr(TypeEncryption, 99, 0), "encr(99)"},                           // unknown ID
		{tr(TypeEncryption, EncrAESCBC, 512), "encr(12,512)"},             // known ID, unknown key length
		{tr(TypeAdditionalKE1+2, KEMLKEM512, 0), "ke3_mlkem512"},          // additional key exchange
		{tr(TypeAdditionalKE1, 4242, 0), "addke1(4242)"},                  // hypothetical unknown method
		{tr(TransformType(40), 1, 0), "type(40)(1)"},                      // unknown type
		{tr(TypeIntegrity, IntegHMACSHA2384192, 0), "sha384"},             // canonical name over alias
		{tr(TypeKeyExchange, KECurve25519, 0), "x25519"},                  // canonical name over alias
		{tr(TypeEncryption, EncrAESGCM12, 256), "aes256gcm12"},            //
		{tr(TypeESN, ESNYes, 0), "esn"},                                   //
		{tr(TypeEncryption, EncrChaCha20Poly1305, 0), "chacha20poly1305"}, //
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestKeyMaterialBytes(t *testing.T) {
	for _, tc := range []struct {
		t    Transform
		want int
		ok   bool
	}{
		{tr(TypeEncryption, EncrAESGCM16, 128), 20, true},
		{tr(TypeEncryption, EncrAESGCM16, 256), 36, true},
		{tr(TypeEncryption, EncrAESGCM8, 128), 0, false},
		{tr(TypeEncryption, EncrAESGCM16, 192), 28, true},
		{tr(TypeEncryption, EncrAESGCM12, 128), 20, true},
		{tr(TypeEncryption, EncrAESGCM16, 512), 0, false},
		{tr(TypeEncryption, EncrAESCCM8, 128), 19, true},
		{tr(TypeEncryption, EncrAESCCM16, 256), 35, true},
		{tr(TypeEncryption, EncrAESCTR, 192), 28, true},
		{tr(TypeEncryption, EncrNullAESGMAC, 256), 36, true},
		{tr(TypeEncryption, EncrAESCBC, 192), 24, true},
		{tr(TypeEncryption, EncrCamelliaCBC, 128), 0, false},
		{tr(TypeIntegrity, IntegAESXCBC96, 0), 16, true},
		{tr(TypeIntegrity, IntegAESCMAC96, 0), 16, true},
		{tr(TypeEncryption, EncrChaCha20Poly1305, 0), 36, true},
		{tr(TypeEncryption, EncrAESCBC, 128), 16, true},
		{tr(TypeEncryption, EncrAESCBC, 256), 32, true},
		{tr(TypeEncryption, EncrNull, 0), 0, true},
		{tr(TypeIntegrity, IntegHMACSHA2256128, 0), 32, true},
		{tr(TypeIntegrity, IntegHMACSHA2384192, 0), 48, true},
		{tr(TypeIntegrity, IntegHMACSHA2512256, 0), 64, true},
		{tr(TypeIntegrity, IntegHMACSHA196, 0), 20, true},
		{tr(TypeIntegrity, IntegHMACMD596, 0), 0, false},
		{tr(TypeKeyExchange, KECurve25519, 0), 0, false},
	} {
		n, ok := KeyMaterialBytes(tc.t)
		if n != tc.want || ok != tc.ok {
			t.Errorf("KeyMaterialBytes(%s) = %d, %v; want %d, %v", tc.t, n, ok, tc.want, tc.ok)
		}
	}
}

func TestHelpers(t *testing.T) {
	p, err := ParseIKE("aes128-aes256-sha256-x25519")
	if err != nil {
		t.Fatal(err)
	}
	if got := p[0].Of(TypeEncryption); len(got) != 2 || got[1].KeyLength != 256 {
		t.Errorf("Of(ENCR) = %v", got)
	}
	if p[0].Has(TypeESN) || !p[0].Has(TypePRF) {
		t.Error("Has is wrong")
	}
	if p[0].Equal(Proposal{Protocol: ProtoESP, Transforms: p[0].Transforms}) {
		t.Error("proposals of different protocols compare equal")
	}
	if !TypeAdditionalKE1.IsKeyExchange() || !TypeKeyExchange.IsKeyExchange() || TypeESN.IsKeyExchange() {
		t.Error("IsKeyExchange is wrong")
	}
	for _, tc := range []struct{ got, want string }{
		{ProtoIKE.String(), "IKE"}, {ProtoESP.String(), "ESP"}, {ProtoAH.String(), "AH"}, {Protocol(9).String(), "protocol(9)"},
		{TypeEncryption.String(), "ENCR"}, {TypePRF.String(), "PRF"}, {TypeIntegrity.String(), "INTEG"},
		{TypeKeyExchange.String(), "KE"}, {TypeESN.String(), "ESN"}, {TypeAdditionalKE7.String(), "ADDKE7"},
	} {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

// Every offered keyword must parse in at least one protocol, so that the table has no dead rows.
func TestEveryOfferedKeywordParses(t *testing.T) {
	for _, k := range keywords {
		if k.status == childOnly {
			in, parse := k.name, ParseAH
			if k.typ == TypeEncryption {
				in, parse = k.name, ParseESP
				if !IsAEAD(k.id) {
					in += "-sha256"
				}
			}
			if _, err := parse(in); err != nil {
				t.Errorf("keyword %q: %v", k.name, err)
			}
			n, ok := KeyMaterialBytes(Transform{Type: k.typ, ID: k.id, KeyLength: k.keyLength})
			if !ok || n == 0 {
				t.Errorf("keyword %q: no key material size", k.name)
			}
			continue
		}
		if k.status != offered {
			continue
		}
		var in string
		var parse func(string) ([]Proposal, error)
		switch k.typ {
		case TypeEncryption:
			if k.id == EncrNull {
				in, parse = k.name+"-sha256", ParseESP
			} else if IsAEAD(k.id) {
				in, parse = k.name+"-prfsha256-x25519", ParseIKE
			} else {
				in, parse = k.name+"-sha256-x25519", ParseIKE
			}
		case TypeIntegrity:
			in, parse = k.name, ParseAH
		case TypePRF:
			in, parse = "aes128gcm16-x25519-"+k.name, ParseIKE
		case TypeKeyExchange:
			in, parse = "aes128gcm16-"+k.name, ParseESP
		case TypeESN:
			in, parse = "sha256-"+k.name, ParseAH
		}
		if _, err := parse(in); err != nil {
			t.Errorf("keyword %q: %v", k.name, err)
		}
	}
}

func FuzzProposal(f *testing.F) {
	for _, s := range []string{"default", "aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048",
		"aes128-sha256-ke1_mlkem768-ecp256", "chacha20poly1305-esn-noesn", "3des-md5", "sha256", ",", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) ([]Proposal, error){ParseIKE, ParseESP, ParseAH} {
			list, err := parse(s)
			if err != nil {
				if list != nil {
					t.Fatalf("error %v with proposals %v", err, list)
				}
				continue
			}
			// A successful parse prints to a form that parses back to the same proposals.
			again, err := parse(FormatList(list))
			if err != nil {
				t.Fatalf("%q printed as %q which fails: %v", s, FormatList(list), err)
			}
			if !reflect.DeepEqual(again, list) {
				t.Fatalf("%q: round trip changed %v to %v", s, list, again)
			}
			if strings.Contains(FormatList(list), "(") {
				t.Fatalf("%q: parsed proposal prints an unnamed transform: %s", s, FormatList(list))
			}
		}
	})
}

// TestLegacyOptIn: 3DES, SHA-1 and MODP1024 parse only through the Legacy functions, and other
// weak algorithms not even there.
func TestLegacyOptIn(t *testing.T) {
	for _, s := range []string{"3des-sha1-modp1024", "aes128-sha1-modp2048", "aes256-sha256-modp1024"} {
		if _, err := ParseIKE(s); err == nil || !strings.Contains(err.Error(), "weak_algorithms") {
			t.Errorf("ParseIKE(%q) = %v, want a refusal naming weak_algorithms", s, err)
		}
		p, err := ParseIKELegacy(s)
		if err != nil {
			t.Errorf("ParseIKELegacy(%q): %v", s, err)
			continue
		}
		legacy := 0
		for _, tr := range p[0].Transforms {
			if Legacy(tr) {
				legacy++
			}
		}
		if legacy == 0 {
			t.Errorf("%q: no transform reported as legacy", s)
		}
	}
	if p, err := ParseESPLegacy("3des-sha1"); err != nil || p[0].String() != "3des-sha1-noesn" {
		t.Errorf("ParseESPLegacy(3des-sha1) = %v, %v", p, err)
	}
	for _, s := range []string{"des-sha1-modp2048", "aes128-md5-modp2048", "aes128-sha256-modp768", "aes128-sha256-modp1536"} {
		if _, err := ParseIKELegacy(s); err == nil {
			t.Errorf("ParseIKELegacy(%q) accepted", s)
		}
	}
}
