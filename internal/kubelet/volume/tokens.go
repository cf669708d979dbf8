package volume

import (
	"context"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Service-account tokens are requested from the API server (TokenRequest, bound to the pod)
// and cached per pod, account, audience and lifetime. A cached token is used until 80% of its
// life has passed, then replaced, as the real kubelet's token manager does; the atomic writer
// then swaps the file in place, so a client that rereads it (client-go does) never sees an
// expired token.

const defaultTokenSeconds = 3600

type tokenKey struct {
	pod      types.UID
	account  string
	audience string
	seconds  int64
}

type cachedToken struct {
	token     string
	refreshAt time.Time
}

type tokenCache struct {
	mu  sync.Mutex
	m   map[tokenKey]cachedToken
	now func() time.Time
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: map[tokenKey]cachedToken{}, now: time.Now}
}

// forget drops the tokens of a pod that is gone.
func (c *tokenCache) forget(pod types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.pod == pod {
			delete(c.m, k)
		}
	}
}

func (m *Manager) serviceAccountTokenFile(ctx context.Context, pod *v1.Pod, p *payload, src *v1.ServiceAccountTokenProjection, defMode *int32, defUser *int64) error {
	seconds := int64(defaultTokenSeconds)
	if src.ExpirationSeconds != nil {
		seconds = *src.ExpirationSeconds
	}
	account := pod.Spec.ServiceAccountName
	if account == "" {
		account = "default"
	}
	key := tokenKey{pod: pod.UID, account: account, audience: src.Audience, seconds: seconds}
	c := m.tokens
	c.mu.Lock()
	t, ok := c.m[key]
	c.mu.Unlock()
	if !ok || !c.now().Before(t.refreshAt) {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &seconds,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		}}
		if src.Audience != "" {
			tr.Spec.Audiences = []string{src.Audience}
		}
		issued := c.now()
		out, err := m.get.ServiceAccountToken(ctx, pod.Namespace, account, tr)
		if err != nil {
			return fmt.Errorf("requesting a token for service account %s/%s: %w", pod.Namespace, account, err)
		}
		life := out.Status.ExpirationTimestamp.Sub(issued)
		t = cachedToken{token: out.Status.Token, refreshAt: issued.Add(life * 8 / 10)}
		c.mu.Lock()
		c.m[key] = t
		c.mu.Unlock()
	}
	p.add(src.Path, []byte(t.token), nil, nil, defMode, defUser)
	return nil
}
