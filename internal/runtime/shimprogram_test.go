package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/shim"
	"github.com/nanokube/nanokube/internal/runtime/shimbin"
)

// buildShim builds the dedicated shim program as the Makefile does.
func buildShim(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the shim program: %v", err)
	}
	out := filepath.Join(t.TempDir(), "nanokube-shim")
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, "./shim/cmd/nanokube-shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the shim program: %v\n%s", err, b)
	}
	return out
}

func TestShimProgramChoice(t *testing.T) {
	requireNode(t)
	dedicated := buildShim(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	newRuntime := func(program string) (*Runtime, string, error) {
		root := t.TempDir()
		rt, err := New(Config{Root: root, Socket: filepath.Join(root, "cri.sock"), ShimProgram: program})
		return rt, root, err
	}
	if rt, _, err := newRuntime(dedicated); err != nil {
		t.Errorf("explicit shim program: %v", err)
	} else if rt.shim != dedicated {
		t.Errorf("explicit shim program: runs %s, want %s", rt.shim, dedicated)
	}
	// A program that does not speak the shim contract is refused at start, not at the
	// first container.
	if _, _, err := newRuntime("/bin/true"); err == nil || !strings.Contains(err.Error(), "answered") {
		t.Errorf("/bin/true as the shim program: %v", err)
	}
	if _, _, err := newRuntime("/nonexistent/shim"); err == nil {
		t.Error("a missing shim program was accepted")
	}
	rt, root, err := newRuntime("")
	if err != nil {
		t.Fatal(err)
	}
	if program, _ := shimbin.Embedded(); program == nil {
		if rt.shim != self {
			t.Errorf("no shim embedded: runs %s, want this binary %s", rt.shim, self)
		}
		return
	}
	if filepath.Dir(rt.shim) != filepath.Join(root, "bin") || !strings.HasPrefix(filepath.Base(rt.shim), shimbin.ProgramName+"-") {
		t.Errorf("embedded shim installed as %s", rt.shim)
	}
}

// TestShimUpgrade runs containers and a pod init under one shim program, restarts the
// runtime on another and back, as an upgrade from a nanokube that re-executed itself to one
// with the dedicated shim (and a downgrade) would: every running shim must be adopted.
func TestShimUpgrade(t *testing.T) {
	e := newTestEnv(t)
	e.pull()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dedicated := buildShim(t)
	shimExe := func(id string) string {
		t.Helper()
		c, err := e.rt.getContainer(id)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(c.dir, shim.PidFile))
		if err != nil {
			t.Fatal(err)
		}
		exe, _ := os.Readlink("/proc/" + strings.TrimSpace(string(b)) + "/exe")
		return strings.TrimSuffix(exe, " (deleted)")
	}
	logOf := func(podCfg *runtimeapi.PodSandboxConfig, name string) string {
		b, _ := os.ReadFile(filepath.Join(podCfg.LogDirectory, name+".log"))
		return string(b)
	}

	e.cfg.ShimProgram = self
	e.restart()
	podCfg := e.podConfig("upgrade")
	podCfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}
	pod := e.runPod(podCfg)
	old := e.createContainer(pod, podCfg, "old", "sh", "-c", "echo from-old; sleep 3600")
	e.startContainer(old)
	e.waitState(old, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if got := shimExe(old); got != self {
		t.Fatalf("shim runs %s, want %s", got, self)
	}
	before := e.status(old)

	e.cfg.ShimProgram = dedicated
	e.restart()
	after := e.status(old)
	if after.State != runtimeapi.ContainerState_CONTAINER_RUNNING || after.StartedAt != before.StartedAt {
		t.Fatalf("after the upgrade the old container is %v, started %d (was %d)", after.State, after.StartedAt, before.StartedAt)
	}
	if r := e.execSync(old, "echo", "adopted"); string(r.Stdout) != "adopted\n" {
		t.Errorf("exec in the adopted container: %q", r.Stdout)
	}
	if _, err := e.rs.ReopenContainerLog(ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: old}); err != nil {
		t.Errorf("reopen the log of the adopted container: %v", err)
	}
	ps, err := e.rs.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil || ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("sandbox with its old pod init after the upgrade: %v, %v", ps, err)
	}
	newer := e.createContainer(pod, podCfg, "new", "sh", "-c", "echo from-new; sleep 3600")
	e.startContainer(newer)
	e.waitState(newer, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if got := shimExe(newer); got != dedicated {
		t.Errorf("new shim runs %s, want %s", got, dedicated)
	}
	// The new container joined the old pod init's pid namespace.
	if out := string(e.execSync(newer, "ps", "-o", "args").Stdout); !strings.Contains(out, "sleep 3600") || strings.Count(out, "sleep 3600") < 2 {
		t.Errorf("the new container does not share the old pod's pid namespace:\n%s", out)
	}
	pod2Cfg := e.podConfig("upgrade2")
	pod2Cfg.Linux.SecurityContext = podCfg.Linux.SecurityContext
	pod2 := e.runPod(pod2Cfg)
	s2, err := e.rt.getSandbox(pod2)
	if err != nil {
		t.Fatal(err)
	}
	if exe, _ := os.Readlink("/proc/" + strconv.Itoa(s2.PodInitPid) + "/exe"); exe != dedicated {
		t.Errorf("new pod init runs %s, want %s", exe, dedicated)
	}
	short := e.createContainer(pod2, pod2Cfg, "short", "sh", "-c", "echo bye >&2; exit 3")
	e.startContainer(short)
	if st := e.waitState(short, runtimeapi.ContainerState_CONTAINER_EXITED); st.ExitCode != 3 {
		t.Errorf("exit code under the dedicated shim: %d, want 3", st.ExitCode)
	}
	if l := logOf(pod2Cfg, "short"); !strings.HasSuffix(l, " stderr F bye\n") {
		t.Errorf("log under the dedicated shim: %q", l)
	}

	// And back: a downgrade adopts the dedicated shims as well.
	e.cfg.ShimProgram = self
	e.restart()
	for _, id := range []string{old, newer} {
		if st := e.status(id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("after the downgrade %s is %v", id, st.State)
		}
		if _, err := e.rs.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
			t.Fatal(err)
		}
		if st := e.status(id); st.ExitCode != 137 {
			t.Errorf("killed container %s exit code %d, want 137", id, st.ExitCode)
		}
	}
	for name, want := range map[string]string{"old": "from-old", "new": "from-new"} {
		if l := logOf(podCfg, name); !strings.Contains(l, " stdout F "+want+"\n") {
			t.Errorf("log of %s: %q", name, l)
		}
	}
}
