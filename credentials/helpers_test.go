package credentials

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"

	"github.com/youmark/pkcs8"
)

type (
	rsaPrivateKey   = rsa.PrivateKey
	ecdsaPrivateKey = ecdsa.PrivateKey
)

// pkcs8Encrypt writes an EncryptedPrivateKeyInfo (PBES2, PBKDF2, AES-256-CBC: OpenSSL's default).
func pkcs8Encrypt(k crypto.Signer, pass string) ([]byte, error) {
	return pkcs8.MarshalPrivateKey(k, []byte(pass), nil)
}
