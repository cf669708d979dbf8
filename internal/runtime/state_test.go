package runtime

import (
	"os"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/shim"
)

// TestContainerStateFromMemory holds the runtime to answering status and list calls from
// memory while a container's shim runs (the kubelet relists every second, so a list must
// not read files per container), to noticing the exit by itself, and to keeping the exit
// record once read: it is final.
func TestContainerStateFromMemory(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	e.pull()
	podCfg := e.podConfig("state")
	pod := e.runPod(podCfg)
	id := e.createContainer(pod, podCfg, "waiter", "sh", "-c", "while [ ! -f /tmp/go ]; do sleep 0.05; done; exit 7")
	e.startContainer(id)
	e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)

	list := func() runtimeapi.ContainerState {
		t.Helper()
		resp, err := e.rs.ListContainers(c, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Containers) != 1 {
			t.Fatalf("listed %d containers, want 1", len(resp.Containers))
		}
		return resp.Containers[0].State
	}

	// With the shim's pid file out of the way, a runtime that reads it on every call would
	// report the container dead.
	bundle := filepath.Join(e.cfg.Root, "containers", id)
	pidFile := filepath.Join(bundle, shim.PidFile)
	if err := os.Rename(pidFile, pidFile+".aside"); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("listed state %v without the pid file, want RUNNING", got)
	}
	if got := e.status(id).State; got != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("status %v without the pid file, want RUNNING", got)
	}
	if err := os.Rename(pidFile+".aside", pidFile); err != nil {
		t.Fatal(err)
	}

	e.execSync(id, "touch", "/tmp/go")
	st := e.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED)
	if st.ExitCode != 7 || st.Reason != "Error" || st.FinishedAt == 0 {
		t.Fatalf("exited with code %d reason %q finished %d, want 7, Error, a time", st.ExitCode, st.Reason, st.FinishedAt)
	}
	if got := list(); got != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("listed state %v after the exit, want EXITED", got)
	}
	// The record is read once and kept.
	if err := os.Remove(filepath.Join(bundle, shim.ExitFile)); err != nil {
		t.Fatal(err)
	}
	if again := e.status(id); again.ExitCode != 7 || again.FinishedAt != st.FinishedAt {
		t.Errorf("after the record was removed: code %d finished %d, want 7 and %d", again.ExitCode, again.FinishedAt, st.FinishedAt)
	}
	if _, err := e.rs.RemoveContainer(c, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
}
