package apiserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

// TestOIDCDiscoveryNeedsHTTPSIssuer holds discovery to kube-apiserver's conditions: an
// issuer that is not an https URL, or a jwks URI that is not, serves no discovery.
func TestOIDCDiscoveryNeedsHTTPSIssuer(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		issuer, jwksURI string
		ok              bool
	}{
		{"https://kubernetes.default.svc.cluster.local", "", true},
		{"https://issuer.example/cluster-1", "https://keys.example/jwks", true},
		{"kubernetes/serviceaccount", "", false},
		{"http://issuer.example", "", false},
		{"https://issuer.example?x=1", "", false},
		{"https://issuer.example", "http://keys.example/jwks", false},
	} {
		_, err := buildOIDCDiscovery(tc.issuer, tc.jwksURI, []crypto.PublicKey{key.Public()})
		if (err == nil) != tc.ok {
			t.Errorf("issuer %q, jwks URI %q: err = %v, want served %v", tc.issuer, tc.jwksURI, err, tc.ok)
		}
	}
}
