package suite

import "fmt"

// ESP transforms the data plane implements beyond the IKE SA's own (ids.go): a Child SA may use
// them, so KEYMAT must be split for them, but IKE messages are never protected with them.
const (
	ENCR_NULL               uint16 = 11 // RFC 2410
	ENCR_AES_CTR            uint16 = 13 // RFC 3686
	ENCR_AES_CCM_8          uint16 = 14 // RFC 4309
	ENCR_AES_CCM_12         uint16 = 15
	ENCR_AES_CCM_16         uint16 = 16
	ENCR_AES_GCM_12         uint16 = 19 // RFC 4106
	ENCR_NULL_AUTH_AES_GMAC uint16 = 21 // RFC 4543

	AUTH_AES_XCBC_96 uint16 = 5 // RFC 3566
	AUTH_AES_CMAC_96 uint16 = 8 // RFC 4494
)

// childKeyLens checks an ESP encryption/integrity pair and returns how many KEYMAT bytes each
// direction takes for each: the key plus the salt (RFC 4106 §8.1, RFC 4543 §8.1, RFC 7634 §2),
// nonce (RFC 3686 §5.1) or 3-byte CCM salt (RFC 4309 §7.1), and the integrity key.
func childKeyLens(encr uint16, keyBits int, integ uint16) (encrLen, integLen int, err error) {
	aead := false
	switch encr {
	case ENCR_NULL:
		if keyBits != 0 {
			return 0, 0, fmt.Errorf("%w: NULL encryption with key length %d", ErrUnsupportedTransform, keyBits)
		}
	case ENCR_AES_CBC, ENCR_AES_CTR, ENCR_AES_CCM_8, ENCR_AES_CCM_12, ENCR_AES_CCM_16, ENCR_AES_GCM_12,
		ENCR_AES_GCM_16, ENCR_NULL_AUTH_AES_GMAC:
		if keyBits != 128 && keyBits != 192 && keyBits != 256 {
			return 0, 0, fmt.Errorf("%w: AES key length %d bits", ErrUnsupportedTransform, keyBits)
		}
		encrLen = keyBits / 8
		switch encr {
		case ENCR_AES_CCM_8, ENCR_AES_CCM_12, ENCR_AES_CCM_16:
			encrLen += 3
			aead = true
		case ENCR_AES_GCM_12, ENCR_AES_GCM_16, ENCR_NULL_AUTH_AES_GMAC:
			encrLen += aeadSaltSize
			aead = true
		case ENCR_AES_CTR:
			encrLen += aeadSaltSize
		}
	case ENCR_CHACHA20_POLY1305:
		return cipherKeyLens(encr, keyBits, integ)
	default:
		return 0, 0, fmt.Errorf("%w: encryption %d", ErrUnsupportedTransform, encr)
	}
	switch integ {
	case AUTH_AES_XCBC_96, AUTH_AES_CMAC_96:
		integLen = 16
	default:
		if integLen, err = integKeyLen(integ); err != nil {
			return 0, 0, err
		}
	}
	if aead && integ != AUTH_NONE {
		return 0, 0, fmt.Errorf("%w: integrity %d with AEAD encryption %d", ErrUnsupportedTransform, integ, encr)
	}
	if !aead && integ == AUTH_NONE {
		return 0, 0, fmt.Errorf("%w: encryption %d needs an integrity transform", ErrUnsupportedTransform, encr)
	}
	return encrLen, integLen, nil
}

// ahKeyLen checks an AH Child SA's transforms: an integrity algorithm the AH implementation has
// (HMAC-SHA-2 with keys as long as the hash, RFC 4868 §2.1.1; AES-XCBC-MAC-96 and AES-CMAC-96
// with 16-byte keys, RFC 3566 §2.1, RFC 4494 §2.1) and no encryption (RFC 7296 §3.3: AH proposals
// carry INTEG and ESN only).
func ahKeyLen(t ChildTransforms) (encrLen, integLen int, err error) {
	if t.Encr != 0 || t.EncrKeyBits != 0 {
		return 0, 0, fmt.Errorf("%w: AH with encryption %d", ErrUnsupportedTransform, t.Encr)
	}
	switch t.Integ {
	case AUTH_NONE:
		return 0, 0, fmt.Errorf("%w: AH needs an integrity transform", ErrUnsupportedTransform)
	case AUTH_AES_XCBC_96, AUTH_AES_CMAC_96:
		return 0, 16, nil
	}
	integLen, err = integKeyLen(t.Integ)
	return 0, integLen, err
}
