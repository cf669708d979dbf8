package runtime

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"no root":       {Socket: "/tmp/x.sock"},
		"relative root": {Root: "rel", Socket: "/tmp/x.sock"},
		"no socket":     {Root: "/tmp/x"},
		"long bridge":   {Root: "/tmp/x", Socket: "/tmp/x.sock", CNIBridge: "a-very-long-bridge-name"},
		"missing runc":  {Root: "/tmp/x", Socket: "/tmp/x.sock", Runc: "/nonexistent/runc"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
}

func code(err error) codes.Code { return status.Code(err) }

func TestImages(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	ver, err := e.rs.Version(c, &runtimeapi.VersionRequest{})
	if err != nil || ver.RuntimeName != Name || ver.RuntimeApiVersion != "v1" {
		t.Fatalf("Version = %v, %v", ver, err)
	}
	id := e.pull()
	list, err := e.is.ListImages(c, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 1 || list.Images[0].Id != id || list.Images[0].RepoTags[0] != e.image {
		t.Fatalf("ListImages = %v, %v", list, err)
	}
	st, err := e.is.ImageStatus(c, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: e.image}})
	if err != nil || st.Image == nil || st.Image.Id != id || st.Image.Size == 0 {
		t.Fatalf("ImageStatus = %v, %v", st, err)
	}
	if st, err := e.is.ImageStatus(c, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "nothing:here"}}); err != nil || st.Image != nil {
		t.Fatalf("ImageStatus(missing) = %v, %v; want empty, nil", st, err)
	}
	fs, err := e.is.ImageFsInfo(c, &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 || fs.ImageFilesystems[0].UsedBytes.Value == 0 {
		t.Fatalf("ImageFsInfo = %v, %v", fs, err)
	}
	_, err = e.is.PullImage(c, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.reg + "/test/missing:1"}})
	if code(err) != codes.NotFound || !strings.Contains(err.Error(), "missing") {
		t.Errorf("pull of a missing image: %v, want NotFound naming it", err)
	}
	_, err = e.is.PullImage(c, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "127.0.0.1:1/x/y:1"}})
	if code(err) != codes.Unavailable {
		t.Errorf("pull from an unreachable registry: %v, want Unavailable", err)
	}
	_, err = e.is.PullImage(c, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "Not A Ref"}})
	if code(err) != codes.InvalidArgument {
		t.Errorf("pull of a bad reference: %v, want InvalidArgument", err)
	}
	if _, err := e.is.RemoveImage(c, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id}}); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.is.ListImages(c, &runtimeapi.ListImagesRequest{}); len(list.Images) != 0 {
		t.Errorf("images after remove: %v", list.Images)
	}
}

