package volume

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Getter reads the objects that volumes project or refer to. The kubelet passes one backed
// by client-go.
type Getter interface {
	ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*v1.Secret, error)
	PersistentVolumeClaim(ctx context.Context, namespace, name string) (*v1.PersistentVolumeClaim, error)
	PersistentVolume(ctx context.Context, name string) (*v1.PersistentVolume, error)
	// ServiceAccountToken asks the API server for a token of the account (TokenRequest).
	ServiceAccountToken(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)
}

// ErrMissingSource wraps errors about a non-optional configMap/secret (or key) that does not
// exist; the kubelet turns it into CreateContainerConfigError / FailedMount events.
var ErrMissingSource = errors.New("missing volume source")

// Plugin directory names, as the real kubelet spells them.
const (
	pluginEmptyDir    = "kubernetes.io~empty-dir"
	pluginConfigMap   = "kubernetes.io~configmap"
	pluginSecret      = "kubernetes.io~secret"
	pluginDownwardAPI = "kubernetes.io~downward-api"
	pluginProjected   = "kubernetes.io~projected"
)

// Manager sets up and tears down the volumes of the pods on this node.
type Manager struct {
	podsDir string
	get     Getter
	log     *slog.Logger
	// secretsInMemory puts secret, downwardAPI and projected volumes on a tmpfs. Only tests
	// without the right to mount turn it off.
	secretsInMemory bool
	// tokens caches the service-account tokens of projected volumes until they are due
	// for rotation.
	tokens *tokenCache
}

// NewManager returns a Manager keeping pod volumes under podsDir (<kubelet root>/pods).
func NewManager(podsDir string, get Getter, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{podsDir: podsDir, get: get, log: log, secretsInMemory: true, tokens: newTokenCache()}
}

// Setup prepares every volume in pod.Spec.Volumes and returns the host path of each by volume
// name. It is called on every sync: see the package documentation for what is refreshed.
// allocatable supplies the defaults of resourceFieldRef limits and may be nil. The errors of
// all failing volumes are joined; the map is nil then.
func (m *Manager) Setup(ctx context.Context, pod *v1.Pod, allocatable v1.ResourceList) (map[string]string, error) {
	if _, err := m.podDir(pod.UID); err != nil {
		return nil, err
	}
	paths := make(map[string]string, len(pod.Spec.Volumes))
	var errs []error
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		path, err := m.setupVolume(ctx, pod, vol, allocatable)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", vol.Name, err))
			continue
		}
		paths[vol.Name] = path
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return paths, nil
}

func (m *Manager) setupVolume(ctx context.Context, pod *v1.Pod, vol *v1.Volume, allocatable v1.ResourceList) (string, error) {
	dir := func(plugin string) string {
		return filepath.Join(m.podsDir, string(pod.UID), "volumes", plugin, vol.Name)
	}
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	src := &vol.VolumeSource
	switch {
	case src.HostPath != nil:
		return src.HostPath.Path, checkHostPath(src.HostPath)
	case src.EmptyDir != nil:
		d := dir(pluginEmptyDir)
		return d, setupEmptyDir(d, src.EmptyDir, fsGroup)
	case src.ConfigMap != nil:
		d := dir(pluginConfigMap)
		return d, m.writeVolume(ctx, pod, d, false, fsGroup, func(p *payload) error {
			return m.configMapFiles(ctx, pod.Namespace, p, keySource{
				name: src.ConfigMap.Name, items: src.ConfigMap.Items, optional: src.ConfigMap.Optional,
				mode: src.ConfigMap.DefaultMode, user: src.ConfigMap.DefaultUser,
			})
		})
	case src.Secret != nil:
		d := dir(pluginSecret)
		return d, m.writeVolume(ctx, pod, d, true, fsGroup, func(p *payload) error {
			return m.secretFiles(ctx, pod.Namespace, p, keySource{
				name: src.Secret.SecretName, items: src.Secret.Items, optional: src.Secret.Optional,
				mode: src.Secret.DefaultMode, user: src.Secret.DefaultUser,
			})
		})
	case src.DownwardAPI != nil:
		d := dir(pluginDownwardAPI)
		return d, m.writeVolume(ctx, pod, d, true, fsGroup, func(p *payload) error {
			return downwardAPIFiles(p, pod, src.DownwardAPI.Items, src.DownwardAPI.DefaultMode, src.DownwardAPI.DefaultUser, allocatable)
		})
	case src.Projected != nil:
		d := dir(pluginProjected)
		return d, m.writeVolume(ctx, pod, d, true, fsGroup, func(p *payload) error {
			return m.projectedFiles(ctx, pod, p, src.Projected, allocatable)
		})
	case src.PersistentVolumeClaim != nil:
		return m.setupClaim(ctx, pod, vol)
	}
	return "", errors.New("unsupported volume type: nanokube serves emptyDir, hostPath, configMap, secret, downwardAPI, projected and persistentVolumeClaim volumes")
}

