package satoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of a service-account token as kube-apiserver writes them: the
// registered ones (iss, sub, aud, exp, nbf, iat, jti) and the private "kubernetes.io" claim
// naming the account and the object the token is bound to. Legacy (Secret-based) tokens
// carry the top-level LegacyClaims instead; see IsLegacy.
type Claims struct {
	jwt.RegisteredClaims
	Kubernetes *PrivateClaims `json:"kubernetes.io,omitempty"`
	LegacyClaims
}

// PrivateClaims is the "kubernetes.io" claim.
type PrivateClaims struct {
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount Ref    `json:"serviceaccount"`
	Pod            *Ref   `json:"pod,omitempty"`
	Secret         *Ref   `json:"secret,omitempty"`
	Node           *Ref   `json:"node,omitempty"`
	// WarnAfter is set on tokens whose lifetime the server extended beyond what was asked
	// for; clients using one after this time are using a stale token.
	WarnAfter *jwt.NumericDate `json:"warnafter,omitempty"`
}

// Ref names an object a token refers to.
type Ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// Subject is the JWT subject and user name of a service account.
func Subject(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// SplitSubject parses a service-account user name; ok is false for other users.
func SplitSubject(user string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(user, "system:serviceaccount:")
	if !found {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != "" && !strings.Contains(name, ":")
}

// Signer issues tokens with one private key.
type Signer struct {
	issuer string
	key    crypto.Signer
	method jwt.SigningMethod
	keyID  string
}

// NewSigner returns a Signer for an ECDSA (P-256, P-384, P-521) or RSA key.
func NewSigner(issuer string, key crypto.Signer) (*Signer, error) {
	if issuer == "" {
		return nil, errors.New("a service-account issuer is required")
	}
	method, err := methodFor(key.Public())
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	return &Signer{issuer: issuer, key: key, method: method, keyID: kid}, nil
}

// Issuer is the "iss" the signer writes.
func (s *Signer) Issuer() string { return s.issuer }

// Sign fills in the issuer and signs c.
func (s *Signer) Sign(c *Claims) (string, error) {
	c.Issuer = s.issuer
	t := jwt.NewWithClaims(s.method, c)
	t.Header["kid"] = s.keyID
	return t.SignedString(s.key)
}

func methodFor(pub crypto.PublicKey) (jwt.SigningMethod, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, nil
		case elliptic.P521():
			return jwt.SigningMethodES512, nil
		}
	}
	return nil, fmt.Errorf("service-account keys must be RSA or ECDSA (P-256, P-384, P-521), not %T", pub)
}

// KeyID is the "kid" Kubernetes gives a public key: the unpadded base64url SHA-256 of its
// DER (PKIX) encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// maxVerified bounds the tokens a Verifier remembers: one per pod and audience in use is the
// usual need.
const maxVerified = 8192

// leeway is the clock skew tolerated on a token's validity window.
const leeway = time.Minute

// Verifier checks tokens against a set of public keys (several while keys are rotated). It is
// safe for concurrent use.
type Verifier struct {
	issuers []string
	keys    map[string]crypto.PublicKey // by key ID
	methods []string
	now     func() time.Time
	// legacyAudiences are the audiences a legacy token, which names none, counts for (nil:
	// legacy tokens are rejected). Set by AcceptLegacy before the first Verify.
	legacyAudiences []string

	// verified holds, by the SHA-256 of the token, the claims of tokens whose signature,
	// issuer and subject checked out: a client sends the same token with every request, and
	// a hash costs a fraction of a signature check. The validity window and audience are
	// checked on every use.
	mu       sync.Mutex
	verified map[[sha256.Size]byte]*Claims
}

// NewVerifier accepts tokens from any of issuers signed by any of keys.
func NewVerifier(issuers []string, keys []crypto.PublicKey) (*Verifier, error) {
	v := &Verifier{issuers: issuers, keys: map[string]crypto.PublicKey{}, now: time.Now, verified: map[[sha256.Size]byte]*Claims{}}
	for _, k := range keys {
		m, err := methodFor(k)
		if err != nil {
			return nil, err
		}
		kid, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		v.keys[kid] = k
		if !slices.Contains(v.methods, m.Alg()) {
			v.methods = append(v.methods, m.Alg())
		}
	}
	if len(v.keys) == 0 {
		return nil, errors.New("no service-account verification keys")
	}
	return v, nil
}

// AcceptLegacy makes v accept legacy tokens (issuer LegacyIssuer, no audience, no expiry)
// signed by its keys, counting for audiences: the API server's own, as kube-apiserver treats
// every token authenticator that knows no audiences. Call it before the first Verify.
func (v *Verifier) AcceptLegacy(audiences []string) {
	v.legacyAudiences = slices.Clone(audiences)
}

// LooksLikeJWT is a cheap test that lets other bearer-token authenticators go first.
func LooksLikeJWT(token string) bool {
	return strings.Count(token, ".") == 2 && strings.HasPrefix(token, "eyJ")
}