func TestPodLifecycle(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	st, err := e.rs.Status(c, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range st.Status.Conditions {
		if !cond.Status {
			t.Errorf("condition %s not ready: %s", cond.Type, cond.Message)
		}
	}
	e.pull()
	podCfg := e.podConfig("web")
	pod := e.runPod(podCfg)
	ps, err := e.rs.PodSandboxStatus(c, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatal(err)
	}
	ip := ps.Status.Network.Ip
	_, subnet, _ := net.ParseCIDR(e.subnet)
	if ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || !subnet.Contains(net.ParseIP(ip)) {
		t.Fatalf("sandbox status %v, ip %q not in %s", ps.Status.State, ip, e.subnet)
	}

	// Two containers sharing the pod's network: a web server and a client.
	web := e.createContainer(pod, podCfg, "web", "sh", "-c",
		"echo hello; echo oops >&2; mkdir -p /tmp/www && echo served > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www")
	if got := e.status(web).State; got != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("new container state %v", got)
	}
	e.startContainer(web)
	e.waitState(web, runtimeapi.ContainerState_CONTAINER_RUNNING)
	client := e.createContainer(pod, podCfg, "client", "sh", "-c", "trap 'exit 42' TERM; sleep 3600 & wait")
	e.startContainer(client)
	e.waitState(client, runtimeapi.ContainerState_CONTAINER_RUNNING)

	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.execSync(client, "wget", "-q", "-O-", "http://127.0.0.1:8080/")
		out = string(r.Stdout)
		if r.ExitCode == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out != "served\n" {
		t.Fatalf("client fetched %q from localhost:8080, want the web container's page", out)
	}
	// The host reaches the pod on its IP through the bridge.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ip + ":8080/")
	if err != nil {
		t.Fatalf("GET pod IP: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "served\n" {
		t.Errorf("GET pod IP: %q", body)
	}

	if r := e.execSync(client, "hostname"); strings.TrimSpace(string(r.Stdout)) != "web" {
		t.Errorf("hostname = %q, want web", r.Stdout)
	}
	if r := e.execSync(client, "cat", "/etc/resolv.conf"); !strings.Contains(string(r.Stdout), "nameserver 10.96.0.10") {
		t.Errorf("resolv.conf = %q", r.Stdout)
	}
	if r := e.execSync(client, "sh", "-c", "echo out; echo err >&2; exit 3"); r.ExitCode != 3 || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
		t.Errorf("ExecSync = %d %q %q; want 3 out err", r.ExitCode, r.Stdout, r.Stderr)
	}

	// Logs in the CRI format.
	logPath := filepath.Join(podCfg.LogDirectory, "web.log")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var sawOut, sawErr bool
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("log line %q is not CRI format", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("log line timestamp: %v", err)
		}
		sawOut = sawOut || f[1] == "stdout" && f[2] == "F" && f[3] == "hello"
		sawErr = sawErr || f[1] == "stderr" && f[2] == "F" && f[3] == "oops"
	}
	if !sawOut || !sawErr {
		t.Errorf("log %s lacks the stdout and stderr lines:\n%s", logPath, b)
	}

	// Exit codes.
	failing := e.createContainer(pod, podCfg, "failing", "sh", "-c", "exit 7")
	e.startContainer(failing)
	fst := e.waitState(failing, runtimeapi.ContainerState_CONTAINER_EXITED)
	if fst.ExitCode != 7 || fst.Reason != "Error" || fst.FinishedAt < fst.StartedAt {
		t.Errorf("exited status = code %d reason %q finished %d started %d", fst.ExitCode, fst.Reason, fst.FinishedAt, fst.StartedAt)
	}
	list, err := e.rs.ListContainers(c, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil || len(list.Containers) != 2 {
		t.Errorf("running containers: %v, %v", list, err)
	}

	// Stop sends the stop signal, which the client traps.
	stopStart := time.Now()
	if _, err := e.rs.StopContainer(c, &runtimeapi.StopContainerRequest{ContainerId: client, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(client); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 42 {
		t.Errorf("stopped client: %v code %d, want exited 42 from its TERM trap", st.State, st.ExitCode)
	}
	if d := time.Since(stopStart); d > 5*time.Second {
		t.Errorf("stop took %v though the container exits on SIGTERM", d)
	}
	if _, err := e.rs.RemoveContainer(c, &runtimeapi.RemoveContainerRequest{ContainerId: client}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rs.ContainerStatus(c, &runtimeapi.ContainerStatusRequest{ContainerId: client}); code(err) != codes.NotFound {
		t.Errorf("status of removed container: %v, want NotFound", err)
	}

	// Stop and remove the pod: everything it owned goes.
	if _, err := e.rs.StopPodSandbox(c, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(web); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("web after pod stop: %v", st.State)
	}
	if _, err := e.rs.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(e.cfg.Root); len(m) != 0 {
		t.Errorf("mounts left after RemovePodSandbox: %v", m)
	}
	if left, _ := os.ReadDir(filepath.Join(e.cfg.Root, "containers")); len(left) != 0 {
		t.Errorf("container dirs left: %d", len(left))
	}
	if _, err := e.rs.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Errorf("second RemovePodSandbox: %v", err)
	}
}

func TestRestartRecovery(t *testing.T) {
	e := newTestEnv(t)
	e.pull()
	podCfg := e.podConfig("keep")
	pod := e.runPod(podCfg)
	long := e.createContainer(pod, podCfg, "long", "sh", "-c", "echo before; sleep 3600")
	e.startContainer(long)
	e.waitState(long, runtimeapi.ContainerState_CONTAINER_RUNNING)
	short := e.createContainer(pod, podCfg, "short", "sh", "-c", "read x; exit 4")
	e.startContainer(short)
	before := e.status(long)

	e.stop()
	e.stop = nil
	// The short container exits (stdin is empty) around the restart; its shim records the code.
	e.start()
	if st := e.waitState(short, runtimeapi.ContainerState_CONTAINER_EXITED); st.ExitCode != 4 {
		t.Errorf("short container exit code %d after restart, want 4", st.ExitCode)
	}

	after := e.status(long)
	if after.State != runtimeapi.ContainerState_CONTAINER_RUNNING || after.StartedAt != before.StartedAt || after.CreatedAt != before.CreatedAt {
		t.Errorf("after restart: %v started %d (was %d)", after.State, after.StartedAt, before.StartedAt)
	}
	if r := e.execSync(long, "echo", "still here"); string(r.Stdout) != "still here\n" {
		t.Errorf("exec after restart: %q", r.Stdout)
	}
	ps, err := e.rs.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil || ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || ps.Status.Network.Ip == "" {
		t.Fatalf("sandbox after restart: %v, %v", ps, err)
	}
	if _, err := e.rs.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: long, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(long); st.ExitCode != 137 {
		t.Errorf("killed container exit code %d, want 137", st.ExitCode)
	}
}

func TestBadInput(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	e.pull()
	if _, err := e.rs.ContainerStatus(c, &runtimeapi.ContainerStatusRequest{ContainerId: "nope"}); code(err) != codes.NotFound {
		t.Errorf("status of unknown container: %v", err)
	}
	if _, err := e.rs.PodSandboxStatus(c, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "nope"}); code(err) != codes.NotFound {
		t.Errorf("status of unknown sandbox: %v", err)
	}
	if _, err := e.rs.StartContainer(c, &runtimeapi.StartContainerRequest{ContainerId: "nope"}); code(err) != codes.NotFound {
		t.Errorf("start of unknown container: %v", err)
	}
	if _, err := e.rs.RunPodSandbox(c, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{}}); code(err) != codes.InvalidArgument {
		t.Errorf("sandbox without metadata: %v", err)
	}
	podCfg := e.podConfig("bad")
	pod := e.runPod(podCfg)
	if _, err := e.rs.RunPodSandbox(c, &runtimeapi.RunPodSandboxRequest{Config: podCfg}); code(err) != codes.AlreadyExists {
		t.Errorf("duplicate sandbox name: %v", err)
	}
	_, err := e.rs.CreateContainer(c, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "x"}, Image: &runtimeapi.ImageSpec{Image: "not/pulled:1"}}})
	if code(err) != codes.NotFound || !strings.Contains(err.Error(), "not/pulled") {
		t.Errorf("container of a missing image: %v", err)
	}
	_, err = e.rs.CreateContainer(c, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "x"}, Image: &runtimeapi.ImageSpec{Image: e.image},
			Command: []string{"/does/not/exist"}}})
	if err != nil {
		// runc create succeeds; the missing binary shows at start.
		t.Logf("create with a missing binary: %v", err)
	}
	_, err = e.rs.CreateContainer(c, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "baduser"}, Image: &runtimeapi.ImageSpec{Image: e.image},
			Command: []string{"true"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "ghost"}}}})
	if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("unknown user: %v", err)
	}
	if m := mountsUnder(filepath.Join(e.cfg.Root, "containers")); len(m) > 1 {
		t.Errorf("failed creates left mounts: %v", m)
	}
}
