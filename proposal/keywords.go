package proposal

import suggestpkg "github.com/goipsec/goipsec/internal/suggest"

// status says what the parser does with a keyword.
type status uint8

const (
	offered     status = iota // goipsec implements and offers it
	weak                      // cryptographically weak: refused, named in errors and String
	unsupported               // a sound algorithm goipsec does not implement (yet)
	// childOnly: the data plane implements it for ESP and AH, the IKE SA's own protection does
	// not; IKE proposals refuse it.
	childOnly
)

// keyword is one strongSwan algorithm keyword. The first entry for a transform is its canonical
// name, the one String prints; later entries for the same transform are aliases.
type keyword struct {
	name      string
	typ       TransformType
	id        uint16
	keyLength uint16
	status    status
}

// keywords is the keyword table, after strongSwan's "IKEv2 Cipher Suites" page
// (docs.strongswan.org/docs/latest/config/IKEv2CipherSuites.html) and the IANA IKEv2 registry.
// ENCR_AES_GCM_8 is not implemented: Go's GCM refuses tags shorter than 12 bytes.
var keywords = [...]keyword{
	// Classic encryption.
	{"aes128", TypeEncryption, EncrAESCBC, 128, offered},
	{"aes256", TypeEncryption, EncrAESCBC, 256, offered},
	{"aes192", TypeEncryption, EncrAESCBC, 192, offered},
	{"aes", TypeEncryption, EncrAESCBC, 128, offered},
	{"null", TypeEncryption, EncrNull, 0, offered},
	{"aes128ctr", TypeEncryption, EncrAESCTR, 128, childOnly},
	{"aes192ctr", TypeEncryption, EncrAESCTR, 192, childOnly},
	{"aes256ctr", TypeEncryption, EncrAESCTR, 256, childOnly},
	{"camellia128", TypeEncryption, EncrCamelliaCBC, 128, unsupported},
	{"camellia192", TypeEncryption, EncrCamelliaCBC, 192, unsupported},
	{"camellia256", TypeEncryption, EncrCamelliaCBC, 256, unsupported},
	{"camellia", TypeEncryption, EncrCamelliaCBC, 128, unsupported},
	{"camellia128ctr", TypeEncryption, EncrCamelliaCTR, 128, unsupported},
	{"camellia192ctr", TypeEncryption, EncrCamelliaCTR, 192, unsupported},
	{"camellia256ctr", TypeEncryption, EncrCamelliaCTR, 256, unsupported},
	{"3des", TypeEncryption, Encr3DES, 0, weak},
	{"des", TypeEncryption, EncrDES, 0, weak},
	{"cast128", TypeEncryption, EncrCAST, 128, weak},
	{"blowfish128", TypeEncryption, EncrBlowfish, 128, weak},
	{"blowfish192", TypeEncryption, EncrBlowfish, 192, weak},
	{"blowfish256", TypeEncryption, EncrBlowfish, 256, weak},
	{"blowfish", TypeEncryption, EncrBlowfish, 128, weak},

	// Combined-mode (AEAD) encryption. The ICV length is in the name, in bytes (gcm16) or, as
	// strongSwan also accepts, in bits (gcm128); without it, 16 bytes.
	{"aes128gcm16", TypeEncryption, EncrAESGCM16, 128, offered},
	{"aes128gcm128", TypeEncryption, EncrAESGCM16, 128, offered},
	{"aes128gcm", TypeEncryption, EncrAESGCM16, 128, offered},
	{"aes192gcm16", TypeEncryption, EncrAESGCM16, 192, offered},
	{"aes192gcm128", TypeEncryption, EncrAESGCM16, 192, offered},
	{"aes192gcm", TypeEncryption, EncrAESGCM16, 192, offered},
	{"aes256gcm16", TypeEncryption, EncrAESGCM16, 256, offered},
	{"aes256gcm128", TypeEncryption, EncrAESGCM16, 256, offered},
	{"aes256gcm", TypeEncryption, EncrAESGCM16, 256, offered},
	{"aes128gcm12", TypeEncryption, EncrAESGCM12, 128, childOnly},
	{"aes128gcm96", TypeEncryption, EncrAESGCM12, 128, childOnly},
	{"aes192gcm12", TypeEncryption, EncrAESGCM12, 192, childOnly},
	{"aes192gcm96", TypeEncryption, EncrAESGCM12, 192, childOnly},
	{"aes256gcm12", TypeEncryption, EncrAESGCM12, 256, childOnly},
	{"aes256gcm96", TypeEncryption, EncrAESGCM12, 256, childOnly},
	{"aes128gcm8", TypeEncryption, EncrAESGCM8, 128, unsupported},
	{"aes128gcm64", TypeEncryption, EncrAESGCM8, 128, unsupported},
	{"aes192gcm8", TypeEncryption, EncrAESGCM8, 192, unsupported},
	{"aes192gcm64", TypeEncryption, EncrAESGCM8, 192, unsupported},
	{"aes256gcm8", TypeEncryption, EncrAESGCM8, 256, unsupported},
	{"aes256gcm64", TypeEncryption, EncrAESGCM8, 256, unsupported},
	// strongSwan's pre-RFC 7634 variant with a key length attribute; only for old peers.
	{"chacha20poly1305compat", TypeEncryption, EncrChaCha20Poly1305, 256, unsupported},
	{"chacha20poly1305", TypeEncryption, EncrChaCha20Poly1305, 0, offered},
	{"aes128ccm16", TypeEncryption, EncrAESCCM16, 128, childOnly},
	{"aes128ccm128", TypeEncryption, EncrAESCCM16, 128, childOnly},
	{"aes128ccm", TypeEncryption, EncrAESCCM16, 128, childOnly},
	{"aes192ccm16", TypeEncryption, EncrAESCCM16, 192, childOnly},
	{"aes192ccm128", TypeEncryption, EncrAESCCM16, 192, childOnly},
	{"aes192ccm", TypeEncryption, EncrAESCCM16, 192, childOnly},
	{"aes256ccm16", TypeEncryption, EncrAESCCM16, 256, childOnly},
	{"aes256ccm128", TypeEncryption, EncrAESCCM16, 256, childOnly},
	{"aes256ccm", TypeEncryption, EncrAESCCM16, 256, childOnly},
	{"aes128ccm12", TypeEncryption, EncrAESCCM12, 128, childOnly},
	{"aes128ccm96", TypeEncryption, EncrAESCCM12, 128, childOnly},
	{"aes192ccm12", TypeEncryption, EncrAESCCM12, 192, childOnly},
	{"aes192ccm96", TypeEncryption, EncrAESCCM12, 192, childOnly},
	{"aes256ccm12", TypeEncryption, EncrAESCCM12, 256, childOnly},
	{"aes256ccm96", TypeEncryption, EncrAESCCM12, 256, childOnly},
	{"aes128ccm8", TypeEncryption, EncrAESCCM8, 128, childOnly},
	{"aes128ccm64", TypeEncryption, EncrAESCCM8, 128, childOnly},
	{"aes192ccm8", TypeEncryption, EncrAESCCM8, 192, childOnly},
	{"aes192ccm64", TypeEncryption, EncrAESCCM8, 192, childOnly},
	{"aes256ccm8", TypeEncryption, EncrAESCCM8, 256, childOnly},
	{"aes256ccm64", TypeEncryption, EncrAESCCM8, 256, childOnly},
	// AES-GMAC (RFC 4543): integrity only, the payload is not encrypted.
	{"aes128gmac", TypeEncryption, EncrNullAESGMAC, 128, childOnly},
	{"aes192gmac", TypeEncryption, EncrNullAESGMAC, 192, childOnly},
	{"aes256gmac", TypeEncryption, EncrNullAESGMAC, 256, childOnly},

	// Integrity.
	{"sha256", TypeIntegrity, IntegHMACSHA2256128, 0, offered},
	{"sha384", TypeIntegrity, IntegHMACSHA2384192, 0, offered},
	{"sha512", TypeIntegrity, IntegHMACSHA2512256, 0, offered},
	{"sha2_256", TypeIntegrity, IntegHMACSHA2256128, 0, offered},
	{"sha2_384", TypeIntegrity, IntegHMACSHA2384192, 0, offered},
	{"sha2_512", TypeIntegrity, IntegHMACSHA2512256, 0, offered},
	{"aesxcbc", TypeIntegrity, IntegAESXCBC96, 0, childOnly},
	{"aescmac", TypeIntegrity, IntegAESCMAC96, 0, childOnly},
	// HMAC-SHA-256 truncated to 96 bits is a pre-RFC 4868 Linux quirk without an IANA number;
	// strongSwan uses a private ID for it, so does this table, and it is never sent.
	{"sha256_96", TypeIntegrity, 1026, 0, unsupported},
	{"sha2_256_96", TypeIntegrity, 1026, 0, unsupported},
	{"sha1", TypeIntegrity, IntegHMACSHA196, 0, weak},
	{"sha", TypeIntegrity, IntegHMACSHA196, 0, weak},
	{"sha1_160", TypeIntegrity, IntegHMACSHA1160, 0, weak},
	{"md5", TypeIntegrity, IntegHMACMD596, 0, weak},
	{"md5_128", TypeIntegrity, IntegHMACMD5128, 0, weak},

	// Pseudorandom functions.
	{"prfsha256", TypePRF, PRFHMACSHA2256, 0, offered},
	{"prfsha384", TypePRF, PRFHMACSHA2384, 0, offered},
	{"prfsha512", TypePRF, PRFHMACSHA2512, 0, offered},
	{"prfaesxcbc", TypePRF, PRFAES128XCBC, 0, unsupported},
	{"prfaescmac", TypePRF, PRFAES128CMAC, 0, unsupported},
	{"prfsha1", TypePRF, PRFHMACSHA1, 0, weak},
	{"prfmd5", TypePRF, PRFHMACMD5, 0, weak},

	// Key exchange methods.
	{"modp2048", TypeKeyExchange, KEMODP2048, 0, offered},
	{"modp3072", TypeKeyExchange, KEMODP3072, 0, offered},
	{"modp4096", TypeKeyExchange, KEMODP4096, 0, offered},
	{"ecp256", TypeKeyExchange, KEECP256, 0, offered},
	{"ecp384", TypeKeyExchange, KEECP384, 0, offered},
	{"ecp521", TypeKeyExchange, KEECP521, 0, offered},
	{"x25519", TypeKeyExchange, KECurve25519, 0, offered},
	{"curve25519", TypeKeyExchange, KECurve25519, 0, offered},
	// ML-KEM-512 (from github.com/cloudflare/circl: Go's crypto/mlkem has only the two stronger
	// sets) is offered when configured but is in no default proposal: NIST category 1, where
	// ML-KEM-768 is category 3.
	{"mlkem512", TypeKeyExchange, KEMLKEM512, 0, offered},
	{"mlkem768", TypeKeyExchange, KEMLKEM768, 0, offered},
	{"mlkem1024", TypeKeyExchange, KEMLKEM1024, 0, offered},
	{"modpnone", TypeKeyExchange, KENone, 0, offered},
	{"none", TypeKeyExchange, KENone, 0, offered},
	{"x448", TypeKeyExchange, KECurve448, 0, unsupported},
	{"curve448", TypeKeyExchange, KECurve448, 0, unsupported},
	{"modp6144", TypeKeyExchange, KEMODP6144, 0, unsupported},
	{"modp8192", TypeKeyExchange, KEMODP8192, 0, unsupported},
	{"ecp224bp", TypeKeyExchange, KEECP224BP, 0, unsupported},
	{"ecp256bp", TypeKeyExchange, KEECP256BP, 0, unsupported},
	{"ecp384bp", TypeKeyExchange, KEECP384BP, 0, unsupported},
	{"ecp512bp", TypeKeyExchange, KEECP512BP, 0, unsupported},
	{"modp768", TypeKeyExchange, KEMODP768, 0, weak},
	{"modp1024", TypeKeyExchange, KEMODP1024, 0, weak},
	{"modp1536", TypeKeyExchange, KEMODP1536, 0, weak},
	// RFC 5114 groups: of unexplained origin and, for 1024s160, too small.
	{"modp1024s160", TypeKeyExchange, KEMODP1024160, 0, weak},
	{"modp2048s224", TypeKeyExchange, KEMODP2048224, 0, weak},
	{"modp2048s256", TypeKeyExchange, KEMODP2048256, 0, weak},
	{"ecp192", TypeKeyExchange, KEECP192, 0, weak},
	{"ecp224", TypeKeyExchange, KEECP224, 0, weak},

	// Extended sequence numbers.
	{"noesn", TypeESN, ESNNo, 0, offered},
	{"esn", TypeESN, ESNYes, 0, offered},
}

