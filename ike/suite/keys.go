package suite

import "fmt"

// Sizes of the fixed inputs to the key derivation.
const (
	spiSize = 8 // IKE SA SPI (RFC 7296 §3.1)
	// Nonces are 16 to 256 bytes (RFC 7296 §3.9).
	minNonceSize = 16
	maxNonceSize = 256
	// aeadSaltSize is the salt taken from the keying material after each
	// AEAD key: 4 bytes for AES-GCM (RFC 5282, which takes the salt as RFC 4106 §8.1 does) and for
	// ChaCha20-Poly1305 (RFC 7634 §2 and §3).
	aeadSaltSize  = 4
	chachaKeySize = 32
)

// IKETransforms are the transforms negotiated for an IKE SA, as far as key
// derivation and SK payload protection need them.
type IKETransforms struct {
	Encr uint16
	// EncrKeyBits is the Key Length attribute: 128, 192 or 256 for AES;
	// 0 (absent) or 256 for ChaCha20-Poly1305, which has a fixed key.
	EncrKeyBits int
	PRF         uint16
	// Integ must be AUTH_NONE with an AEAD cipher (RFC 5282, RFC 7634 §4).
	Integ uint16
}

// ChildTransforms are the ESP or AH transforms negotiated for a Child SA, as
// far as the KEYMAT split needs them.
type ChildTransforms struct {
	// AH: the Child SA is AH, which has an authentication key only (RFC 7296
	// §2.17 takes "the encryption key ... from the first octets of KEYMAT and
	// the authentication key ... from the next octets" when a protocol has
	// both): KEYMAT is the initiator's integrity key, then the responder's.
	// Encr must be 0.
	AH          bool
	Encr        uint16
	EncrKeyBits int
	Integ       uint16
}

// isAEAD reports whether the encryption transform is a combined-mode cipher.
func isAEAD(encr uint16) bool {
	return encr == ENCR_AES_GCM_16 || encr == ENCR_CHACHA20_POLY1305
}

// encrKeyLen is the number of keying-material bytes one direction of the
// cipher takes, salt included for AEAD ciphers.
func encrKeyLen(encr uint16, keyBits int) (int, error) {
	switch encr {
	case ENCR_AES_CBC, ENCR_AES_GCM_16:
		if keyBits != 128 && keyBits != 192 && keyBits != 256 {
			return 0, fmt.Errorf("%w: AES key length %d bits", ErrUnsupportedTransform, keyBits)
		}
		if encr == ENCR_AES_GCM_16 {
			return keyBits/8 + aeadSaltSize, nil
		}
		return keyBits / 8, nil
	case ENCR_CHACHA20_POLY1305:
		if keyBits != 0 && keyBits != 8*chachaKeySize {
			return 0, fmt.Errorf("%w: ChaCha20-Poly1305 key length %d bits", ErrUnsupportedTransform, keyBits)
		}
		return chachaKeySize + aeadSaltSize, nil
	}
	return 0, fmt.Errorf("%w: encryption %d", ErrUnsupportedTransform, encr)
}

// integKeyLen is the HMAC key length, equal to the hash output length
// (RFC 4868 §2.1.1).
func integKeyLen(integ uint16) (int, error) {
	switch integ {
	case AUTH_NONE:
		return 0, nil
	case AUTH_HMAC_SHA2_256_128:
		return 32, nil
	case AUTH_HMAC_SHA2_384_192:
		return 48, nil
	case AUTH_HMAC_SHA2_512_256:
		return 64, nil
	}
	return 0, fmt.Errorf("%w: integrity %d", ErrUnsupportedTransform, integ)
}

// cipherKeyLens checks an encryption/integrity pair and returns both key lengths.
func cipherKeyLens(encr uint16, keyBits int, integ uint16) (encrLen, integLen int, err error) {
	if encrLen, err = encrKeyLen(encr, keyBits); err != nil {
		return 0, 0, err
	}
	if integLen, err = integKeyLen(integ); err != nil {
		return 0, 0, err
	}
	if isAEAD(encr) && integ != AUTH_NONE {
		return 0, 0, fmt.Errorf("%w: integrity %d with AEAD encryption %d", ErrUnsupportedTransform, integ, encr)
	}
	if !isAEAD(encr) && integ == AUTH_NONE {
		return 0, 0, fmt.Errorf("%w: encryption %d needs an integrity transform", ErrUnsupportedTransform, encr)
	}
	return encrLen, integLen, nil
}

// Keys are the keys of one IKE SA (RFC 7296 §2.14). SKai and SKar are empty
// with an AEAD cipher; SKei and SKer then end in the 4-byte salt. All slices
// share one buffer that Zero wipes.
type Keys struct {
	SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte

	buf []byte
	// mem holds buf when the keys fit (AES-GCM or AES-256-CBC with SHA-256, the usual suites):
	// one object per IKE SA instead of two for the garbage collector of a gateway holding
	// 100,000 of them.
	mem [keysInline]byte
}

