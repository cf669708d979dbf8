package testimage

import "strings"

// CritestPrograms are the static binaries some stand-ins need beyond busybox (hack/images
// builds each from hack/images/<name>).
type CritestPrograms struct {
	// Nginx looks like nginx to critest: its name, its "master process" command line, its pid
	// file, a welcome page on port 80.
	Nginx []byte
	// NoNewPrivs prints "Effective uid: N"; the image installs it setuid root.
	NoNewPrivs []byte
	// Ipcs lists shared memory segments (ipcs -m) and Pgrep finds processes by name; Debian's
	// busybox-static has neither applet.
	Ipcs, Pgrep []byte
}

// CritestImages are stand-ins, built from busybox, for the images critest
// (sigs.k8s.io/cri-tools v1.37.0) pulls, keyed by the path and tag they have under the
// --registry-prefix registry. critest's images are nginx, httpd, nonewprivs and small
// user/tag test images; these keep their names, users, ports and the traces critest looks
// for (a log line, a pid file, a command line), serving with busybox httpd or prog.Nginx.
func CritestImages(prog CritestPrograms) map[string]Spec {
	web := func(port, page string) Spec {
		return Spec{Cmd: []string{"sh", "-c", "mkdir -p /www && echo '" + page + "' > /www/index.html && exec httpd -f -p " + port + " -h /www"}}
	}
	// httpd's image logs "AH00558: httpd: Could not reliably determine the server's fully
	// qualified domain name" at start; critest's container-log spec waits for "httpd".
	httpd := web("80", "<html><body><h1>It works!</h1></body></html>")
	httpd.Cmd[2] = "echo 'httpd: serving on port 80' >&2; " + httpd.Cmd[2]
	nginx := Spec{Cmd: []string{"nginx", "-g", "daemon off;"},
		Extra: []File{{Path: "usr/sbin", Dir: true}, {Path: "usr/sbin/nginx", Mode: 0o755, Body: prog.Nginx}}}
	// As the upstream image: the program setuid root, run as user 1000.
	nonewprivs := Spec{Entrypoint: []string{"/usr/local/bin/nnp"}, User: "1000",
		Extra: []File{{Path: "usr/local", Dir: true}, {Path: "usr/local/bin", Dir: true}, {Path: "usr/local/bin/nnp", Mode: 0o4755, Body: prog.NoNewPrivs}}}
	// Users and groups the image tests look up by name.
	accounts := []File{
		{Path: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n" +
			"default-user:x:1000:1000:default-user:/home/default-user:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{Path: "etc/group", Body: []byte("root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\nuser:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n")},
	}
	tagged := func(marker string) Spec {
		return Spec{Cmd: []string{"sh"}, Extra: []File{{Path: marker, Body: []byte(marker + "\n")}}}
	}
	busybox := Spec{Cmd: []string{"sh"}, Extra: []File{{Path: "bin/ipcs", Mode: 0o755, Body: prog.Ipcs}, {Path: "bin/pgrep", Mode: 0o755, Body: prog.Pgrep}}}
	images := map[string]Spec{
		"e2e-test-images/busybox:1.29-2":                              busybox,
		"e2e-test-images/nginx:1.14-2":                                nginx,
		"e2e-test-images/httpd:2.4.39-4":                              httpd,
		"e2e-test-images/nonewprivs:1.3":                              nonewprivs,
		"k8s-staging-cri-tools/hostnet-nginx-amd64:latest":            web("12003", "<title>Welcome to nginx!</title>"),
		"k8s-staging-cri-tools/test-image-user-uid:latest":            {Cmd: []string{"sh"}, User: "1002", Extra: accounts},
		"k8s-staging-cri-tools/test-image-user-username:latest":       {Cmd: []string{"sh"}, User: "www-data", Extra: accounts},
		"k8s-staging-cri-tools/test-image-user-uid-group:latest":      {Cmd: []string{"sh"}, User: "1003:1004", Extra: accounts},
		"k8s-staging-cri-tools/test-image-user-username-group:latest": {Cmd: []string{"sh"}, User: "www-data:1004", Extra: accounts},
		"k8s-staging-cri-tools/test-image-predefined-group:latest":    {Cmd: []string{"sh"}, User: "1000", Extra: accounts},
		"k8s-staging-cri-tools/test-image-latest:latest":              tagged("test-image-latest"),
		"k8s-staging-cri-tools/test-image-tag:test":                   tagged("test-image-tag"),
		"k8s-staging-cri-tools/test-image-tag:all":                    tagged("test-image-tag"),
		"k8s-staging-cri-tools/test-image-digest:latest":              tagged("test-image-digest"),
		"k8s-staging-cri-tools/test-image-1:latest":                   tagged("test-image-1"),
		"k8s-staging-cri-tools/test-image-2:latest":                   tagged("test-image-2"),
		"k8s-staging-cri-tools/test-image-3:latest":                   tagged("test-image-3"),
		"pause:3.9": {Cmd: []string{"sleep", "2147483647"}},
	}
	for _, tag := range []string{"1", "2", "3"} {
		images["k8s-staging-cri-tools/test-image-tags:"+tag] = tagged("same-image")
	}
	// critest's --registry-prefix keeps only an image's path (reference.Path), so every image
	// is also pulled as :latest.
	for name, spec := range images {
		repo, _, ok := strings.Cut(name, ":")
		if !ok {
			panic("critest image without a tag: " + name)
		}
		if _, dup := images[repo+":latest"]; !dup {
			images[repo+":latest"] = spec
		}
	}
	return images
}
