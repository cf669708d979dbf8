package satoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const issuer = "https://kubernetes.default.svc.cluster.local"

// The payload is exactly what Kubernetes' tokens controller writes: iss, sub and the four
// kubernetes.io/serviceaccount/ claims, nothing else.
func TestLegacyTokenClaims(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewSigner(issuer, ec)
	tok, err := s.SignLegacy("ns", "build-robot", "sa-uid", "build-robot-secret")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	var header map[string]any
	payload := map[string]any{}
	for i, into := range []any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatal(err)
		}
	}
	kid, _ := KeyID(ec.Public())
	if header["alg"] != "ES256" || header["kid"] != kid {
		t.Errorf("header = %v", header)
	}
	want := map[string]any{
		"iss":                                    "kubernetes/serviceaccount",
		"sub":                                    "system:serviceaccount:ns:build-robot",
		"kubernetes.io/serviceaccount/namespace": "ns",
		"kubernetes.io/serviceaccount/secret.name":          "build-robot-secret",
		"kubernetes.io/serviceaccount/service-account.name": "build-robot",
		"kubernetes.io/serviceaccount/service-account.uid":  "sa-uid",
	}
	if len(payload) != len(want) {
		t.Errorf("payload = %v, want %v", payload, want)
	}
	for k, v := range want {
		if payload[k] != v {
			t.Errorf("%s = %v, want %v", k, payload[k], v)
		}
	}
	if _, err := s.SignLegacy("ns", "build-robot", "", "s"); err == nil {
		t.Error("a legacy token without the account UID was signed")
	}
}

func TestVerifyLegacy(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	signer, _ := NewSigner(issuer, ec)
	rsaSigner, _ := NewSigner(issuer, rk)
	otherSigner, _ := NewSigner(issuer, other)
	v, err := NewVerifier([]string{issuer}, []crypto.PublicKey{ec.Public(), rk.Public()})
	if err != nil {
		t.Fatal(err)
	}
	v.AcceptLegacy([]string{issuer})
	legacy := func(s *Signer) string {
		tok, err := s.SignLegacy("ns", "sa", "sa-uid", "sa-secret")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// signRaw signs arbitrary claims with ec, to forge what SignLegacy never writes.
	signRaw := func(c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["kid"] = signer.keyID
		out, err := tok.SignedString(ec)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	good := legacy(signer)
	parts := strings.Split(good, ".")
	badSig := parts[0] + "." + parts[1] + "." + strings.Split(legacy(otherSigner), ".")[2]
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(
		`{"iss":"kubernetes/serviceaccount","sub":"system:serviceaccount:kube-system:admin","kubernetes.io/serviceaccount/namespace":"kube-system","kubernetes.io/serviceaccount/secret.name":"s","kubernetes.io/serviceaccount/service-account.name":"admin","kubernetes.io/serviceaccount/service-account.uid":"u"}`)) + "." + parts[2]
	claims := func(sub, ns string) jwt.MapClaims {
		return jwt.MapClaims{"iss": LegacyIssuer, "sub": sub,
			"kubernetes.io/serviceaccount/namespace": ns, "kubernetes.io/serviceaccount/secret.name": "s",
			"kubernetes.io/serviceaccount/service-account.name": "sa", "kubernetes.io/serviceaccount/service-account.uid": "u"}
	}
	withAud := claims("system:serviceaccount:ns:sa", "ns")
	withAud["aud"] = []string{issuer}
	noUID := claims("system:serviceaccount:ns:sa", "ns")
	delete(noUID, "kubernetes.io/serviceaccount/service-account.uid")

	for _, tc := range []struct {
		name, token string
		audiences   []string
		wantErr     bool
	}{
		{"ecdsa", good, []string{issuer}, false},
		{"rsa", legacy(rsaSigner), []string{issuer, "other"}, false},
		{"not for another audience", good, []string{"vault"}, true},
		{"wrong signature", badSig, []string{issuer}, true},
		{"unknown key", legacy(otherSigner), []string{issuer}, true},
		{"tampered payload", forged, []string{issuer}, true},
		{"subject disagrees with the claims", signRaw(claims("system:serviceaccount:kube-system:sa", "ns")), []string{issuer}, true},
		{"a legacy token has no audience", signRaw(withAud), []string{issuer}, true},
		{"account UID missing", signRaw(noUID), []string{issuer}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, aud, err := v.Verify(tc.token, tc.audiences)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if !c.IsLegacy() || len(aud) != 1 || aud[0] != issuer {
				t.Errorf("legacy = %v, audiences = %v", c.IsLegacy(), aud)
			}
			if ns, name, uid := c.Account(); ns != "ns" || name != "sa" || uid != "sa-uid" || c.SecretName != "sa-secret" {
				t.Errorf("account = %s/%s %s, secret %s", ns, name, uid, c.SecretName)
			}
			u := UserOf(c)
			if u.Name != "system:serviceaccount:ns:sa" || u.UID != "sa-uid" || len(u.Extra) != 0 ||
				strings.Join(u.Groups, ",") != "system:serviceaccounts,system:serviceaccounts:ns" {
				t.Errorf("user = %+v", u)
			}
			// The second time the claims come from the cache, and still check the audience.
			if _, _, err := v.Verify(tc.token, []string{"vault"}); err == nil {
				t.Error("a remembered legacy token was accepted for a foreign audience")
			}
			if _, _, err := v.Verify(tc.token, tc.audiences); err != nil {
				t.Errorf("a remembered legacy token was rejected: %v", err)
			}
		})
	}
}

// Without AcceptLegacy a legacy token is rejected, and a bound token still needs an expiry.
func TestLegacyNeedsOptIn(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewSigner(issuer, ec)
	v, _ := NewVerifier([]string{issuer}, []crypto.PublicKey{ec.Public()})
	tok, _ := s.SignLegacy("ns", "sa", "uid", "secret")
	if _, _, err := v.Verify(tok, []string{issuer}); err == nil {
		t.Error("a legacy token was accepted without AcceptLegacy")
	}
	v.AcceptLegacy([]string{issuer})
	c := claims([]string{issuer}, time.Hour)
	c.ExpiresAt = nil
	bound, _ := s.Sign(c)
	if _, _, err := v.Verify(bound, []string{issuer}); err == nil {
		t.Error("a bound token without exp was accepted")
	}
	// A bound-token shape under the legacy issuer is neither: not legacy (it has the
	// kubernetes.io claim) and not from an accepted issuer.
	legacyIssuer, _ := NewSigner(LegacyIssuer, ec)
	odd, _ := legacyIssuer.Sign(claims([]string{issuer}, time.Hour))
	if _, _, err := v.Verify(odd, []string{issuer}); err == nil {
		t.Error("a bound token from the legacy issuer was accepted")
	}
}
