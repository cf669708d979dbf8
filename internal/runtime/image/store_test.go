package image

import (
	"context"
	"errors"
	"github.com/google/go-containerregistry/pkg/name"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                       "docker.io/library/busybox:latest",
		"busybox:1.36":                  "docker.io/library/busybox:1.36",
		"docker.io/foo/bar":             "docker.io/foo/bar:latest",
		"127.0.0.1:5000/x/y:v1":         "127.0.0.1:5000/x/y:v1",
		"registry.k8s.io/pause:3.9":     "registry.k8s.io/pause:3.9",
		"quay.io/a/b@sha256:" + hex64(): "quay.io/a/b@sha256:" + hex64(),
	} {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Normalize("UPPER/case"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Normalize(bad) error = %v, want invalid argument", err)
	}
}

func hex64() string {
	return "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

func TestPullListRemove(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("unpacking layers with whiteouts and ownership needs root")
	}
	reg := testimage.StartRegistry(t, "")
	base, err := testimage.Build(testimage.Spec{Cmd: []string{"sleep", "10"}})
	if err != nil {
		t.Fatal(err)
	}
	two, err := testimage.Build(testimage.Spec{Extra: []testimage.File{{Path: "hello", Body: []byte("hi\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Push(reg+"/test/base:1", base); err != nil {
		t.Fatal(err)
	}
	if err := testimage.PushIndex(reg+"/test/two:multi", two); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := Open(t.TempDir(), RegistryConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Concurrent pulls of one reference share one download.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = s.Pull(ctx, reg+"/test/base:1", nil) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	img2, err := s.Pull(ctx, reg+"/test/two:multi", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(img2.Layers) != 2 {
		t.Fatalf("multi-arch pull resolved to an image with %d layers, want the amd64 one with 2", len(img2.Layers))
	}
	if got := len(s.List()); got != 2 {
		t.Fatalf("List has %d images, want 2", got)
	}
	img1, err := s.Get(reg + "/test/base:1")
	if err != nil {
		t.Fatal(err)
	}
	if img1.Layers[0] != img2.Layers[0] {
		t.Fatalf("base layer not shared: %s vs %s", img1.Layers[0], img2.Layers[0])
	}
	for _, ref := range []string{img1.ID, img1.ID[7:19], img1.RepoDigests[0]} {
		if got, err := s.Get(ref); err != nil || got.ID != img1.ID {
			t.Errorf("Get(%q) = %v, %v", ref, got, err)
		}
	}
	if img1.Config == nil || img1.Config.Config.Cmd[0] != "sleep" {
		t.Errorf("config not loaded: %+v", img1.Config)
	}
	if b, err := os.ReadFile(filepath.Join(LowerDirs([]string{s.LayerPath(img2.Layers[1])})[0], "hello")); err != nil || string(b) != "hi\n" {
		t.Errorf("layer content: %q, %v", b, err)
	}

	// A reopened store finds the same images.
	s2, err := Open(s.root, RegistryConfig{}, nil)
	if err != nil || len(s2.List()) != 2 {
		t.Fatalf("reopen: %v, %d images", err, len(s2.List()))
	}

	// Removing an image keeps layers that another image or a container still uses.
	held := s.AcquireLayers(img2.Layers)
	if err := s.Remove(img2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(held[0]); err != nil {
		t.Errorf("held layer removed: %v", err)
	}
	s.Release(img2.Layers)
	if _, err := os.Stat(s.LayerPath(img2.Layers[1])); !os.IsNotExist(err) {
		t.Errorf("released unused layer still there: %v", err)
	}
	if _, err := os.Stat(s.LayerPath(img2.Layers[0])); err != nil {
		t.Errorf("shared base layer removed: %v", err)
	}
	if err := s.Remove("nope:1"); err != nil {
		t.Errorf("removing a missing image: %v", err)
	}
}

func TestPullErrors(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	reg := testimage.StartRegistry(t, "")
	s, err := Open(t.TempDir(), RegistryConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Pull(ctx, reg+"/missing/image:1", nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing image: %v, want not found", err)
	}
	if _, err := s.Pull(ctx, "127.0.0.1:1/x:1", nil); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("unreachable registry: %v, want unavailable", err)
	}
	if _, err := s.Pull(ctx, "Bad Ref", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad reference: %v, want invalid argument", err)
	}
	if _, err := s.Get("nothing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
}

func TestMirror(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	reg := testimage.StartRegistry(t, "")
	img, err := testimage.Build(testimage.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Push(reg+"/library/busybox:mirror", img); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.TempDir(), RegistryConfig{Mirrors: map[string]Mirror{"docker.io": {Endpoints: []string{"http://" + reg}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Pull(context.Background(), "busybox:mirror", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.RepoTags[0] != "docker.io/library/busybox:mirror" {
		t.Errorf("tags %v", got.RepoTags)
	}

	// With noFallback a reference the mirror lacks fails without asking docker.io.
	cfg := RegistryConfig{Mirrors: map[string]Mirror{"docker.io": {Endpoints: []string{"http://" + reg}, NoFallback: true}}}
	eps, err := cfg.endpoints(mustParse(t, "busybox:absent"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].ref.Context().RegistryStr() != reg {
		t.Fatalf("endpoints with noFallback = %d, want the mirror only", len(eps))
	}
}

func mustParse(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestImportDockerArchive(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := testimage.WriteDockerArchive(filepath.Join(dir, "a.tar"), "example.com/air/gapped:1", img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("not a tar"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.TempDir(), RegistryConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := s.ImportDir(context.Background(), dir)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("ImportDir: %v, %d images", err, len(imgs))
	}
	if _, err := s.Get("example.com/air/gapped:1"); err != nil {
		t.Fatal(err)
	}
}
