package container

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// The CRI's older string form of a seccomp profile (SeccompProfilePath).
const (
	profileRuntimeDefault = "runtime/default"
	profileDockerDefault  = "docker/default"
	profileUnconfined     = "unconfined"
	profileLocalhost      = "localhost/"
)

// Seccomp returns the seccomp filter for a container, nil for none. A privileged container
// runs unconfined whatever it asks for, as with containerd and Docker. caps are the
// capabilities the process will hold: the runtime default profile lets a container use the
// syscalls its capabilities already grant (mount with CAP_SYS_ADMIN, reboot with
// CAP_SYS_BOOT, ...), as Docker's default profile does.
func Seccomp(sc *runtimeapi.LinuxContainerSecurityContext, caps []string) (*specs.LinuxSeccomp, error) {
	if sc.GetPrivileged() {
		return nil, nil
	}
	if p := sc.GetSeccomp(); p != nil {
		switch p.GetProfileType() {
		case runtimeapi.SecurityProfile_RuntimeDefault:
			return RuntimeDefaultSeccomp(caps), nil
		case runtimeapi.SecurityProfile_Unconfined:
			return nil, nil
		case runtimeapi.SecurityProfile_Localhost:
			return LocalhostSeccomp(p.GetLocalhostRef(), caps)
		default:
			return nil, fmt.Errorf("seccomp profile type %v: %w", p.GetProfileType(), errdefs.ErrInvalidArgument)
		}
	}
	switch path := sc.GetSeccompProfilePath(); {
	case path == "" || path == profileUnconfined:
		return nil, nil
	case path == profileRuntimeDefault || path == profileDockerDefault:
		return RuntimeDefaultSeccomp(caps), nil
	case strings.HasPrefix(path, profileLocalhost):
		return LocalhostSeccomp(strings.TrimPrefix(path, profileLocalhost), caps)
	default:
		return nil, fmt.Errorf("seccomp profile %q: want %s, %s or %s<path>: %w", path, profileRuntimeDefault, profileUnconfined, profileLocalhost, errdefs.ErrInvalidArgument)
	}
}

// nativeArches are the syscall ABIs a process on this machine can use: a filter that named
// only the native one would let a process bypass it through the others.
func nativeArches() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	return nil
}

// blockedSyscalls are what the runtime default profile refuses unless the process holds
// the capability ("" for none) that makes the syscall legitimate. They are the syscalls
// Docker documents as blocked by its default profile: kernel modules, keyrings, clocks,
// namespaces and mounts, kexec and reboot, other processes' memory, BPF and perf, and
// obsolete or never-namespaced interfaces. Names this kernel or architecture lacks are
// skipped by runc.
var blockedSyscalls = []struct {
	cap   string
	names []string
}{
	{"", []string{"add_key", "keyctl", "request_key", "get_kernel_syms", "query_module", "create_module", "nfsservctl",
		"uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "userfaultfd", "kexec_file_load"}},
	{"CAP_SYS_MODULE", []string{"init_module", "finit_module", "delete_module"}},
	{"CAP_SYS_TIME", []string{"settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64"}},
	{"CAP_SYS_ADMIN", []string{"mount", "umount", "umount2", "pivot_root", "unshare", "setns", "swapon", "swapoff", "quotactl",
		"lookup_dcookie", "fanotify_init", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"}},
	{"CAP_SYS_BOOT", []string{"reboot", "kexec_load"}},
	{"CAP_SYS_PACCT", []string{"acct"}},
	{"CAP_SYS_PTRACE", []string{"ptrace", "process_vm_readv", "process_vm_writev", "kcmp"}},
	{"CAP_SYS_RAWIO", []string{"iopl", "ioperm"}},
	{"CAP_SYS_NICE", []string{"mbind", "set_mempolicy", "move_pages"}},
	{"CAP_DAC_READ_SEARCH", []string{"open_by_handle_at"}},
	{"CAP_SYSLOG", []string{"syslog"}},
	{"CAP_PERFMON", []string{"perf_event_open"}},
	{"CAP_BPF", []string{"bpf"}},
}

// RuntimeDefaultSeccomp is the runtime's default profile for a process holding caps: every
// syscall is allowed except blockedSyscalls, which fail with EPERM.
func RuntimeDefaultSeccomp(caps []string) *specs.LinuxSeccomp {
	var names []string
	for _, b := range blockedSyscalls {
		if b.cap == "" || !slices.Contains(caps, b.cap) {
			names = append(names, b.names...)
		}
	}
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: nativeArches()}
	if len(names) > 0 {
		s.Syscalls = []specs.LinuxSyscall{{Names: names, Action: specs.ActErrno}}
	}
	return s
}

// seccompProfile is the JSON profile format Docker, containerd and the kubelet's
// localhost profiles use; includes and excludes select rules by capability or architecture.
type seccompProfile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures   []specs.Arch             `json:"architectures,omitempty"`
	ArchMap         []struct {
		Arch      specs.Arch   `json:"architecture"`
		SubArches []specs.Arch `json:"subArchitectures"`
	} `json:"archMap,omitempty"`
	Flags    []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	Syscalls []struct {
		Name     string                   `json:"name,omitempty"`
		Names    []string                 `json:"names,omitempty"`
		Action   specs.LinuxSeccompAction `json:"action"`
		ErrnoRet *uint                    `json:"errnoRet,omitempty"`
		Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
		Includes seccompFilter            `json:"includes,omitempty"`
		Excludes seccompFilter            `json:"excludes,omitempty"`
	} `json:"syscalls,omitempty"`
}

type seccompFilter struct {
	Caps   []string `json:"caps,omitempty"`
	Arches []string `json:"arches,omitempty"`
}

// LocalhostSeccomp loads the profile at path (on the node) for a process holding caps.
func LocalhostSeccomp(path string, caps []string) (*specs.LinuxSeccomp, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	var p seccompProfile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	if p.DefaultAction == "" {
		return nil, fmt.Errorf("seccomp profile %s names no defaultAction: %w", path, errdefs.ErrInvalidArgument)
	}
	s := &specs.LinuxSeccomp{DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet, Flags: p.Flags,
		Architectures: p.Architectures}
	native := nativeArches()
	if len(p.ArchMap) > 0 {
		s.Architectures = nil
		for _, m := range p.ArchMap {
			if slices.Contains(native, m.Arch) {
				s.Architectures = append(s.Architectures, m.Arch)
				s.Architectures = append(s.Architectures, m.SubArches...)
			}
		}
	}
	if len(s.Architectures) == 0 {
		// runc would filter the native ABI only; a profile's rules are meant for all of them.
		s.Architectures = native
	}
	goArch := runtime.GOARCH
	held := func(cp string) bool { return slices.Contains(caps, cp) }
	for _, c := range p.Syscalls {
		// As Docker reads them: a rule applies on the included arches, when the process
		// holds every included capability and none of the excluded ones.
		if len(c.Includes.Arches) > 0 && !slices.Contains(c.Includes.Arches, goArch) ||
			slices.Contains(c.Excludes.Arches, goArch) ||
			slices.ContainsFunc(c.Includes.Caps, func(cp string) bool { return !held(cp) }) ||
			slices.ContainsFunc(c.Excludes.Caps, held) {
			continue
		}
		names := c.Names
		if c.Name != "" {
			names = append(slices.Clone(names), c.Name)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("seccomp profile %s: a syscall rule names no syscall: %w", path, errdefs.ErrInvalidArgument)
		}
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: names, Action: c.Action, ErrnoRet: c.ErrnoRet, Args: c.Args})
	}
	return s, nil
}
