package satoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestPublicJWKS holds the published key set to what an OIDC relying party needs: from each
// JWK alone it rebuilds the public key and verifies a token the signer issued with the
// "kid" and "alg" the token names.
func TestPublicJWKS(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKeys := map[string]*ecdsa.PrivateKey{}
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		if ecKeys[c.Params().Name], err = ecdsa.GenerateKey(c, rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	signers := []crypto.Signer{rsaKey, ecKeys["P-256"], ecKeys["P-384"], ecKeys["P-521"]}
	var pubs []crypto.PublicKey
	for _, k := range signers {
		pubs = append(pubs, k.Public())
	}
	set, err := PublicJWKS(append(pubs, rsaKey.Public())) // a key listed twice is published once
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != len(signers) {
		t.Fatalf("published %d keys, want %d", len(set.Keys), len(signers))
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("%q is not unpadded base64url: %v", s, err)
		}
		return b
	}
	for _, signer := range signers {
		s, err := NewSigner("https://issuer.example", signer)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		token, err := s.Sign(&Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: s.Issuer(), Subject: "system:serviceaccount:ns:sa",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = jwt.Parse(token, func(tok *jwt.Token) (any, error) {
			i := slices.IndexFunc(set.Keys, func(k JWK) bool { return k.Kid == tok.Header["kid"] })
			if i < 0 {
				t.Fatalf("no published key has the token's kid %v", tok.Header["kid"])
			}
			k := set.Keys[i]
			if k.Use != "sig" || k.Alg != tok.Header["alg"] {
				t.Errorf("key %s: use %q alg %q, want sig and the token's %v", k.Kid, k.Use, k.Alg, tok.Header["alg"])
			}
			switch k.Kty {
			case "RSA":
				return &rsa.PublicKey{N: new(big.Int).SetBytes(dec(k.N)), E: int(new(big.Int).SetBytes(dec(k.E)).Int64())}, nil
			case "EC":
				curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[k.Crv]
				size := (curve.Params().BitSize + 7) / 8
				x, y := dec(k.X), dec(k.Y)
				if len(x) != size || len(y) != size {
					t.Errorf("key %s: coordinates of %d and %d bytes, want %d", k.Kid, len(x), len(y), size)
				}
				return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
			}
			t.Fatalf("key type %q", k.Kty)
			return nil, nil
		})
		if err != nil {
			t.Errorf("%T: the token does not verify with its published key: %v", signer, err)
		}
	}
}
