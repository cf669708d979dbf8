package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels:
    app: web
spec:
  containers:
  - name: web
    image: registry.local/web:1
`

const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
    stage: beta
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.local/web:1
`

func TestAPIResourcesAndDiscovery(t *testing.T) {
	out := kubectl(t, "api-resources")
	mustContain(t, out,
		"pods po v1 true Pod",
		"deployments deploy apps/v1 true Deployment",
		"namespaces ns v1 false Namespace",
		"services svc v1 true Service",
		"horizontalpodautoscalers hpa autoscaling/v2 true HorizontalPodAutoscaler",
		"leases coordination.k8s.io/v1 true Lease",
	)
	mustContain(t, kubectl(t, "version"), "Server Version: v1.32.0")
}

func TestGetTablesAndOutputs(t *testing.T) {
	ns := namespace(t)
	mustContain(t, kubectlIn(t, podYAML, "-n", ns, "create", "-f", "-"), "pod/web-1 created")
	out := kubectl(t, "-n", ns, "get", "pods")
	mustContain(t, out, "NAME READY STATUS RESTARTS AGE", "web-1 0/1 Pending 0")
	mustContain(t, kubectl(t, "-n", ns, "get", "pods", "-o", "wide"), "IP NODE NOMINATED NODE READINESS GATES")
	mustContain(t, kubectl(t, "-n", ns, "get", "po", "web-1", "-o", "yaml"), "kind: Pod", "name: web-1", "restartPolicy: Always")
	mustContain(t, kubectl(t, "-n", ns, "get", "pod", "web-1", "-o", "json"), `"apiVersion": "v1"`)
	if got := kubectl(t, "-n", ns, "get", "pod", "web-1", "-o", "jsonpath={.spec.containers[0].image}"); got != "registry.local/web:1" {
		t.Errorf("jsonpath: %q", got)
	}
	mustContain(t, kubectl(t, "get", "pods", "-A"), "NAMESPACE NAME READY STATUS RESTARTS AGE", ns+" web-1 0/1 Pending")
	mustContain(t, kubectl(t, "-n", ns, "get", "pods", "-l", "app=web", "--show-labels"), "LABELS", "app=web")
	if out := kubectl(t, "-n", ns, "get", "pods", "-l", "app=nope"); strings.Contains(out, "web-1") {
		t.Errorf("label selector did not filter: %s", out)
	}
	mustContain(t, kubectl(t, "get", "all", "-n", "default"), "service/kubernetes ClusterIP 10.96.0.1 <none> 443/TCP")
	mustContain(t, kubectl(t, "-n", ns, "describe", "pod", "web-1"), "Name: web-1", "Namespace: "+ns, "Image: registry.local/web:1")
	mustContain(t, kubectl(t, "get", "ns"), "NAME STATUS AGE", "default Active")
}

func TestApplyClientAndServerSide(t *testing.T) {
	ns := namespace(t)
	mustContain(t, kubectlIn(t, deploymentYAML, "-n", ns, "apply", "-f", "-"), "deployment.apps/web created")
	mustContain(t, kubectlIn(t, deploymentYAML, "-n", ns, "apply", "-f", "-"), "deployment.apps/web unchanged")
	// Re-apply without the stage label: client-side apply prunes it.
	pruned := strings.Replace(deploymentYAML, "    stage: beta\n", "", 1)
	pruned = strings.Replace(pruned, "replicas: 2", "replicas: 3", 1)
	mustContain(t, kubectlIn(t, pruned, "-n", ns, "apply", "-f", "-"), "deployment.apps/web configured")
	labels := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.metadata.labels}")
	if strings.Contains(labels, "stage") {
		t.Errorf("apply did not prune the removed label: %s", labels)
	}
	if got := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Errorf("replicas after apply = %s", got)
	}
	mustContain(t, kubectl(t, "-n", ns, "get", "deploy"), "NAME READY UP-TO-DATE AVAILABLE AGE", "web 0/3")

	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"1\"\n"
	mustContain(t, kubectlIn(t, cm, "-n", ns, "apply", "--server-side", "-f", "-"), "configmap/ssa serverside-applied")
	mustContain(t, kubectl(t, "-n", ns, "get", "cm", "ssa", "-o", "yaml", "--show-managed-fields"), "manager: kubectl", "operation: Apply")
	mustContain(t, kubectlIn(t, strings.Replace(cm, `"1"`, `"2"`, 1), "-n", ns, "apply", "--server-side", "-f", "-"), "configmap/ssa serverside-applied")
	// Another manager changing an owned field conflicts unless it forces.
	other := strings.Replace(cm, `"1"`, `"3"`, 1)
	_, errOut, err := kubectlRun(t, strings.NewReader(other), "-n", ns, "apply", "--server-side", "--field-manager=other", "-f", "-")
	if err == nil || !strings.Contains(errOut, "conflict") {
		t.Errorf("conflicting server-side apply: err %v stderr %s", err, errOut)
	}
	mustContain(t, kubectlIn(t, other, "-n", ns, "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"), "configmap/ssa serverside-applied")
	// Dry run writes nothing.
	mustContain(t, kubectl(t, "-n", ns, "create", "configmap", "dry", "--dry-run=server"), "configmap/dry created (server dry run)")
	kubectlFail(t, "-n", ns, "get", "cm", "dry")
}

