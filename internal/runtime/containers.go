package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/container"
	"github.com/nanokube/nanokube/internal/runtime/errdefs"
	"github.com/nanokube/nanokube/internal/runtime/image"
	"github.com/nanokube/nanokube/internal/runtime/network"
	"github.com/nanokube/nanokube/internal/runtime/shim"
)

// ctr is one container.
type ctr struct {
	ID         string   `json:"id"`
	SandboxID  string   `json:"sandboxID"`
	Config     []byte   `json:"config"` // ContainerConfig, protobuf
	ImageRef   string   `json:"imageRef"`
	ImageID    string   `json:"imageID"`
	Layers     []string `json:"layers"`
	CreatedAt  int64    `json:"createdAt"`
	StartedAt  int64    `json:"startedAt,omitempty"`
	LogPath    string   `json:"logPath,omitempty"`
	StopSignal string   `json:"stopSignal,omitempty"`

	dir    string
	config *runtimeapi.ContainerConfig
	mu     sync.Mutex // serialises lifecycle calls

	// What the container's status is made of, kept in memory so that a status or a list
	// (the kubelet relists every second) reads no file while the shim runs. StartedAt is
	// written under both mu and stateMu, and read by statuses under stateMu alone.
	stateMu sync.Mutex
	shim    *container.ShimHandle // the running shim, nil until found or once it exited
	exit    *container.Exit       // the exit record once read: final
	lost    bool                  // the shim we held exited without an exit record: final
	removed bool                  // destroyed: open nothing more
}

// observe reports whether the container's shim runs and, once it has exited, its exit
// record (nil if it left none). While the shim runs that costs one poll of its pidfd and
// one failed open of the record; once read, the record is kept.
func (c *ctr) observe() (alive bool, exit *container.Exit) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.exit != nil || c.lost {
		return false, c.exit
	}
	if c.shim == nil && !c.removed {
		if h, err := container.OpenShim(c.dir); err == nil {
			c.shim = h
		}
	}
	if c.shim != nil {
		// The shim first, then its record: a shim that writes the record and exits
		// between the two looks would otherwise read as one that died without a record.
		// The record is looked for even while the shim runs, for a stop returns as soon
		// as it is written and a status right after must say exited: a failed open.
		alive := c.shim.Alive()
		if e, err := container.ReadExit(c.dir); err == nil {
			c.exit = e
		} else if alive {
			return true, nil
		} else {
			c.lost = true
		}
		c.shim.Close()
		c.shim = nil
		return false, c.exit
	}
	// No shim of ours: not yet written (creation under way), or gone before we looked.
	// Nothing here is final, so nothing is kept.
	if e, err := container.ReadExit(c.dir); err == nil {
		c.exit = e
		return false, e
	}
	return false, nil
}

// forgetShim releases the shim handle of a container being destroyed.
func (c *ctr) forgetShim() {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	c.removed = true
	if c.shim != nil {
		c.shim.Close()
		c.shim = nil
	}
}

func (c *ctr) rootfs() string { return filepath.Join(c.dir, "rootfs") }
func (c *ctr) save() error    { return writeJSON(filepath.Join(c.dir, "container.json"), c) }

func containerName(sandboxID string, md *runtimeapi.ContainerMetadata) string {
	return fmt.Sprintf("%s_%s_%d", sandboxID, md.GetName(), md.GetAttempt())
}

