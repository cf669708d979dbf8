package container

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// SpecInput is everything a container's OCI spec is built from.
type SpecInput struct {
	ID      string
	Config  *runtimeapi.ContainerConfig
	Sandbox *runtimeapi.PodSandboxConfig
	Image   *v1.ConfigFile
	Rootfs  string
	// SandboxDir holds the pod's hostname, hosts and resolv.conf files.
	SandboxDir string
	// Namespace files of the sandbox; "" means the host's.
	NetNS, IPCNS, UTSNS string
	// PIDNS is a path to join, "" with HostPID false for a private one.
	PIDNS       string
	HostPID     bool
	CgroupsPath string
	// MinOOMScoreAdj is the lowest OOM score the runtime may hand out (its own).
	MinOOMScoreAdj int
}

var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

var defaultMaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

var defaultReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// heldCaps drops the capabilities the runtime itself lacks in its bounding set: runc fails
// with "unable to apply caps" on any of them. That covers capabilities newer than the kernel
// (above cap_last_cap) and ones a VM or an outer container withholds (this machine's kernel
// keeps CAP_SYS_RESOURCE from every process); containerd likewise grants a privileged
// container the capabilities it holds, not a fixed list. allCaps is in kernel order, so a
// capability's number is its index there; names not in it are left for runc to judge.
func heldCaps(caps []string) []string {
	bnd, ok := boundingSet()
	if !ok {
		return caps
	}
	return slices.DeleteFunc(caps, func(c string) bool {
		n := slices.Index(allCaps, c)
		return n >= 0 && bnd&(1<<uint(n)) == 0
	})
}

// boundingSet reads the runtime's CapBnd from /proc/self/status.
func boundingSet() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// Args resolves the process arguments from the CRI config and the image, Docker's way.
func Args(cfg *runtimeapi.ContainerConfig, img *v1.ConfigFile) ([]string, error) {
	var entrypoint, cmd []string
	if img != nil {
		entrypoint, cmd = img.Config.Entrypoint, img.Config.Cmd
	}
	if len(cfg.GetCommand()) > 0 {
		entrypoint, cmd = cfg.GetCommand(), nil
	}
	if len(cfg.GetArgs()) > 0 {
		cmd = cfg.GetArgs()
	}
	args := append(slices.Clone(entrypoint), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command: neither the container config nor the image names one: %w", errdefs.ErrInvalidArgument)
	}
	return args, nil
}

// Env merges the image's environment with the CRI config's (which wins).
func Env(cfg *runtimeapi.ContainerConfig, img *v1.ConfigFile) []string {
	var env []string
	if img != nil {
		env = slices.Clone(img.Config.Env)
	}
	for _, kv := range cfg.GetEnvs() {
		e := kv.GetKey() + "=" + string(kv.GetValue())
		if i := slices.IndexFunc(env, func(s string) bool { return strings.HasPrefix(s, kv.GetKey()+"=") }); i >= 0 {
			env[i] = e
		} else {
			env = append(env, e)
		}
	}
	return env
}

// Process builds the OCI process for a container or an exec in it.
func Process(rootfs string, args, env []string, cwd string, tty bool, sc *runtimeapi.LinuxContainerSecurityContext, imageUser string) (*specs.Process, error) {
	// A group alone would pair with the image's user, which the pod never chose; the kubelet
	// refuses it too, and containerd answers InvalidArgument.
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return nil, fmt.Errorf("run-as group %d is set without a run-as user: %w", sc.GetRunAsGroup().GetValue(), errdefs.ErrInvalidArgument)
	}
	user := imageUser
	if sc.GetRunAsUsername() != "" {
		user = sc.GetRunAsUsername()
	}
	if sc.GetRunAsUser() != nil {
		user = fmt.Sprint(sc.GetRunAsUser().GetValue())
	}
	if sc.GetRunAsGroup() != nil {
		u, _, _ := strings.Cut(user, ":")
		user = u + ":" + fmt.Sprint(sc.GetRunAsGroup().GetValue())
	}
	uid, gid, extra, err := resolveUser(rootfs, user)
	if err != nil {
		return nil, err
	}
	for _, g := range sc.GetSupplementalGroups() {
		extra = append(extra, uint32(g))
	}
	if cwd == "" {
		cwd = "/"
	}
	caps := slices.Clone(defaultCaps)
	if sc.GetPrivileged() {
		caps = slices.Clone(allCaps)
	} else {
		caps = adjustCaps(caps, sc.GetCapabilities())
	}
	caps = heldCaps(caps)
	hasPath := slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, "PATH=") })
	if !hasPath {
		env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	if tty && !slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, "TERM=") }) {
		env = append(env, "TERM=xterm")
	}
	p := &specs.Process{
		Terminal: tty,
		Args:     args,
		Env:      env,
		Cwd:      cwd,
		User:     specs.User{UID: uid, GID: gid, AdditionalGids: extra},
		Capabilities: &specs.LinuxCapabilities{
			Bounding: caps, Effective: caps, Permitted: caps,
		},
		NoNewPrivileges: sc.GetNoNewPrivs(),
	}
	if uid == 0 {
		// Root keeps its capabilities across exec only through the ambient-less inheritable set.
		p.Capabilities.Inheritable = nil
	}
	return p, nil
}

