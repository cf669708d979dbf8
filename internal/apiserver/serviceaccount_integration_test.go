package apiserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/satoken"
	"github.com/nanokube/nanokube/internal/apitest"
)

func tokenClient(c *apitest.Cluster, token string) kubernetes.Interface {
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.BearerToken = token
	return kubernetes.NewForConfigOrDie(cfg)
}

func requestToken(t *testing.T, c *apitest.Cluster, ns, sa string, spec authenticationv1.TokenRequestSpec) string {
	t.Helper()
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctxT(t), sa, &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, sa, err)
	}
	if tr.Status.Token == "" || tr.Status.ExpirationTimestamp.IsZero() {
		t.Fatalf("TokenRequest status = %+v", tr.Status)
	}
	return tr.Status.Token
}

func TestServiceAccountTokens(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	admin := c.Client
	for _, ns := range []string{"team", "other"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := admin.CoreV1().ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := admin.CoreV1().Pods("team").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.PodSpec{ServiceAccountName: "robot", Containers: []corev1.Container{
			{Name: "c", Image: "busybox"},
			{Name: "own-mount", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "mine", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}},
		}, Volumes: []corev1.Volume{{Name: "mine", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("admission projects the token volume", func(t *testing.T) {
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if strings.HasPrefix(pod.Spec.Volumes[i].Name, "kube-api-access-") {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil || vol.Projected == nil || len(vol.Projected.Sources) != 3 ||
			vol.Projected.Sources[0].ServiceAccountToken == nil || *vol.Projected.Sources[0].ServiceAccountToken.ExpirationSeconds != 3607 ||
			vol.Projected.Sources[1].ConfigMap.Name != "kube-root-ca.crt" || vol.Projected.Sources[2].DownwardAPI == nil {
			t.Fatalf("token volume = %+v", vol)
		}
		m := pod.Spec.Containers[0].VolumeMounts
		if len(m) != 1 || m[0].Name != vol.Name || m[0].MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" || !m[0].ReadOnly {
			t.Errorf("mounts of c = %+v", m)
		}
		if m := pod.Spec.Containers[1].VolumeMounts; len(m) != 1 || m[0].Name != "mine" {
			t.Errorf("a container with its own mount at the path got %+v", m)
		}
		off, err := admin.CoreV1().Pods("team").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "no-token"},
			Spec: corev1.PodSpec{AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(off.Spec.Volumes) != 0 || len(off.Spec.Containers[0].VolumeMounts) != 0 {
			t.Errorf("automountServiceAccountToken: false still got %+v", off.Spec.Volumes)
		}
	})

	token := requestToken(t, c, "team", "robot", authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "app", UID: pod.UID}})
	robot := tokenClient(c, token)

	t.Run("the token authenticates the account, bound to its pod", func(t *testing.T) {
		r, err := robot.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u := r.Status.UserInfo
		if u.Username != "system:serviceaccount:team:robot" || u.UID != string(sa.UID) ||
			strings.Join(u.Groups, ",") != "system:serviceaccounts,system:serviceaccounts:team,system:authenticated" ||
			len(u.Extra["authentication.kubernetes.io/pod-name"]) != 1 || u.Extra["authentication.kubernetes.io/pod-name"][0] != "app" {
			t.Errorf("user = %+v", u)
		}
	})

	t.Run("it gets exactly the rights its account was granted", func(t *testing.T) {
		_, err := robot.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		wantForbidden(t, err, `pods is forbidden: User "system:serviceaccount:team:robot" cannot list resource "pods" in API group "" in the namespace "team"`)
		// view is aggregated by a controller this test does not run: a Role of its own.
		if _, err := admin.RbacV1().Roles("team").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "robot-view"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "robot", Namespace: "team"}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "robot lists pods in team", func() bool {
			_, err := robot.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
			return err == nil
		})
		_, err = robot.CoreV1().Pods("other").List(ctx, metav1.ListOptions{})
		wantForbidden(t, err, `pods is forbidden: User "system:serviceaccount:team:robot" cannot list resource "pods" in API group "" in the namespace "other"`)
	})

	t.Run("TokenReview", func(t *testing.T) {
		review := func(token string, audiences ...string) authenticationv1.TokenReviewStatus {
			t.Helper()
			r, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
				Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Spec.Token != "" {
				t.Error("the review echoed the token back")
			}
			return r.Status
		}
		if st := review(token); !st.Authenticated || st.User.Username != "system:serviceaccount:team:robot" ||
			len(st.Audiences) != 1 || st.Audiences[0] != "https://kubernetes.default.svc.cluster.local" {
			t.Errorf("review of a good token = %+v", st)
		}
		if st := review(token, "vault"); st.Authenticated {
			t.Errorf("a token for the API server passed a review for audience vault: %+v", st)
		}
		vault := requestToken(t, c, "team", "robot", authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}})
		if st := review(vault, "vault"); !st.Authenticated || len(st.Audiences) != 1 || st.Audiences[0] != "vault" {
			t.Errorf("review of a vault token for vault = %+v", st)
		}
		_, err := tokenClient(c, vault).CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		if !apierrors.IsUnauthorized(err) {
			t.Errorf("a token for audience vault used on the API server: %v, want 401", err)
		}
		if st := review("garbage"); st.Authenticated || st.Error == "" {
			t.Errorf("review of garbage = %+v", st)
		}
	})

	t.Run("bad token requests", func(t *testing.T) {
		tokens := admin.CoreV1().ServiceAccounts("team")
		_, err := tokens.CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](60)}}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "may not specify a duration less than 10 minutes") {
			t.Errorf("expirationSeconds 60: %v", err)
		}
		_, err = tokens.CreateToken(ctx, "nobody", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if !apierrors.IsNotFound(err) || err.Error() != `serviceaccounts "nobody" not found` {
			t.Errorf("missing account: %v", err)
		}
		_, err = admin.CoreV1().ServiceAccounts("team").CreateToken(ctx, "default-missing", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "app"}}}, metav1.CreateOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("missing account with a pod: %v", err)
		}
		if _, err := admin.CoreV1().ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err = tokens.CreateToken(ctx, "other", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "app"}}}, metav1.CreateOptions{})
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "pod running with different serviceaccount name") {
			t.Errorf("binding to another account's pod: %v", err)
		}
		_, err = tokens.CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "app", UID: "not-its-uid"}}}, metav1.CreateOptions{})
		if !apierrors.IsConflict(err) {
			t.Errorf("binding with a wrong UID: %v", err)
		}
		_, err = tokens.CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "ConfigMap", APIVersion: "v1", Name: "x"}}}, metav1.CreateOptions{})
		if !apierrors.IsBadRequest(err) {
			t.Errorf("binding to a ConfigMap: %v", err)
		}
		// Not allowed to ask for tokens at all.
		_, err = userClient(t, c, "bob").CoreV1().ServiceAccounts("team").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		wantForbidden(t, err, `serviceaccounts "robot" is forbidden: User "bob" cannot create resource "serviceaccounts/token" in API group "" in the namespace "team"`)
	})

	t.Run("forged and revoked tokens are refused", func(t *testing.T) {
		parts := strings.Split(token, ".")
		forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		if _, err := tokenClient(c, forged).CoreV1().Pods("team").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("forged signature: %v, want 401", err)
		}
		// A token signed with the cluster's own key, but expired.
		key, err := satoken.LoadSigningKey(filepath.Join(c.Dir, "pki", "sa.key"))
		if err != nil {
			t.Fatal(err)
		}
		signer, _ := satoken.NewSigner("https://kubernetes.default.svc.cluster.local", key)
		past := time.Now().Add(-2 * time.Hour)
		expired, err := signer.Sign(&satoken.Claims{
			RegisteredClaims: jwt.RegisteredClaims{Subject: "system:serviceaccount:team:robot", Audience: []string{"https://kubernetes.default.svc.cluster.local"},
				IssuedAt: jwt.NewNumericDate(past), NotBefore: jwt.NewNumericDate(past), ExpiresAt: jwt.NewNumericDate(past.Add(time.Hour))},
			Kubernetes: &satoken.PrivateClaims{Namespace: "team", ServiceAccount: satoken.Ref{Name: "robot", UID: string(sa.UID)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tokenClient(c, expired).CoreV1().Pods("team").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("expired token: %v, want 401", err)
		}
		if err := admin.CoreV1().Pods("team").Delete(ctx, "app", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the token of a deleted pod is refused", func() bool {
			_, err := robot.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
			return apierrors.IsUnauthorized(err)
		})
		// An unbound token lives as long as its account.
		unbound := tokenClient(c, requestToken(t, c, "team", "robot", authenticationv1.TokenRequestSpec{}))
		if _, err := unbound.CoreV1().Pods("team").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := admin.CoreV1().ServiceAccounts("team").Delete(ctx, "robot", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the token of a deleted account is refused", func() bool {
			_, err := unbound.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
			return apierrors.IsUnauthorized(err)
		})
	})
}

// A client certificate from another CA is refused with a 401 Status, as kube-apiserver
// answers it, not with a failed handshake.
func TestForeignClientCertificate(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.CertData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cfg.KeyData = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	_, err = kubernetes.NewForConfigOrDie(cfg).CoreV1().Pods("default").List(ctxT(t), metav1.ListOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Fatalf("a self-signed admin certificate: %v, want 401 Unauthorized", err)
	}
}