func TestPatchEditLabelAnnotateScale(t *testing.T) {
	ns := namespace(t)
	kubectlIn(t, deploymentYAML, "-n", ns, "create", "-f", "-")
	mustContain(t, kubectl(t, "-n", ns, "patch", "deploy", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox"}]}}}}`), "deployment.apps/web patched")
	if got := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}"); got != "side web" && got != "web side" {
		t.Errorf("strategic merge patch: containers %q", got)
	}
	kubectl(t, "-n", ns, "patch", "deploy", "web", "--type=merge", "-p", `{"metadata":{"labels":{"merged":"yes"}}}`)
	kubectl(t, "-n", ns, "patch", "deploy", "web", "--type=json", "-p", `[{"op":"replace","path":"/spec/replicas","value":4}]`)
	if got := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.metadata.labels.merged}/{.spec.replicas}"); got != "yes/4" {
		t.Errorf("merge+json patch: %q", got)
	}
	mustContain(t, kubectl(t, "-n", ns, "label", "deploy", "web", "team=core"), "deployment.apps/web labeled")
	mustContain(t, kubectl(t, "-n", ns, "annotate", "deploy", "web", "note=hello"), "deployment.apps/web annotated")
	mustContain(t, kubectl(t, "-n", ns, "scale", "deploy", "web", "--replicas=5"), "deployment.apps/web scaled")
	if got := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.metadata.labels.team}/{.metadata.annotations.note}/{.spec.replicas}"); got != "core/hello/5" {
		t.Errorf("label/annotate/scale: %q", got)
	}

	editor := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/replicas: 5/replicas: 6/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := kubectlCmd(ctx, "-n", ns, "edit", "deploy", "web")
	cmd.Env = append(cmd.Env, "KUBE_EDITOR="+editor)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "deployment.apps/web edited") {
		t.Fatalf("edit: %v %s", err, out)
	}
	if got := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"); got != "6" {
		t.Errorf("after edit replicas = %s", got)
	}
}