func adjustCaps(caps []string, c *runtimeapi.Capability) []string {
	norm := func(s string) string {
		s = strings.ToUpper(s)
		if !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		return s
	}
	for _, a := range c.GetAddCapabilities() {
		if strings.EqualFold(a, "ALL") {
			caps = slices.Clone(allCaps)
			continue
		}
		if n := norm(a); !slices.Contains(caps, n) {
			caps = append(caps, n)
		}
	}
	for _, d := range c.GetDropCapabilities() {
		if strings.EqualFold(d, "ALL") {
			caps = nil
			continue
		}
		n := norm(d)
		caps = slices.DeleteFunc(caps, func(s string) bool { return s == n })
	}
	return caps
}

// Spec builds the OCI runtime spec for in.
func Spec(in SpecInput) (*specs.Spec, error) {
	cfg := in.Config
	lsc := cfg.GetLinux().GetSecurityContext()
	args, err := Args(cfg, in.Image)
	if err != nil {
		return nil, err
	}
	var imageUser, imageCwd string
	if in.Image != nil {
		imageUser, imageCwd = in.Image.Config.User, in.Image.Config.WorkingDir
	}
	cwd := cfg.GetWorkingDir()
	if cwd == "" {
		cwd = imageCwd
	}
	proc, err := Process(in.Rootfs, args, Env(cfg, in.Image), cwd, cfg.GetTty(), lsc, imageUser)
	if err != nil {
		return nil, err
	}
	if res := cfg.GetLinux().GetResources(); res != nil {
		adj := int(res.GetOomScoreAdj())
		if adj < in.MinOOMScoreAdj {
			adj = in.MinOOMScoreAdj
		}
		proc.OOMScoreAdj = &adj
	}
	seccomp, err := Seccomp(lsc, proc.Capabilities.Bounding)
	if err != nil {
		return nil, err
	}
	privileged := lsc.GetPrivileged()
	s := &specs.Spec{
		Version:     specs.Version,
		Process:     proc,
		Root:        &specs.Root{Path: in.Rootfs, Readonly: lsc.GetReadonlyRootfs()},
		Annotations: cfg.GetAnnotations(),
		Mounts:      defaultMounts(privileged),
		Linux: &specs.Linux{
			CgroupsPath: in.CgroupsPath,
			Sysctl:      in.Sandbox.GetLinux().GetSysctls(),
			Resources:   &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: privileged, Access: "rwm"}}},
			Seccomp:     seccomp,
		},
	}
	if !privileged {
		s.Linux.MaskedPaths = defaultMaskedPaths
		s.Linux.ReadonlyPaths = defaultReadonlyPaths
		if lsc.GetMaskedPaths() != nil {
			s.Linux.MaskedPaths = lsc.GetMaskedPaths()
		}
		if lsc.GetReadonlyPaths() != nil {
			s.Linux.ReadonlyPaths = lsc.GetReadonlyPaths()
		}
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	add := func(t specs.LinuxNamespaceType, path string, host bool) {
		if !host {
			ns = append(ns, specs.LinuxNamespace{Type: t, Path: path})
		}
	}
	add(specs.NetworkNamespace, in.NetNS, in.NetNS == "")
	add(specs.IPCNamespace, in.IPCNS, in.IPCNS == "")
	add(specs.UTSNamespace, in.UTSNS, in.UTSNS == "")
	add(specs.PIDNamespace, in.PIDNS, in.HostPID)
	s.Linux.Namespaces = ns

	// Pod files.
	for _, f := range []struct{ name, dst string }{{"hostname", "/etc/hostname"}, {"hosts", "/etc/hosts"}, {"resolv.conf", "/etc/resolv.conf"}} {
		src := filepath.Join(in.SandboxDir, f.name)
		if _, err := os.Stat(src); err != nil || hasMount(cfg, f.dst) {
			continue
		}
		opts := []string{"rbind", "rprivate"}
		if lsc.GetReadonlyRootfs() {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: f.dst, Type: "bind", Source: src, Options: opts})
	}
	for _, m := range cfg.GetMounts() {
		if m.GetContainerPath() == "" || !filepath.IsAbs(m.GetContainerPath()) {
			return nil, fmt.Errorf("mount container path %q must be absolute: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		src := m.GetHostPath()
		if _, err := os.Stat(src); os.IsNotExist(err) {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, fmt.Errorf("mount source %s: %w", src, err)
			}
		}
		if err := checkPropagationSource(src, m.GetPropagation()); err != nil {
			return nil, err
		}
		opts := []string{"rbind"}
		// runc makes the container's root rslave unless told otherwise: a bind copied from a
		// slave is a slave itself, and nothing the container mounts would reach the host. A
		// bidirectional mount needs the root rshared (runc keeps the rootfs's parent mount
		// private, so the container's own mounts do not leak).
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			opts = append(opts, "rshared")
			s.Linux.RootfsPropagation = "rshared"
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			opts = append(opts, "rslave")
			if s.Linux.RootfsPropagation != "rshared" {
				s.Linux.RootfsPropagation = "rslave"
			}
		default:
			opts = append(opts, "rprivate")
		}
		if m.GetReadonly() {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.GetContainerPath(), Type: "bind", Source: src, Options: opts})
	}
	for _, d := range cfg.GetDevices() {
		dev, rule, err := device(d)
		if err != nil {
			return nil, err
		}
		s.Linux.Devices = append(s.Linux.Devices, dev)
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rule)
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		s.Linux.Resources.CPU = cpuResources(r)
		if r.GetMemoryLimitInBytes() > 0 {
			lim := r.GetMemoryLimitInBytes()
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &lim}
			if r.GetMemorySwapLimitInBytes() > 0 {
				sw := r.GetMemorySwapLimitInBytes()
				s.Linux.Resources.Memory.Swap = &sw
			}
		}
	}
	if cfg.GetTty() {
		proc.Terminal = true
	}
	return s, nil
}

