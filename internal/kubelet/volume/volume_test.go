package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeGetter stands in for the informer listers behind the kubelet's Getter.
type fakeGetter struct {
	configMaps map[string]*v1.ConfigMap // by name, namespace "ns"
	secrets    map[string]*v1.Secret
	claims     map[string]*v1.PersistentVolumeClaim
	volumes    map[string]*v1.PersistentVolume
	tokens     []*authenticationv1.TokenRequest // requests made, in order
}

// ServiceAccountToken answers "token-<n>" for the n-th request, valid as long as asked.
func (g *fakeGetter) ServiceAccountToken(_ context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	if name != "default" || namespace != "ns" {
		return nil, apierrors.NewNotFound(v1.Resource("serviceaccounts"), name)
	}
	g.tokens = append(g.tokens, tr)
	out := tr.DeepCopy()
	out.Status.Token = fmt.Sprintf("token-%d", len(g.tokens))
	out.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))
	return out, nil
}

func (g *fakeGetter) PersistentVolumeClaim(_ context.Context, namespace, name string) (*v1.PersistentVolumeClaim, error) {
	if c, ok := g.claims[name]; ok && namespace == "ns" {
		return c, nil
	}
	return nil, apierrors.NewNotFound(v1.Resource("persistentvolumeclaims"), name)
}

func (g *fakeGetter) PersistentVolume(_ context.Context, name string) (*v1.PersistentVolume, error) {
	if pv, ok := g.volumes[name]; ok {
		return pv, nil
	}
	return nil, apierrors.NewNotFound(v1.Resource("persistentvolumes"), name)
}

func (g *fakeGetter) ConfigMap(_ context.Context, namespace, name string) (*v1.ConfigMap, error) {
	if cm, ok := g.configMaps[name]; ok && namespace == "ns" {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(v1.Resource("configmaps"), name)
}

func (g *fakeGetter) Secret(_ context.Context, namespace, name string) (*v1.Secret, error) {
	if s, ok := g.secrets[name]; ok && namespace == "ns" {
		return s, nil
	}
	return nil, apierrors.NewNotFound(v1.Resource("secrets"), name)
}

func newGetter() *fakeGetter {
	return &fakeGetter{
		configMaps: map[string]*v1.ConfigMap{"app": {
			Data:       map[string]string{"a": "1", "b": "2"},
			BinaryData: map[string][]byte{"bin": {0, 1, 2}},
		}},
		secrets: map[string]*v1.Secret{"creds": {
			Data: map[string][]byte{"user": []byte("admin"), "pass": []byte("s3cret")},
		}},
	}
}

// canMount reports whether this process may mount a tmpfs (root with CAP_SYS_ADMIN).
var canMount = sync.OnceValue(func() bool {
	if os.Geteuid() != 0 {
		return false
	}
	dir, err := os.MkdirTemp("", "volume-mount-probe")
	if err != nil {
		return false
	}
	defer os.Remove(dir)
	if unix.Mount("tmpfs", dir, "tmpfs", 0, "") != nil {
		return false
	}
	return unix.Unmount(dir, 0) == nil
})

func needMount(t *testing.T) {
	t.Helper()
	if !canMount() {
		t.Skip("needs root with the right to mount a tmpfs")
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
}

// newManager returns a Manager under a temporary podsDir whose pods are torn down (and
// tmpfs unmounted) before the directory is removed.
func newManager(t *testing.T, g Getter, log *slog.Logger) *Manager {
	t.Helper()
	m := NewManager(filepath.Join(t.TempDir(), "pods"), g, log)
	m.secretsInMemory = canMount()
	t.Cleanup(func() {
		uids, _ := m.PodDirs()
		for _, uid := range uids {
			if err := m.Teardown(context.Background(), uid); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return m
}

func newPod(uid types.UID, vols ...v1.Volume) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "ns", UID: uid,
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"note": "hi"},
		},
		Spec: v1.PodSpec{
			NodeName: "node1",
			Volumes:  vols,
			Containers: []v1.Container{{
				Name: "app",
				Resources: v1.ResourceRequirements{
					Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")},
					Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")},
				},
			}},
		},
		Status: v1.PodStatus{PodIP: "10.0.0.7", HostIP: "192.168.1.2"},
	}
}

func vol(name string, src v1.VolumeSource) v1.Volume { return v1.Volume{Name: name, VolumeSource: src} }

func ptr[T any](v T) *T { return &v }

func setupOne(t *testing.T, m *Manager, src v1.VolumeSource) (string, error) {
	t.Helper()
	paths, err := m.Setup(context.Background(), newPod("uid-1", vol("v", src)), nil)
	return paths["v"], err
}

// visible lists the names a container sees at the top of a volume.
func visible(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") {
			names = append(names, e.Name())
		}
	}
	return names
}

