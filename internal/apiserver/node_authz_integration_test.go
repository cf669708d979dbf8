package apiserver_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/pki"
)

// podOn is a pod bound to node that reads secret and configMap.
func podOn(name, node, secret, configMap string) *corev1.Pod {
	p := testPod(name)
	p.Spec.NodeName = node
	p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}}
	if configMap != "" {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}}}
	}
	return p
}

// TestNodeAuthorizer runs the default Node,RBAC modes with NodeRestriction: a node reads
// the secrets and config maps of the pods bound to it, nothing else, and loses them with
// the pod; it may not touch another node or another node's pods.
func TestNodeAuthorizer(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	admin := c.Client
	for _, name := range []string{"s-a", "s-b", "s-other"} {
		if _, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-a"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node-a", "node-b"} {
		if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*corev1.Pod{podOn("pa", "node-a", "s-a", "cm-a"), podOn("pb", "node-b", "s-b", "")} {
		if _, err := admin.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	nodeA := userClient(t, c, "system:node:node-a", "system:nodes")

	// Read at once: the authorizer waits for its graph rather than refuse a fresh pod's secret.
	if _, err := nodeA.CoreV1().Secrets("default").Get(ctx, "s-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("node-a reading the secret of its pod: %v", err)
	}
	if _, err := nodeA.CoreV1().ConfigMaps("default").Get(ctx, "cm-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("node-a reading the config map of its pod: %v", err)
	}
	// Watching one object by name is a read of it, as the kubelet's watch-based manager does.
	w, err := nodeA.CoreV1().Secrets("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=s-a"})
	if err != nil {
		t.Fatalf("node-a watching the secret of its pod: %v", err)
	}
	w.Stop()

	_, err = nodeA.CoreV1().Secrets("default").Get(ctx, "s-other", metav1.GetOptions{})
	wantForbidden(t, err, `secrets "s-other" is forbidden: User "system:node:node-a" cannot get resource "secrets" in API group "" `+
		`in the namespace "default": no relationship found between node 'node-a' and this object`)
	_, err = nodeA.CoreV1().Secrets("default").Get(ctx, "s-b", metav1.GetOptions{})
	wantForbidden(t, err, `secrets "s-b" is forbidden: User "system:node:node-a" cannot get resource "secrets" in API group "" `+
		`in the namespace "default": no relationship found between node 'node-a' and this object`)
	_, err = nodeA.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `secrets is forbidden: User "system:node:node-a" cannot list resource "secrets" in API group "" `+
		`in the namespace "default": No Object name found`)

	// NodeRestriction: not another node, not another node's pods.
	_, err = nodeA.CoreV1().Nodes().Patch(ctx, "node-b", "application/merge-patch+json",
		[]byte(`{"status":{"conditions":[{"type":"Ready","status":"False"}]}}`), metav1.PatchOptions{}, "status")
	wantForbidden(t, err, `nodes "node-b" is forbidden: node "node-a" is not allowed to modify node "node-b"`)
	pb, err := admin.CoreV1().Pods("default").Get(ctx, "pb", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pb.Status.Message = "node-a was here"
	_, err = nodeA.CoreV1().Pods("default").UpdateStatus(ctx, pb, metav1.UpdateOptions{})
	wantForbidden(t, err, `pods "pb" is forbidden: node "node-a" can only update pod status for pods with spec.nodeName set to itself`)
	err = nodeA.CoreV1().Pods("default").Delete(ctx, "pb", metav1.DeleteOptions{})
	wantForbidden(t, err, `pods "pb" is forbidden: node "node-a" can only delete pods with spec.nodeName set to itself`)
	err = nodeA.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "pb", Namespace: "default"}})
	wantForbidden(t, err, `pods "pb" is forbidden: node "node-a" can only evict pods with spec.nodeName set to itself`)
	_, err = nodeA.CoordinationV1().Leases("kube-node-lease").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}}, metav1.CreateOptions{})
	wantForbidden(t, err, `leases.coordination.k8s.io "node-b" is forbidden: can only access node lease with the same name as the requesting node`)
	if _, err := nodeA.CoordinationV1().Leases("kube-node-lease").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("node-a creating its own lease: %v", err)
	}
	if _, err := nodeA.CoreV1().Pods("default").Patch(ctx, "pa", "application/merge-patch+json",
		[]byte(`{"status":{"message":"running here"}}`), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("node-a patching the status of its own pod: %v", err)
	}
	_, err = nodeA.CoreV1().Nodes().Patch(ctx, "node-a", "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"node-restriction.kubernetes.io/trusted":"yes","node-role.kubernetes.io/worker":""}}}`), metav1.PatchOptions{})
	wantForbidden(t, err, `nodes "node-a" is forbidden: node "node-a" is not allowed to modify labels: `+
		`node-restriction.kubernetes.io/trusted, node-role.kubernetes.io/worker`)
	if _, err := nodeA.CoreV1().Nodes().Patch(ctx, "node-a", "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"topology.kubernetes.io/zone":"z1","example.com/disk":"ssd"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("node-a setting kubelet labels on itself: %v", err)
	}
	pod := testPod("not-mirror")
	pod.Spec.NodeName = "node-a"
	_, err = nodeA.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	wantForbidden(t, err, `pods "not-mirror" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "node-a" can only create mirror pods`)
	_, err = nodeA.CoordinationV1().Leases("kube-node-lease").Get(ctx, "node-b", metav1.GetOptions{})
	wantForbidden(t, err, `leases.coordination.k8s.io "node-b" is forbidden: User "system:node:node-a" cannot get resource "leases" in API group "coordination.k8s.io" `+
		`in the namespace "kube-node-lease": can only access node lease with the same name as the requesting node`)

	kubectlForbidden(t, c, "node-a", []string{"get", "secret", "s-b", "-n", "default"},
		`Error from server (Forbidden): secrets "s-b" is forbidden: User "system:node:node-a" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'node-a' and this object`)
	kubectlForbidden(t, c, "node-a", []string{"label", "node", "node-b", "example.com/owner=node-a"},
		`Error from server (Forbidden): nodes "node-b" is forbidden: node "node-a" is not allowed to modify node "node-b"`)

	// Deleting the pod takes its secrets and config maps away from the node.
	if err := admin.CoreV1().Pods("default").Delete(ctx, "pa", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node-a losing the secret of its deleted pod", func() bool {
		_, err := nodeA.CoreV1().Secrets("default").Get(ctx, "s-a", metav1.GetOptions{})
		return apierrors.IsForbidden(err)
	})
	_, err = nodeA.CoreV1().ConfigMaps("default").Get(ctx, "cm-a", metav1.GetOptions{})
	wantForbidden(t, err, `configmaps "cm-a" is forbidden: User "system:node:node-a" cannot get resource "configmaps" in API group "" `+
		`in the namespace "default": no relationship found between node 'node-a' and this object`)

	// Binding a pending pod to the node grants it the pod's secret.
	pending := podOn("pc", "", "s-other", "")
	if _, err := admin.CoreV1().Pods("default").Create(ctx, pending, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := admin.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "pc"},
		Target: corev1.ObjectReference{Kind: "Node", Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodeA.CoreV1().Secrets("default").Get(ctx, "s-other", metav1.GetOptions{}); err != nil {
		t.Fatalf("node-a reading the secret of a pod just bound to it: %v", err)
	}
}

// kubectlForbidden runs the real kubectl as node and checks it prints want and fails.
func kubectlForbidden(t *testing.T, c *apitest.Cluster, node string, args []string, want string) {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is needed for this test: %v", err)
	}
	dir := t.TempDir()
	cfg := userConfig(t, c, "system:node:"+node, "system:nodes")
	caPEM, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := pki.WriteKubeconfig(kubeconfig, cfg.Host, caPEM, pki.Credentials{ClientCertPEM: cfg.CertData, ClientKeyPEM: cfg.KeyData}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("kubectl %s succeeded as node %s: %s", strings.Join(args, " "), node, out)
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("kubectl %s:\n got: %s\nwant: %s", strings.Join(args, " "), got, want)
	}
}
