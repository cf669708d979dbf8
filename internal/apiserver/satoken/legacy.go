package satoken

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// LegacyIssuer is the "iss" of the long-lived tokens kube-controller-manager's tokens
// controller writes into Secrets of type kubernetes.io/service-account-token. It is fixed:
// such tokens predate --service-account-issuer and are accepted whatever that is set to.
const LegacyIssuer = "kubernetes/serviceaccount"

// LegacyClaims are the private claims of a legacy (Secret-based) token. Unlike the bound
// tokens' single "kubernetes.io" object they are top-level claims, and the token has no
// exp, nbf, iat, jti or aud: it is valid for as long as its Secret and account exist.
type LegacyClaims struct {
	Namespace          string `json:"kubernetes.io/serviceaccount/namespace,omitempty"`
	SecretName         string `json:"kubernetes.io/serviceaccount/secret.name,omitempty"`
	ServiceAccountName string `json:"kubernetes.io/serviceaccount/service-account.name,omitempty"`
	ServiceAccountUID  string `json:"kubernetes.io/serviceaccount/service-account.uid,omitempty"`
}

// IsLegacy reports whether c are the claims of a legacy token: the legacy issuer and no
// "kubernetes.io" claim. Both are needed because a cluster may configure
// "kubernetes/serviceaccount" as its --service-account-issuer for bound tokens too.
func (c *Claims) IsLegacy() bool {
	return c.Issuer == LegacyIssuer && c.Kubernetes == nil
}

// Account names the service account c authenticate; uid may be empty for bound tokens
// issued without one.
func (c *Claims) Account() (namespace, name, uid string) {
	if c.IsLegacy() {
		l := c.LegacyClaims
		return l.Namespace, l.ServiceAccountName, l.ServiceAccountUID
	}
	if c.Kubernetes == nil {
		return "", "", ""
	}
	return c.Kubernetes.Namespace, c.Kubernetes.ServiceAccount.Name, c.Kubernetes.ServiceAccount.UID
}

// SignLegacy signs a legacy token for the account namespace/name (UID uid) stored in the
// Secret secretName. The issuer is always LegacyIssuer, whatever the Signer's own; the key
// and its "kid" are the Signer's, so one Verifier checks both kinds.
func (s *Signer) SignLegacy(namespace, name, uid, secretName string) (string, error) {
	if namespace == "" || name == "" || uid == "" || secretName == "" {
		return "", errors.New("a legacy token needs the namespace, account name and UID, and the secret name")
	}
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: LegacyIssuer, Subject: Subject(namespace, name)},
		LegacyClaims:     LegacyClaims{Namespace: namespace, SecretName: secretName, ServiceAccountName: name, ServiceAccountUID: uid},
	}
	t := jwt.NewWithClaims(s.method, c)
	t.Header["kid"] = s.keyID
	return t.SignedString(s.key)
}

// verifyLegacy checks the claims of a legacy token whose signature checked out.
func verifyLegacy(c *Claims) error {
	l := c.LegacyClaims
	if l.Namespace == "" || l.SecretName == "" || l.ServiceAccountName == "" || l.ServiceAccountUID == "" {
		return errors.New("legacy token lacks a kubernetes.io/serviceaccount/ claim")
	}
	if len(c.Audience) > 0 {
		// Kubernetes never wrote one; a legacy token with an audience is not one of ours.
		return errors.New("legacy token has an audience")
	}
	ns, name, ok := SplitSubject(c.Subject)
	if !ok || ns != l.Namespace || name != l.ServiceAccountName {
		return errors.New("legacy token subject does not match its claims")
	}
	return nil
}
