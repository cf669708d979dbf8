package satoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
)

// JWK is one public key of a JSON Web Key Set (RFC 7517, 7518), in the form kube-apiserver
// publishes its service-account keys for OIDC discovery: "use" is "sig", "alg" the algorithm
// tokens signed with the key carry, "kid" the key ID they name.
type JWK struct {
	Use string `json:"use"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	// RSA
	N string `json:"n,omitempty"`
	E string `json:"e,omitempty"`
	// ECDSA
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWKS returns the key set of keys, each key once, in order.
func PublicJWKS(keys []crypto.PublicKey) (JWKS, error) {
	set := JWKS{Keys: []JWK{}}
	seen := map[string]bool{}
	for _, k := range keys {
		m, err := methodFor(k)
		if err != nil {
			return JWKS{}, err
		}
		kid, err := KeyID(k)
		if err != nil {
			return JWKS{}, err
		}
		if seen[kid] {
			continue
		}
		seen[kid] = true
		j := JWK{Use: "sig", Kid: kid, Alg: m.Alg()}
		switch k := k.(type) {
		case *rsa.PublicKey:
			j.Kty, j.N, j.E = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
		case *ecdsa.PublicKey:
			// The uncompressed point is 0x04, X, Y, each coordinate the curve's size, as
			// RFC 7518 section 6.2.1.2 wants them.
			point, err := k.Bytes()
			if err != nil {
				return JWKS{}, err
			}
			size := (len(point) - 1) / 2
			j.Kty, j.Crv = "EC", k.Curve.Params().Name
			j.X, j.Y = b64(point[1:1+size]), b64(point[1+size:])
		default:
			return JWKS{}, fmt.Errorf("unsupported key type %T", k)
		}
		set.Keys = append(set.Keys, j)
	}
	return set, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
