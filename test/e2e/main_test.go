// Package e2e drives the real nanokube binary with the real kubectl.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cluster is the control plane every test in this package shares (each test in its own
// namespace).
var cluster struct {
	bin, dir, kubeconfig, cacheDir, url string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := exec.LookPath("kubectl"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: kubectl is not installed; these tests need the real kubectl (v1.32)")
		return 1
	}
	dir, err := os.MkdirTemp("", "nanokube-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cluster.dir, cluster.cacheDir = dir, filepath.Join(dir, "kubectl-cache")
	cluster.bin = os.Getenv("NANOKUBE_BIN")
	if cluster.bin == "" {
		cluster.bin = filepath.Join(dir, "nanokube")
		build := exec.Command("go", "build", "-o", cluster.bin, "../../cmd/nanokube")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build:", err)
			return 1
		}
	}
	stop, err := startServer(filepath.Join(dir, "data"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer stop()
	defer stopNode()
	return m.Run()
}

var readyLine = regexp.MustCompile(`ready at (https://\S+)`)

// startServer runs `nanokube server` on loopback and waits for its ready line.
func startServer(dataDir string) (stop func(), err error) {
	cmd := exec.Command(cluster.bin, "server", "--data-dir", dataDir, "--secure-port", "0",
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--disable-agent", "--etcd-unsafe-no-fsync",
		"--node-monitor-grace-period", "5s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(cluster.dir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		cluster.url = u
		cluster.kubeconfig = filepath.Join(dataDir, "admin.kubeconfig")
		return stop, nil
	case <-time.After(60 * time.Second):
		stop()
		log, _ := os.ReadFile(filepath.Join(cluster.dir, "server.log"))
		return nil, fmt.Errorf("server not ready within 60s; its log:\n%s", log)
	}
}

// kubectl runs kubectl against the cluster and returns stdout; it fails the test on error.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := kubectlRun(t, nil, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// kubectlFail runs kubectl expecting it to fail and returns stderr.
func kubectlFail(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := kubectlRun(t, nil, args...)
	if err == nil {
		t.Fatalf("kubectl %s succeeded, want failure; stdout: %s", strings.Join(args, " "), out)
	}
	return errOut
}

func kubectlIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := kubectlRun(t, strings.NewReader(stdin), args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func kubectlRun(t *testing.T, stdin *strings.Reader, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := kubectlCmd(ctx, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cacheDir}, args...)
	cmd := exec.CommandContext(ctx, "kubectl", full...)
	cmd.Env = append(os.Environ(), "KUBECTL_KUBERC=false")
	return cmd
}

// namespace creates a namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-")
	kubectl(t, "create", "namespace", name)
	return name
}

// mustContain fails unless out contains every want (whitespace-normalised).
func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	norm := strings.Join(strings.Fields(out), " ")
	for _, w := range wants {
		if !strings.Contains(norm, strings.Join(strings.Fields(w), " ")) {
			t.Errorf("output does not contain %q:\n%s", w, out)
		}
	}
}

func mustMatch(t *testing.T, out, pattern string) {
	t.Helper()
	if !regexp.MustCompile(pattern).MatchString(out) {
		t.Errorf("output does not match %q:\n%s", pattern, out)
	}
}