func stat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigMapAndSecret(t *testing.T) {
	cm := func(s v1.ConfigMapVolumeSource) v1.VolumeSource {
		if s.Name == "" {
			s.Name = "app"
		}
		return v1.VolumeSource{ConfigMap: &s}
	}
	secret := func(s v1.SecretVolumeSource) v1.VolumeSource {
		if s.SecretName == "" {
			s.SecretName = "creds"
		}
		return v1.VolumeSource{Secret: &s}
	}
	tests := []struct {
		name    string
		src     v1.VolumeSource
		want    map[string]string // path -> content
		modes   map[string]uint32
		wantErr error
	}{
		{
			name:  "configMap all keys",
			src:   cm(v1.ConfigMapVolumeSource{}),
			want:  map[string]string{"a": "1", "b": "2", "bin": "\x00\x01\x02"},
			modes: map[string]uint32{"a": 0o644, "bin": 0o644},
		},
		{
			name: "configMap items with modes",
			src: cm(v1.ConfigMapVolumeSource{DefaultMode: ptr[int32](0o600), Items: []v1.KeyToPath{
				{Key: "a", Path: "conf/a.txt", Mode: ptr[int32](0o400)},
				{Key: "b", Path: "b"},
			}}),
			want:  map[string]string{"conf/a.txt": "1", "b": "2"},
			modes: map[string]uint32{"conf/a.txt": 0o400, "b": 0o600},
		},
		{
			name: "configMap optional and missing",
			src:  cm(v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Optional: ptr(true)}),
			want: map[string]string{},
		},
		{
			name:    "configMap missing",
			src:     cm(v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}}),
			wantErr: ErrMissingSource,
		},
		{
			name: "configMap optional key missing",
			src: cm(v1.ConfigMapVolumeSource{Optional: ptr(true), Items: []v1.KeyToPath{
				{Key: "a", Path: "a"}, {Key: "zz", Path: "zz"},
			}}),
			want: map[string]string{"a": "1"},
		},
		{
			name:    "configMap key missing",
			src:     cm(v1.ConfigMapVolumeSource{Items: []v1.KeyToPath{{Key: "zz", Path: "zz"}}}),
			wantErr: ErrMissingSource,
		},
		{
			name:  "secret all keys",
			src:   secret(v1.SecretVolumeSource{}),
			want:  map[string]string{"user": "admin", "pass": "s3cret"},
			modes: map[string]uint32{"user": 0o644},
		},
		{
			name:  "secret items and defaultMode",
			src:   secret(v1.SecretVolumeSource{DefaultMode: ptr[int32](0o400), Items: []v1.KeyToPath{{Key: "pass", Path: "password"}}}),
			want:  map[string]string{"password": "s3cret"},
			modes: map[string]uint32{"password": 0o400},
		},
		{
			name: "secret optional and missing",
			src:  secret(v1.SecretVolumeSource{SecretName: "nope", Optional: ptr(true)}),
			want: map[string]string{},
		},
		{
			name:    "secret missing",
			src:     secret(v1.SecretVolumeSource{SecretName: "nope"}),
			wantErr: ErrMissingSource,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, newGetter(), nil)
			dir, err := setupOne(t, m, tt.src)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Setup error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var wantTop []string
			for path, content := range tt.want {
				if got := readFile(t, filepath.Join(dir, path)); got != content {
					t.Errorf("%s = %q, want %q", path, got, content)
				}
				top, _, _ := strings.Cut(path, "/")
				if !slices.Contains(wantTop, top) {
					wantTop = append(wantTop, top)
				}
			}
			sort.Strings(wantTop)
			if got := visible(t, dir); !slices.Equal(got, wantTop) {
				t.Errorf("visible names = %v, want %v", got, wantTop)
			}
			for path, mode := range tt.modes {
				if got := stat(t, filepath.Join(dir, path)).Mode & 0o7777; got != mode {
					t.Errorf("mode of %s = %o, want %o", path, got, mode)
				}
			}
		})
	}
}

