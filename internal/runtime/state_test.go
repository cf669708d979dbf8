package runtime

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestListDuringStop holds the runtime to answering lists and statuses while a container
// is being stopped: the stop waits out the grace period, and the kubelet's relist (and so
// every pod's state on the node) must not wait with it.
func TestListDuringStop(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	e.pull()
	podCfg := e.podConfig("stubborn")
	pod := e.runPod(podCfg)
	id := e.createContainer(pod, podCfg, "stubborn", "sh", "-c", "trap 'touch /tmp/term' TERM; while true; do sleep 0.05; done")
	e.startContainer(id)
	e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)

	stopped := make(chan error, 1)
	go func() {
		_, err := e.rs.StopContainer(c, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 30})
		stopped <- err
	}()
	// The container ignores SIGTERM (it notes it in its rootfs): from then on the stop
	// waits out its 30 s before it kills.
	term := filepath.Join(e.cfg.Root, "containers", id, "rootfs", "tmp", "term")
	for {
		if _, err := os.Stat(term); err == nil {
			break
		}
		if c.Err() != nil {
			t.Fatal("the container never got SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := e.rs.ListContainers(c, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil || len(resp.Containers) != 1 || resp.Containers[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("list during the stop: %v, %v", resp, err)
	}
	if st := e.status(id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("status during the stop: %v", st.State)
	}
	select {
	case err := <-stopped:
		t.Fatalf("the stop returned (%v) before the list could show it blocks nothing", err)
	default:
	}
	// Kill it without waiting out the grace period: a second stop queues behind the first,
	// so kill the init through runc and let the first stop see the exit.
	if err := e.rt.runc.Kill(c, id, unix.SIGKILL, true); err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if st := e.status(id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
		t.Fatalf("after the stop: %v code %d, want EXITED 137", st.State, st.ExitCode)
	}
}
