package apiserver_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nanokube/nanokube/internal/apiserver/satoken"
	"github.com/nanokube/nanokube/internal/apitest"
)

// TestLegacyServiceAccountTokenSecret follows kubernetes.io's "Manually create a long-lived
// API token for a ServiceAccount" on nanokube server (controllers on, so the tokens
// controller runs with the key the API server signs with): the Secret is filled, its token
// works with the real kubectl as far as RBAC allows, and deleting the Secret or recreating
// the account revokes it.
func TestLegacyServiceAccountTokenSecret(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatal("kubectl is required: ", err)
	}
	c := apitest.Start(t, apitest.Options{Controllers: true})
	ctx := ctxT(t)
	admin := c.Client
	caFile := filepath.Join(c.Dir, "pki", "ca.crt")
	emptyKubeconfig := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyKubeconfig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	// kubectl runs as the bearer of token only: no admin credentials in reach.
	kubectl := func(token string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		base := []string{"--kubeconfig", emptyKubeconfig, "--cache-dir", cache, "--server", c.Config.Host,
			"--certificate-authority", caFile, "--token", token}
		out, err := exec.CommandContext(ctx, "kubectl", append(base, args...)...).CombinedOutput()
		return string(out), err
	}
	poll := func(what string, cond func(ctx context.Context) (bool, error)) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 45*time.Second, true, cond); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	filled := func(name string) *corev1.Secret {
		t.Helper()
		var s *corev1.Secret
		poll("secret "+name+" was not filled", func(ctx context.Context) (bool, error) {
			var err error
			s, err = admin.CoreV1().Secrets("legacy").Get(ctx, name, metav1.GetOptions{})
			return err == nil && len(s.Data["token"]) > 0, nil
		})
		return s
	}
	tokenSecret := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{"kubernetes.io/service-account.name": "build-robot"}},
			Type: corev1.SecretTypeServiceAccountToken}
	}

	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa, err := admin.CoreV1().ServiceAccounts("legacy").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "build-robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a token secret needs the account annotation", func(t *testing.T) {
		bad := tokenSecret("no-account")
		bad.Annotations = nil
		_, err := admin.CoreV1().Secrets("legacy").Create(ctx, bad, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.annotations[kubernetes.io/service-account.name]: Required value") {
			t.Fatalf("err = %v, want 422 Invalid naming the annotation", err)
		}
	})

	if _, err := admin.CoreV1().Secrets("legacy").Create(ctx, tokenSecret("build-robot-secret"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := filled("build-robot-secret")
	token := string(secret.Data["token"])

	t.Run("the secret is filled as Kubernetes fills it", func(t *testing.T) {
		ca, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		if string(secret.Data["ca.crt"]) != string(ca) || string(secret.Data["namespace"]) != "legacy" ||
			secret.Annotations["kubernetes.io/service-account.uid"] != string(sa.UID) {
			t.Errorf("secret = annotations %v, ca.crt %d bytes, namespace %q", secret.Annotations, len(secret.Data["ca.crt"]), secret.Data["namespace"])
		}
	})

	t.Run("the token authenticates the account", func(t *testing.T) {
		r, err := tokenClient(c, token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u := r.Status.UserInfo
		if u.Username != "system:serviceaccount:legacy:build-robot" || u.UID != string(sa.UID) ||
			strings.Join(u.Groups, ",") != "system:serviceaccounts,system:serviceaccounts:legacy,system:authenticated" || len(u.Extra) != 0 {
			t.Errorf("user = %+v", u)
		}
		tr, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Status.Authenticated || tr.Status.User.Username != "system:serviceaccount:legacy:build-robot" || len(tr.Status.Audiences) == 0 {
			t.Errorf("TokenReview status = %+v", tr.Status)
		}
		// It names no audience, so it is no good for another server's.
		tr, err = admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
			Token: token, Audiences: []string{"vault"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if tr.Status.Authenticated {
			t.Errorf("a legacy token authenticated for audience vault: %+v", tr.Status)
		}
	})

	t.Run("kubectl with the token: forbidden, then allowed by a RoleBinding", func(t *testing.T) {
		out, err := kubectl(token, "get", "pods", "-n", "legacy")
		if err == nil || !strings.Contains(out, "Forbidden") || !strings.Contains(out, "system:serviceaccount:legacy:build-robot") {
			t.Fatalf("before the binding: err %v, output %s", err, out)
		}
		if _, err := admin.RbacV1().RoleBindings("legacy").Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "build-robot-view"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "build-robot", Namespace: "legacy"}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll("kubectl get pods with the bound token", func(context.Context) (bool, error) {
			out, err = kubectl(token, "get", "pods", "-n", "legacy")
			return err == nil, nil
		})
		if !strings.Contains(out, "No resources found") {
			t.Errorf("kubectl get pods: %s", out)
		}
	})

	t.Run("deleting the secret revokes the token", func(t *testing.T) {
		if err := admin.CoreV1().Secrets("legacy").Delete(ctx, "build-robot-secret", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		var out string
		poll("the token of a deleted secret still works", func(context.Context) (bool, error) {
			out, _ = kubectl(token, "get", "pods", "-n", "legacy")
			return strings.Contains(out, "Unauthorized"), nil
		})
		if _, err := tokenClient(c, token).CoreV1().Pods("legacy").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("client-go with the revoked token: %v, want 401", err)
		}
	})

	t.Run("recreating the account revokes the token and reaps the secret", func(t *testing.T) {
		if _, err := admin.CoreV1().Secrets("legacy").Create(ctx, tokenSecret("second"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		second := string(filled("second").Data["token"])
		if _, err := tokenClient(c, second).CoreV1().Pods("legacy").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("the second token does not work: %v", err)
		}
		if err := admin.CoreV1().ServiceAccounts("legacy").Delete(ctx, "build-robot", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CoreV1().ServiceAccounts("legacy").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "build-robot"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll("the token of a recreated account still works", func(ctx context.Context) (bool, error) {
			_, err := tokenClient(c, second).CoreV1().Pods("legacy").List(ctx, metav1.ListOptions{})
			return apierrors.IsUnauthorized(err), nil
		})
		poll("the secret of the old account was not deleted", func(ctx context.Context) (bool, error) {
			_, err := admin.CoreV1().Secrets("legacy").Get(ctx, "second", metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	})
}

// TestLegacyTokenChecks signs legacy tokens by hand (no controller) to show each check of the
// authenticator on its own: the Secret must exist, be annotated with the account and hold
// exactly the token, and the account must exist with the token's UID.
func TestLegacyTokenChecks(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	admin := c.Client
	key, err := satoken.LoadSigningKey(filepath.Join(c.Dir, "pki", "sa.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := satoken.NewSigner(satoken.LegacyIssuer, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	robot, err := admin.CoreV1().ServiceAccounts("legacy").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts("legacy").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// store writes a token Secret holding stored, annotated with account.
	store := func(name, account, stored string) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{corev1.ServiceAccountNameKey: account}},
			Type: corev1.SecretTypeServiceAccountToken, Data: map[string][]byte{"token": []byte(stored)}}
		if _, err := admin.CoreV1().Secrets("legacy").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sign := func(uid, secret string) string {
		t.Helper()
		tok, err := signer.SignLegacy("legacy", "robot", uid, secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(string(robot.UID), "good")
	store("good", "robot", good)
	otherAccount := sign(string(robot.UID), "other-account")
	store("other-account", "other", otherAccount)
	replaced := sign(string(robot.UID), "replaced")
	store("replaced", "robot", "something else")
	staleUID := sign("0000-stale", "stale-uid")
	store("stale-uid", "robot", staleUID)
	noSecret := sign(string(robot.UID), "never-created")

	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"secret holds the token", good, true},
		{"secret annotated with another account", otherAccount, false},
		{"secret holds another token", replaced, false},
		{"account UID differs", staleUID, false},
		{"secret missing", noSecret, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tokenClient(c, tc.token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if tc.ok && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !tc.ok && !apierrors.IsUnauthorized(err) {
				t.Fatalf("err = %v, want 401", err)
			}
		})
	}
}
