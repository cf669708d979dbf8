package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// pluginLocalVolume is where claims' volumes are bind-mounted in a pod, as the real kubelet
// lays out local volumes.
const pluginLocalVolume = "kubernetes.io~local-volume"

// DefaultLocalPathDir is where nanokube's local-path provisioner puts volumes unless
// configured otherwise; it must match the controller manager's setting.
const DefaultLocalPathDir = "/var/lib/nanokube/storage"

// localPathPrefix starts the directory names of provisioned volumes ("pvc-<claim uid>"); the
// sweep never touches anything else.
const localPathPrefix = "pvc-"

// ErrClaimNotBound wraps errors about a persistentVolumeClaim whose volume is not bound yet:
// the pod waits and the kubelet retries.
var ErrClaimNotBound = errors.New("claim not bound")

// setupClaim resolves a persistentVolumeClaim volume to its bound PersistentVolume and
// bind-mounts the volume's directory at <pod>/volumes/kubernetes.io~local-volume/<pv name>,
// which it returns. hostPath and local volumes are served; a hostPath of type
// DirectoryOrCreate (what the local-path provisioner makes) is created on first use.
func (m *Manager) setupClaim(ctx context.Context, pod *v1.Pod, vol *v1.Volume) (string, error) {
	path, err := m.resolveClaim(ctx, pod, vol.PersistentVolumeClaim)
	if err != nil {
		return "", err
	}
	pvName, source := path[0], path[1]
	if err := m.recordLocalPath(pvName); err != nil {
		return "", err
	}
	dir := filepath.Join(m.podsDir, string(pod.UID), "volumes", pluginLocalVolume, pvName)
	return dir, bindMount(source, dir, vol.PersistentVolumeClaim.ReadOnly)
}

// localPathRecords is the directory of records of the volumes this kubelet has mounted:
// one empty file per PersistentVolume, beside the pods directory. SweepLocalPaths removes
// the data of those volumes only, never of volumes it did not mount here: another node
// sharing the directory (nodes of a test in network namespaces of one machine) or another
// cluster's kubelet on the same machine.
func (m *Manager) localPathRecords() string {
	return filepath.Join(filepath.Dir(m.podsDir), "local-path-volumes")
}

// recordLocalPath records that this kubelet mounted the volume pvName.
func (m *Manager) recordLocalPath(pvName string) error {
	record := filepath.Join(m.localPathRecords(), pvName)
	if _, err := os.Stat(record); err == nil {
		return nil
	}
	if err := os.MkdirAll(m.localPathRecords(), 0o700); err != nil {
		return err
	}
	return os.WriteFile(record, nil, 0o600)
}

// resolveClaim returns the name and the host directory of the volume bound to a claim.
func (m *Manager) resolveClaim(ctx context.Context, pod *v1.Pod, src *v1.PersistentVolumeClaimVolumeSource) ([2]string, error) {
	var none [2]string
	pvc, err := m.get.PersistentVolumeClaim(ctx, pod.Namespace, src.ClaimName)
	if apierrors.IsNotFound(err) {
		return none, fmt.Errorf("persistentvolumeclaim %q not found: %w", src.ClaimName, ErrClaimNotBound)
	}
	if err != nil {
		return none, fmt.Errorf("persistentvolumeclaim %q: %w", src.ClaimName, err)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != v1.ClaimBound {
		phase := pvc.Status.Phase
		if phase == "" {
			phase = v1.ClaimPending
		}
		return none, fmt.Errorf("persistentvolumeclaim %q is not bound yet (phase %s): %w", pvc.Name, phase, ErrClaimNotBound)
	}
	pv, err := m.get.PersistentVolume(ctx, pvc.Spec.VolumeName)
	if err != nil {
		return none, fmt.Errorf("persistentvolume %q of claim %q: %w", pvc.Spec.VolumeName, pvc.Name, err)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID {
		return none, fmt.Errorf("persistentvolume %q is not bound to claim %q: %w", pv.Name, pvc.Name, ErrClaimNotBound)
	}
	var source string
	switch {
	case pv.Spec.HostPath != nil:
		if err := checkHostPath(pv.Spec.HostPath); err != nil {
			return none, err
		}
		source = pv.Spec.HostPath.Path
	case pv.Spec.Local != nil:
		// As in Kubernetes, a local volume's path must exist: it is the administrator's disk.
		if _, err := os.Stat(pv.Spec.Local.Path); err != nil {
			return none, fmt.Errorf("local volume %q: %w", pv.Name, err)
		}
		source = pv.Spec.Local.Path
	default:
		return none, fmt.Errorf("persistentvolume %q: only hostPath and local volumes are supported", pv.Name)
	}
	return [2]string{pv.Name, source}, nil
}

// bindMount bind-mounts source on target unless target already is a mount point.
func bindMount(source, target string, readOnly bool) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return err
	}
	mounted, err := isBindTarget(target)
	if err != nil || mounted {
		return err
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount %s on %s: %w", source, target, err)
	}
	if readOnly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

// isBindTarget reports whether dir is a mount point. A bind mount from the same file system
// keeps the device number, so mountinfo is asked rather than stat.
func isBindTarget(dir string) (bool, error) {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false, err
	}
	mounts, err := mountPointsUnder(resolved)
	if err != nil {
		return false, err
	}
	return slices.Contains(mounts, resolved), nil
}

// SweepLocalPaths removes the directories pvc-* under baseDir of volumes this kubelet has
// mounted (see localPathRecords) whose PersistentVolume no longer exists: the data of
// deleted local-path volumes (reclaim policy Delete), which the provisioner cannot remove
// since it may run on another node. volumes returns the names of the volumes that exist; it
// is called after the records are listed, so that a volume recorded meanwhile is never
// mistaken for a deleted one. A directory still bind-mounted into a pod of this node is
// kept. It returns the removed directories.
func (m *Manager) SweepLocalPaths(ctx context.Context, baseDir string, volumes func(context.Context) (map[string]bool, error)) ([]string, error) {
	entries, err := os.ReadDir(m.localPathRecords())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var candidates []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), localPathPrefix) {
			candidates = append(candidates, e.Name())
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	live, err := volumes(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range candidates {
		if live[name] {
			continue
		}
		inUse, err := filepath.Glob(filepath.Join(m.podsDir, "*", "volumes", pluginLocalVolume, name))
		if err != nil || len(inUse) > 0 {
			continue
		}
		dir := filepath.Join(baseDir, name)
		_, statErr := os.Stat(dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(filepath.Join(m.localPathRecords(), name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		if statErr == nil {
			m.log.InfoContext(ctx, "removed the data of a deleted local-path volume", "dir", dir)
			removed = append(removed, dir)
		}
	}
	return removed, errors.Join(errs...)
}
