// Package nodecleanup removes what a node leaves on a machine once its processes are gone:
// pod sandboxes (through the runtime's CRI socket), mounts under a directory, and cgroup
// trees. Tests, benchmarks and the kubelet's pod teardown share it.
package nodecleanup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	internalapi "k8s.io/cri-api/pkg/apis"
	criclient "k8s.io/cri-client/pkg"
)

// RemoveSandboxes waits for the CRI runtime on socket sock to answer, then stops and
// removes every pod sandbox it holds (their containers with them). It returns the UIDs of
// the pods they belonged to.
func RemoveSandboxes(ctx context.Context, sock string) (podUIDs []string, err error) {
	var rs internalapi.RuntimeService
	for ctx.Err() == nil {
		if _, serr := os.Stat(sock); serr == nil {
			if rs, err = criclient.NewRemoteRuntimeServiceBuilder().WithEndpoint("unix://" + sock).
				WithConnectionTimeout(10 * time.Second).WithTracerProvider(nil).Build(ctx); err == nil {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rs == nil {
		return nil, fmt.Errorf("runtime at %s: %v", sock, err)
	}
	defer rs.Close(context.WithoutCancel(ctx))
	sbs, err := rs.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, sb := range sbs {
		podUIDs = append(podUIDs, sb.GetMetadata().GetUid())
		_ = rs.StopPodSandbox(ctx, sb.Id)
		if err := rs.RemovePodSandbox(ctx, sb.Id); err != nil {
			return podUIDs, err
		}
	}
	return podUIDs, nil
}

// Unmount detaches every mount below dir, deepest first.
func Unmount(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
}

// RemoveCgroups removes the cgroup dir and its children, deepest first. Cgroups that still
// hold processes stay.
func RemoveCgroups(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			RemoveCgroups(filepath.Join(dir, e.Name()))
		}
	}
	_ = unix.Rmdir(dir)
}

// RemoveCgroupsEverywhere removes the cgroup path (relative to the hierarchy root, such as
// "/kubepods/besteffort/pod<uid>") from every mounted cgroup hierarchy.
func RemoveCgroupsEverywhere(path string) {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*") // cgroup v1: one per controller
	for _, h := range append(hierarchies, "/sys/fs/cgroup") {
		RemoveCgroups(filepath.Join(h, path))
	}
}
