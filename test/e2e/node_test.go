package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nanokube/nanokube/internal/multinode"
	"github.com/nanokube/nanokube/internal/nodecleanup"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

// The node cluster: `nanokube server` with its node agent (runtime and kubelet), in a
// network namespace this package makes, with no route out. Tests that need real containers
// share it, each in its own namespace; it starts on first use.
//
// With NANOKUBE_E2E_RUNTIME=containerd the same namespace holds instead the control plane
// alone (`nanokube server --disable-agent`), containerd and `nanokube kubelet` driving it
// over CRI (containerd_test.go).
var node struct {
	once       sync.Once
	err        error
	runtime    string
	netns      string
	dir        string
	cgroupRoot string
	kubeconfig string
	// server is `nanokube server`: with its agent for nanokube's runtime, the control plane
	// only for containerd.
	server *nodeProcess
	// kubelet and containerd run only for containerd.
	kubelet    *nodeProcess
	containerd *containerdNode
}

const (
	nodeIP    = "10.123.0.1"
	nodeName  = "e2e-node"
	testImage = "nanokube.test/busybox:1"
)

// The runtimes the node cluster can run its pods with, chosen by runtimeEnv.
const (
	runtimeEnv        = "NANOKUBE_E2E_RUNTIME"
	runtimeNanokube   = "nanokube"
	runtimeContainerd = "containerd"
)

// needNode skips when the machine cannot run containers, else starts the node cluster.
func needNode(t *testing.T) {
	t.Helper()
	rt := os.Getenv(runtimeEnv)
	switch rt {
	case "":
		rt = runtimeNanokube
	case runtimeNanokube, runtimeContainerd:
	default:
		t.Fatalf("%s=%q: want %s or %s", runtimeEnv, rt, runtimeNanokube, runtimeContainerd)
	}
	if os.Getuid() != 0 {
		t.Skip("node tests need root (network namespaces, mounts, cgroups, runc)")
	}
	bins := []string{"runc", "nsenter", "ip"}
	files := []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", testimage.BusyboxPath}
	if rt == runtimeContainerd {
		bins = append(bins, "containerd", "containerd-shim-runc-v2", "ctr")
		files = append(files, "/usr/lib/cni/portmap")
	}
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: run hack/install-deps.sh", bin)
		}
	}
	for _, p := range files {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is missing: run hack/install-deps.sh", p)
		}
	}
	node.once.Do(func() {
		node.runtime = rt
		node.err = startNode()
	})
	if node.err != nil {
		t.Fatal(node.err)
	}
}

