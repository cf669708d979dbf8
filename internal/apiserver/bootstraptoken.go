package apiserver

import (
	"context"
	"crypto/subtle"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/pki"
)

// Bootstrap tokens, as kube-apiserver's bootstrap token authenticator reads them: a Secret
// kube-system/bootstrap-token-<id> of type bootstrap.kubernetes.io/token whose token-secret
// matches, with usage-bootstrap-authentication "true" and an expiration (RFC 3339) not yet
// passed, authenticates "<id>.<secret>" as system:bootstrap:<id> in system:bootstrappers
// plus the secret's auth-extra-groups (each of which must be a system:bootstrappers: group).
const (
	bootstrapTokenSecretPrefix = "bootstrap-token-"
	bootstrapGroup             = "system:bootstrappers"
)

var secretsGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// authenticateBootstrapToken returns the bootstrap user of token, or false.
func (s *Server) authenticateBootstrapToken(ctx context.Context, token string) (pki.UserInfo, bool) {
	id, secret, ok := pki.ParseBootstrapToken(token)
	if !ok {
		return pki.UserInfo{}, false
	}
	rs := s.resources[secretsGVR]
	if rs == nil {
		return pki.UserInfo{}, false
	}
	key := rs.key("kube-system", bootstrapTokenSecretPrefix+id)
	// From the watch cache only: an unauthenticated request never costs an etcd read.
	obj, err := rs.cacheGet(ctx, key, 0)
	if err != nil {
		return pki.UserInfo{}, false
	}
	sec, ok := obj.(*corev1.Secret)
	if !ok || sec.Type != corev1.SecretTypeBootstrapToken || sec.DeletionTimestamp != nil {
		return pki.UserInfo{}, false
	}
	if string(sec.Data["token-id"]) != id || subtle.ConstantTimeCompare(sec.Data["token-secret"], []byte(secret)) != 1 {
		return pki.UserInfo{}, false
	}
	if string(sec.Data["usage-bootstrap-authentication"]) != "true" {
		return pki.UserInfo{}, false
	}
	if exp := string(sec.Data["expiration"]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !time.Now().Before(t) {
			s.log.Info("rejected an expired bootstrap token", "id", id)
			return pki.UserInfo{}, false
		}
	}
	groups := []string{bootstrapGroup}
	for _, g := range strings.Split(string(sec.Data["auth-extra-groups"]), ",") {
		if g = strings.TrimSpace(g); strings.HasPrefix(g, bootstrapGroup+":") {
			groups = append(groups, g)
		}
	}
	return pki.UserInfo{Name: "system:bootstrap:" + id, Groups: groups}, true
}