// keysInline is SHA-256 prf+ output for AES-256-CBC with HMAC-SHA-256 (3×32 + 2×32 + 2×32).
const keysInline = 224

// Zero wipes every key and leaves the fields nil.
func (k *Keys) Zero() {
	clear(k.buf)
	*k = Keys{}
}

// ChildKeys are the ESP keys of one Child SA, split from KEYMAT (RFC 7296
// §2.17): the initiator-to-responder direction first, encryption key
// before integrity key, then the responder-to-initiator direction. With an
// AEAD cipher the integrity keys are empty and the encryption keys end in
// the salt.
type ChildKeys struct {
	EncrI, IntegI []byte // initiator to responder
	EncrR, IntegR []byte // responder to initiator

	buf []byte
}

// Zero wipes every key and leaves the fields nil.
func (k *ChildKeys) Zero() {
	clear(k.buf)
	*k = ChildKeys{}
}

func checkNonces(ni, nr []byte) error {
	for _, n := range [][]byte{ni, nr} {
		if len(n) < minNonceSize || len(n) > maxNonceSize {
			return fmt.Errorf("%w: nonce of %d bytes, want %d to %d", ErrInvalidInput, len(n), minNonceSize, maxNonceSize)
		}
	}
	return nil
}

// InitialSKEYSEED computes SKEYSEED = prf(Ni | Nr, g^ir) for IKE_SA_INIT
// (RFC 7296 §2.14). With the HMAC PRFs the whole nonces form the key.
func InitialSKEYSEED(p PRF, ni, nr, gir []byte) ([]byte, error) {
	if err := checkNonces(ni, nr); err != nil {
		return nil, err
	}
	key := make([]byte, 0, len(ni)+len(nr))
	key = append(append(key, ni...), nr...)
	return p.Compute(key, gir), nil
}

// RekeySKEYSEED computes the SKEYSEED of an IKE SA created by rekeying
// (RFC 7296 §2.18): prf(SK_d (old), g^ir (new) | Ni | Nr). With additional
// key exchanges (RFC 9370 §2.2.4) pass their shared secrets after the first
// and the result is prf(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)). Ni and
// Nr are the nonces of the CREATE_CHILD_SA exchange.
func RekeySKEYSEED(p PRF, oldSKd, ni, nr []byte, secrets ...[]byte) ([]byte, error) {
	if err := checkNonces(ni, nr); err != nil {
		return nil, err
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: IKE SA rekey needs a key exchange", ErrInvalidInput)
	}
	return p.Compute(oldSKd, keyExchangeSeed(ni, nr, secrets)...), nil
}

// IntermediateSKEYSEED computes SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
// after the n-th additional key exchange in IKE_INTERMEDIATE (RFC 9370
// §2.2.2). Ni and Nr are the IKE_SA_INIT nonces.
func IntermediateSKEYSEED(p PRF, prevSKd, secret, ni, nr []byte) ([]byte, error) {
	if err := checkNonces(ni, nr); err != nil {
		return nil, err
	}
	return p.Compute(prevSKd, secret, ni, nr), nil
}

// keyExchangeSeed orders shared secrets and nonces as SK(0) | Ni | Nr |
// SK(1) | ... | SK(n) (RFC 9370 §2.2.4), which reduces to g^ir | Ni | Nr
// with one exchange and to Ni | Nr with none (RFC 7296 §2.17, §2.18).
func keyExchangeSeed(ni, nr []byte, secrets [][]byte) [][]byte {
	seed := make([][]byte, 0, len(secrets)+2)
	if len(secrets) > 0 {
		seed = append(seed, secrets[0])
	}
	seed = append(seed, ni, nr)
	if len(secrets) > 1 {
		seed = append(seed, secrets[1:]...)
	}
	return seed
}

// DeriveIKEKeys computes {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi |
// SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14) with the
// key lengths of the negotiated transforms. The same call derives the keys
// of a rekeyed IKE SA (§2.18, with the new SPIs and nonces) and the keys
// after each additional key exchange (RFC 9370 §2.2.2, with SKEYSEED(n)).
func DeriveIKEKeys(t IKETransforms, skeyseed, ni, nr, spii, spir []byte) (*Keys, error) {
	p, err := NewPRF(t.PRF)
	if err != nil {
		return nil, err
	}
	encrLen, integLen, err := cipherKeyLens(t.Encr, t.EncrKeyBits, t.Integ)
	if err != nil {
		return nil, err
	}
	if err := checkNonces(ni, nr); err != nil {
		return nil, err
	}
	if len(spii) != spiSize || len(spir) != spiSize {
		return nil, fmt.Errorf("%w: SPIs of %d and %d bytes, want %d", ErrInvalidInput, len(spii), len(spir), spiSize)
	}
	prfLen := p.Size()
	total := 3*prfLen + 2*integLen + 2*encrLen
	k := new(Keys)
	buf, err := p.plusAppend(k.mem[:0], skeyseed, total, ni, nr, spii, spir)
	if err != nil {
		return nil, err
	}
	k.buf = buf
	rest := buf
	take := func(n int) []byte {
		b := rest[:n:n]
		rest = rest[n:]
		return b
	}
	k.SKd = take(prfLen)
	k.SKai = take(integLen)
	k.SKar = take(integLen)
	k.SKei = take(encrLen)
	k.SKer = take(encrLen)
	k.SKpi = take(prfLen)
	k.SKpr = take(prfLen)
	return k, nil
}

