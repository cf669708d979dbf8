// Command images builds nanokube's small test images from Debian's busybox-static and pushes
// them to a registry (normally a loopback docker-registry started by hack/images/push.sh).
//
//	go run ./hack/images -registry 127.0.0.1:5000 [-set nanokube|critest|all]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

func main() {
	registry := flag.String("registry", "127.0.0.1:5000", "registry host:port to push to")
	set := flag.String("set", "nanokube", "which images: nanokube (the project's tests), critest (cri-tools' conformance images), all")
	flag.Parse()
	images := map[string]testimage.Spec{
		"nanokube/busybox:1":             {Cmd: []string{"sh"}},
		"nanokube/sleep:1":               {Cmd: []string{"sleep", "3600"}},
		"nanokube/httpd:1":               {Cmd: []string{"sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"}},
		"nanokube/nonroot:1":             {Cmd: []string{"sleep", "3600"}, User: "1000"},
		"nanokube/layered:1":             {Cmd: []string{"cat", "/hello"}, Extra: []testimage.File{{Path: "hello", Body: []byte("hello from a second layer\n")}}},
		"e2e-test-images/busybox:1.29-2": {Cmd: []string{"sh"}},
	}
	critest := func() map[string]testimage.Spec {
		prog, err := buildPrograms()
		if err != nil {
			fmt.Fprintln(os.Stderr, "build stand-in programs:", err)
			os.Exit(1)
		}
		return testimage.CritestImages(prog)
	}
	switch *set {
	case "nanokube":
	case "critest":
		images = critest()
	case "all":
		for name, spec := range critest() {
			images[name] = spec
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown image set %q\n", *set)
		os.Exit(2)
	}
	for name, spec := range images {
		img, err := testimage.Build(spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, "build", name+":", err)
			os.Exit(1)
		}
		ref := *registry + "/" + name
		if err := testimage.Push(ref, img); err != nil {
			fmt.Fprintln(os.Stderr, "push", ref+":", err)
			os.Exit(1)
		}
		fmt.Println("pushed", ref)
	}
}

// buildPrograms compiles the static programs critest's stand-ins carry (no libc in the images).
func buildPrograms() (testimage.CritestPrograms, error) {
	dir, err := os.MkdirTemp("", "nkimages")
	if err != nil {
		return testimage.CritestPrograms{}, err
	}
	defer os.RemoveAll(dir)
	build := func(name string) ([]byte, error) {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "github.com/nanokube/nanokube/hack/images/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s: %w", name, err)
		}
		return os.ReadFile(out)
	}
	var p testimage.CritestPrograms
	if p.Nginx, err = build("nginx"); err != nil {
		return p, err
	}
	if p.NoNewPrivs, err = build("nonewprivs"); err != nil {
		return p, err
	}
	if p.Ipcs, err = build("ipcs"); err != nil {
		return p, err
	}
	p.Pgrep, err = build("pgrep")
	return p, err
}