// Verify checks the signature, issuer, validity window and audience of token. audiences
// are the ones the caller accepts; the token must carry at least one, and the matching ones
// are returned. A legacy token (see AcceptLegacy) carries none and matches those of audiences
// given to AcceptLegacy. The objects the claims name are not looked up: that is the caller's part.
// The returned claims are shared between callers and must not be modified.
func (v *Verifier) Verify(token string, audiences []string) (*Claims, []string, error) {
	sum := sha256.Sum256([]byte(token))
	v.mu.Lock()
	c := v.verified[sum]
	v.mu.Unlock()
	if c == nil {
		var err error
		if c, err = v.verify(token); err != nil {
			return nil, nil, err
		}
		v.remember(sum, c)
	} else if err := v.inWindow(c); err != nil {
		return nil, nil, err
	}
	tokenAudiences := c.Audience
	if c.IsLegacy() {
		tokenAudiences = v.legacyAudiences
	}
	var matched []string
	for _, a := range tokenAudiences {
		if slices.Contains(audiences, a) && !slices.Contains(matched, a) {
			matched = append(matched, a)
		}
	}
	if len(matched) == 0 {
		return nil, nil, errors.New("token audiences are not accepted")
	}
	return c, matched, nil
}

// verify parses token and checks its signature, validity window, issuer and subject.
func (v *Verifier) verify(token string) (*Claims, error) {
	c := &Claims{}
	// Expiry is required below for bound tokens only: legacy ones never had one.
	_, err := jwt.ParseWithClaims(token, c, v.key,
		jwt.WithValidMethods(v.methods), jwt.WithTimeFunc(v.now), jwt.WithLeeway(leeway))
	if err != nil {
		return nil, err
	}
	if c.IsLegacy() {
		if v.legacyAudiences == nil {
			return nil, errors.New("legacy service-account tokens are not accepted")
		}
		if err := verifyLegacy(c); err != nil {
			return nil, err
		}
		return c, nil
	}
	if c.ExpiresAt == nil {
		return nil, fmt.Errorf("%w: %w", jwt.ErrTokenInvalidClaims, jwt.ErrTokenRequiredClaimMissing)
	}
	if !slices.Contains(v.issuers, c.Issuer) {
		return nil, fmt.Errorf("token issuer %q is not accepted", c.Issuer)
	}
	if c.Kubernetes == nil {
		return nil, errors.New("token has no kubernetes.io claim")
	}
	ns, name, ok := SplitSubject(c.Subject)
	if !ok || ns != c.Kubernetes.Namespace || name != c.Kubernetes.ServiceAccount.Name {
		return nil, fmt.Errorf("token subject %q does not match its kubernetes.io claim", c.Subject)
	}
	return c, nil
}

// inWindow checks the validity window of claims verified earlier, as jwt does on parsing.
func (v *Verifier) inWindow(c *Claims) error {
	now := v.now()
	if c.ExpiresAt != nil && now.After(c.ExpiresAt.Add(leeway)) {
		return jwt.ErrTokenExpired
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Add(-leeway)) {
		return jwt.ErrTokenNotValidYet
	}
	return nil
}

// remember keeps verified claims, first dropping expired ones when the cache is full, and
// then, if it still is, any one.
func (v *Verifier) remember(sum [sha256.Size]byte, c *Claims) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.verified) >= maxVerified {
		for k, old := range v.verified {
			if v.inWindow(old) != nil {
				delete(v.verified, k)
			}
		}
		for k := range v.verified {
			if len(v.verified) < maxVerified {
				break
			}
			delete(v.verified, k)
		}
	}
	v.verified[sum] = c
}

func (v *Verifier) key(t *jwt.Token) (any, error) {
	if kid, _ := t.Header["kid"].(string); kid != "" {
		if k, ok := v.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown signing key %q", kid)
	}
	// Without a kid every key is tried, as kube-apiserver does.
	keys := jwt.VerificationKeySet{}
	for _, k := range v.keys {
		keys.Keys = append(keys.Keys, k)
	}
	return keys, nil
}

// User is the identity of a verified token: the account's user name and UID, its groups, and
// extra values naming the bound pod, node and the credential.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Extra keys kube-apiserver sets on service-account users.
const (
	ExtraPodName      = "authentication.kubernetes.io/pod-name"
	ExtraPodUID       = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName     = "authentication.kubernetes.io/node-name"
	ExtraNodeUID      = "authentication.kubernetes.io/node-uid"
	ExtraCredentialID = "authentication.kubernetes.io/credential-id"
)

// UserOf returns the user a token's claims authenticate. A legacy token's user has no
// extra values: kube-apiserver's legacy validator sets no credential ID, pod or node.
func UserOf(c *Claims) User {
	if c.IsLegacy() {
		l := c.LegacyClaims
		return User{
			Name:   Subject(l.Namespace, l.ServiceAccountName),
			UID:    l.ServiceAccountUID,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + l.Namespace},
			Extra:  map[string][]string{},
		}
	}
	k := c.Kubernetes
	u := User{
		Name:   Subject(k.Namespace, k.ServiceAccount.Name),
		UID:    k.ServiceAccount.UID,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + k.Namespace},
		Extra:  map[string][]string{},
	}
	if k.Pod != nil {
		u.Extra[ExtraPodName] = []string{k.Pod.Name}
		u.Extra[ExtraPodUID] = []string{k.Pod.UID}
	}
	if k.Node != nil {
		u.Extra[ExtraNodeName] = []string{k.Node.Name}
		u.Extra[ExtraNodeUID] = []string{k.Node.UID}
	}
	if c.ID != "" {
		u.Extra[ExtraCredentialID] = []string{"JTI=" + c.ID}
	}
	return u
}
