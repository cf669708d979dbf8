package satoken

import (
	"crypto"
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/util/keyutil"
)

// EnsureSigningKey loads the private key in file, or creates an ECDSA P-256 key there if
// the file does not exist yet.
func EnsureSigningKey(file string) (crypto.Signer, error) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		pemBytes, err := keyutil.MakeEllipticPrivateKeyPEM()
		if err != nil {
			return nil, err
		}
		if err := keyutil.WriteKey(file, pemBytes); err != nil {
			return nil, err
		}
	}
	return LoadSigningKey(file)
}

// LoadSigningKey reads a PEM private key (RSA or ECDSA) that tokens are signed with.
func LoadSigningKey(file string) (crypto.Signer, error) {
	k, err := keyutil.PrivateKeyFromFile(file)
	if err != nil {
		return nil, fmt.Errorf("service-account signing key %s: %w", file, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("service-account signing key %s: %T cannot sign", file, k)
	}
	if _, err := methodFor(s.Public()); err != nil {
		return nil, fmt.Errorf("service-account signing key %s: %w", file, err)
	}
	return s, nil
}

// LoadPublicKeys reads the verification keys in files: PEM public keys, certificates or
// private keys (whose public halves are used), as --service-account-key-file accepts.
func LoadPublicKeys(files []string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for _, f := range files {
		ks, err := keyutil.PublicKeysFromFile(f)
		if err != nil {
			return nil, fmt.Errorf("service-account key file %s: %w", f, err)
		}
		for _, k := range ks {
			if _, err := methodFor(k); err != nil {
				return nil, fmt.Errorf("service-account key file %s: %w", f, err)
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}
