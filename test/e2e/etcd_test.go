package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess starts a nanokube subcommand and waits for its ready line; it is stopped by
// PID when the test ends. It returns the API server URL and the admin kubeconfig.
func startProcess(t *testing.T, dataDir string, args ...string) (url, kubeconfig string) {
	t.Helper()
	cmd := exec.Command(cluster.bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "process.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
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
		return u, filepath.Join(dataDir, "admin.kubeconfig")
	case <-done:
		log, _ := os.ReadFile(logPath)
		t.Fatalf("nanokube %v exited early:\n%s", args, log)
	case <-time.After(60 * time.Second):
		log, _ := os.ReadFile(logPath)
		t.Fatalf("nanokube %v not ready within 60s:\n%s", args, log)
	}
	return "", ""
}

// TestExternalEtcd runs the API server alone against the etcd of another nanokube server
// (its embedded member listening on loopback TCP): objects written through one API server
// are read through the other.
func TestExternalEtcd(t *testing.T) {
	etcdPort, peerPort := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	first := t.TempDir()
	_, kc1 := startProcess(t, first, "server", "--data-dir", first, "--secure-port", "0", "--bind-address", "127.0.0.1",
		"--disable-agent", "--etcd-listen-client-urls", etcdURL,
		"--etcd-listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	second := t.TempDir()
	_, kc2 := startProcess(t, second, "apiserver", "--data-dir", second, "--secure-port", "0", "--bind-address", "127.0.0.1",
		"--etcd-servers", etcdURL)

	run := func(kc string, args ...string) string {
		t.Helper()
		out, err := exec.Command("kubectl", append([]string{"--kubeconfig", kc, "--cache-dir", t.TempDir()}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run(kc1, "create", "configmap", "shared", "--from-literal=written=by-first")
	if got := run(kc2, "get", "configmap", "shared", "-o", "jsonpath={.data.written}"); got != "by-first" {
		t.Fatalf("second API server read %q", got)
	}
	mustContain(t, run(kc2, "get", "svc", "kubernetes"), "kubernetes ClusterIP 10.96.0.1")
}

// TestRestartKeepsState restarts a server on its data directory: objects, certificates and
// the admin kubeconfig survive.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	args := []string{"server", "--data-dir", dir, "--secure-port", fmt.Sprint(port), "--bind-address", "127.0.0.1", "--disable-agent"}
	t.Run("first", func(t *testing.T) { // its cleanup stops the first server
		_, kc := startProcess(t, dir, args...)
		out, err := exec.Command("kubectl", "--kubeconfig", kc, "--cache-dir", t.TempDir(), "create", "namespace", "kept").CombinedOutput()
		if err != nil {
			t.Fatalf("%v %s", err, out)
		}
	})
	ca, _ := os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	_, kc := startProcess(t, dir, args...)
	ca2, _ := os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	if string(ca) != string(ca2) {
		t.Error("the CA was regenerated on restart")
	}
	out, err := exec.Command("kubectl", "--kubeconfig", kc, "--cache-dir", t.TempDir(), "get", "namespace", "kept").CombinedOutput()
	if err != nil {
		t.Fatalf("namespace lost over restart: %v %s", err, out)
	}
}
