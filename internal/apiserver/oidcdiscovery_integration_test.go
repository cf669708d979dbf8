package apiserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nanokube/nanokube/internal/apiserver/satoken"
	"github.com/nanokube/nanokube/internal/apitest"
)

// TestOIDCDiscovery holds the service-account issuer's discovery to what a relying party
// outside the cluster does with it: a service account reads the discovery document and the
// key set its jwks_uri names, and a token issued for another audience verifies against that
// key set alone. Others need RBAC to read them, and the real kubectl reads them raw.
func TestOIDCDiscovery(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	robot := tokenClient(c, requestToken(t, c, "team", "robot", authenticationv1.TokenRequestSpec{}))
	get := func(client kubernetes.Interface, path string) ([]byte, string, error) {
		res := client.CoreV1().RESTClient().Get().AbsPath(path).Do(ctx)
		body, err := res.Raw()
		var ct string
		res.ContentType(&ct)
		return body, ct, err
	}

	body, ct, err := get(robot, "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("a service account reading the discovery document: %v", err)
	}
	var doc struct {
		Issuer        string   `json:"issuer"`
		JWKSURI       string   `json:"jwks_uri"`
		ResponseTypes []string `json:"response_types_supported"`
		SubjectTypes  []string `json:"subject_types_supported"`
		Algs          []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("discovery document %s: %v", body, err)
	}
	host := strings.TrimPrefix(c.Config.Host, "https://")
	if ct != "application/json" || doc.Issuer != "https://kubernetes.default.svc.cluster.local" ||
		doc.JWKSURI != fmt.Sprintf("https://%s/openid/v1/jwks", host) ||
		!slices.Equal(doc.ResponseTypes, []string{"id_token"}) || !slices.Equal(doc.SubjectTypes, []string{"public"}) ||
		!slices.Equal(doc.Algs, []string{"ES256"}) {
		t.Errorf("discovery document (%s) = %s", ct, body)
	}

	u, err := url.Parse(doc.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	body, ct, err = get(robot, u.Path)
	if err != nil {
		t.Fatalf("a service account reading the jwks_uri: %v", err)
	}
	var set satoken.JWKS
	if err := json.Unmarshal(body, &set); err != nil || ct != "application/jwk-set+json" {
		t.Fatalf("key set (%s) %s: %v", ct, body, err)
	}

	// A token for another audience, as a pod would hand to an outside system, checked the
	// way that system would: only with the published keys.
	vault := requestToken(t, c, "team", "robot", authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}})
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(vault, claims, func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid != tok.Header["kid"] {
				continue
			}
			x, _ := base64.RawURLEncoding.DecodeString(k.X)
			y, _ := base64.RawURLEncoding.DecodeString(k.Y)
			return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		}
		return nil, fmt.Errorf("no published key has kid %v", tok.Header["kid"])
	}, jwt.WithIssuer(doc.Issuer), jwt.WithAudience("vault"), jwt.WithValidMethods(doc.Algs))
	if err != nil {
		t.Fatalf("the token does not verify with the published keys: %v", err)
	}
	if claims["sub"] != "system:serviceaccount:team:robot" {
		t.Errorf("sub = %v", claims["sub"])
	}

	// Others only as RBAC allows: 403 for a user and for anonymous requests, until the
	// role is bound to system:unauthenticated, which publishes both.
	anonymous := kubernetes.NewForConfigOrDie(rest.AnonymousClientConfig(c.Config))
	if _, _, err := get(kubernetes.NewForConfigOrDie(userConfig(t, c, "bob")), "/.well-known/openid-configuration"); !apierrors.IsForbidden(err) {
		t.Errorf("bob reading the discovery document: %v, want 403", err)
	}
	if _, _, err := get(anonymous, "/openid/v1/jwks"); !apierrors.IsForbidden(err) {
		t.Errorf("anonymous read of the key set: %v, want 403", err)
	}
	kubectl(t, c, "kubectl create clusterrolebinding oidc-reviewer --clusterrole=system:service-account-issuer-discovery --group=system:unauthenticated")
	for _, p := range []string{"/.well-known/openid-configuration", "/openid/v1/jwks"} {
		if _, _, err := get(anonymous, p); err != nil {
			t.Errorf("anonymous read of %s once bound: %v", p, err)
		}
	}
	if _, err := anonymous.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("anonymous list of namespaces: %v, want 401", err)
	}
	if out := kubectl(t, c, "kubectl get --raw /openid/v1/jwks"); !strings.Contains(out, `"kid":"`+set.Keys[0].Kid+`"`) {
		t.Errorf("kubectl get --raw /openid/v1/jwks printed %s", out)
	}
}
