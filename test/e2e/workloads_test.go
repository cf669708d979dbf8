package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hollowNodes runs `nanokube hollow-nodes` (simulated nodes that run bound pods) until stop
// is called or the test ends.
func hollowNodes(t *testing.T, prefix string, count int) (stop func()) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "hollow.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cluster.bin, "hollow-nodes", "--kubeconfig", cluster.kubeconfig, "--count", strconv.Itoa(count),
		"--name-prefix", prefix, "--lease-interval", "1s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done); logf.Close() }()
	stop = func() {
		select {
		case <-done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGKILL) // a node that dies, not one that says goodbye
		<-done
	}
	t.Cleanup(func() {
		stop()
		for i := 0; i < count; i++ {
			_, _, _ = kubectlRun(t, nil, "delete", "node", prefix+strconv.Itoa(i), "--wait=false")
		}
	})
	return stop
}

const bigDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: big
spec:
  replicas: 30
  selector:
    matchLabels: {app: big}
  template:
    metadata:
      labels: {app: big}
    spec:
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
      - name: web
        image: registry.local/web:1
        resources: {requests: {cpu: 10m, memory: 16Mi}}
`

// TestDeploymentOnSimulatedNodes: a 30-replica Deployment rolls out on simulated nodes,
// rolls to a new image and back, scales; a node that stops renewing its Lease is tainted and
// its pods are replaced on the others; a namespace delete empties the namespace.
func TestDeploymentOnSimulatedNodes(t *testing.T) {
	ns := namespace(t)
	hollowNodes(t, "e2e-a-", 2)
	stopB := hollowNodes(t, "e2e-b-", 1)
	waitOutput(t, func() string {
		out := kubectl(t, "get", "nodes", "-o", "name")
		if strings.Count(out, "node/e2e-") == 3 {
			return out
		}
		return ""
	})

	kubectlIn(t, bigDeployment, "-n", ns, "apply", "-f", "-")
	mustContain(t, kubectl(t, "-n", ns, "rollout", "status", "deploy/big", "--timeout=90s"), `deployment "big" successfully rolled out`)
	mustContain(t, kubectl(t, "-n", ns, "get", "deploy", "big"), "big 30/30 30 30")

	kubectl(t, "-n", ns, "set", "image", "deploy/big", "web=registry.local/web:2")
	mustContain(t, kubectl(t, "-n", ns, "rollout", "status", "deploy/big", "--timeout=90s"), "successfully rolled out")
	mustContain(t, kubectl(t, "-n", ns, "rollout", "history", "deploy/big"), "1 <none>", "2 <none>")
	mustContain(t, kubectl(t, "-n", ns, "rollout", "undo", "deploy/big"), "deployment.apps/big rolled back")
	mustContain(t, kubectl(t, "-n", ns, "rollout", "status", "deploy/big", "--timeout=90s"), "successfully rolled out")
	if img := kubectl(t, "-n", ns, "get", "deploy", "big", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); img != "registry.local/web:1" {
		t.Errorf("after undo the image is %s", img)
	}
	kubectl(t, "-n", ns, "scale", "deploy/big", "--replicas=12")
	mustContain(t, kubectl(t, "-n", ns, "rollout", "status", "deploy/big", "--timeout=60s"), "successfully rolled out")

	// The node of process b goes silent: tainted, its pods replaced on the a nodes.
	stopB()
	waitOutput(t, func() string {
		return strings.TrimSpace(kubectl(t, "get", "node", "e2e-b-0", "-o", "jsonpath={.spec.taints[?(@.key=='node.kubernetes.io/unreachable')].effect}"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		nodes := kubectl(t, "-n", ns, "get", "pods", "-l", "app=big", "--field-selector=status.phase=Running",
			"-o", "jsonpath={range .items[?(@.metadata.deletionTimestamp)]}{end}{range .items[*]}{.spec.nodeName}{\"\\n\"}{end}")
		onA := strings.Count(nodes, "e2e-a-")
		avail := kubectl(t, "-n", ns, "get", "deploy", "big", "-o", "jsonpath={.status.availableReplicas}")
		if onA >= 12 && avail == "12" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("pods did not move off the silent node: %d running on a nodes, %s available\n%s", onA, avail,
				kubectl(t, "-n", ns, "get", "pods", "-o", "wide"))
		}
		time.Sleep(500 * time.Millisecond)
	}

	// As in Kubernetes, pods of a dead node stay Terminating until their kubelet confirms or
	// an operator forces them; then the namespace can empty.
	kubectl(t, "-n", ns, "delete", "pods", "--field-selector=spec.nodeName=e2e-b-0", "--force", "--grace-period=0")
	kubectl(t, "delete", "namespace", ns, "--timeout=50s")
	if out, _, err := kubectlRun(t, nil, "get", "namespace", ns); err == nil {
		t.Errorf("namespace still there after delete: %s", out)
	}
}