// UpdateIKEKeys performs the key update after an additional key exchange in
// IKE_INTERMEDIATE (RFC 9370 §2.2.2): SKEYSEED(n) = prf(SK_d(n-1), SK(n) |
// Ni | Nr), then all seven keys are derived anew from SKEYSEED(n). prev is
// left untouched; the caller wipes it when the new keys take over.
func UpdateIKEKeys(t IKETransforms, prev *Keys, secret, ni, nr, spii, spir []byte) (*Keys, error) {
	p, err := NewPRF(t.PRF)
	if err != nil {
		return nil, err
	}
	seed, err := IntermediateSKEYSEED(p, prev.SKd, secret, ni, nr)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return DeriveIKEKeys(t, seed, ni, nr, spii, spir)
}

// DeriveChildKeys computes KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr)
// (RFC 7296 §2.17) and splits it for one ESP or AH Child SA. With no shared
// secret (no KE payloads in CREATE_CHILD_SA, or the Child SA of IKE_AUTH)
// the seed is Ni | Nr; with additional key exchanges (RFC 9370 §2.2.4) it is
// SK(0) | Ni | Nr | SK(1) | ... | SK(n).
func DeriveChildKeys(p PRF, t ChildTransforms, skd, ni, nr []byte, secrets ...[]byte) (*ChildKeys, error) {
	if p.newHash == nil {
		return nil, fmt.Errorf("%w: zero PRF", ErrUnsupportedTransform)
	}
	encrLen, integLen, err := childKeyLens(t.Encr, t.EncrKeyBits, t.Integ)
	if t.AH {
		encrLen, integLen, err = ahKeyLen(t)
	}
	if err != nil {
		return nil, err
	}
	if err := checkNonces(ni, nr); err != nil {
		return nil, err
	}
	buf, err := p.Plus(skd, 2*(encrLen+integLen), keyExchangeSeed(ni, nr, secrets)...)
	if err != nil {
		return nil, err
	}
	k := &ChildKeys{buf: buf}
	rest := buf
	take := func(n int) []byte {
		b := rest[:n:n]
		rest = rest[n:]
		return b
	}
	k.EncrI = take(encrLen)
	k.IntegI = take(integLen)
	k.EncrR = take(encrLen)
	k.IntegR = take(integLen)
	return k, nil
}

// PPKConfirmationSize is the length of the PPK Confirmation in a PPK_IDENTITY_KEY notification
// (RFC 9867): the first 8 octets of the PRF output.
const PPKConfirmationSize = 8

// PPKConfirmation computes the PPK Confirmation of RFC 9867: the first 8 octets of
// prf(PPK, Ni | Nr | SPIi | SPIr), with the IKE_SA_INIT nonces and the IKE SA's SPIs. It lets the
// responder tell a PPK it holds under the same PPK_ID but with other key bits from the right one,
// before any key depends on it.
func PPKConfirmation(p PRF, ppk, ni, nr, spii, spir []byte) ([]byte, error) {
	if p.newHash == nil {
		return nil, fmt.Errorf("%w: zero PRF", ErrUnsupportedTransform)
	}
	if err := checkNonces(ni, nr); err != nil {
		return nil, err
	}
	if len(spii) != spiSize || len(spir) != spiSize {
		return nil, fmt.Errorf("%w: SPIs of %d and %d bytes, want %d", ErrInvalidInput, len(spii), len(spir), spiSize)
	}
	return p.Compute(ppk, ni, nr, spii, spir)[:PPKConfirmationSize], nil
}

// PPKIntermediateKeys mixes a PPK into the IKE SA's keys in IKE_INTERMEDIATE (RFC 9867):
//
//	SKEYSEED' = prf+(PPK, SK_d)   (as long as the PRF's output)
//	{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED', Ni | Nr | SPIi | SPIr)
//
// so that every key, the ones protecting IKE_AUTH included, depends on the PPK. SK_d is the
// newest one, after any additional key exchange (RFC 9370) of the same exchange. prev is left
// untouched; the caller wipes it when the new keys take over.
func PPKIntermediateKeys(t IKETransforms, prev *Keys, ppk, ni, nr, spii, spir []byte) (*Keys, error) {
	p, err := NewPRF(t.PRF)
	if err != nil {
		return nil, err
	}
	if len(ppk) == 0 {
		return nil, fmt.Errorf("%w: empty PPK", ErrInvalidInput)
	}
	seed, err := p.Plus(ppk, p.Size(), prev.SKd)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return DeriveIKEKeys(t, seed, ni, nr, spii, spir)
}
