package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// ImportDir imports every *.tar file in dir (OCI layout or docker-archive), for air-gapped
// nodes. A missing dir is not an error; a bad tarball is logged and skipped.
func (s *Store) ImportDir(ctx context.Context, dir string) ([]*Image, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		imgs, err := s.Import(ctx, filepath.Join(dir, e.Name()))
		if err != nil {
			s.log.Warn("image import failed", "file", e.Name(), "err", err)
			continue
		}
		out = append(out, imgs...)
	}
	return out, nil
}

// Import stores the images in an OCI-layout or docker-archive (docker save) tarball.
func (s *Store) Import(ctx context.Context, path string) ([]*Image, error) {
	files, err := tarMembers(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	switch {
	case files["manifest.json"]:
		return s.importDocker(ctx, path)
	case files["index.json"]:
		return s.importOCI(ctx, path)
	}
	return nil, fmt.Errorf("import %s: neither manifest.json nor index.json: %w", path, errdefs.ErrInvalidArgument)
}

func tarMembers(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(filepath.Clean(h.Name), "./")] = true
	}
}

func (s *Store) importDocker(ctx context.Context, path string) ([]*Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("import %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	var out []*Image
	for _, d := range m {
		if len(d.RepoTags) == 0 {
			if len(m) != 1 {
				continue
			}
			img, err := tarball.Image(opener, nil)
			if err != nil {
				return nil, err
			}
			stored, err := s.store(ctx, img, "", "")
			if err != nil {
				return nil, err
			}
			out = append(out, stored)
			continue
		}
		for _, t := range d.RepoTags {
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("import %s: tag %q: %v: %w", path, t, err, errdefs.ErrInvalidArgument)
			}
			img, err := tarball.Image(opener, &tag)
			if err != nil {
				return nil, fmt.Errorf("import %s: %w", path, err)
			}
			stored, err := s.store(ctx, img, fullName(tag), "")
			if err != nil {
				return nil, fmt.Errorf("import %s: %w", path, err)
			}
			out = append(out, stored)
		}
	}
	return out, nil
}

func (s *Store) importOCI(ctx context.Context, path string) ([]*Image, error) {
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "oci-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := extractPlain(path, tmp); err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	idx, err := layout.ImageIndexFromPath(tmp)
	if err != nil {
		return nil, fmt.Errorf("import %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, d := range im.Manifests {
		var img v1.Image
		switch {
		case d.MediaType.IsIndex():
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if img, err = platformImage(sub); err != nil {
				return nil, fmt.Errorf("import %s: %w", path, err)
			}
		case d.MediaType.IsImage():
			if img, err = idx.Image(d.Digest); err != nil {
				return nil, err
			}
		default:
			continue
		}
		tag := ""
		for _, k := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
			if n := d.Annotations[k]; strings.ContainsAny(n, "/:") {
				if full, err := Normalize(n); err == nil {
					tag = full
					break
				}
			}
		}
		stored, err := s.store(ctx, img, tag, "")
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		out = append(out, stored)
	}
	return out, nil
}

func platformImage(idx v1.ImageIndex) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == Platform.OS && d.Platform.Architecture == Platform.Architecture {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no %s/%s image in index: %w", Platform.OS, Platform.Architecture, errdefs.ErrNotFound)
}

// extractPlain unpacks an OCI layout tarball (regular files and directories only).
func extractPlain(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