// CreateContainer prepares the rootfs and bundle and has the shim run `runc create`.
func (r *Runtime) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("container metadata needs a name: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, fmt.Errorf("container config names no image: %w", errdefs.ErrInvalidArgument)
	}
	s, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	stopped := s.Stopped
	s.mu.Unlock()
	if stopped {
		return nil, fmt.Errorf("pod sandbox %s is not ready: %w", s.ID, errdefs.ErrFailedPrecondition)
	}
	img, err := r.images.Get(cfg.GetImage().GetImage())
	if err != nil {
		return nil, fmt.Errorf("container image: %w", err)
	}
	c := &ctr{ID: newID(), SandboxID: s.ID, ImageRef: cfg.GetImage().GetImage(), ImageID: img.ID, Layers: img.Layers,
		CreatedAt: time.Now().UnixNano(), config: cfg}
	if img.Config != nil {
		c.StopSignal = img.Config.Config.StopSignal
	}
	c.dir = filepath.Join(r.cfg.Root, "containers", c.ID)
	if c.Config, err = proto.Marshal(cfg); err != nil {
		return nil, err
	}
	if cfg.GetLogPath() != "" {
		c.LogPath = cfg.GetLogPath()
		if d := req.GetSandboxConfig().GetLogDirectory(); d != "" {
			c.LogPath = filepath.Join(d, cfg.GetLogPath())
		} else if d := s.config.GetLogDirectory(); d != "" {
			c.LogPath = filepath.Join(d, cfg.GetLogPath())
		}
	}
	name := containerName(s.ID, cfg.GetMetadata())
	r.mu.Lock()
	for _, o := range r.containers {
		if containerName(o.SandboxID, o.config.GetMetadata()) == name {
			r.mu.Unlock()
			return nil, fmt.Errorf("container name %q is reserved for %s: %w", name, o.ID, errdefs.ErrAlreadyExists)
		}
	}
	r.containers[c.ID] = c
	r.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := r.createContainer(ctx, s, c, img); err != nil {
		r.destroyContainer(context.WithoutCancel(ctx), c)
		r.mu.Lock()
		delete(r.containers, c.ID)
		r.mu.Unlock()
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: c.ID}, nil
}

func (r *Runtime) createContainer(ctx context.Context, s *sandbox, c *ctr, img *image.Image) error {
	for _, d := range []string{c.dir, filepath.Join(c.dir, "upper"), filepath.Join(c.dir, "work"), c.rootfs()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	if err := c.save(); err != nil {
		return err
	}
	layers, err := r.images.Acquire(img.ID)
	if err != nil {
		return err
	}
	if err := mountRootfs(c, image.LowerDirs(layers)); err != nil {
		return err
	}
	if c.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
			return fmt.Errorf("log directory: %w", err)
		}
	}
	nsOpts := s.config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if o := c.config.GetLinux().GetSecurityContext().GetNamespaceOptions(); o != nil {
		nsOpts = o
	}
	var pidNS string
	switch nsOpts.GetPid() {
	case runtimeapi.NamespaceMode_POD:
		if pidNS = s.pidNSPath(); pidNS == "" {
			return fmt.Errorf("pod sandbox %s holds no pid namespace: %w", s.ID, errdefs.ErrFailedPrecondition)
		}
	case runtimeapi.NamespaceMode_TARGET:
		target, err := r.getContainer(nsOpts.GetTargetId())
		if err != nil {
			return fmt.Errorf("pid namespace target: %w", err)
		}
		pid, err := container.InitPid(target.dir)
		if err != nil || !container.ShimAlive(target.dir) {
			return fmt.Errorf("pid namespace target %s is not running: %w", target.ID, errdefs.ErrFailedPrecondition)
		}
		pidNS = fmt.Sprintf("/proc/%d/ns/pid", pid)
	}
	spec, err := container.Spec(container.SpecInput{
		ID: c.ID, Config: c.config, Sandbox: s.config, Image: img.Config, Rootfs: c.rootfs(),
		SandboxDir: s.dir, NetNS: s.nsPath(network.NetNS), IPCNS: s.nsPath(network.IPCNS), UTSNS: s.nsPath(network.UTSNS),
		HostPID: nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE, PIDNS: pidNS, CgroupsPath: s.Cgroup + "/" + c.ID,
		MinOOMScoreAdj: r.minOOM,
	})
	if err != nil {
		return err
	}
	if s.nsPath(network.UTSNS) == "" {
		spec.Hostname = ""
	}
	if err := writeJSON(filepath.Join(c.dir, "config.json"), spec); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(c.dir, shim.ConfigFile), shim.Config{
		ID: c.ID, Runc: shim.Runc(r.runc), LogPath: c.LogPath, Stdin: c.config.GetStdin(), StdinOnce: c.config.GetStdinOnce(),
		Terminal: c.config.GetTty(), CgroupsPath: spec.Linux.CgroupsPath,
	}); err != nil {
		return err
	}
	if _, err := container.StartShim(ctx, r.shim, c.dir); err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	return nil
}