func TestDeleteAndWait(t *testing.T) {
	ns := namespace(t)
	kubectl(t, "-n", ns, "create", "configmap", "a", "--from-literal=k=v")
	kubectl(t, "-n", ns, "create", "configmap", "b", "--from-literal=k=v")
	mustContain(t, kubectl(t, "-n", ns, "wait", "--for=jsonpath={.data.k}=v", "cm/a", "--timeout=20s"), "configmap/a condition met")
	mustContain(t, kubectl(t, "-n", ns, "delete", "cm", "a", "--wait"), `configmap "a" deleted`)
	mustContain(t, kubectl(t, "-n", ns, "delete", "cm", "b", "--cascade=background"), `configmap "b" deleted`)
	kubectlFail(t, "-n", ns, "get", "cm", "a")

	// The three cascade modes, finished by the garbage collector: orphan leaves the
	// ReplicaSet without its owner, foreground removes the pods before their ReplicaSet,
	// background removes the dependents after the owner.
	kubectlIn(t, deploymentYAML, "-n", ns, "create", "-f", "-")
	rsName := waitOutput(t, func() string {
		return kubectl(t, "-n", ns, "get", "rs", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}")
	})
	mustContain(t, kubectl(t, "-n", ns, "delete", "deploy", "web", "--cascade=orphan"), `deployment.apps "web" deleted`)
	if owners := kubectl(t, "-n", ns, "get", "rs", rsName, "-o", "jsonpath={.metadata.ownerReferences}"); owners != "" {
		t.Errorf("orphaned ReplicaSet still has owners: %s", owners)
	}
	mustContain(t, kubectl(t, "-n", ns, "delete", "rs", rsName, "--cascade=foreground"), `replicaset.apps "`+rsName+`" deleted`)
	if pods := kubectl(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "name"); pods != "" {
		t.Errorf("foreground deletion left pods: %s", pods)
	}
	kubectlIn(t, deploymentYAML, "-n", ns, "create", "-f", "-")
	waitOutput(t, func() string { return kubectl(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "name") })
	kubectl(t, "-n", ns, "delete", "deploy", "web", "--cascade=background")
	waitOutputEmpty(t, func() string { return kubectl(t, "-n", ns, "get", "rs,pods", "-l", "app=web", "-o", "name") })

	kubectlIn(t, podYAML, "-n", ns, "create", "-f", "-")
	kubectl(t, "-n", ns, "patch", "pod", "web-1", "--subresource=status", "--type=merge", "-p",
		`{"status":{"conditions":[{"type":"Ready","status":"True"}]}}`)
	mustContain(t, kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "pod/web-1", "--timeout=20s"), "pod/web-1 condition met")
	// An unscheduled pod goes at once; wait --for=delete sees it go.
	done := make(chan string, 1)
	go func() {
		out, _, _ := kubectlRun(t, nil, "-n", ns, "wait", "--for=delete", "pod/web-1", "--timeout=30s")
		done <- out
	}()
	time.Sleep(500 * time.Millisecond) //nolint:forbidigo // give wait a moment to start watching; correctness does not depend on it
	kubectl(t, "-n", ns, "delete", "pod", "web-1")
	select {
	case out := <-done:
		mustContain(t, out, "pod/web-1 condition met")
	case <-time.After(40 * time.Second):
		t.Fatal("wait --for=delete did not return")
	}
}

func TestGetWatch(t *testing.T) {
	ns := namespace(t)
	kubectl(t, "-n", ns, "create", "configmap", "first", "--from-literal=a=b")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := kubectlCmd(ctx, "-n", ns, "get", "configmaps", "-w")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The listing shows "first"; kubectl then watches from the list's resourceVersion, so
	// anything created after it is delivered.
	expect := func(prefix string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl get -w ended before printing %s", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return
				}
			case <-deadline:
				t.Fatalf("kubectl get -w did not print %s", prefix)
			}
		}
	}
	expect("first")
	kubectl(t, "-n", ns, "create", "configmap", "watched", "--from-literal=a=b")
	expect("watched")
}

func TestExplainAndValidation(t *testing.T) {
	mustContain(t, kubectl(t, "explain", "pods.spec.containers"), "KIND: Pod", "FIELD: containers")
	ns := namespace(t)
	bad := strings.Replace(podYAML, "  containers:", "  bogus: 1\n  containers:", 1)
	for _, verb := range []string{"create", "apply"} {
		out, errOut, err := kubectlRun(t, strings.NewReader(bad), "-n", ns, verb, "-f", "-")
		if err == nil || !strings.Contains(errOut, `unknown field "spec.bogus"`) {
			t.Errorf("%s with an unknown field: err %v stdout %s stderr %s", verb, err, out, errOut)
		}
	}
	kubectlFail(t, "-n", ns, "get", "pod", "web-1")
}

func TestAuthRequired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", os.DevNull, "--cache-dir", cluster.cacheDir,
		"--server", cluster.url, "--insecure-skip-tls-verify", "--token", "not-a-valid-token", "get", "pods")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "You must be logged in to the server (Unauthorized)") {
		t.Fatalf("anonymous kubectl: err %v output %s", err, out)
	}
}

// waitOutput polls f until it returns something, for up to 30 seconds.
func waitOutput(t *testing.T, f func() string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out := strings.TrimSpace(f()); out != "" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatal("no output within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitOutputEmpty polls f until it returns nothing, for up to 30 seconds.
func waitOutputEmpty(t *testing.T, f func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := strings.TrimSpace(f())
		if out == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still there after 30s: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
