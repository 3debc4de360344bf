// Package suite holds the cryptography IKEv2 needs: the pseudo-random
// functions and prf+ (RFC 7296 §2.13), SKEYSEED and the split into SK_d,
// SK_ai, SK_ar, SK_ei, SK_er, SK_pi and SK_pr (§2.14), rekeying (§2.17,
// §2.18) and the key updates of multiple key exchanges (RFC 9370); the key
// exchange methods (MODP groups 14-16, ECP groups 19-21, Curve25519 and
// ML-KEM); and the protection of the Encrypted (SK) payload with AES-GCM,
// ChaCha20-Poly1305 or AES-CBC with HMAC-SHA2.
//
// Transforms are named by their IANA IKEv2 transform IDs as plain uint16
// constants so that this package depends on no other goipsec package.
//
// The primitives come from the standard library (crypto/hmac, crypto/sha256,
// crypto/sha512, crypto/aes, crypto/cipher, crypto/ecdh, crypto/mlkem) and
// from golang.org/x/crypto/chacha20poly1305; ML-KEM-512, which the standard
// library lacks, from github.com/cloudflare/circl. What is written here by hand is
// only the IKEv2 glue around them — prf+, the key split, the KE payload
// encodings and peer-value checks, and the SK payload framing — because no
// library offers IKEv2's versions of these.
//
// Limits worth knowing:
//   - MODP exponentiation uses math/big, which is not constant time; the
//     standard library exposes no constant-time modular exponentiation.
//   - Zero methods wipe every secret buffer this package owns. Key schedules
//     held inside crypto/aes, crypto/hmac, crypto/ecdh, crypto/mlkem and
//     circl's mlkem512 values cannot be reached from outside those packages;
//     Zero drops the references so the garbage collector can reclaim them.
//   - Recent Go versions ignore a caller-supplied reader in
//     ecdh.Curve.GenerateKey, so private keys are drawn from the injected
//     reader here and built with Curve.NewPrivateKey instead. ML-KEM
//     encapsulation always uses crypto/rand; the injected reader only seeds
//     ML-KEM key generation.
package suite
