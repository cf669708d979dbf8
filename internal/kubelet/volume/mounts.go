package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Mounts turns a container's volumeMounts into CRI mounts, given the host path of each
// volume as Setup returned them. A subPath must be relative and free of ".."; it is resolved
// through symlinks, must stay inside the volume, and is created if missing unless the volume
// is written by the kubelet (configMap, secret, downwardAPI, projected), whose mounts are
// also always read-only. An unknown volume name is an error.
func Mounts(c *v1.Container, hostPaths map[string]string) ([]*runtimeapi.Mount, error) {
	mounts := make([]*runtimeapi.Mount, 0, len(c.VolumeMounts))
	for _, vm := range c.VolumeMounts {
		m, err := mount(c, &vm, hostPaths)
		if err != nil {
			return nil, fmt.Errorf("container %q: volumeMount %q at %s: %w", c.Name, vm.Name, vm.MountPath, err)
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

func mount(c *v1.Container, vm *v1.VolumeMount, hostPaths map[string]string) (*runtimeapi.Mount, error) {
	root, ok := hostPaths[vm.Name]
	if !ok {
		return nil, errors.New("no volume of that name in the pod")
	}
	if vm.SubPathExpr != "" {
		return nil, errors.New("subPathExpr is not supported")
	}
	written := writtenByKubelet(root)
	host := root
	if vm.SubPath != "" {
		var err error
		if host, err = subPath(root, vm.SubPath, !written); err != nil {
			return nil, err
		}
	}
	m := &runtimeapi.Mount{
		ContainerPath:     vm.MountPath,
		HostPath:          host,
		Readonly:          vm.ReadOnly || written,
		RecursiveReadOnly: vm.RecursiveReadOnly != nil && *vm.RecursiveReadOnly == v1.RecursiveReadOnlyEnabled,
	}
	switch p := vm.MountPropagation; {
	case p == nil || *p == v1.MountPropagationNone:
		m.Propagation = runtimeapi.MountPropagation_PROPAGATION_PRIVATE
	case *p == v1.MountPropagationHostToContainer:
		m.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	case *p == v1.MountPropagationBidirectional:
		if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
			return nil, errors.New("mountPropagation Bidirectional needs a privileged container")
		}
		m.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	default:
		return nil, fmt.Errorf("unknown mountPropagation %q", *p)
	}
	return m, nil
}

// writtenByKubelet tells the atomically written volumes by their plugin directory.
func writtenByKubelet(root string) bool {
	switch filepath.Base(filepath.Dir(root)) {
	case pluginConfigMap, pluginSecret, pluginDownwardAPI, pluginProjected:
		return true
	}
	return false
}

// subPath returns the resolved host path of sub inside the volume at root, creating missing
// directories (with the volume root's mode) when create is set. Symlinks met on the way must
// point inside the volume, so a container cannot plant one that exposes the host.
func subPath(root, sub string, create bool) (string, error) {
	if filepath.IsAbs(sub) || slices.Contains(strings.Split(sub, "/"), "..") {
		return "", fmt.Errorf("subPath %q must be a relative path without '..'", sub)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	escapes := func(p string) bool {
		rel, err := filepath.Rel(realRoot, p)
		return err != nil || rel == ".." || strings.HasPrefix(rel, "../")
	}
	if create {
		var st unix.Stat_t
		if err := unix.Stat(realRoot, &st); err != nil {
			return "", fmt.Errorf("stat %s: %w", realRoot, err)
		}
		cur := realRoot
		for _, part := range strings.Split(filepath.Clean(sub), "/") {
			next := filepath.Join(cur, part)
			if _, err := os.Lstat(next); errors.Is(err, fs.ErrNotExist) {
				if err := os.Mkdir(next, 0o700); err != nil {
					return "", err
				}
				if err := unix.Chmod(next, st.Mode&0o7777); err != nil {
					return "", fmt.Errorf("chmod %s: %w", next, err)
				}
			} else if err != nil {
				return "", err
			}
			if cur, err = filepath.EvalSymlinks(next); err != nil {
				return "", err
			}
			if escapes(cur) {
				return "", fmt.Errorf("subPath %q leads outside the volume", sub)
			}
		}
	}
	resolved, err := filepath.EvalSymlinks(filepath.Join(realRoot, sub))
	if err != nil {
		return "", fmt.Errorf("subPath %q: %w", sub, err)
	}
	if escapes(resolved) {
		return "", fmt.Errorf("subPath %q leads outside the volume", sub)
	}
	return resolved, nil
}
