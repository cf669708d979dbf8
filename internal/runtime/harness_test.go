package runtime

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/container"
	"github.com/nanokube/nanokube/internal/runtime/shim"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

// testEnv is a runtime serving on a socket, a CRI client for it, and a registry with the
// test image pushed.
type testEnv struct {
	t       *testing.T
	cfg     Config
	rt      *Runtime
	stop    func()
	conn    *grpc.ClientConn
	rs      runtimeapi.RuntimeServiceClient
	is      runtimeapi.ImageServiceClient
	reg     string
	image   string // busybox image ref in the registry
	subnet  string
	bridge  string
	podSeq  int
	logRoot string
}

func requireNode(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("runtime integration tests need root (namespaces, mounts, runc)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc binary not installed: run hack/install-deps.sh")
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", testimage.BusyboxPath} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing: run hack/install-deps.sh", p)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	requireNode(t)
	e := &testEnv{t: t}
	e.reg = testimage.StartRegistry(t, "")
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"sleep", "3600"}, StopSignal: "SIGTERM"})
	if err != nil {
		t.Fatal(err)
	}
	e.image = e.reg + "/test/busybox:1"
	if err := testimage.Push(e.image, img); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "nkrt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	suffix := randHex(2)
	e.bridge = "nkt" + suffix
	var third byte
	fmt.Sscanf(suffix[:2], "%02x", &third)
	e.subnet = fmt.Sprintf("10.244.%d.0/24", 100+int(third)%150)
	e.logRoot = t.TempDir()
	e.cfg = Config{
		Root: t.TempDir(), Socket: filepath.Join(sockDir, "cri.sock"), CNIBridge: e.bridge, NoMasquerade: true,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	t.Cleanup(e.cleanup)
	e.start()
	if _, err := e.rs.UpdateRuntimeConfig(ctx(t), &runtimeapi.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: e.subnet}}}); err != nil {
		t.Fatal(err)
	}
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// start runs a Runtime on e.cfg and connects a client.
func (e *testEnv) start() {
	t := e.t
	rt, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	select {
	case <-rt.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("runtime exited before ready: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("runtime not ready in 20s")
	}
	conn, err := grpc.NewClient("unix://"+e.cfg.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e.rt, e.conn = rt, conn
	e.rs, e.is = runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	e.stop = func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runtime Run: %v", err)
		}
	}
}

// restart stops the runtime (containers keep running) and starts a new one on the same root.
func (e *testEnv) restart() {
	e.stop()
	e.stop = nil
	e.start()
}

// cleanup removes every sandbox through CRI, then sweeps whatever a failed test left:
// shims, runc containers, mounts, the bridge, cgroups.
func (e *testEnv) cleanup() {
	t := e.t
	if e.stop != nil {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if list, err := e.rs.ListPodSandbox(c, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, s := range list.Items {
				if _, err := e.rs.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
					t.Errorf("cleanup: remove sandbox %s: %v", s.Id, err)
				}
			}
		}
		if list, err := e.rs.ListContainers(c, &runtimeapi.ListContainersRequest{}); err == nil && len(list.Containers) > 0 {
			t.Errorf("cleanup: %d containers left after removing all sandboxes", len(list.Containers))
		}
		cancel()
		e.stop()
	}
	// Sweep.
	shims, _ := filepath.Glob(filepath.Join(e.cfg.Root, "containers", "*", shim.PidFile))
	for _, p := range shims {
		if container.ShimAlive(filepath.Dir(p)) {
			t.Errorf("cleanup: shim of %s still running", filepath.Base(filepath.Dir(p)))
		}
	}
	runcRoot := filepath.Join(e.cfg.Root, "runc")
	states, _ := os.ReadDir(runcRoot)
	for _, s := range states {
		t.Errorf("cleanup: runc container %s left", s.Name())
		_ = exec.Command("runc", "--root", runcRoot, "delete", "--force", s.Name()).Run()
	}
	for _, p := range shims {
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = container.WaitExit(wctx, filepath.Dir(p))
		cancel()
	}
	for _, m := range mountsUnder(e.cfg.Root) {
		t.Errorf("cleanup: mount %s left", m)
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	if out, err := exec.Command("ip", "link", "del", e.bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
		t.Logf("cleanup: delete bridge %s: %v %s", e.bridge, err, out)
	}
	// Pod cgroup parents are the kubelet's to remove; here the test is the kubelet.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/nanokube-test/uid-*")
	for _, d := range dirs {
		_ = os.Remove(d)
	}
	dirs, _ = filepath.Glob("/sys/fs/cgroup/*/nanokube-test")
	more, _ := filepath.Glob("/sys/fs/cgroup/*/nanokube")
	for _, d := range append(dirs, more...) {
		_ = os.Remove(d) // fails, harmlessly, while another test still uses it
	}
}

func mountsUnder(root string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], root+"/") {
			out = append(out, fields[4])
		}
	}
	// Deepest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func (e *testEnv) pull() string {
	resp, err := e.is.PullImage(ctx(e.t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.image}})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.ImageRef
}

func (e *testEnv) podConfig(name string) *runtimeapi.PodSandboxConfig {
	e.podSeq++
	uid := fmt.Sprintf("uid-%s-%d", name, e.podSeq)
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(e.logRoot, uid),
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
		Labels:       map[string]string{"app": name},
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/nanokube-test/" + uid},
	}
}

func (e *testEnv) runPod(cfg *runtimeapi.PodSandboxConfig) string {
	e.t.Helper()
	resp, err := e.rs.RunPodSandbox(ctx(e.t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.PodSandboxId
}

func (e *testEnv) createContainer(pod string, podCfg *runtimeapi.PodSandboxConfig, name string, cmd ...string) string {
	e.t.Helper()
	resp, err := e.rs.CreateContainer(ctx(e.t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod, SandboxConfig: podCfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: e.image},
			Command:  cmd,
			LogPath:  name + ".log",
			Labels:   map[string]string{"c": name},
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.ContainerId
}

func (e *testEnv) startContainer(id string) {
	e.t.Helper()
	if _, err := e.rs.StartContainer(ctx(e.t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) status(id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	resp, err := e.rs.ContainerStatus(ctx(e.t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Status
}

// waitState polls the container's state until it is want.
func (e *testEnv) waitState(id string, want runtimeapi.ContainerState) *runtimeapi.ContainerStatus {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := e.status(id)
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s is %v, want %v", id, st.State, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *testEnv) execSync(id string, cmd ...string) *runtimeapi.ExecSyncResponse {
	e.t.Helper()
	resp, err := e.rs.ExecSync(ctx(e.t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		e.t.Fatalf("exec %v: %v", cmd, err)
	}
	return resp
}
