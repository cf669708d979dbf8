package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	exitutil "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/container"
	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *testEnv) createWith(pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	if cfg.Image == nil {
		cfg.Image = &runtimeapi.ImageSpec{Image: e.image}
	}
	if cfg.LogPath == "" {
		cfg.LogPath = cfg.Metadata.GetName() + ".log"
	}
	resp, err := e.rs.CreateContainer(ctx(e.t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: cfg})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.ContainerId
}

// TestStreaming covers Attach (plain and with a terminal) and the WebSocket protocols for
// exec, attach and port-forward, all through URLs handed out over the CRI socket.
func TestStreaming(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	e.pull()
	podCfg := e.podConfig("attach")
	pod := e.runPod(podCfg)

	t.Run("AttachSPDY", func(t *testing.T) {
		id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "sh"},
			Command: []string{"sh"}, Stdin: true, StdinOnce: true})
		e.startContainer(id)
		e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		resp, err := e.rs.Attach(c, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(resp.Url)
		exe, err := remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr syncBuffer
		err = exe.StreamWithContext(c, remotecommand.StreamOptions{
			Stdin: strings.NewReader("echo hello; echo oops >&2\n"), Stdout: &stdout, Stderr: &stderr})
		if err != nil {
			t.Fatalf("attach: %v", err)
		}
		if stdout.String() != "hello\n" || stderr.String() != "oops\n" {
			t.Errorf("attach stdout %q stderr %q", stdout.String(), stderr.String())
		}
		// StdinOnce: closing the attached stdin ended the shell.
		if st := e.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED); st.ExitCode != 0 {
			t.Errorf("exit code %d", st.ExitCode)
		}
	})

	t.Run("AttachSPDYInputLater", func(t *testing.T) {
		// critest's attach spec: attach first, type a command a while later, read its output
		// while the stream is still open.
		id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "sh-later"},
			Command: []string{"/bin/sh"}, Stdin: true, StdinOnce: true})
		e.startContainer(id)
		e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		resp, err := e.rs.Attach(c, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(resp.Url)
		exe, err := remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
		if err != nil {
			t.Fatal(err)
		}
		in, inw := io.Pipe()
		var stdout, stderr syncBuffer
		got := make(chan string, 1)
		go func() {
			defer inw.Close()
			time.Sleep(500 * time.Millisecond)
			if _, err := inw.Write([]byte("echo -n hello\n")); err != nil {
				got <- "write: " + err.Error()
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for stdout.String() != "hello" && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			got <- stdout.String()
		}()
		if err := exe.StreamWithContext(c, remotecommand.StreamOptions{Stdin: in, Stdout: &stdout, Stderr: &stderr}); err != nil {
			t.Fatalf("attach: %v", err)
		}
		if out := <-got; out != "hello" {
			t.Errorf("attach stdout while the stream was open: %q, want hello (output without a newline must not wait for one)", out)
		}
	})

	t.Run("AttachTTYWebSocket", func(t *testing.T) {
		id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "tty"},
			Command: []string{"sh"}, Stdin: true, Tty: true})
		e.startContainer(id)
		e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		resp, err := e.rs.Attach(c, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true})
		if err != nil {
			t.Fatal(err)
		}
		exe, err := remotecommand.NewWebSocketExecutor(&rest.Config{}, "GET", resp.Url)
		if err != nil {
			t.Fatal(err)
		}
		in, inW := io.Pipe()
		var stdout syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- exe.StreamWithContext(c, remotecommand.StreamOptions{Stdin: in, Stdout: &stdout, Tty: true})
		}()
		// The shell prints its prompt; then it answers on the terminal and exits.
		_, _ = inW.Write([]byte("stty size; echo on-$(tty | cut -c1-8); exit 3\n"))
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tty attach: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("tty attach did not end; output %q", stdout.String())
		}
		inW.Close()
		if !strings.Contains(stdout.String(), "on-/dev/pts") {
			t.Errorf("tty attach output %q", stdout.String())
		}
		if st := e.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED); st.ExitCode != 3 {
			t.Errorf("exit code %d, want 3", st.ExitCode)
		}
		if logs := readLog(t, st(e, id).LogPath); !strings.Contains(logs, "on-/dev/pts") {
			t.Errorf("tty container's log %q", logs)
		}
	})

	web := e.createContainer(pod, podCfg, "web", "sh", "-c",
		"mkdir -p /tmp/www && echo over-ws > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www")
	e.startContainer(web)
	e.waitState(web, runtimeapi.ContainerState_CONTAINER_RUNNING)

	t.Run("ExecWebSocket", func(t *testing.T) {
		resp, err := e.rs.Exec(c, &runtimeapi.ExecRequest{ContainerId: web, Cmd: []string{"sh", "-c", "cat; echo to-err >&2; exit 7"},
			Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		exe, err := remotecommand.NewWebSocketExecutor(&rest.Config{}, "GET", resp.Url)
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr syncBuffer
		err = exe.StreamWithContext(c, remotecommand.StreamOptions{Stdin: strings.NewReader("via-ws\n"), Stdout: &stdout, Stderr: &stderr})
		var exitErr exitutil.CodeExitError
		if !errors.As(err, &exitErr) || exitErr.Code != 7 {
			t.Errorf("websocket exec error %v, want exit code 7", err)
		}
		if stdout.String() != "via-ws\n" || stderr.String() != "to-err\n" {
			t.Errorf("websocket exec stdout %q stderr %q", stdout.String(), stderr.String())
		}
	})

	t.Run("PortForwardWebSocket", func(t *testing.T) {
		pf, err := e.rs.PortForward(c, &runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{8080}})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(pf.Url)
		dialer, err := portforward.NewSPDYOverWebsocketDialer(u, &rest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		stop, ready := make(chan struct{}), make(chan struct{})
		fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		fwErr := make(chan error, 1)
		go func() { fwErr <- fw.ForwardPorts() }()
		defer func() { close(stop); <-fwErr }()
		select {
		case <-ready:
		case err := <-fwErr:
			t.Fatalf("port-forward: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("port-forward not ready")
		}
		ports, err := fw.GetPorts()
		if err != nil {
			t.Fatal(err)
		}
		body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
		if body != "over-ws\n" {
			t.Errorf("GET through websocket port-forward = %q", body)
		}
	})
}

func st(e *testEnv, id string) *runtimeapi.ContainerStatus { return e.status(id) }

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := readFileEventually(path, "on-")
	if err != nil {
		t.Errorf("read log: %v", err)
	}
	return string(b)
}

// readFileEventually reads path until it holds want (the shim writes asynchronously).
func readFileEventually(path, want string) ([]byte, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if (err == nil && bytes.Contains(b, []byte(want))) || time.Now().After(deadline) {
			return b, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		hc := &http.Client{Timeout: 5 * time.Second}
		r, err := hc.Get(u)
		if err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", u, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStatsNamespacesAndErrors covers container and sandbox stats from cgroups, the pod's
// shared pid namespace, OOMKilled, and runc failures as gRPC codes.
func TestStatsNamespacesAndErrors(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	e.pull()

	t.Run("Stats", func(t *testing.T) {
		podCfg := e.podConfig("stats")
		pod := e.runPod(podCfg)
		id := e.createContainer(pod, podCfg, "busy", "sh", "-c",
			"dd if=/dev/zero of=/written bs=1M count=3 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; touch /ready; exec sleep 3600")
		e.startContainer(id)
		deadline := time.Now().Add(20 * time.Second)
		for e.execSync(id, "test", "-e", "/ready").ExitCode != 0 {
			if time.Now().After(deadline) {
				t.Fatal("container did not get ready")
			}
			time.Sleep(50 * time.Millisecond)
		}
		resp, err := e.rs.ContainerStats(c, &runtimeapi.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		s := resp.Stats
		if s.GetAttributes().GetId() != id || s.GetAttributes().GetMetadata().GetName() != "busy" {
			t.Errorf("stats attributes %v", s.GetAttributes())
		}
		if s.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 {
			t.Errorf("cpu usage is zero: %v", s.GetCpu())
		}
		if s.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
			t.Errorf("memory working set is zero: %v", s.GetMemory())
		}
		if used := s.GetWritableLayer().GetUsedBytes().GetValue(); used < 3<<20 {
			t.Errorf("writable layer %d bytes, want at least the 3 MiB written", used)
		}
		list, err := e.rs.ListContainerStats(c, &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: pod}})
		if err != nil || len(list.Stats) != 1 || list.Stats[0].GetAttributes().GetId() != id {
			t.Errorf("list container stats of the pod: %v %v", list, err)
		}
		list, err = e.rs.ListContainerStats(c, &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"c": "nope"}}})
		if err != nil || len(list.Stats) != 0 {
			t.Errorf("list container stats by a label nobody has: %v %v", list, err)
		}
		ps, err := e.rs.PodSandboxStats(c, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: pod})
		if err != nil {
			t.Fatal(err)
		}
		lin := ps.Stats.GetLinux()
		if lin.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || lin.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
			t.Errorf("sandbox cpu %v memory %v", lin.GetCpu(), lin.GetMemory())
		}
		if len(lin.GetContainers()) != 1 || lin.GetNetwork().GetDefaultInterface().GetName() != "eth0" {
			t.Errorf("sandbox containers %d network %v", len(lin.GetContainers()), lin.GetNetwork())
		}
		if lin.GetProcess().GetProcessCount().GetValue() == 0 {
			t.Errorf("sandbox process count is zero")
		}
		pl, err := e.rs.ListPodSandboxStats(c, &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{Id: pod}})
		if err != nil || len(pl.Stats) != 1 {
			t.Errorf("list sandbox stats: %v %v", pl, err)
		}
		if _, err := e.rs.ContainerStats(c, &runtimeapi.ContainerStatsRequest{ContainerId: "nope"}); code(err) != codes.NotFound {
			t.Errorf("stats of an unknown container: %v", err)
		}
	})

	t.Run("SharedPIDNamespace", func(t *testing.T) {
		podCfg := e.podConfig("pidns")
		podCfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}
		pod := e.runPod(podCfg)
		a := e.createContainer(pod, podCfg, "a", "sleep", "4242")
		e.startContainer(a)
		b := e.createContainer(pod, podCfg, "b", "sleep", "3600")
		e.startContainer(b)
		e.waitState(b, runtimeapi.ContainerState_CONTAINER_RUNNING)
		if out := string(e.execSync(b, "ps", "-o", "args").Stdout); !strings.Contains(out, "sleep 4242") {
			t.Errorf("container b does not see container a's process:\n%s", out)
		}
		if out := string(e.execSync(a, "cat", "/proc/1/cmdline").Stdout); strings.Contains(out, "sleep") {
			t.Errorf("pid 1 of the pod is a container's process: %q", out)
		}
		s, _ := e.rt.getSandbox(pod)
		pid := s.PodInitPid
		if _, err := e.rs.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Fatal(err)
		}
		if container.PodInitAlive(pid, s.dir) {
			t.Errorf("pod init %d still alive after the sandbox was removed", pid)
		}
	})

	t.Run("OOMKilled", func(t *testing.T) {
		podCfg := e.podConfig("oom")
		pod := e.runPod(podCfg)
		const limit = 32 << 20
		id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "hog"},
			Command: []string{"sh", "-c", "a=xxxxxxxx; while :; do a=$a$a; done"},
			Linux: &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
				MemoryLimitInBytes: limit, MemorySwapLimitInBytes: limit}}})
		e.startContainer(id)
		st := e.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED)
		if st.Reason != "OOMKilled" || st.ExitCode != 137 {
			t.Errorf("memory hog exited with reason %q code %d, want OOMKilled 137", st.Reason, st.ExitCode)
		}
	})

	t.Run("RuncErrorCodes", func(t *testing.T) {
		podCfg := e.podConfig("errs")
		pod := e.runPod(podCfg)
		_, err := e.rs.CreateContainer(c, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
			Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "missing"}, Image: &runtimeapi.ImageSpec{Image: e.image},
				Command: []string{"/does/not/exist"}}})
		if err == nil {
			// Some runc versions find the missing binary only at start.
			ids, _ := e.rs.ListContainers(c, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod}})
			_, err = e.rs.StartContainer(c, &runtimeapi.StartContainerRequest{ContainerId: ids.Containers[0].Id})
		}
		if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "/does/not/exist") {
			t.Errorf("container with a missing binary: %v, want InvalidArgument naming it", err)
		}
		id := e.createContainer(pod, podCfg, "once", "true")
		e.startContainer(id)
		e.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED)
		if _, err := e.rs.StartContainer(c, &runtimeapi.StartContainerRequest{ContainerId: id}); code(err) != codes.FailedPrecondition {
			t.Errorf("restart of an exited container: %v", err)
		}
		if _, err := e.rs.Attach(c, &runtimeapi.AttachRequest{ContainerId: id, Stdout: true}); code(err) != codes.FailedPrecondition {
			t.Errorf("attach to an exited container: %v", err)
		}
		if m := container.RuncError("container_linux.go: starting container process caused: cannot allocate memory", errors.New("exit 1")); code(errdefs.ToGRPC(m)) != codes.ResourceExhausted {
			t.Errorf("out of memory maps to %v", code(errdefs.ToGRPC(m)))
		}
	})
}