func startNode() error {
	node.netns = fmt.Sprintf("nke2e-%d", os.Getpid())
	node.dir = filepath.Join(cluster.dir, "node")
	node.cgroupRoot = "/" + node.netns
	node.kubeconfig = filepath.Join(node.dir, "admin.kubeconfig")
	for _, args := range [][]string{
		{"netns", "add", node.netns},
		{"-n", node.netns, "link", "set", "lo", "up"},
		{"-n", node.netns, "link", "add", "nkhost0", "type", "bridge"},
		{"-n", node.netns, "addr", "add", nodeIP + "/24", "dev", "nkhost0"},
		{"-n", node.netns, "link", "set", "nkhost0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"sh"}, StopSignal: "SIGTERM"})
	if err != nil {
		return err
	}
	if node.runtime == runtimeContainerd {
		return startContainerdNode(img)
	}
	// The runtime imports image archives from its images directory at start: the node
	// needs no registry.
	images := filepath.Join(node.dir, "agent", "runtime", "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	if err := testimage.WriteDockerArchive(filepath.Join(images, "busybox.tar"), testImage, img); err != nil {
		return err
	}
	return runNodeServer()
}

// runNodeServer starts (or restarts) what runs the node's pods and waits for the node to
// be Ready: for nanokube's runtime the whole server (agent included), for containerd the
// kubelet alone, against the containerd and control plane that keep running.
func runNodeServer() error {
	var err error
	if node.runtime == runtimeContainerd {
		err = startKubelet()
	} else {
		err = startNodeServer("--node-name", nodeName, "--pod-logs-dir", filepath.Join(node.dir, "pod-logs"),
			"--cgroup-root", node.cgroupRoot)
	}
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + node.netns, "kubectl"},
			nodeKubectlArgs("get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)...)...).Output()
		if string(out) == "True" {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("node %s not Ready within 60s", nodeName)
}

// startNodeServer runs `nanokube server` with extra flags and waits for its ready line.
func startNodeServer(extra ...string) error {
	args := append([]string{cluster.bin, "server",
		"--data-dir", node.dir, "--secure-port", "6443", "--bind-address", nodeIP, "--advertise-address", nodeIP,
		"--etcd-unsafe-no-fsync", "--node-monitor-grace-period", "10s"}, extra...)
	p, err := startNodeProcess("node server", "node-server.log", args...)
	if err != nil {
		return err
	}
	node.server = p
	return p.WaitLog(context.Background(), readyLine, 90*time.Second)
}

// stopNodeServer ends what runNodeServer started, gracefully or with SIGKILL: the whole
// server for nanokube's runtime; for containerd the kubelet only, as when a kubelet
// crashes (containerd and the control plane keep running).
func stopNodeServer(kill bool) {
	if node.runtime == runtimeContainerd {
		node.kubelet.Stop(kill)
		node.kubelet = nil
		return
	}
	node.server.Stop(kill)
	node.server = nil
}

// nodeProcess is a process of the node cluster, run in its network namespace, its output
// appended to a log file in the cluster's directory.
type nodeProcess = multinode.Process

func startNodeProcess(name, logName string, args ...string) (*nodeProcess, error) {
	return multinode.StartProcess(name, node.netns, filepath.Join(cluster.dir, logName), args...)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stopNode stops the node cluster's processes, then removes every sandbox left running
// through the runtime, the mounts under the node's directory, its cgroups and the network
// namespace.
func stopNode() {
	if node.netns == "" {
		return
	}
	if node.runtime == runtimeContainerd {
		stopContainerdNode()
	} else {
		stopNodeServer(false)
		if err := removeAllPods(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: node cleanup:", err)
		}
	}
	nodecleanup.Unmount(node.dir)
	nodecleanup.RemoveCgroupsEverywhere(node.cgroupRoot)
	_ = exec.Command("ip", "netns", "del", node.netns).Run()
}

// removeAllPods removes every sandbox through nanokube's runtime, started alone on the
// agent's state.
func removeAllPods() error {
	root := filepath.Join(node.dir, "agent", "runtime")
	sock := filepath.Join(root, "cri.sock")
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+node.netns, cluster.bin, "runtime", "--root", root, "--socket", sock)
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := nodecleanup.RemoveSandboxes(ctx, sock)
	return err
}

func nodeKubectlArgs(args ...string) []string {
	return append([]string{"--kubeconfig", node.kubeconfig, "--cache-dir", filepath.Join(node.dir, "kubectl-cache")}, args...)
}

// nodeKubectlCmd is kubectl against the node cluster, run inside its network namespace.
func nodeKubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--net=/var/run/netns/" + node.netns, "kubectl"}, nodeKubectlArgs(args...)...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = append(os.Environ(), "KUBECTL_KUBERC=false")
	return cmd
}

// nk runs kubectl against the node cluster and returns stdout; it fails the test on error.
func nk(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := nkRun(nil, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func nkIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := nkRun(strings.NewReader(stdin), args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// nkRun runs kubectl against the node cluster. Its deadline is only a backstop, past the
// longest --timeout a test gives kubectl (120 s).
func nkRun(stdin *strings.Reader, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second)
	defer cancel()
	cmd := nodeKubectlCmd(ctx, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// nodeNamespace creates a namespace in the node cluster for one test and deletes it (and
// so its pods) at the end.
func nodeNamespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = strings.Trim(name[:50], "-")
	}
	nk(t, "create", "namespace", name)
	t.Cleanup(func() {
		if _, errOut, err := nkRun(nil, "delete", "namespace", name, "--wait=true", "--timeout=90s"); err != nil {
			t.Logf("deleting namespace %s: %v %s", name, err, errOut)
		}
	})
	return name
}

// waitFor polls kubectl's jsonpath output for a pod until cond holds.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (string, bool)) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if last, ok = cond(); ok {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last: %s", what, last)
	return ""
}

// jsonpath returns a field of an object in the node cluster ("" when it cannot be read).
func jsonpath(ns, obj, path string) string {
	out, _, _ := nkRun(nil, "-n", ns, "get", obj, "-o", "jsonpath="+path)
	return out
}

func waitJSONPath(t *testing.T, ns, obj, path string, timeout time.Duration, ok func(string) bool) string {
	t.Helper()
	return waitFor(t, obj+" "+path, timeout, func() (string, bool) {
		v := jsonpath(ns, obj, path)
		return v, ok(v)
	})
}

func equals(want string) func(string) bool { return func(s string) bool { return s == want } }
