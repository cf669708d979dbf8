package e2e

import (
	"bufio"
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

	"golang.org/x/sys/unix"
	internalapi "k8s.io/cri-api/pkg/apis"
	criclient "k8s.io/cri-client/pkg"

	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

// The node cluster: `nanokube server` with its node agent (runtime and kubelet), in a
// network namespace this package makes, with no route out. Tests that need real containers
// share it, each in its own namespace; it starts on first use.
var node struct {
	once       sync.Once
	err        error
	netns      string
	dir        string
	cgroupRoot string
	cmd        *exec.Cmd
	logf       *os.File
	kubeconfig string
}

const (
	nodeIP    = "10.123.0.1"
	nodeName  = "e2e-node"
	testImage = "nanokube.test/busybox:1"
)

// needNode skips when the machine cannot run containers, else starts the node cluster.
func needNode(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("node tests need root (network namespaces, mounts, cgroups, runc)")
	}
	for _, bin := range []string{"runc", "nsenter", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: run hack/install-deps.sh", bin)
		}
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", testimage.BusyboxPath} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is missing: run hack/install-deps.sh", p)
		}
	}
	node.once.Do(func() { node.err = startNode() })
	if node.err != nil {
		t.Fatal(node.err)
	}
}

func startNode() error {
	node.netns = fmt.Sprintf("nke2e-%d", os.Getpid())
	node.dir = filepath.Join(cluster.dir, "node")
	node.cgroupRoot = "/" + node.netns
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
	// The runtime imports image archives from its images directory at start: the node
	// needs no registry.
	images := filepath.Join(node.dir, "agent", "runtime", "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"sh"}, StopSignal: "SIGTERM"})
	if err != nil {
		return err
	}
	if err := testimage.WriteDockerArchive(filepath.Join(images, "busybox.tar"), testImage, img); err != nil {
		return err
	}
	return runNodeServer()
}

// runNodeServer starts (or restarts) the node cluster's server and waits for the node to
// be Ready.
func runNodeServer() error {
	logf, err := os.OpenFile(filepath.Join(cluster.dir, "node-server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+node.netns, cluster.bin, "server",
		"--data-dir", node.dir, "--secure-port", "6443", "--bind-address", nodeIP, "--advertise-address", nodeIP,
		"--node-name", nodeName, "--pod-logs-dir", filepath.Join(node.dir, "pod-logs"), "--cgroup-root", node.cgroupRoot,
		"--etcd-unsafe-no-fsync", "--node-monitor-grace-period", "10s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return err
	}
	node.cmd, node.logf = cmd, logf
	found := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if readyLine.MatchString(sc.Text()) {
				found <- struct{}{}
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(90 * time.Second):
		log, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("node server not ready within 90s; its log:\n%s", tail(string(log), 4000))
	}
	node.kubeconfig = filepath.Join(node.dir, "admin.kubeconfig")
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

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stopNodeServer ends the server process: gracefully, or with SIGKILL.
func stopNodeServer(kill bool) {
	if node.cmd == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = node.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = node.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = node.cmd.Process.Kill()
		<-done
	}
	node.logf.Close()
	node.cmd = nil
}

// stopNode stops the server, then removes every sandbox it left running through the
// runtime (started alone on the same state), the mounts under its directory, its cgroups
// and the network namespace.
func stopNode() {
	if node.netns == "" {
		return
	}
	stopNodeServer(false)
	if err := removeAllPods(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: node cleanup:", err)
	}
	unmountUnder(node.dir)
	controllers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, c := range controllers {
		removeCgroups(filepath.Join(c, node.cgroupRoot))
	}
	_ = exec.Command("ip", "netns", "del", node.netns).Run()
}

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
	var rs internalapi.RuntimeService
	var err error
	for ctx.Err() == nil {
		if _, serr := os.Stat(sock); serr == nil {
			if rs, err = criclient.NewRemoteRuntimeServiceBuilder().WithEndpoint("unix://" + sock).
				WithConnectionTimeout(10 * time.Second).WithTracerProvider(nil).Build(ctx); err == nil {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rs == nil {
		return fmt.Errorf("runtime for cleanup: %v", err)
	}
	sbs, err := rs.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	for _, sb := range sbs {
		_ = rs.StopPodSandbox(ctx, sb.Id)
		if err := rs.RemovePodSandbox(ctx, sb.Id); err != nil {
			return err
		}
	}
	return nil
}

func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
}

func removeCgroups(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeCgroups(filepath.Join(dir, e.Name()))
		}
	}
	_ = unix.Rmdir(dir)
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

func nkRun(stdin *strings.Reader, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
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
