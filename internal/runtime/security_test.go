package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

// TestSecurityContextAndExecTimeout covers the behaviours critest's conformance specs check
// for the security context and ExecSync timeouts, each as containerd behaves.
func TestSecurityContextAndExecTimeout(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	e.pull()
	podCfg := e.podConfig("secctx")
	pod := e.runPod(podCfg)

	t.Run("ExecSyncTimeoutKillsTheProcess", func(t *testing.T) {
		id := e.createContainer(pod, podCfg, "exec-timeout", "sleep", "3600")
		e.startContainer(id)
		e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		start := time.Now()
		_, err := e.rs.ExecSync(c, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "4321"}, Timeout: 1})
		if code(err) != codes.DeadlineExceeded {
			t.Fatalf("exec past its timeout: %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("exec with a 1s timeout returned after %v", d)
		}
		if out := string(e.execSync(id, "ps", "-o", "args").Stdout); strings.Contains(out, "sleep 4321") {
			t.Errorf("the timed-out exec process is still running:\n%s", out)
		}
	})

	t.Run("ReopenLogCreatesTheFileBeforeReturning", func(t *testing.T) {
		id := e.createContainer(pod, podCfg, "reopen", "sh", "-c", "while :; do echo tick; sleep 1; done")
		e.startContainer(id)
		st := e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		// What the kubelet's rotation does: rename, reopen, then read the new file at once.
		if err := os.Rename(st.LogPath, st.LogPath+".1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rs.ReopenContainerLog(c, &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(st.LogPath); err != nil {
			t.Errorf("after ReopenContainerLog returned: %v", err)
		}
	})

	t.Run("RunAsGroupWithoutUserIsRefused", func(t *testing.T) {
		_, err := e.rs.CreateContainer(c, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
			Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "group-only"}, Image: &runtimeapi.ImageSpec{Image: e.image},
				Command: []string{"id"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					RunAsGroup: &runtimeapi.Int64Value{Value: 2000}}}}})
		if code(err) != codes.InvalidArgument {
			t.Errorf("run-as group without a user: %v, want InvalidArgument", err)
		}
		id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "user-and-group"},
			Command: []string{"sleep", "3600"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 2000}}}})
		e.startContainer(id)
		e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		if out := strings.TrimSpace(string(e.execSync(id, "sh", "-c", "echo $(id -u):$(id -g)").Stdout)); out != "1000:2000" {
			t.Errorf("run as 1000:2000, id says %q", out)
		}
	})

	t.Run("MaskedPathOfAnApplet", func(t *testing.T) {
		id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "masked"},
			Command: []string{"sleep", "3600"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				MaskedPaths: []string{"/bin/ls"}}}})
		e.startContainer(id)
		e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		// Debian's busybox-static runs applets without exec (a standalone shell), so the
		// mask shows in exec'ing /bin/ls itself and in reading it, not in `sh -c ls`.
		resp, err := e.rs.ExecSync(c, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"/bin/ls"}, Timeout: 10})
		switch {
		case err != nil && !strings.Contains(err.Error(), "permission denied"):
			t.Errorf("exec of masked /bin/ls: %v, want permission denied", err)
		case err == nil && (resp.ExitCode == 0 || !strings.Contains(string(resp.Stderr), "permission denied")):
			t.Errorf("exec of masked /bin/ls: exit %d stderr %q, want permission denied", resp.ExitCode, resp.Stderr)
		}
		if out := strings.TrimSpace(string(e.execSync(id, "sh", "-c", "wc -c < /bin/ls").Stdout)); out != "0" {
			t.Errorf("masked /bin/ls holds %s bytes, want /dev/null's 0", out)
		}
		if out := string(e.execSync(id, "echo", "still").Stdout); out != "still\n" {
			t.Errorf("masking one applet broke the others: %q", out)
		}
	})

	t.Run("PrivilegedGetsTheCapabilitiesTheRuntimeHolds", func(t *testing.T) {
		id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "privileged"},
			Command: []string{"sleep", "3600"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				Privileged: true}}})
		e.startContainer(id)
		e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		var want string
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "CapBnd:") {
				want = strings.TrimSpace(strings.TrimPrefix(l, "CapBnd:"))
			}
		}
		got := strings.TrimSpace(string(e.execSync(id, "sh", "-c", "grep CapEff /proc/self/status | cut -f2").Stdout))
		if got != want {
			t.Errorf("privileged container's effective capabilities %s, want the runtime's bounding set %s", got, want)
		}
	})

	t.Run("Seccomp", func(t *testing.T) {
		profile := filepath.Join(t.TempDir(), "block-chmod.json")
		if err := os.WriteFile(profile, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name    string
			profile *runtimeapi.SecurityProfile
			mode    string // /proc/self/status Seccomp: 0 none, 2 filter
			chmodOK bool
		}{
			{"none", nil, "0", true},
			{"runtime-default", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, "2", true},
			{"localhost", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}, "2", false},
		} {
			id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "seccomp-" + tc.name},
				Command: []string{"sleep", "3600"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					Seccomp: tc.profile}}})
			e.startContainer(id)
			e.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
			if out := string(e.execSync(id, "grep", "Seccomp:", "/proc/self/status").Stdout); !strings.Contains(out, "\t"+tc.mode+"\n") {
				t.Errorf("%s: status %q, want Seccomp mode %s", tc.name, out, tc.mode)
			}
			resp := e.execSync(id, "chmod", "400", "/tmp")
			if ok := resp.ExitCode == 0; ok != tc.chmodOK {
				t.Errorf("%s: chmod exit %d stderr %q, want success %v", tc.name, resp.ExitCode, resp.Stderr, tc.chmodOK)
			}
			if !tc.chmodOK && !strings.Contains(string(resp.Stderr), "Operation not permitted") {
				t.Errorf("%s: chmod stderr %q, want EPERM's message", tc.name, resp.Stderr)
			}
		}
	})

	t.Run("MountPropagation", func(t *testing.T) {
		// critest's setup: each volume a bind of itself, made shared or private.
		vol := func(flag uintptr) string {
			d := filepath.Join(t.TempDir(), "vol")
			if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount(d, d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = unix.Unmount(d, unix.MNT_DETACH) })
			if err := unix.Mount("", d, "", flag|unix.MS_REC, ""); err != nil {
				t.Fatal(err)
			}
			return d
		}
		run := func(name, src string, p runtimeapi.MountPropagation) (string, error) {
			resp, err := e.rs.CreateContainer(c, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
				Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name}, Image: &runtimeapi.ImageSpec{Image: e.image},
					Command: []string{"sleep", "3600"}, LogPath: name + ".log",
					Mounts: []*runtimeapi.Mount{{HostPath: src, ContainerPath: "/vol", Propagation: p}},
					Linux:  &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{Privileged: true}}}})
			if err != nil {
				return "", err
			}
			e.startContainer(resp.ContainerId)
			e.waitState(resp.ContainerId, runtimeapi.ContainerState_CONTAINER_RUNNING)
			return resp.ContainerId, nil
		}
		for _, tc := range []struct {
			name                string
			flag                uintptr
			p                   runtimeapi.MountPropagation
			toContainer, toHost bool
		}{
			{"private", unix.MS_PRIVATE, runtimeapi.MountPropagation_PROPAGATION_PRIVATE, false, false},
			{"host-to-container", unix.MS_SHARED, runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, true, false},
			{"bidirectional", unix.MS_SHARED, runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, true, true},
		} {
			src := vol(tc.flag)
			id, err := run("prop-"+tc.name, src, tc.p)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			// Host to container: a mount made on the host after the container started.
			hostMnt := filepath.Join(src, "sub")
			if err := unix.Mount("tmpfs", hostMnt, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(hostMnt, "from-host"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			seen := strings.Contains(string(e.execSync(id, "ls", "/vol/sub").Stdout), "from-host")
			if seen != tc.toContainer {
				t.Errorf("%s: the host's mount seen in the container: %v, want %v", tc.name, seen, tc.toContainer)
			}
			// Container to host.
			if r := e.execSync(id, "sh", "-c", "mkdir -p /vol/c && mount -t tmpfs t /vol/c && touch /vol/c/from-container"); r.ExitCode != 0 {
				t.Fatalf("%s: mount in the container: %s", tc.name, r.Stderr)
			}
			_, err = os.Stat(filepath.Join(src, "c", "from-container"))
			if got := err == nil; got != tc.toHost {
				t.Errorf("%s: the container's mount seen on the host: %v, want %v", tc.name, got, tc.toHost)
			}
			if _, err := e.rs.RemoveContainer(c, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
				t.Fatal(err)
			}
			_ = unix.Unmount(filepath.Join(src, "c"), unix.MNT_DETACH)
			_ = unix.Unmount(hostMnt, unix.MNT_DETACH)
		}
		if _, err := run("prop-refused", vol(unix.MS_PRIVATE), runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL); code(err) != codes.FailedPrecondition {
			t.Errorf("bidirectional mount of a private source: %v, want FailedPrecondition", err)
		}
	})

	t.Run("NoNewPrivs", func(t *testing.T) {
		ref := e.reg + "/test/nonewprivs:1"
		img, err := testimage.Build(testimage.Spec{Entrypoint: []string{"/nnp"},
			Extra: []testimage.File{{Path: "nnp", Mode: 0o4755, Body: buildNoNewPrivs(t)}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := testimage.Push(ref, img); err != nil {
			t.Fatal(err)
		}
		if _, err := e.is.PullImage(c, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			nnp  bool
			want string
		}{{true, "Effective uid: 1000"}, {false, "Effective uid: 0"}} {
			name := "nnp-" + map[bool]string{true: "true", false: "false"}[tc.nnp]
			id := e.createWith(pod, podCfg, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name},
				Image: &runtimeapi.ImageSpec{Image: ref}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					NoNewPrivs: tc.nnp, RunAsUser: &runtimeapi.Int64Value{Value: 1000}}}})
			e.startContainer(id)
			st := e.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED)
			b, err := os.ReadFile(st.LogPath)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.want+"\n") {
				t.Errorf("no_new_privs %v: log %q, want %q", tc.nnp, b, tc.want)
			}
		}
	})
}

// buildNoNewPrivs builds hack/images/nonewprivs, the setuid program of critest's image.
func buildNoNewPrivs(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "nnp")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/nanokube/nanokube/hack/images/nonewprivs")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the nonewprivs program: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