// lookupKeyword finds a keyword by name.
func lookupKeyword(name string) (keyword, bool) {
	for _, k := range keywords {
		if k.name == name {
			return k, true
		}
	}
	return keyword{}, false
}

// childOnlyTransform reports whether t is implemented for ESP and AH but not for IKE SAs.
func childOnlyTransform(t Transform) bool {
	for _, k := range keywords {
		if k.typ == t.Type && k.id == t.ID && k.keyLength == t.KeyLength {
			return k.status == childOnly
		}
	}
	return false
}

// integrityPRF maps an integrity algorithm to the PRF strongSwan derives from it when an IKE
// proposal names no PRF.
func integrityPRF(integID uint16) (uint16, bool) {
	switch integID {
	case IntegHMACSHA2256128:
		return PRFHMACSHA2256, true
	case IntegHMACSHA2384192:
		return PRFHMACSHA2384, true
	case IntegHMACSHA2512256:
		return PRFHMACSHA2512, true
	case IntegHMACSHA196:
		return PRFHMACSHA1, true // only reachable through the legacy opt-in
	}
	return 0, false
}

// suggest returns the offered keyword closest to name, or "" when none is close.
func suggest(name string) string {
	var offeredNames []string
	for _, k := range keywords {
		if k.status == offered || k.status == childOnly {
			offeredNames = append(offeredNames, k.name)
		}
	}
	return suggestpkg.Closest(name, offeredNames)
}
