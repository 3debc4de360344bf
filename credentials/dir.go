package credentials

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Folders of strongSwan's swanctl directory (swanctl(8), FILES), next to swanctl.conf.
var (
	certFolders = []struct {
		name string
		kind CertKind
	}{{"x509", EndEntity}, {"x509ca", CA}, {"x509aa", AA}, {"x509ocsp", OCSPSigner}}
	// keyFolders hold private keys; their names are also the prefixes of the secrets sections
	// that give passphrases (private-, rsa-, ecdsa-, pkcs8-, pkcs12-).
	keyFolders = []string{"private", "rsa", "ecdsa", "pkcs8"}
)

// Passphrases returns the passphrase for a key file (folder is private, rsa, ecdsa, pkcs8 or
// pkcs12; file the path as configured, relative to the folder or absolute), or nil.
type Passphrases func(folder, file string) []byte

// FileError is a credential file that could not be loaded: "path: why".
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Loaded counts what LoadDir read.
type Loaded struct {
	Certs, Keys, PublicKeys, CRLs int
}

// LoadDir loads a swanctl directory into the store. Missing folders are fine; a file that cannot
// be read is reported (file: why) and the others are still loaded, as swanctl --load-creds does.
func (s *Store) LoadDir(dir string, pass Passphrases) (Loaded, []error) {
	var n Loaded
	var errs []error
	each := func(folder string, f func(path, rel string) error) {
		for _, rel := range listFiles(filepath.Join(dir, folder)) {
			path := filepath.Join(dir, folder, rel)
			if err := f(path, rel); err != nil {
				errs = append(errs, &FileError{Path: path, Err: err})
			}
		}
	}
	for _, cf := range certFolders {
		each(cf.name, func(path, _ string) error {
			cs, err := LoadCertFile(path)
			if err != nil {
				return err
			}
			for _, c := range cs {
				s.AddCert(c, cf.kind, path)
				n.Certs++
			}
			return nil
		})
	}
	each("x509crl", func(path, _ string) error {
		data, err := readFile(path)
		if err != nil {
			return err
		}
		crl, err := ParseCRL(data)
		if err != nil {
			return err
		}
		s.AddCRL(crl)
		n.CRLs++
		return nil
	})
	for _, folder := range keyFolders {
		each(folder, func(path, rel string) error {
			data, err := readFile(path)
			if err != nil {
				return err
			}
			var pw []byte
			if pass != nil {
				pw = pass(folder, rel)
			}
			k, err := ParsePrivateKey(data, pw)
			if errors.Is(err, ErrPassphrase) {
				return passphraseError(folder, rel)
			}
			if err != nil {
				return err
			}
			if _, err := s.AddKey(k, path); err != nil {
				return err
			}
			n.Keys++
			return nil
		})
	}
	each("pkcs12", func(path, rel string) error {
		data, err := readFile(path)
		if err != nil {
			return err
		}
		var pw []byte
		if pass != nil {
			pw = pass("pkcs12", rel)
		}
		k, c, cas, err := ParsePKCS12(data, pw)
		if errors.Is(err, ErrPassphrase) {
			return passphraseError("pkcs12", rel)
		}
		if err != nil {
			return err
		}
		if _, err := s.AddKey(k, path); err != nil {
			return err
		}
		n.Keys++
		if c != nil {
			s.AddCert(c, EndEntity, path)
			n.Certs++
		}
		for _, ca := range cas {
			// CA certificates in a container are intermediates to send along, not trust anchors.
			s.AddCert(ca, EndEntity, path)
			n.Certs++
		}
		return nil
	})
	each("pubkey", func(path, _ string) error {
		data, err := readFile(path)
		if err != nil {
			return err
		}
		k, _, err := ParsePublicKey(data)
		if err != nil {
			return err
		}
		if _, err := s.AddPublicKey(k, path); err != nil {
			return err
		}
		n.PublicKeys++
		return nil
	})
	return n, errs
}

// passphraseError says which secrets section an encrypted key file needs.
func passphraseError(folder, rel string) error {
	what := "private key"
	if folder == "pkcs12" {
		what = "PKCS#12 container"
	}
	return fmt.Errorf("%s is encrypted and secrets has no matching %s-<name> { file = %s  secret = ... } (or the passphrase is wrong)", what, folder, rel)
}

// CheckFile reads one credential file as the swanctl folder it is named for holds them — x509,
// x509ca, x509aa, x509ocsp: certificates; x509crl: a CRL; private, rsa, ecdsa, pkcs8: a private
// key; pkcs12: a container; pubkey: a public key — and returns what is wrong with it, if
// anything. name is the file as configured (for the passphrase hint).
func CheckFile(folder, path, name string, passphrase []byte) error {
	data, err := readFile(path)
	if err != nil {
		return err
	}
	switch folder {
	case "x509", "x509ca", "x509aa", "x509ocsp":
		_, err = ParseCertificates(data)
	case "x509crl":
		_, err = ParseCRL(data)
	case "pubkey":
		_, _, err = ParsePublicKey(data)
	case "pkcs12":
		_, _, _, err = ParsePKCS12(data, passphrase)
	case "private", "rsa", "ecdsa", "pkcs8":
		_, err = ParsePrivateKey(data, passphrase)
	default:
		return fmt.Errorf("unknown credential folder %q", folder)
	}
	if errors.Is(err, ErrPassphrase) {
		return passphraseError(folder, name)
	}
	return err
}

// LoadCertFile reads a PEM or DER certificate file.
func LoadCertFile(path string) ([]*x509.Certificate, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCertificates(data)
}

// listFiles lists the regular files below dir (recursively, as swanctl does), relative to it,
// sorted; a missing dir lists nothing.
func listFiles(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			if rel, err := filepath.Rel(dir, path); err == nil {
				out = append(out, rel)
			}
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func readFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("%d bytes is too large for a credential file", st.Size())
	}
	return os.ReadFile(path)
}

// ReadFile reads a credential file with the store's size bound.
func ReadFile(path string) ([]byte, error) { return readFile(path) }
