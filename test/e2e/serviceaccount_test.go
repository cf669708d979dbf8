package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A client-go program built by the test runs in a pod and lists pods with its service
// account's projected token through rest.InClusterConfig: refused until its account is
// bound to a role, then allowed in its namespace and still refused elsewhere. kubectl shows
// the same account through `create token`, `auth whoami` and `auth can-i`.
func TestNodeInClusterClient(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	bin := buildTestProgram(t, "incluster", ns)

	nkIn(t, `
apiVersion: v1
kind: ServiceAccount
metadata: {name: lister}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  serviceAccountName: lister
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: `+testImage+`
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: bin, mountPath: /incluster}]
  volumes:
  - {name: bin, hostPath: {path: `+bin+`, type: File}}
`, "-n", ns, "apply", "-f", "-")
	waitJSONPath(t, ns, "pod/client", "{.status.phase}", 60*time.Second, equals("Running"))

	files := nk(t, "-n", ns, "exec", "client", "--", "sh", "-c",
		"cd /var/run/secrets/kubernetes.io/serviceaccount && ls && cat namespace && echo && head -c 3 token && echo && head -1 ca.crt")
	mustContain(t, files, "ca.crt", "namespace", "token", ns, "eyJ", "-----BEGIN CERTIFICATE-----")

	user := "system:serviceaccount:" + ns + ":lister"
	list := func(namespace string) (string, string, error) {
		return nkRun(nil, "-n", ns, "exec", "client", "--", "/incluster", namespace)
	}
	_, errOut, err := list(ns)
	if err == nil || !strings.Contains(errOut, `pods is forbidden: User "`+user+`" cannot list resource "pods" in API group "" in the namespace "`+ns+`"`) {
		routes, _, _ := nkRun(nil, "-n", ns, "exec", "client", "--", "ip", "route")
		t.Fatalf("before any binding: err %v, stderr %q; want the Forbidden message (the pod's routes: %s)", err, errOut, routes)
	}

	nk(t, "-n", ns, "create", "rolebinding", "lister-view", "--clusterrole=view", "--serviceaccount="+ns+":lister")
	out := waitFor(t, "the bound account to list pods from inside its pod", 30*time.Second, func() (string, bool) {
		out, errOut, err := list(ns)
		return out + errOut, err == nil
	})
	mustContain(t, out, "client")
	_, errOut, err = list("default")
	if err == nil || !strings.Contains(errOut, `pods is forbidden: User "`+user+`" cannot list resource "pods" in API group "" in the namespace "default"`) {
		t.Fatalf("another namespace: err %v, stderr %q; want the Forbidden message", err, errOut)
	}

	if got := strings.TrimSpace(nk(t, "-n", ns, "auth", "can-i", "list", "pods", "--as", user)); got != "yes" {
		t.Errorf("auth can-i list pods as %s = %q", user, got)
	}
	token := strings.TrimSpace(nk(t, "-n", ns, "create", "token", "lister", "--duration=10m"))
	server := nk(t, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	tokenConfig := filepath.Join(node.dir, "lister-"+ns+".kubeconfig")
	t.Cleanup(func() { os.Remove(tokenConfig) })
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "` + server + `", certificate-authority: "` + filepath.Join(node.dir, "pki", "ca.crt") + `"}}]
users: [{name: u, user: {token: "` + token + `"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(tokenConfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	whoami := nk(t, "--kubeconfig", tokenConfig, "auth", "whoami")
	mustContain(t, whoami, user, "system:serviceaccounts:"+ns)
	_, errOut, err = nkRun(nil, "-n", ns, "create", "token", "lister", "--duration=1m")
	if err == nil || !strings.Contains(errOut, "may not specify a duration less than 10 minutes") {
		t.Errorf("kubectl create token --duration=1m: err %v, stderr %q", err, errOut)
	}
}

// buildTestProgram builds ./testdata/<name> into the node's directory (suffix keeps tests
// apart) for a pod to mount with hostPath, and removes it when the test ends. Static, for
// a busybox image without libc; under `make test` (CGO_ENABLED=0 throughout) the packages
// come from the build cache.
func buildTestProgram(t *testing.T, name, suffix string) string {
	t.Helper()
	bin := filepath.Join(node.dir, name+"-"+suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./testdata/"+name)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { os.Remove(bin) })
	return bin
}