func TestDownwardAPI(t *testing.T) {
	items := []v1.DownwardAPIVolumeFile{
		{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "note", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations['note']"}},
		{Path: "meta/name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}, Mode: ptr[int32](0o600)},
		{Path: "ip", FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}},
		{Path: "mem", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		{Path: "cpu", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu"}},
	}
	m := newManager(t, newGetter(), nil)
	pod := newPod("uid-1", vol("v", v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: items}}))
	paths, err := m.Setup(context.Background(), pod, v1.ResourceList{v1.ResourceCPU: resource.MustParse("4")})
	if err != nil {
		t.Fatal(err)
	}
	dir := paths["v"]
	want := map[string]string{
		"labels":    "app=\"web\"\ntier=\"front\"",
		"note":      "hi",
		"meta/name": "web",
		"ip":        "10.0.0.7",
		"mem":       "64",
		"cpu":       "4", // no limit: the node's allocatable
	}
	for path, content := range want {
		if got := readFile(t, filepath.Join(dir, path)); got != content {
			t.Errorf("%s = %q, want %q", path, got, content)
		}
	}
	if got := stat(t, filepath.Join(dir, "meta/name")).Mode & 0o777; got != 0o600 {
		t.Errorf("mode of meta/name = %o, want 600", got)
	}

	for name, item := range map[string]v1.DownwardAPIVolumeFile{
		"no containerName": {Path: "x", ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu"}},
		"bad field":        {Path: "x", FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nope"}},
	} {
		_, err := setupOne(t, m, v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{item}}})
		if err == nil || errors.Is(err, ErrMissingSource) {
			t.Errorf("%s: Setup error = %v, want a plain error", name, err)
		}
	}
}

func TestProjected(t *testing.T) {
	g := newGetter()
	m := newManager(t, g, nil)
	src := v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
		DefaultMode: ptr[int32](0o440),
		Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token"}},
			{ConfigMap: &v1.ConfigMapProjection{
				LocalObjectReference: v1.LocalObjectReference{Name: "app"},
				Items:                []v1.KeyToPath{{Key: "a", Path: "ca.crt"}},
			}},
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}}},
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Optional: ptr(true)}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
			}}},
		},
	}}
	for range 2 {
		dir, err := setupOne(t, m, src)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := visible(t, dir), []string{"ca.crt", "namespace", "pass", "token", "user"}; !slices.Equal(got, want) {
			t.Fatalf("visible names = %v, want %v", got, want)
		}
		if got := readFile(t, filepath.Join(dir, "token")); got != "token-1" {
			t.Errorf("token = %q, want the first one, cached over syncs", got)
		}
		if got := readFile(t, filepath.Join(dir, "namespace")); got != "ns" {
			t.Errorf("namespace = %q", got)
		}
		if got := stat(t, filepath.Join(dir, "user")).Mode & 0o777; got != 0o440 {
			t.Errorf("mode of user = %o, want 440", got)
		}
	}
	if len(g.tokens) != 1 {
		t.Fatalf("%d token requests over two syncs, want 1", len(g.tokens))
	}
	ref := g.tokens[0].Spec.BoundObjectRef
	if ref == nil || ref.Kind != "Pod" || ref.UID != "uid-1" || *g.tokens[0].Spec.ExpirationSeconds != defaultTokenSeconds {
		t.Errorf("token request = %+v, want one bound to the pod for an hour", g.tokens[0].Spec)
	}
	// Past 80% of its life the token is replaced, and the file with it.
	m.tokens.now = func() time.Time { return time.Now().Add(49 * time.Minute) }
	dir, err := setupOne(t, m, src)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "token")); got != "token-2" {
		t.Errorf("token after 49 minutes = %q, want a fresh one", got)
	}

	_, err = setupOne(t, m, v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Path: "b"}},
	}}})
	if err == nil || !strings.Contains(err.Error(), "clusterTrustBundle volumes are not supported yet") {
		t.Errorf("clusterTrustBundle: Setup error = %v", err)
	}
}