func mountRootfs(c *ctr, lower []string) error {
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"),
		filepath.Join(c.dir, "upper"), filepath.Join(c.dir, "work"))
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay options for %d layers exceed a page: %w", len(lower), errdefs.ErrInvalidArgument)
	}
	if err := unix.Mount("overlay", c.rootfs(), "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount container rootfs: %w", err)
	}
	return nil
}

// destroyContainer removes every trace of c: runc state, shim, rootfs mount, layers held,
// bundle. Safe on half-created containers.
func (r *Runtime) destroyContainer(ctx context.Context, c *ctr) {
	defer c.forgetShim()
	if err := r.runc.Delete(ctx, c.ID, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		r.log.Warn("runc delete", "container", c.ID, "err", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, _ = container.WaitExit(wctx, c.dir)
	cancel()
	if err := unix.Unmount(c.rootfs(), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		r.log.Warn("unmount rootfs", "container", c.ID, "err", err)
	}
	if isMounted(c.rootfs()) {
		r.log.Warn("rootfs still mounted", "container", c.ID)
	} else if err := os.RemoveAll(c.dir); err != nil {
		r.log.Warn("remove container dir", "container", c.ID, "err", err)
	}
	r.images.Release(c.Layers)
}

func isMounted(path string) bool {
	var st, pst unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev
}

// StartContainer implements CRI.
func (r *Runtime) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.StartedAt != 0 {
		return nil, fmt.Errorf("container %s was already started: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	if _, err := container.ReadExit(c.dir); err == nil {
		return nil, fmt.Errorf("container %s has exited: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	// Taken before the start: a quick container may exit before runc returns, and its
	// finish time must not precede its start time.
	started := time.Now().UnixNano()
	if err := r.runc.Start(ctx, c.ID); err != nil {
		return nil, fmt.Errorf("start container %s: %w", c.ID, err)
	}
	c.stateMu.Lock()
	c.StartedAt = started
	c.stateMu.Unlock()
	if err := c.save(); err != nil {
		return nil, err
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer implements CRI: the stop signal, then SIGKILL after the timeout.
func (r *Runtime) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.StopContainerResponse{}, nil // CRI: stopping a missing container succeeds
	}
	if err != nil {
		return nil, err
	}
	if err := r.stopContainer(ctx, c, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

func (r *Runtime) stopContainer(ctx context.Context, c *ctr, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := container.ReadExit(c.dir); err == nil {
		return nil
	}
	if !container.ShimAlive(c.dir) {
		return nil // nothing left to stop; status reports the lost exit
	}
	if timeout > 0 && c.StartedAt != 0 {
		sig := stopSignal(c.StopSignal)
		if err := r.runc.Kill(ctx, c.ID, sig, false); err != nil {
			r.log.Debug("stop signal", "container", c.ID, "err", err)
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := container.WaitExit(wctx, c.dir)
		cancel()
		if err == nil {
			return nil
		}
	}
	if err := r.runc.Kill(ctx, c.ID, syscall.SIGKILL, true); err != nil {
		r.log.Debug("kill", "container", c.ID, "err", err)
		// A created container that was never started goes only through delete.
		if c.StartedAt == 0 {
			_ = r.runc.Delete(ctx, c.ID, true)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := container.WaitExit(wctx, c.dir); err != nil {
		return fmt.Errorf("container %s did not exit after SIGKILL: %w", c.ID, err)
	}
	return nil
}

func stopSignal(name string) syscall.Signal {
	name = strings.TrimPrefix(strings.ToUpper(name), "SIG")
	if name == "" {
		return syscall.SIGTERM
	}
	if s := unix.SignalNum("SIG" + name); s != 0 {
		return s
	}
	var n int
	if _, err := fmt.Sscan(name, &n); err == nil && n > 0 {
		return syscall.Signal(n)
	}
	return syscall.SIGTERM
}

// RemoveContainer implements CRI; removing a missing container succeeds.
func (r *Runtime) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := r.removeContainer(ctx, c); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (r *Runtime) removeContainer(ctx context.Context, c *ctr) error {
	if err := r.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r.destroyContainer(ctx, c)
	r.cpu.forget(c.ID)
	r.mu.Lock()
	delete(r.containers, c.ID)
	r.mu.Unlock()
	return nil
}

func (r *Runtime) containerStatus(c *ctr) *runtimeapi.ContainerStatus {
	// stateMu, not mu: mu is held through a whole stop (the grace period), which must not
	// hold up a status or the kubelet's relist.
	c.stateMu.Lock()
	started := c.StartedAt
	c.stateMu.Unlock()
	st := &runtimeapi.ContainerStatus{
		Id: c.ID, Metadata: c.config.GetMetadata(), CreatedAt: c.CreatedAt, StartedAt: started,
		Image: c.config.GetImage(), ImageRef: c.ImageID, ImageId: c.ImageID, Labels: c.config.GetLabels(),
		Annotations: c.config.GetAnnotations(), LogPath: c.LogPath, State: runtimeapi.ContainerState_CONTAINER_CREATED,
	}
	for _, m := range c.config.GetMounts() {
		st.Mounts = append(st.Mounts, m)
	}
	alive, exit := c.observe()
	switch {
	case exit != nil:
		st.State, st.ExitCode, st.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, exit.Code, exit.FinishedAt.UnixNano()
		st.Reason = "Completed"
		if exit.Code != 0 {
			st.Reason = "Error"
		}
		if exit.OOMKilled {
			st.Reason = "OOMKilled"
		}
	case started != 0 && alive:
		st.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	case started != 0 || !alive:
		// The shim died without recording an exit.
		st.State, st.ExitCode, st.Reason = runtimeapi.ContainerState_CONTAINER_EXITED, 255, "Unknown"
		st.Message = "the container's shim exited without recording an exit status"
		if fi, err := os.Stat(filepath.Join(c.dir, shim.PidFile)); err == nil {
			st.FinishedAt = fi.ModTime().UnixNano()
		}
	}
	return st
}

// ContainerStatus implements CRI.
func (r *Runtime) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: r.containerStatus(c)}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": fmt.Sprintf(`{"bundle":%q,"sandboxID":%q}`, c.dir, c.SandboxID)}
	}
	return resp, nil
}

// ListContainers implements CRI.
func (r *Runtime) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListContainersResponse{}
	for _, c := range r.matchingContainers(f.GetId(), f.GetPodSandboxId(), f.GetLabelSelector()) {
		st := r.containerStatus(c)
		if f.GetState() != nil && f.GetState().GetState() != st.State {
			continue
		}
		resp.Containers = append(resp.Containers, &runtimeapi.Container{
			Id: c.ID, PodSandboxId: c.SandboxID, Metadata: st.Metadata, Image: st.Image, ImageRef: st.ImageRef,
			ImageId: c.ImageID, State: st.State, CreatedAt: c.CreatedAt, Labels: st.Labels, Annotations: st.Annotations,
		})
	}
	return resp, nil
}

// ReopenContainerLog implements CRI.
func (r *Runtime) ReopenContainerLog(_ context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if st := r.containerStatus(c); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	if err := container.ReopenLog(c.dir); err != nil {
		return nil, err
	}
	// The shim reopens on a signal, asynchronously; the kubelet (and critest) expect the new
	// file to exist when the call returns, as containerd's does.
	if c.LogPath != "" {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(c.LogPath); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("container %s: the shim did not reopen its log %s in 10s", c.ID, c.LogPath)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// execProcess writes the OCI process for cmd in c (the container's user, env, cwd) to a
// temp file and returns its path.
func (r *Runtime) execProcess(c *ctr, cmd []string, tty bool) (string, error) {
	if len(cmd) == 0 {
		return "", fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	var spec specs.Spec
	if err := readJSON(filepath.Join(c.dir, "config.json"), &spec); err != nil {
		return "", fmt.Errorf("container %s spec: %w", c.ID, err)
	}
	p := *spec.Process
	p.Args, p.Terminal = cmd, tty
	p.ConsoleSize = nil
	f, err := os.CreateTemp(c.dir, "exec-*.json")
	if err != nil {
		return "", err
	}
	path := f.Name()
	f.Close()
	if err := writeJSON(path, &p); err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// removeExecFiles removes an exec's process file and the pid file runc wrote beside it.
func removeExecFiles(proc string) {
	os.Remove(proc)
	os.Remove(container.ExecPidFile(proc))
}

func (r *Runtime) requireRunning(c *ctr) error {
	if st := r.containerStatus(c); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("container %s is %s, not running: %w", c.ID, strings.TrimPrefix(st.State.String(), "CONTAINER_"), errdefs.ErrFailedPrecondition)
	}
	return nil
}

// ExecSync implements CRI.
func (r *Runtime) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if err := r.requireRunning(c); err != nil {
		return nil, err
	}
	proc, err := r.execProcess(c, req.GetCmd(), false)
	if err != nil {
		return nil, err
	}
	defer removeExecFiles(proc)
	execCtx := ctx
	if req.GetTimeout() > 0 {
		var cancel context.CancelFunc
		execCtx, cancel = context.WithTimeout(ctx, time.Duration(req.GetTimeout())*time.Second)
		defer cancel()
	}
	cmd := r.runc.ExecCommand(execCtx, c.ID, proc, false, "")
	// Once the process is killed, a child it left holding stdout must not hold the call.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = 16<<20, 16<<20
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if execCtx.Err() != nil {
		// As containerd: the process is killed and the call fails with DeadlineExceeded,
		// which the kubelet reads as a probe timeout.
		if ctx.Err() != nil {
			return nil, fmt.Errorf("exec in %s: %w", c.ID, ctx.Err())
		}
		return nil, fmt.Errorf("exec in %s: timeout %ds exceeded: %w", c.ID, req.GetTimeout(), context.DeadlineExceeded)
	}
	var exitErr *exec.ExitError
	code := int32(0)
	if errors.As(err, &exitErr) {
		code = int32(exitErr.ExitCode())
	} else if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", c.ID, err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}, nil
}

type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// recover loads sandboxes and containers from disk after a restart.
func (r *Runtime) recover() error {
	sdirs, _ := os.ReadDir(filepath.Join(r.cfg.Root, "sandboxes"))
	for _, d := range sdirs {
		s := &sandbox{dir: filepath.Join(r.cfg.Root, "sandboxes", d.Name())}
		if err := readJSON(filepath.Join(s.dir, "sandbox.json"), s); err != nil {
			r.log.Warn("skipping unreadable sandbox", "dir", s.dir, "err", err)
			continue
		}
		s.config = &runtimeapi.PodSandboxConfig{}
		if err := proto.Unmarshal(s.Config, s.config); err != nil {
			r.log.Warn("skipping sandbox with bad config", "id", s.ID, "err", err)
			continue
		}
		r.sandboxes[s.ID] = s
	}
	cdirs, _ := os.ReadDir(filepath.Join(r.cfg.Root, "containers"))
	for _, d := range cdirs {
		c := &ctr{dir: filepath.Join(r.cfg.Root, "containers", d.Name())}
		if err := readJSON(filepath.Join(c.dir, "container.json"), c); err != nil {
			r.log.Warn("skipping unreadable container", "dir", c.dir, "err", err)
			continue
		}
		c.config = &runtimeapi.ContainerConfig{}
		if err := proto.Unmarshal(c.Config, c.config); err != nil {
			r.log.Warn("skipping container with bad config", "id", c.ID, "err", err)
			continue
		}
		r.images.AcquireLayers(c.Layers)
		if _, err := os.Stat(filepath.Join(c.dir, shim.PidFile)); err != nil {
			// Creation never finished: the runtime died in CreateContainer.
			r.destroyContainer(context.Background(), c)
			continue
		}
		if _, ok := r.sandboxes[c.SandboxID]; !ok {
			r.log.Warn("container of a missing sandbox", "id", c.ID, "sandbox", c.SandboxID)
		}
		r.containers[c.ID] = c
	}
	r.log.Info("runtime state recovered", "sandboxes", len(r.sandboxes), "containers", len(r.containers))
	return nil
}

// matchingContainers returns the containers whose ID and sandbox ID start with the given
// prefixes (empty: any) and whose labels match selector, as CRI's list filters define.
func (r *Runtime) matchingContainers(id, sandboxID string, selector map[string]string) []*ctr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*ctr
	for _, c := range r.containers {
		if strings.HasPrefix(c.ID, id) && strings.HasPrefix(c.SandboxID, sandboxID) && matchLabels(selector, c.config.GetLabels()) {
			out = append(out, c)
		}
	}
	return out
}
