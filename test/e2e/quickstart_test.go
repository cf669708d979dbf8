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

// The README's quickstart on the node cluster: the demo image built by the project's own
// script (hack/demo-image) where the node imports images, examples/demo.yaml applied with
// kubectl, the rollout awaited, and the demo answering with curl through its ClusterIP and
// its NodePort from the node's network namespace, its requests in `kubectl logs`.
func TestQuickstart(t *testing.T) {
	needNode(t)
	if node.runtime != runtimeNanokube {
		// The quickstart is `nanokube server` with its own agent; the containerd node runs
		// the kubelet alone, with no service proxy and no image directory.
		t.Skipf("the quickstart runs nanokube's own node; %s=%s runs none", runtimeEnv, node.runtime)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	buildDemoImage(t, root, filepath.Join(node.dir, "agent", "runtime", "images", "demo.tar"))
	// The runtime imports archives when it starts: restart the node, as a user restarts
	// `make run` (the other tests' pods keep running and are adopted).
	stopNodeServer(false)
	if err := runNodeServer(); err != nil {
		t.Fatal(err)
	}
	// A machine has a default route; the node's namespace has none, and without a route the
	// kernel fails a connect to a ClusterIP (ENETUNREACH) before the proxy's nat output
	// chain can rewrite it. The route stands in for the default one; the address behind it
	// is never reached.
	if out, err := exec.Command("ip", "-n", node.netns, "route", "replace", "10.96.0.0/12", "dev", "nkhost0").CombinedOutput(); err != nil {
		t.Fatalf("ip route: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "-n", node.netns, "route", "del", "10.96.0.0/12", "dev", "nkhost0").Run()
	})

	ns := nodeNamespace(t)
	mustContain(t, nk(t, "-n", ns, "apply", "-f", filepath.Join(root, "examples", "demo.yaml")),
		"deployment.apps/demo created", "service/demo created")
	nk(t, "-n", ns, "rollout", "status", "deployment/demo", "--timeout=120s")
	mustContain(t, nk(t, "-n", ns, "get", "deployment", "demo"), "2/2")

	// Through the ClusterIP (the proxy's rules for traffic the node itself originates): both
	// pods answer over a few requests, each with its name and the image's version.
	pods := strings.Fields(nk(t, "-n", ns, "get", "pods", "-l", "app=demo", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(pods) != 2 {
		t.Fatalf("demo pods = %v, want 2", pods)
	}
	clusterIP := jsonpath(ns, "service/demo", "{.spec.clusterIP}")
	seen := map[string]bool{}
	waitFor(t, "both demo pods through the ClusterIP", 60*time.Second, func() (string, bool) {
		out, err := curlFromNode("http://" + clusterIP + "/")
		for _, p := range pods {
			if out == "hello from "+p+" (demo version 1)\n" {
				seen[p] = true
			}
		}
		return out + " " + errString(err), len(seen) == len(pods)
	})

	// Through the NodePort on the node's address, as the README's curl does.
	waitFor(t, "the demo through NodePort 30080", 30*time.Second, func() (string, bool) {
		out, err := curlFromNode("http://" + nodeIP + ":30080/")
		return out + " " + errString(err), err == nil && strings.HasPrefix(out, "hello from demo-") && strings.HasSuffix(out, "(demo version 1)\n")
	})

	// Each request is a line on the container's stdout, which `kubectl logs` shows.
	logs := nk(t, "-n", ns, "logs", "-l", "app=demo", "--tail=-1")
	mustContain(t, logs, "msg=request method=GET path=/ status=200")
}

// buildDemoImage runs `go run ./hack/demo-image`, as `make demo-image` does, writing archive.
func buildDemoImage(t *testing.T, root, archive string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/demo-image", "-out", archive)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/demo-image: %v\n%s", err, out)
	}
	if _, err := os.Stat(archive); err != nil {
		t.Fatal(err)
	}
}

// curlFromNode GETs url from the node's network namespace with curl, as the README does
// (busybox's wget where curl is not installed).
func curlFromNode(url string) (string, error) {
	args := []string{"curl", "-sS", "--max-time", "3", url}
	if _, err := exec.LookPath("curl"); err != nil {
		args = []string{"busybox", "wget", "-q", "-T", "3", "-O", "-", url}
	}
	out, err := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + node.netns}, args...)...).CombinedOutput()
	return string(out), err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