func TestAtomicUpdate(t *testing.T) {
	g := newGetter()
	m := newManager(t, g, nil)
	src := v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}}
	dir, err := setupOne(t, m, src)
	if err != nil {
		t.Fatal(err)
	}
	oldData, _ := os.Readlink(filepath.Join(dir, dataLink))
	if !strings.HasPrefix(oldData, "..20") {
		t.Fatalf("..data -> %q, want a timestamped directory", oldData)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "a")); target != "..data/a" {
		t.Errorf("a -> %q, want ..data/a", target)
	}
	open, err := os.Open(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	g.configMaps["app"] = &v1.ConfigMap{Data: map[string]string{"a": "one", "c": "3"}}
	if _, err := setupOne(t, m, src); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "a")); got != "one" {
		t.Errorf("a after update = %q, want one", got)
	}
	if got, _ := io.ReadAll(open); string(got) != "1" {
		t.Errorf("file opened before the update reads %q, want the old 1", got)
	}
	if got, want := visible(t, dir), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("visible names = %v, want %v", got, want)
	}
	newData, _ := os.Readlink(filepath.Join(dir, dataLink))
	if newData == oldData {
		t.Errorf("..data still points to %s", oldData)
	}
	if _, err := os.Stat(filepath.Join(dir, oldData)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old data directory %s not removed: %v", oldData, err)
	}
}

func TestUnchangedContentIsNotRewritten(t *testing.T) {
	m := newManager(t, newGetter(), nil)
	src := v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: "app"},
		Items:                []v1.KeyToPath{{Key: "a", Path: "deep/er/a", Mode: ptr[int32](0o400)}},
	}}
	dir, err := setupOne(t, m, src)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.Readlink(filepath.Join(dir, dataLink))
	before := stat(t, filepath.Join(dir, "deep/er/a")).Mtim
	os.Remove(filepath.Join(dir, "deep")) // a lost visible link comes back
	for range 3 {
		if _, err := setupOne(t, m, src); err != nil {
			t.Fatal(err)
		}
	}
	if again, _ := os.Readlink(filepath.Join(dir, dataLink)); again != data {
		t.Errorf("..data moved from %s to %s although nothing changed", data, again)
	}
	if after := stat(t, filepath.Join(dir, "deep/er/a")).Mtim; after != before {
		t.Errorf("file rewritten: mtime %v -> %v", before, after)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "deep")); target != "..data/deep" {
		t.Errorf("deep -> %q, want ..data/deep", target)
	}
}

func TestFSGroupAndUser(t *testing.T) {
	needRoot(t)
	m := newManager(t, newGetter(), nil)
	pod := newPod("uid-1",
		vol("cfg", v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "app"},
			DefaultMode:          ptr[int32](0o400),
			Items:                []v1.KeyToPath{{Key: "a", Path: "a"}, {Key: "b", Path: "b", User: ptr[int64](1000)}},
		}}),
		vol("scratch", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}),
	)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr[int64](1234)}
	paths, err := m.Setup(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path     string
		mode     uint32
		uid, gid uint32
	}{
		{filepath.Join(paths["cfg"], "a"), 0o440, 0, 1234},
		{filepath.Join(paths["cfg"], "b"), 0o440, 1000, 1234},
		{paths["scratch"], 0o2777, 0, 1234},
	} {
		st := stat(t, tt.path)
		if st.Mode&0o7777 != tt.mode || st.Uid != tt.uid || st.Gid != tt.gid {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", tt.path, st.Mode&0o7777, st.Uid, st.Gid, tt.mode, tt.uid, tt.gid)
		}
	}
}