// writeVolume builds the files of an atomically written volume and writes them if they
// changed. inMemory asks for a tmpfs under the volume.
func (m *Manager) writeVolume(ctx context.Context, pod *v1.Pod, dir string, inMemory bool, fsGroup *int64, build func(*payload) error) error {
	p := payload{files: map[string]file{}}
	if err := build(&p); err != nil {
		return err
	}
	if inMemory && m.secretsInMemory {
		if err := mountTmpfs(dir, ""); err != nil {
			return err
		}
	} else if err := mkdirMode(dir, 0o777); err != nil {
		return err
	}
	written, err := writeAtomic(dir, p.files, fsGroup)
	if err != nil {
		return err
	}
	if written {
		m.log.DebugContext(ctx, "volume contents written", "pod", pod.Namespace+"/"+pod.Name, "dir", dir, "files", len(p.files))
	}
	return nil
}

// setupEmptyDir creates the directory once; a memory medium is a tmpfs mounted once.
func setupEmptyDir(dir string, src *v1.EmptyDirVolumeSource, fsGroup *int64) error {
	mode := uint32(0o777)
	if src.Mode != nil {
		mode = uint32(*src.Mode)
	}
	switch src.Medium {
	case v1.StorageMediumDefault:
		if _, err := os.Lstat(dir); err == nil {
			return nil
		}
		if err := mkdirMode(dir, mode); err != nil {
			return err
		}
	case v1.StorageMediumMemory:
		var opts []string
		if src.SizeLimit != nil && !src.SizeLimit.IsZero() {
			opts = append(opts, "size="+strconv.FormatInt(src.SizeLimit.Value(), 10))
		}
		if src.Mode != nil {
			opts = append(opts, fmt.Sprintf("mode=%o", mode))
		}
		mounted, err := isMountPoint(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if mounted {
			return nil
		}
		if err := mountTmpfs(dir, strings.Join(opts, ",")); err != nil {
			return err
		}
	default:
		return fmt.Errorf("emptyDir medium %q is not supported", src.Medium)
	}
	if fsGroup == nil {
		return nil
	}
	// As Kubernetes' SetVolumeOwnership does for a writable volume: group rwx, setgid.
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := os.Lchown(dir, -1, int(*fsGroup)); err != nil {
		return err
	}
	return unix.Chmod(dir, st.Mode&0o7777|0o2770)
}

// mkdirMode creates dir (and its parents) if missing and gives it exactly mode, which may
// carry the sticky and setgid bits.
func mkdirMode(dir string, mode uint32) error {
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := unix.Chmod(dir, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// mountTmpfs mounts a tmpfs on dir unless one is already there.
func mountTmpfs(dir, opts string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if mounted, err := isMountPoint(dir); err != nil || mounted {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is on another device than its parent, which is always
// true of a tmpfs mounted there.
func isMountPoint(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, &fs.PathError{Op: "lstat", Path: filepath.Dir(dir), Err: err}
	}
	return st.Dev != parent.Dev, nil
}

// checkHostPath checks the host path against its declared type, creating it for the
// ...OrCreate types as Kubernetes does (no parent directories for FileOrCreate).
func checkHostPath(src *v1.HostPathVolumeSource) error {
	path := src.Path
	if !filepath.IsAbs(path) {
		return fmt.Errorf("hostPath %q is not absolute", path)
	}
	typ := v1.HostPathUnset
	if src.Type != nil {
		typ = *src.Type
	}
	fi, err := os.Stat(path)
	switch {
	case typ == v1.HostPathUnset:
		return nil
	case errors.Is(err, fs.ErrNotExist) && typ == v1.HostPathDirectoryOrCreate:
		if err := os.MkdirAll(path, 0o755); err != nil {
			return err
		}
		return os.Chmod(path, 0o755)
	case errors.Is(err, fs.ErrNotExist) && typ == v1.HostPathFileOrCreate:
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			return err
		}
		return f.Close()
	case err != nil:
		return fmt.Errorf("hostPath type check for %s: %w", typ, err)
	}
	var ok bool
	switch typ {
	case v1.HostPathDirectory, v1.HostPathDirectoryOrCreate:
		ok = fi.IsDir()
	case v1.HostPathFile, v1.HostPathFileOrCreate:
		ok = fi.Mode().IsRegular()
	case v1.HostPathSocket:
		ok = fi.Mode()&fs.ModeSocket != 0
	case v1.HostPathCharDev:
		ok = fi.Mode()&fs.ModeCharDevice != 0
	case v1.HostPathBlockDev:
		ok = fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0
	default:
		return fmt.Errorf("unknown hostPath type %q", typ)
	}
	if !ok {
		return fmt.Errorf("hostPath type check failed: %s is not a %s (it is %s)", path, typ, fi.Mode().Type())
	}
	return nil
}

// Teardown unmounts every mount under podsDir/<uid> and removes the directory. It is safe to
// call for a pod that has no directory, and to call twice.
func (m *Manager) Teardown(ctx context.Context, podUID types.UID) error {
	if _, err := m.podDir(podUID); err != nil {
		return err
	}
	m.tokens.forget(podUID)
	// mountinfo lists resolved paths. The pod directory itself is not resolved, so a symlink
	// there is removed rather than followed.
	podsDir, err := filepath.EvalSymlinks(m.podsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	dir := filepath.Join(podsDir, string(podUID))
	mounts, err := mountPointsUnder(dir)
	if err != nil {
		return err
	}
	// Deepest first; a lazy unmount cannot fail on a busy mount, and after it nothing of the
	// mounted file system is reachable for RemoveAll.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, mp := range mounts {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
		m.log.DebugContext(ctx, "unmounted", "path", mp)
	}
	return os.RemoveAll(dir)
}

// mountPointsUnder lists the mount points at or below dir from /proc/self/mountinfo.
func mountPointsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) of mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// PodDirs lists the pod UIDs that have a directory under podsDir, for cleaning up after pods
// deleted while the kubelet was down.
func (m *Manager) PodDirs() ([]types.UID, error) {
	entries, err := os.ReadDir(m.podsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var uids []types.UID
	for _, e := range entries {
		if e.IsDir() {
			uids = append(uids, types.UID(e.Name()))
		}
	}
	return uids, nil
}

// podDir refuses UIDs that would lead anywhere but one directory below podsDir.
func (m *Manager) podDir(uid types.UID) (string, error) {
	s := string(uid)
	if s == "" || s == "." || s == ".." || strings.ContainsRune(s, '/') {
		return "", fmt.Errorf("invalid pod UID %q", s)
	}
	return filepath.Join(m.podsDir, s), nil
}
