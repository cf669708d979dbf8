// Command demo-image builds the quickstart's image: the web server in examples/demo,
// compiled static (CGO_ENABLED=0), on the busybox base layer of internal/runtime/testimage
// (so `kubectl exec` has a shell), written as a docker-archive tarball tagged
// nanokube.local/demo:1 where the node imports images at start:
//
//	go run ./hack/demo-image [-out .data/agent/runtime/images/demo.tar] [-tag nanokube.local/demo:1]
//
// Run from the repository root (`make demo-image` does, and only when a source is newer than
// the archive). The image is reproducible: the same sources give the same image ID, so a
// rebuild the runtime has already imported changes nothing. The archive is written to a
// temporary file and renamed, so a node starting meanwhile never reads half of it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

func main() {
	out := flag.String("out", ".data/agent/runtime/images/demo.tar", "archive to write")
	tag := flag.String("tag", "nanokube.local/demo:1", "image reference; its tag is also the server's version")
	src := flag.String("src", "./examples/demo", "Go package of the web server")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := build(context.Background(), *src, *tag, *out); err != nil {
		logger.Error("demo image", "err", err)
		os.Exit(1)
	}
	logger.Info("demo image written", "tag", *tag, "archive", *out)
}

func build(ctx context.Context, src, tag, out string) error {
	t, err := name.NewTag(tag, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	tmp, err := os.MkdirTemp("", "demo-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "demo")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+t.TagStr(), "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", src, err)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	img, err := testimage.Build(testimage.Spec{
		Entrypoint: []string{"/usr/bin/demo"},
		StopSignal: "SIGTERM",
		Extra:      []testimage.File{{Path: "usr/bin/demo", Mode: 0o755, Body: body}},
	})
	if err != nil {
		return err
	}
	// The server listens on 8080; say so, as a Dockerfile's EXPOSE would.
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Config.Cmd = nil
	cf.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	// Private like the data directory the server makes (0700): this may be what creates it.
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(out), ".demo-*.tar.tmp")
	if err != nil {
		return err
	}
	f.Close()
	if err := testimage.WriteDockerArchive(f.Name(), tag, img); err != nil {
		return errors.Join(err, os.Remove(f.Name()))
	}
	// CreateTemp makes the file private; an image archive is not a secret.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return errors.Join(err, os.Remove(f.Name()))
	}
	return os.Rename(f.Name(), out)
}
