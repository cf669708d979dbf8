package encryption

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"

	"golang.org/x/crypto/nacl/secretbox"
)

// aesCBC is Kubernetes' aescbc: a random IV, then AES-CBC over the data padded with PKCS#7
// (always at least one byte of padding). It does not authenticate the data.
type aesCBC struct{ block cipher.Block }

func newAESCBC(key []byte) (cipherer, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return aesCBC{b}, nil
}

func (c aesCBC) seal(data []byte, _ string) ([]byte, error) {
	bs := aes.BlockSize
	pad := bs - len(data)%bs
	out := make([]byte, bs+len(data)+pad)
	iv := out[:bs]
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	body := out[bs:]
	copy(body, data)
	for i := len(data); i < len(body); i++ {
		body[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(body, body)
	return out, nil
}

func (c aesCBC) open(value []byte, _ string) ([]byte, error) {
	bs := aes.BlockSize
	if len(value) < 2*bs {
		return nil, errors.New("the stored data is shorter than an IV and one block")
	}
	if len(value)%bs != 0 {
		return nil, errors.New("the stored data is not a multiple of the block size")
	}
	body := make([]byte, len(value)-bs)
	cipher.NewCBCDecrypter(c.block, value[:bs]).CryptBlocks(body, value[bs:])
	pad := int(body[len(body)-1])
	if pad == 0 || pad > bs {
		return nil, errors.New("invalid padding (wrong key?)")
	}
	for _, b := range body[len(body)-pad:] {
		if int(b) != pad {
			return nil, errors.New("invalid padding (wrong key?)")
		}
	}
	return body[:len(body)-pad], nil
}

// aesGCM is Kubernetes' aesgcm: a random 12-byte nonce, then AES-GCM with the etcd key as
// additional data, so a value copied to another key does not decrypt.
type aesGCM struct{ aead cipher.AEAD }

func newAESGCM(key []byte) (cipherer, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return aesGCM{g}, nil
}

func (c aesGCM) seal(data []byte, key string) ([]byte, error) {
	ns := c.aead.NonceSize()
	out := make([]byte, ns, ns+len(data)+c.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return c.aead.Seal(out, out[:ns], data, []byte(key)), nil
}

func (c aesGCM) open(value []byte, key string) ([]byte, error) {
	ns := c.aead.NonceSize()
	if len(value) < ns {
		return nil, errors.New("the stored data is shorter than a nonce")
	}
	return c.aead.Open(nil, value[:ns], value[ns:], []byte(key))
}

// secretBox is Kubernetes' secretbox: a random 24-byte nonce, then NaCl secretbox
// (XSalsa20 and Poly1305).
type secretBox struct{ key [32]byte }

func newSecretbox(key []byte) (cipherer, error) {
	var s secretBox
	copy(s.key[:], key)
	return s, nil
}

func (s secretBox) seal(data []byte, _ string) ([]byte, error) {
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	return secretbox.Seal(nonce[:], data, &nonce, &s.key), nil
}

func (s secretBox) open(value []byte, _ string) ([]byte, error) {
	if len(value) < 24 {
		return nil, errors.New("the stored data is shorter than a nonce")
	}
	var nonce [24]byte
	copy(nonce[:], value[:24])
	out, ok := secretbox.Open(nil, value[24:], &nonce, &s.key)
	if !ok {
		return nil, errors.New("message authentication failed (wrong key?)")
	}
	return out, nil
}