func TestEmptyDir(t *testing.T) {
	m := newManager(t, newGetter(), nil)
	pod := newPod("uid-1",
		vol("scratch", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}),
		vol("sticky", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Mode: ptr[int32](0o1770)}}),
	)
	paths, err := m.Setup(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(m.podsDir, "uid-1", "volumes", "kubernetes.io~empty-dir", "scratch")
	if paths["scratch"] != want {
		t.Errorf("path = %s, want %s", paths["scratch"], want)
	}
	if got := stat(t, want).Mode & 0o7777; got != 0o777 {
		t.Errorf("mode = %o, want 777", got)
	}
	if got := stat(t, paths["sticky"]).Mode & 0o7777; got != 0o1770 {
		t.Errorf("mode with mode: 01770 = %o", got)
	}
	if err := os.WriteFile(filepath.Join(want, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Setup(context.Background(), pod, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(want, "keep")); got != "x" {
		t.Errorf("content lost on resync: %q", got)
	}
}

func TestEmptyDirMemory(t *testing.T) {
	needMount(t)
	m := newManager(t, newGetter(), nil)
	pod := newPod("uid-1", vol("shm", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{
		Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("8Mi")),
	}}))
	paths, err := m.Setup(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := paths["shm"]
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.TMPFS_MAGIC || fs.Blocks*uint64(fs.Bsize) != 8<<20 {
		t.Errorf("statfs: type %#x size %d, want tmpfs of 8Mi", fs.Type, fs.Blocks*uint64(fs.Bsize))
	}
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Setup(context.Background(), pod, nil); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := mountPointsUnder(dir); len(mounts) != 1 {
		t.Errorf("mounts at %s after two syncs: %v, want one", dir, mounts)
	}
	if got := readFile(t, filepath.Join(dir, "keep")); got != "x" {
		t.Errorf("content lost on resync: %q", got)
	}
}

func TestHostPath(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "dir")
	file := filepath.Join(tmp, "file")
	sock := filepath.Join(tmp, "sock")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	missing := func(name string) string { return filepath.Join(tmp, "missing", name) }

	tests := []struct {
		path    string
		typ     v1.HostPathType
		wantErr bool
		created os.FileMode // type and permissions of a path the check creates
	}{
		{path: missing("x"), typ: v1.HostPathUnset},
		{path: filepath.Join(tmp, "new-dir/sub"), typ: v1.HostPathDirectoryOrCreate, created: os.ModeDir | 0o755},
		{path: file, typ: v1.HostPathDirectoryOrCreate, wantErr: true},
		{path: dir, typ: v1.HostPathDirectory},
		{path: missing("d"), typ: v1.HostPathDirectory, wantErr: true},
		{path: file, typ: v1.HostPathDirectory, wantErr: true},
		{path: filepath.Join(tmp, "new-file"), typ: v1.HostPathFileOrCreate, created: 0o644},
		{path: missing("f"), typ: v1.HostPathFileOrCreate, wantErr: true}, // no parents, as in Kubernetes
		{path: dir, typ: v1.HostPathFileOrCreate, wantErr: true},
		{path: file, typ: v1.HostPathFile},
		{path: dir, typ: v1.HostPathFile, wantErr: true},
		{path: sock, typ: v1.HostPathSocket},
		{path: file, typ: v1.HostPathSocket, wantErr: true},
		{path: "/dev/null", typ: v1.HostPathCharDev},
		{path: file, typ: v1.HostPathCharDev, wantErr: true},
		{path: "/dev/null", typ: v1.HostPathBlockDev, wantErr: true},
		{path: "relative/path", typ: v1.HostPathUnset, wantErr: true},
	}
	if fi, err := os.Stat("/dev/loop0"); err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
		tests = append(tests, struct {
			path    string
			typ     v1.HostPathType
			wantErr bool
			created os.FileMode
		}{path: "/dev/loop0", typ: v1.HostPathBlockDev})
	}
	m := newManager(t, newGetter(), nil)
	for _, tt := range tests {
		name := string(tt.typ)
		if name == "" {
			name = "unset"
		}
		t.Run(name+"/"+filepath.Base(tt.path), func(t *testing.T) {
			path, err := setupOne(t, m, v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: tt.path, Type: &tt.typ}})
			if tt.wantErr {
				if err == nil {
					t.Fatal("Setup succeeded, want a type check error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if path != tt.path {
				t.Errorf("path = %s, want the host path %s", path, tt.path)
			}
			if tt.created != 0 {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != tt.created {
					t.Errorf("created %v, want %v", fi.Mode(), tt.created)
				}
			}
		})
	}
}

