package e2e

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanokube/nanokube/internal/pki"
)

// userKubeconfig writes a kubeconfig for user cn in groups, with a client certificate of
// the cluster's CA, as an administrator hands one to a colleague.
func userKubeconfig(t *testing.T, cn string, groups ...string) string {
	t.Helper()
	pkiDir := filepath.Join(filepath.Dir(cluster.kubeconfig), "pki")
	certPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.IssueClientCert(&pki.CA{Cert: caCert, Key: pair.PrivateKey.(crypto.Signer), CertPEM: certPEM}, cn, groups, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), cn+".kubeconfig")
	if err := pki.WriteKubeconfig(path, cluster.url, certPEM, pki.Credentials{ClientCertPEM: cert, ClientKeyPEM: key}); err != nil {
		t.Fatal(err)
	}
	return path
}

// canI runs `kubectl auth can-i` and returns its answer; "no" exits 1, which is no error.
func canI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := kubectlRun(t, nil, append([]string{"auth", "can-i"}, args...)...)
	answer := strings.TrimSpace(out)
	if err != nil && answer != "no" {
		t.Fatalf("kubectl auth can-i %v: %v\n%s%s", args, err, out, errOut)
	}
	return answer
}

// eventuallyCanI polls until can-i answers want: RBAC follows writes within milliseconds.
func eventuallyCanI(t *testing.T, want string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := canI(t, args...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl auth can-i %v = %q, want %q", args, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRBACWithKubectl(t *testing.T) {
	ns := namespace(t)
	mustContain(t, kubectl(t, "auth", "whoami"), "Username kubernetes-admin", "Groups [system:masters system:authenticated]")
	mustContain(t, kubectl(t, "get", "clusterroles"), "NAME CREATED AT", "cluster-admin", "system:node")
	mustContain(t, kubectl(t, "get", "clusterrolebindings", "-o", "wide"),
		"NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS", "cluster-admin ClusterRole/cluster-admin", "system:masters")

	// Impersonation through --as: bob starts with nothing.
	if got := canI(t, "list", "pods", "-n", ns, "--as", "bob"); got != "no" {
		t.Fatalf("bob can list pods before any binding: %q", got)
	}
	kubectl(t, "-n", ns, "create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods")
	kubectl(t, "-n", ns, "create", "rolebinding", "bob-reads", "--role=pod-reader", "--user=bob")
	mustContain(t, kubectl(t, "-n", ns, "get", "rolebindings", "-o", "wide"), "bob-reads Role/pod-reader", "bob")
	eventuallyCanI(t, "yes", "list", "pods", "-n", ns, "--as", "bob")
	if got := canI(t, "delete", "pods", "-n", ns, "--as", "bob"); got != "no" {
		t.Errorf("bob may delete pods: %q", got)
	}

	// bob's own kubeconfig.
	bob := userKubeconfig(t, "bob", "devs")
	mustContain(t, kubectl(t, "--kubeconfig", bob, "auth", "whoami"), "Username bob", "Groups [devs system:authenticated]")
	kubectl(t, "--kubeconfig", bob, "-n", ns, "get", "pods")
	errOut := kubectlFail(t, "--kubeconfig", bob, "-n", ns, "get", "secrets")
	mustContain(t, errOut, `Error from server (Forbidden): secrets is forbidden: User "bob" cannot list resource "secrets" in API group "" in the namespace "`+ns+`"`)
	mustContain(t, kubectl(t, "--kubeconfig", bob, "-n", ns, "auth", "can-i", "--list"),
		"pods [] [] [get list watch]", "selfsubjectaccessreviews.authorization.k8s.io [] [] [create]", "[/api/*] [] [get]")

	// Escalation: bob may write roles in his namespace but not grant what he lacks.
	kubectl(t, "-n", ns, "create", "role", "role-writer", "--verb=create", "--resource=roles.rbac.authorization.k8s.io")
	kubectl(t, "-n", ns, "create", "rolebinding", "bob-writes", "--role=role-writer", "--user=bob")
	eventuallyCanI(t, "yes", "create", "roles.rbac.authorization.k8s.io", "-n", ns, "--as", "bob", "--as-group", "devs")
	kubectl(t, "--kubeconfig", bob, "-n", ns, "create", "role", "pods-too", "--verb=get", "--resource=pods")
	errOut = kubectlFail(t, "--kubeconfig", bob, "-n", ns, "create", "role", "secrets", "--verb=get", "--resource=secrets")
	mustContain(t, errOut, `roles.rbac.authorization.k8s.io "secrets" is forbidden: user "bob" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:`,
		`{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`)

	// The aggregated view role (filled by the aggregation controller) grants reading deployments.
	kubectl(t, "-n", ns, "create", "rolebinding", "bob-views", "--clusterrole=view", "--user=bob")
	eventuallyCanI(t, "yes", "list", "deployments.apps", "-n", ns, "--as", "bob")
	if got := canI(t, "get", "secrets", "-n", ns, "--as", "bob"); got != "no" {
		t.Errorf("view grants secrets: %q", got)
	}
}