func cpuResources(r *runtimeapi.LinuxContainerResources) *specs.LinuxCPU {
	c := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if r.GetCpuShares() > 0 {
		sh := uint64(r.GetCpuShares())
		c.Shares = &sh
	}
	if r.GetCpuQuota() != 0 {
		q := r.GetCpuQuota()
		c.Quota = &q
	}
	if r.GetCpuPeriod() > 0 {
		p := uint64(r.GetCpuPeriod())
		c.Period = &p
	}
	return c
}

func hasMount(cfg *runtimeapi.ContainerConfig, dst string) bool {
	for _, m := range cfg.GetMounts() {
		if filepath.Clean(m.GetContainerPath()) == dst {
			return true
		}
	}
	return false
}

func defaultMounts(privileged bool) []specs.Mount {
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	if privileged {
		sysOpts = []string{"nosuid", "noexec", "nodev"}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: append([]string{"relatime"}, sysOpts...)},
	}
}

func device(d *runtimeapi.Device) (specs.LinuxDevice, specs.LinuxDeviceCgroup, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.GetHostPath(), &st); err != nil {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, fmt.Errorf("device %s: %v: %w", d.GetHostPath(), err, errdefs.ErrInvalidArgument)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, fmt.Errorf("%s is not a device: %w", d.GetHostPath(), errdefs.ErrInvalidArgument)
	}
	major, minor := int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
	mode := os.FileMode(st.Mode & 0o777)
	perms := d.GetPermissions()
	if perms == "" {
		perms = "rwm"
	}
	dev := specs.LinuxDevice{Path: d.GetContainerPath(), Type: typ, Major: major, Minor: minor, FileMode: &mode, UID: &st.Uid, GID: &st.Gid}
	return dev, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: perms}, nil
}