func TestUnsupportedVolumes(t *testing.T) {
	m := newManager(t, newGetter(), nil)
	pod := newPod("uid-1",
		vol("eph", v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}),
		vol("cfg", v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}}}),
		vol("ok", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}),
	)
	paths, err := m.Setup(context.Background(), pod, nil)
	if paths != nil || err == nil {
		t.Fatalf("Setup = %v, %v; want an error", paths, err)
	}
	for _, want := range []string{`volume "eph": unsupported volume type`, `volume "cfg": missing volume source: configMap "nope" not found`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, ErrMissingSource) {
		t.Errorf("joined error does not wrap ErrMissingSource")
	}
}

func TestMounts(t *testing.T) {
	m := newManager(t, newGetter(), nil)
	host := t.TempDir()
	paths, err := m.Setup(context.Background(), newPod("uid-1",
		vol("cache", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}),
		vol("cfg", v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}}),
		vol("host", v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: host}}),
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(paths["cache"], "evil")); err != nil {
		t.Fatal(err)
	}
	cfgData, _ := os.Readlink(filepath.Join(paths["cfg"], dataLink))
	cache, _ := filepath.EvalSymlinks(paths["cache"])
	cfg, _ := filepath.EvalSymlinks(paths["cfg"])
	propagation := func(p v1.MountPropagationMode) *v1.MountPropagationMode { return &p }

	tests := []struct {
		name       string
		mount      v1.VolumeMount
		privileged bool
		want       *runtimeapi.Mount
		wantErr    string
	}{
		{
			name:  "plain",
			mount: v1.VolumeMount{Name: "cache", MountPath: "/cache"},
			want:  &runtimeapi.Mount{ContainerPath: "/cache", HostPath: paths["cache"], Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
		},
		{
			name:  "readOnly, HostToContainer",
			mount: v1.VolumeMount{Name: "host", MountPath: "/h", ReadOnly: true, MountPropagation: propagation(v1.MountPropagationHostToContainer)},
			want:  &runtimeapi.Mount{ContainerPath: "/h", HostPath: host, Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		},
		{
			name:       "Bidirectional, privileged",
			mount:      v1.VolumeMount{Name: "host", MountPath: "/h", MountPropagation: propagation(v1.MountPropagationBidirectional)},
			privileged: true,
			want:       &runtimeapi.Mount{ContainerPath: "/h", HostPath: host, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		},
		{
			name:    "Bidirectional, unprivileged",
			mount:   v1.VolumeMount{Name: "host", MountPath: "/h", MountPropagation: propagation(v1.MountPropagationBidirectional)},
			wantErr: "privileged",
		},
		{
			name:  "configMap is read-only",
			mount: v1.VolumeMount{Name: "cfg", MountPath: "/etc/app", MountPropagation: propagation(v1.MountPropagationNone)},
			want:  &runtimeapi.Mount{ContainerPath: "/etc/app", HostPath: paths["cfg"], Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
		},
		{
			name:  "subPath created in emptyDir",
			mount: v1.VolumeMount{Name: "cache", MountPath: "/logs", SubPath: "logs/app"},
			want:  &runtimeapi.Mount{ContainerPath: "/logs", HostPath: filepath.Join(cache, "logs/app"), Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
		},
		{
			name:  "subPath file of a configMap",
			mount: v1.VolumeMount{Name: "cfg", MountPath: "/a", SubPath: "a"},
			want:  &runtimeapi.Mount{ContainerPath: "/a", HostPath: filepath.Join(cfg, cfgData, "a"), Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
		},
		{name: "subPath missing in configMap", mount: v1.VolumeMount{Name: "cfg", MountPath: "/x", SubPath: "x"}, wantErr: "no such file"},
		{name: "subPath ..", mount: v1.VolumeMount{Name: "cache", MountPath: "/x", SubPath: "../x"}, wantErr: "without '..'"},
		{name: "subPath inner ..", mount: v1.VolumeMount{Name: "cache", MountPath: "/x", SubPath: "a/../../x"}, wantErr: "without '..'"},
		{name: "subPath absolute", mount: v1.VolumeMount{Name: "host", MountPath: "/x", SubPath: "/etc"}, wantErr: "without '..'"},
		{name: "subPath symlink out", mount: v1.VolumeMount{Name: "cache", MountPath: "/x", SubPath: "evil"}, wantErr: "outside the volume"},
		{name: "subPath through symlink", mount: v1.VolumeMount{Name: "cache", MountPath: "/x", SubPath: "evil/etc"}, wantErr: "outside the volume"},
		{name: "subPathExpr", mount: v1.VolumeMount{Name: "cache", MountPath: "/x", SubPathExpr: "$(POD)"}, wantErr: "not supported"},
		{name: "unknown volume", mount: v1.VolumeMount{Name: "nope", MountPath: "/x"}, wantErr: "no volume of that name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &v1.Container{Name: "app", VolumeMounts: []v1.VolumeMount{tt.mount}}
			if tt.privileged {
				c.SecurityContext = &v1.SecurityContext{Privileged: ptr(true)}
			}
			mounts, err := Mounts(c, paths)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Mounts error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := mounts[0]
			if got.ContainerPath != tt.want.ContainerPath || got.HostPath != tt.want.HostPath ||
				got.Readonly != tt.want.Readonly || got.Propagation != tt.want.Propagation {
				t.Errorf("mount = %v, want %v", got, tt.want)
			}
		})
	}
	if fi, err := os.Stat(filepath.Join(cache, "logs/app")); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("created subPath: %v, %v; want a directory with the volume's mode 0777", fi, err)
	}
}

func TestTeardown(t *testing.T) {
	m := newManager(t, newGetter(), nil)
	vols := []v1.Volume{
		vol("scratch", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}),
		vol("creds", v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds"}}),
	}
	if canMount() {
		vols = append(vols, vol("shm", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}))
	} else {
		t.Log("not root: tearing down without tmpfs mounts")
	}
	if _, err := m.Setup(context.Background(), newPod("uid-1", vols...), nil); err != nil {
		t.Fatal(err)
	}
	podDir := filepath.Join(m.podsDir, "uid-1")
	realDir, _ := filepath.EvalSymlinks(podDir)
	if mounts, _ := mountPointsUnder(realDir); canMount() && len(mounts) != 2 {
		t.Errorf("mounts under the pod = %v, want the secret and the memory emptyDir", mounts)
	}
	for range 2 {
		if err := m.Teardown(context.Background(), "uid-1"); err != nil {
			t.Fatal(err)
		}
	}
	if mounts, _ := mountPointsUnder(realDir); len(mounts) != 0 {
		t.Errorf("mounts left: %v", mounts)
	}
	if _, err := os.Stat(podDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod directory left: %v", err)
	}
	for _, uid := range []types.UID{"", "..", "a/b"} {
		if err := m.Teardown(context.Background(), uid); err == nil {
			t.Errorf("Teardown(%q) succeeded", uid)
		}
	}
}

func TestPodDirs(t *testing.T) {
	m := newManager(t, newGetter(), nil)
	if uids, err := m.PodDirs(); err != nil || len(uids) != 0 {
		t.Fatalf("PodDirs before any pod = %v, %v", uids, err)
	}
	for _, uid := range []types.UID{"uid-2", "uid-1"} {
		if _, err := m.Setup(context.Background(), newPod(uid, vol("v", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}})), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(m.podsDir, "stray-file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	uids, err := m.PodDirs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []types.UID{"uid-1", "uid-2"}; !slices.Equal(uids, want) {
		t.Errorf("PodDirs = %v, want %v", uids, want)
	}
}
