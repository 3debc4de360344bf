package suite

// IANA "Transform Type 2 - Pseudorandom Function Transform IDs" (RFC 4868 §4).
const (
	PRF_HMAC_SHA2_256 uint16 = 5
	PRF_HMAC_SHA2_384 uint16 = 6
	PRF_HMAC_SHA2_512 uint16 = 7
)

// IANA "Transform Type 1 - Encryption Algorithm Transform IDs".
const (
	ENCR_AES_CBC           uint16 = 12 // RFC 3602
	ENCR_AES_GCM_16        uint16 = 20 // RFC 4106, RFC 5282
	ENCR_CHACHA20_POLY1305 uint16 = 28 // RFC 7634
)

// IANA "Transform Type 3 - Integrity Algorithm Transform IDs" (RFC 4868 §4).
const (
	AUTH_NONE              uint16 = 0
	AUTH_HMAC_SHA2_256_128 uint16 = 12
	AUTH_HMAC_SHA2_384_192 uint16 = 13
	AUTH_HMAC_SHA2_512_256 uint16 = 14
)

// IANA "Transform Type 4 - Key Exchange Method Transform IDs".
const (
	MODP_2048   uint16 = 14 // RFC 3526 §3
	MODP_3072   uint16 = 15 // RFC 3526 §4
	MODP_4096   uint16 = 16 // RFC 3526 §5
	ECP_256     uint16 = 19 // RFC 5903
	ECP_384     uint16 = 20 // RFC 5903
	ECP_521     uint16 = 21 // RFC 5903
	CURVE25519  uint16 = 31 // RFC 8031
	ML_KEM_512  uint16 = 35 // draft-ietf-ipsecme-ikev2-mlkem
	ML_KEM_768  uint16 = 36 // draft-ietf-ipsecme-ikev2-mlkem
	ML_KEM_1024 uint16 = 37 // draft-ietf-ipsecme-ikev2-mlkem
)
