package container

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

func blocked(s *specs.LinuxSeccomp, name string) bool {
	for _, c := range s.Syscalls {
		if c.Action == specs.ActErrno && slices.Contains(c.Names, name) {
			return true
		}
	}
	return false
}

func TestSeccomp(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(profile, []byte(`{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"},
    {"name": "sethostname", "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["reboot"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_BOOT", "CAP_SYS_ADMIN"]}}
  ]
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"syscalls": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	localhost := func(p string) *runtimeapi.SecurityProfile {
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: p}
	}
	for _, tc := range []struct {
		name       string
		sc         *runtimeapi.LinuxContainerSecurityContext
		caps       []string
		none       bool
		invalid    bool
		blocks     []string
		allows     []string
		defaultAct specs.LinuxSeccompAction
	}{
		{name: "no profile is unconfined", sc: &runtimeapi.LinuxContainerSecurityContext{}, none: true},
		{name: "unconfined", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}, none: true},
		{name: "runtime default", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{}}, caps: defaultCaps,
			blocks: []string{"mount", "unshare", "reboot", "init_module", "keyctl", "ptrace", "bpf"}, allows: []string{"chmod", "sethostname"}, defaultAct: specs.ActAllow},
		{name: "runtime default lets capabilities grant their syscalls", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{}},
			caps: append(slices.Clone(defaultCaps), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"), blocks: []string{"reboot", "keyctl"}, allows: []string{"mount", "setns", "ptrace"}, defaultAct: specs.ActAllow},
		{name: "runtime default by path", sc: &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default"}, caps: defaultCaps,
			blocks: []string{"mount"}, defaultAct: specs.ActAllow},
		{name: "privileged ignores the profile", sc: &runtimeapi.LinuxContainerSecurityContext{Privileged: true, Seccomp: localhost(profile)}, none: true},
		{name: "localhost without the capabilities", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(profile)}, caps: defaultCaps,
			blocks: []string{"chmod", "fchmodat", "sethostname"}, allows: []string{"reboot"}, defaultAct: specs.ActAllow},
		{name: "localhost with the capabilities", sc: &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/" + profile},
			caps: []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT"}, blocks: []string{"chmod", "reboot"}, allows: []string{"sethostname"}, defaultAct: specs.ActAllow},
		{name: "missing localhost profile", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(filepath.Join(dir, "nope.json"))}, invalid: true},
		{name: "profile without a default action", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(bad)}, invalid: true},
		{name: "unknown path form", sc: &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "/abs/path.json"}, invalid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Seccomp(tc.sc, tc.caps)
			if tc.invalid {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %v, want an invalid-argument error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.none {
				if s != nil {
					t.Fatalf("got a filter %+v, want none", s)
				}
				return
			}
			if s.DefaultAction != tc.defaultAct {
				t.Errorf("default action %s, want %s", s.DefaultAction, tc.defaultAct)
			}
			for _, n := range tc.blocks {
				if !blocked(s, n) {
					t.Errorf("%s is not blocked", n)
				}
			}
			for _, n := range tc.allows {
				if blocked(s, n) {
					t.Errorf("%s is blocked", n)
				}
			}
			if len(s.Architectures) == 0 {
				t.Errorf("no architectures: other ABIs would bypass the filter")
			}
		})
	}
}
