// Package testimage builds the small images the runtime's tests and critest need, from
// Debian's busybox-static binary, and runs a throwaway OCI registry (Debian's docker-registry)
// on loopback for them. It is used by tests and by hack/images.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// File is one entry of a layer built by Layer.
type File struct {
	Path     string
	Mode     int64
	Body     []byte
	Link     string // symlink target, if set
	HardLink string // path (in the layer) this entry is a hard link to, if set
	Dir      bool
	UID, GID int
}

// Layer returns an uncompressed layer holding files.
func Layer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	written := map[string]*tar.Header{}
	for _, f := range files {
		h := &tar.Header{Name: strings.TrimPrefix(f.Path, "/"), Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: mtime}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.HardLink != "":
			// A link shares its target's inode: same mode and owner (unpackers chmod it).
			t, ok := written[strings.TrimPrefix(f.HardLink, "/")]
			if !ok {
				return nil, fmt.Errorf("hard link %s to %s, which comes earlier in no layer entry", f.Path, f.HardLink)
			}
			h.Typeflag, h.Linkname, h.Mode, h.Uid, h.Gid = tar.TypeLink, t.Name, t.Mode, t.Uid, t.Gid
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		written[h.Name] = h
		if _, err := tw.Write(f.Body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// BusyboxLayer is the base layer: busybox, its applets as hard links to it, /etc/passwd with root,
// nobody and user 1000 ("user"), and the usual empty directories.
func BusyboxLayer() (v1.Layer, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox-static not installed: %w", err)
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	files := []File{
		{Path: "bin", Dir: true}, {Path: "etc", Dir: true}, {Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "root", Dir: true, Mode: 0o700}, {Path: "home", Dir: true}, {Path: "home/user", Dir: true, UID: 1000, GID: 1000},
		{Path: "var", Dir: true}, {Path: "usr", Dir: true}, {Path: "usr/bin", Dir: true}, {Path: "proc", Dir: true},
		{Path: "sys", Dir: true}, {Path: "dev", Dir: true},
		{Path: "bin/busybox", Mode: 0o755, Body: bin},
		{Path: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{Path: "etc/group", Body: []byte("root:x:0:\nuser:x:1000:\nextra:x:2000:user\nnogroup:x:65534:\n")},
	}
	for _, a := range applets {
		if a == "busybox" || strings.ContainsAny(a, "[/") {
			continue
		}
		// Hard links, as in the busybox images on Docker Hub: masking one applet (runc binds
		// /dev/null over the path) must not mask the busybox binary a symlink points to.
		files = append(files, File{Path: "bin/" + a, HardLink: "bin/busybox"})
	}
	return Layer(files)
}

// Spec describes one test image.
type Spec struct {
	Cmd        []string
	Entrypoint []string
	Env        []string
	User       string
	WorkingDir string
	StopSignal string
	Extra      []File // files in a second layer on top of the busybox layer; none: one layer
}

// Build returns the image for spec.
func Build(spec Spec) (v1.Image, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	layers := []v1.Layer{base}
	if len(spec.Extra) > 0 {
		l, err := Layer(spec.Extra)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	env := spec.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cf.Config = v1.Config{Cmd: spec.Cmd, Entrypoint: spec.Entrypoint, Env: env, User: spec.User,
		WorkingDir: spec.WorkingDir, StopSignal: spec.StopSignal}
	if len(cf.Config.Cmd) == 0 && len(cf.Config.Entrypoint) == 0 {
		cf.Config.Cmd = []string{"sh"}
	}
	return mutate.ConfigFile(img, cf)
}

// Push writes img to ref (for example "127.0.0.1:5000/busybox:1").
func Push(ref string, img v1.Image) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	return remote.Write(r, img)
}

// PushIndex writes a multi-arch index holding img as linux/amd64 and a bogus linux/arm64
// entry, to test platform resolution.
func PushIndex(ref string, img v1.Image) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	other, err := Build(Spec{Cmd: []string{"false"}, Extra: []File{{Path: "arch", Body: []byte("arm64")}}})
	if err != nil {
		return err
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	return remote.WriteIndex(r, idx)
}

// WriteDockerArchive writes img tagged tag as a docker-archive tarball (docker save format).
func WriteDockerArchive(path, tag string, img v1.Image) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, t, img)
}
