package satoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func claims(aud []string, exp time.Duration) *Claims {
	now := time.Now()
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: Subject("ns", "sa"), Audience: aud, ID: "jti-1",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(exp)),
		},
		Kubernetes: &PrivateClaims{Namespace: "ns", ServiceAccount: Ref{Name: "sa", UID: "sa-uid"}, Pod: &Ref{Name: "p", UID: "p-uid"}},
	}
}

func TestSignVerify(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	signer, err := NewSigner("https://kubernetes.default.svc.cluster.local", ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner, _ := NewSigner("https://kubernetes.default.svc.cluster.local", rk)
	otherSigner, _ := NewSigner("https://kubernetes.default.svc.cluster.local", other)
	foreignIssuer, _ := NewSigner("https://elsewhere", ec)
	v, err := NewVerifier([]string{"https://kubernetes.default.svc.cluster.local"}, []crypto.PublicKey{ec.Public(), rk.Public()})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(s *Signer, c *Claims) string {
		tok, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(signer, claims([]string{"api", "vault"}, time.Hour))
	parts := strings.Split(good, ".")
	forgedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"system:serviceaccount:kube-system:admin"}`)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	for _, tc := range []struct {
		name, token string
		audiences   []string
		wantErr     bool
		wantAud     []string
	}{
		{"ecdsa", good, []string{"api"}, false, []string{"api"}},
		{"rsa", sign(rsaSigner, claims([]string{"api"}, time.Hour)), []string{"api"}, false, []string{"api"}},
		{"several audiences match", good, []string{"vault", "api", "x"}, false, []string{"api", "vault"}},
		{"wrong audience", good, []string{"other"}, true, nil},
		{"expired", sign(signer, claims([]string{"api"}, -2*time.Minute)), []string{"api"}, true, nil},
		{"unknown key", sign(otherSigner, claims([]string{"api"}, time.Hour)), []string{"api"}, true, nil},
		{"foreign issuer", sign(foreignIssuer, claims([]string{"api"}, time.Hour)), []string{"api"}, true, nil},
		{"tampered payload", forgedPayload, []string{"api"}, true, nil},
		{"alg none", none, []string{"api"}, true, nil},
		{"garbage", "eyJ.a.b", []string{"api"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, aud, err := v.Verify(tc.token, tc.audiences)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if strings.Join(aud, ",") != strings.Join(tc.wantAud, ",") {
				t.Errorf("audiences = %v, want %v", aud, tc.wantAud)
			}
			u := UserOf(c)
			if u.Name != "system:serviceaccount:ns:sa" || u.UID != "sa-uid" || u.Extra[ExtraPodName][0] != "p" ||
				strings.Join(u.Groups, ",") != "system:serviceaccounts,system:serviceaccounts:ns" {
				t.Errorf("user = %+v", u)
			}
		})
	}
}

func TestSubjectMismatchRejected(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewSigner("iss", ec)
	v, _ := NewVerifier([]string{"iss"}, []crypto.PublicKey{ec.Public()})
	c := claims([]string{"api"}, time.Hour)
	c.Subject = Subject("kube-system", "sa")
	tok, _ := s.Sign(c)
	if _, _, err := v.Verify(tok, []string{"api"}); err == nil {
		t.Fatal("a token whose subject disagrees with its kubernetes.io claim was accepted")
	}
}

func TestEnsureSigningKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sa.key")
	k1, err := EnsureSigningKey(file)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := EnsureSigningKey(file)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := KeyID(k1.Public())
	id2, _ := KeyID(k2.Public())
	if id1 != id2 {
		t.Fatal("EnsureSigningKey made a new key although one existed")
	}
	pubs, err := LoadPublicKeys([]string{file})
	if err != nil || len(pubs) != 1 {
		t.Fatalf("LoadPublicKeys = %v, %v", pubs, err)
	}
}

func TestSplitSubject(t *testing.T) {
	for in, want := range map[string]bool{
		"system:serviceaccount:ns:sa": true, "system:serviceaccount:ns": false, "system:serviceaccount::sa": false,
		"system:serviceaccount:ns:a:b": false, "alice": false,
	} {
		if _, _, ok := SplitSubject(in); ok != want {
			t.Errorf("SplitSubject(%q) ok = %v, want %v", in, ok, want)
		}
	}
}

// A remembered token is still held to its validity window and audiences.
func TestVerifiedTokenStillExpires(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewSigner("iss", ec)
	v, _ := NewVerifier([]string{"iss"}, []crypto.PublicKey{ec.Public()})
	tok, _ := s.Sign(claims([]string{"api"}, 10*time.Minute))
	if _, _, err := v.Verify(tok, []string{"api"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Verify(tok, []string{"other"}); err == nil {
		t.Error("a remembered token was accepted for an audience it lacks")
	}
	v.now = func() time.Time { return time.Now().Add(12 * time.Minute) }
	if _, _, err := v.Verify(tok, []string{"api"}); err == nil {
		t.Error("a remembered token was accepted after it expired")
	}
}

func TestVerifiedTokensAreBounded(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, _ := NewVerifier([]string{"iss"}, []crypto.PublicKey{ec.Public()})
	c := claims([]string{"api"}, time.Hour)
	for i := range maxVerified + 10 {
		v.remember([32]byte{byte(i), byte(i >> 8), byte(i >> 16)}, c)
	}
	if n := len(v.verified); n > maxVerified {
		t.Errorf("%d tokens remembered, want at most %d", n, maxVerified)
	}
}

// BenchmarkVerify compares a token's first check (signature) with later ones (remembered):
//
//	go test ./internal/apiserver/satoken -run '^$' -bench Verify
func BenchmarkVerify(b *testing.B) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewSigner("iss", ec)
	tok, _ := s.Sign(claims([]string{"api"}, time.Hour))
	b.Run("first", func(b *testing.B) {
		for range b.N {
			v, _ := NewVerifier([]string{"iss"}, []crypto.PublicKey{ec.Public()})
			if _, _, err := v.Verify(tok, []string{"api"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		v, _ := NewVerifier([]string{"iss"}, []crypto.PublicKey{ec.Public()})
		for range b.N {
			if _, _, err := v.Verify(tok, []string{"api"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
