package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	exitutil "k8s.io/client-go/util/exec"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	criclient "k8s.io/cri-client/pkg"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/nanokube/nanokube/internal/pki"
	"github.com/nanokube/nanokube/internal/runtime"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

const nodeName = "node-1"

// testHost is the kubelet as the server sees it: a pod list and the CRI client.
type testHost struct {
	rt   internalapi.RuntimeService
	mu   sync.Mutex
	pods []*v1.Pod
}

func (h *testHost) Pods() []*v1.Pod {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*v1.Pod(nil), h.pods...)
}

func (h *testHost) Pod(namespace, name string) (*v1.Pod, bool) {
	for _, p := range h.Pods() {
		if p.Namespace == namespace && p.Name == name {
			return p, true
		}
	}
	return nil, false
}

func (h *testHost) Runtime() internalapi.RuntimeService { return h.rt }

// env is a real runtime, the server on top of it, and clients with and without a certificate.
type env struct {
	t       *testing.T
	rt      internalapi.RuntimeService
	image   string
	logRoot string
	host    *testHost
	srv     *Server
	stop    func() error // stops the server and returns what Run did
	base    string       // https://127.0.0.1:port
	config  *rest.Config // with the client certificate
	client  *http.Client // with the client certificate
	anon    *http.Client // trusts the server, presents no certificate
}

func requireNode(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("kubelet server tests run the real runtime: they need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc binary not installed: run hack/install-deps.sh")
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", testimage.BusyboxPath} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing: run hack/install-deps.sh", p)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newEnv(t *testing.T) *env {
	requireNode(t)
	e := &env{t: t, logRoot: t.TempDir()}
	ctx := context.Background()

	reg := testimage.StartRegistry(t, "")
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"sleep", "3600"}})
	if err != nil {
		t.Fatal(err)
	}
	e.image = reg + "/test/busybox:1"
	if err := testimage.Push(e.image, img); err != nil {
		t.Fatal(err)
	}

	// The runtime, on a socket path short enough for sun_path.
	sockDir, err := os.MkdirTemp("", "nkks")
	if err != nil {
		t.Fatal(err)
	}
	suffix := randHex(2)
	bridge := "nks" + suffix
	t.Cleanup(func() {
		os.RemoveAll(sockDir)
		if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
			t.Logf("cleanup: delete bridge %s: %v %s", bridge, err, out)
		}
		// The runtime removes each pod's cgroup but leaves the parent.
		parents, _ := filepath.Glob("/sys/fs/cgroup/*/nanokube")
		for _, d := range append(parents, "/sys/fs/cgroup/nanokube") {
			_ = os.Remove(d) // fails, harmlessly, while another runtime still uses it
		}
	})
	var third byte
	fmt.Sscanf(suffix[:2], "%02x", &third)
	sock := filepath.Join(sockDir, "cri.sock")
	r, err := runtime.New(runtime.Config{Root: t.TempDir(), Socket: sock, CNIBridge: bridge, NoMasquerade: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rtCtx, stopRuntime := context.WithCancel(ctx)
	rtDone := make(chan error, 1)
	go func() { rtDone <- r.Run(rtCtx) }()
	t.Cleanup(func() {
		stopRuntime()
		if err := <-rtDone; err != nil {
			t.Errorf("runtime Run: %v", err)
		}
	})
	select {
	case <-r.Ready():
	case err := <-rtDone:
		rtDone <- err
		t.Fatalf("runtime exited before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("runtime not ready in 20s")
	}
	e.rt, err = criclient.NewRemoteRuntimeServiceBuilder().WithEndpoint("unix://" + sock).
		WithConnectionTimeout(10 * time.Second).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	images, err := criclient.NewRemoteImageServiceBuilder().WithEndpoint("unix://" + sock).
		WithConnectionTimeout(30 * time.Second).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = images.Close(ctx)
		_ = e.rt.Close(ctx)
	})
	// Whatever happens, no pod outlives the test.
	t.Cleanup(func() {
		sbs, err := e.rt.ListPodSandbox(ctx, nil)
		if err != nil {
			t.Errorf("cleanup: list sandboxes: %v", err)
		}
		for _, sb := range sbs {
			_ = e.rt.StopPodSandbox(ctx, sb.Id)
			if err := e.rt.RemovePodSandbox(ctx, sb.Id); err != nil {
				t.Errorf("cleanup: remove sandbox %s: %v", sb.Id, err)
			}
		}
	})
	if err := e.rt.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{
		PodCidr: fmt.Sprintf("10.246.%d.0/24", 20+int(third)%200)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := images.PullImage(ctx, &runtimeapi.ImageSpec{Image: e.image}, nil, nil); err != nil {
		t.Fatal(err)
	}

	// Certificates: the server's and a client's from one CA.
	bundle, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := pki.IssueServingCert(bundle.CA, "kubelet", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := pki.IssueClientCert(bundle.CA, "kube-apiserver-kubelet-client", []string{pki.MastersGroup}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	e.host = &testHost{rt: e.rt}
	e.srv, err = New(Config{Address: "127.0.0.1:0", TLSCert: serving, ClientCA: bundle.CAPool, NodeName: nodeName, Logger: testLogger(t)}, e.host)
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stopServer := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- e.srv.Run(srvCtx) }()
	var once sync.Once
	var runErr error
	e.stop = func() error {
		once.Do(func() { stopServer(); runErr = <-srvDone })
		return runErr
	}
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("server Run: %v", err)
		}
	})
	select {
	case <-e.srv.Ready():
	case err := <-srvDone:
		t.Fatalf("server exited before ready: %v", err)
	}
	e.base = "https://" + e.srv.Addr().String()
	e.config = &rest.Config{Host: e.base, TLSClientConfig: rest.TLSClientConfig{CAData: bundle.CA.CertPEM, CertData: clientCert, KeyData: clientKey}}
	if e.client, err = rest.HTTPClientFor(e.config); err != nil {
		t.Fatal(err)
	}
	e.client.Timeout = 30 * time.Second
	roots := x509.NewCertPool()
	roots.AddCert(bundle.CA.Cert)
	e.anon = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	return e
}

// pod registers a pod with the host and runs its sandbox labelled as the kubelet labels it.
func (e *env) pod(namespace, name string, containers ...string) *testPod {
	e.t.Helper()
	uid := types.UID(fmt.Sprintf("%s-%s-%s-%s-%s", randHex(4), randHex(2), randHex(2), randHex(2), randHex(6)))
	p := &v1.Pod{}
	p.Name, p.Namespace, p.UID, p.Spec.NodeName = name, namespace, uid, nodeName
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: c, Image: e.image})
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: string(uid)},
		Hostname:     name,
		LogDirectory: filepath.Join(e.logRoot, fmt.Sprintf("%s_%s_%s", namespace, name, uid)),
		Labels: map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
			"io.kubernetes.pod.uid": string(uid)},
	}
	id, err := e.rt.RunPodSandbox(context.Background(), cfg, "")
	if err != nil {
		e.t.Fatal(err)
	}
	e.host.mu.Lock()
	e.host.pods = append(e.host.pods, p)
	e.host.mu.Unlock()
	return &testPod{e: e, pod: p, cfg: cfg, sandbox: id}
}

type testPod struct {
	e       *env
	pod     *v1.Pod
	cfg     *runtimeapi.PodSandboxConfig
	sandbox string
}

// start creates and starts instance restartCount of container name, as the kubelet would.
func (p *testPod) start(name string, restartCount uint32, cmd ...string) string {
	t := p.e.t
	t.Helper()
	ctx := context.Background()
	id, err := p.e.rt.CreateContainer(ctx, p.sandbox, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: restartCount},
		Image:    &runtimeapi.ImageSpec{Image: p.e.image},
		Command:  cmd,
		LogPath:  fmt.Sprintf("%s/%d.log", name, restartCount),
		Labels: map[string]string{"io.kubernetes.pod.name": p.pod.Name, "io.kubernetes.pod.namespace": p.pod.Namespace,
			"io.kubernetes.pod.uid": string(p.pod.UID), "io.kubernetes.container.name": name},
		Annotations: map[string]string{"io.kubernetes.container.restartCount": fmt.Sprint(restartCount)},
	}, p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.e.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// waitState polls the container until it is in state want.
func (e *env) waitState(id string, want runtimeapi.ContainerState) {
	e.t.Helper()
	e.eventually(20*time.Second, func() error {
		st, err := e.rt.ContainerStatus(context.Background(), id, false)
		if err != nil {
			return err
		}
		if st.Status.State != want {
			return fmt.Errorf("container %s is %v, want %v", id, st.Status.State, want)
		}
		return nil
	})
}

// eventually polls cond until it returns nil, failing the test with its last error at the
// deadline.
func (e *env) eventually(timeout time.Duration, cond func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) get(c *http.Client, path string) (int, string) {
	e.t.Helper()
	resp, err := c.Get(e.base + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// execURL is the kubelet URL for verb (exec or attach) with the query client-go's parameter
// codec would send through the API server.
func (e *env) execURL(verb, pod, container string, cmd []string, stdin, stdout, stderr, tty bool) *url.URL {
	q := url.Values{"command": cmd}
	for name, on := range map[string]bool{"stdin": stdin, "stdout": stdout, "stderr": stderr, "tty": tty} {
		if on {
			q.Set(name, "true")
		}
	}
	u, _ := url.Parse(fmt.Sprintf("%s/%s/default/%s/%s?%s", e.base, verb, pod, container, q.Encode()))
	return u
}

// executors are the two ways kubectl reaches exec and attach.
func (e *env) executors(u *url.URL) map[string]remotecommand.Executor {
	e.t.Helper()
	spdyExec, err := remotecommand.NewSPDYExecutor(e.config, "POST", u)
	if err != nil {
		e.t.Fatal(err)
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(e.config, "GET", u.String())
	if err != nil {
		e.t.Fatal(err)
	}
	return map[string]remotecommand.Executor{"spdy": spdyExec, "websocket": wsExec}
}

func TestServer(t *testing.T) {
	e := newEnv(t)
	web := e.pod("default", "web", "app", "ticker", "counter")

	// app's first instance has exited; the second serves HTTP on 8080.
	first := web.start("app", 0, "sh", "-c", "echo first run; echo to-stderr >&2")
	e.waitState(first, runtimeapi.ContainerState_CONTAINER_EXITED)
	web.start("app", 1, "sh", "-c",
		"echo hello 1; echo hello 2; echo hello 3; mkdir -p /tmp/www && echo forwarded > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www")
	ticker := web.start("ticker", 0, "sh", "-c", "while true; do echo tick; sleep 0.2; done")
	e.waitState(ticker, runtimeapi.ContainerState_CONTAINER_RUNNING)
	e.eventually(20*time.Second, func() error {
		if code, body := e.get(e.client, "/containerLogs/default/web/app"); body != "hello 1\nhello 2\nhello 3\n" {
			return fmt.Errorf("app log: %d %q", code, body)
		}
		return nil
	})

	t.Run("authentication", func(t *testing.T) {
		if code, body := e.get(e.anon, "/healthz"); code != http.StatusOK || body != "ok" {
			t.Errorf("/healthz without a certificate: %d %q", code, body)
		}
		for _, path := range []string{"/pods", "/containerLogs/default/web/app", "/stats/summary", "/metrics", "/no/such/path"} {
			if code, body := e.get(e.anon, path); code != http.StatusUnauthorized || body != "Unauthorized\n" {
				t.Errorf("%s without a certificate: %d %q", path, code, body)
			}
		}
	})

	t.Run("pods", func(t *testing.T) {
		code, body := e.get(e.client, "/pods")
		var list v1.PodList
		if err := json.Unmarshal([]byte(body), &list); err != nil || code != http.StatusOK {
			t.Fatalf("/pods: %d %v %s", code, err, body)
		}
		if list.Kind != "PodList" || list.APIVersion != "v1" || len(list.Items) != 1 || list.Items[0].UID != web.pod.UID {
			t.Errorf("/pods = %+v", list)
		}
	})

	t.Run("logs", func(t *testing.T) {
		timestamped := regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\S+ hello \d\n){3}$`)
		for _, tc := range []struct {
			query string
			code  int
			match func(string) bool
		}{
			{"", 200, equals("hello 1\nhello 2\nhello 3\n")},
			{"?tailLines=1", 200, equals("hello 3\n")},
			{"?tailLines=0", 200, equals("")},
			{"?limitBytes=7", 200, equals("hello 1")},
			{"?timestamps=true", 200, timestamped.MatchString},
			{"?sinceTime=2100-01-01T00:00:00Z", 200, equals("")},
			{"?sinceSeconds=3600", 200, equals("hello 1\nhello 2\nhello 3\n")},
			{"?previous=true", 200, func(s string) bool {
				return len(s) == len("first run\nto-stderr\n") && strings.Contains(s, "first run\n") && strings.Contains(s, "to-stderr\n")
			}},
			{"?tailLines=-1", 400, contains("tailLines")},
			{"?follow=maybe", 400, contains("follow")},
			{"?sinceSeconds=5&sinceTime=2100-01-01T00:00:00Z", 400, contains("at most one")},
		} {
			code, body := e.get(e.client, "/containerLogs/default/web/app"+tc.query)
			if code != tc.code || !tc.match(body) {
				t.Errorf("logs%s: %d %q", tc.query, code, body)
			}
		}
		for _, tc := range []struct {
			path string
			code int
			body string
		}{
			{"/containerLogs/default/web/nope", 404, `container "nope" not found in pod "web"` + "\n"},
			{"/containerLogs/default/ghost/app", 404, `pod "ghost" does not exist` + "\n"},
			{"/containerLogs/default/web/ticker?previous=true", 400, `previous terminated container "ticker" in pod "web" not found` + "\n"},
			{"/containerLogs/default/web/counter", 400, `container "counter" in pod "web" is waiting to start: ContainerCreating` + "\n"},
		} {
			if code, body := e.get(e.client, tc.path); code != tc.code || body != tc.body {
				t.Errorf("%s: %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
			}
		}
	})

	t.Run("follow ends when the container exits", func(t *testing.T) {
		web.start("counter", 0, "sh", "-c", "for i in 1 2 3; do echo count $i; sleep 0.5; done")
		start := time.Now()
		code, body := e.get(e.client, "/containerLogs/default/web/counter?follow=true")
		if code != 200 || body != "count 1\ncount 2\ncount 3\n" {
			t.Errorf("follow: %d %q", code, body)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("follow took %v to end after the container exited", d)
		}
	})

	t.Run("exec", func(t *testing.T) {
		for _, proto := range []string{"spdy", "websocket"} {
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			u := e.execURL("exec", "web", "app", []string{"sh", "-c", "cat; echo to-err >&2"}, true, true, true, false)
			var stdout, stderr bytes.Buffer
			err := e.executors(u)[proto].StreamWithContext(c, remotecommand.StreamOptions{
				Stdin: strings.NewReader("from-stdin\n"), Stdout: &stdout, Stderr: &stderr})
			if err != nil || stdout.String() != "from-stdin\n" || stderr.String() != "to-err\n" {
				t.Errorf("%s exec: err %v stdout %q stderr %q", proto, err, stdout.String(), stderr.String())
			}

			u = e.execURL("exec", "web", "app", []string{"sh", "-c", "exit 3"}, false, true, true, false)
			err = e.executors(u)[proto].StreamWithContext(c, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
			var exitErr exitutil.CodeExitError
			if !errors.As(err, &exitErr) || exitErr.Code != 3 {
				t.Errorf("%s exec exit 3: %v, want a CodeExitError with code 3", proto, err)
			}

			u = e.execURL("exec", "web", "app", []string{"sh", "-c", "tty >/dev/null && echo on-a-tty"}, false, true, false, true)
			stdout.Reset()
			if err := e.executors(u)[proto].StreamWithContext(c, remotecommand.StreamOptions{Stdout: &stdout, Tty: true}); err != nil ||
				strings.TrimSpace(stdout.String()) != "on-a-tty" {
				t.Errorf("%s exec with a tty: err %v stdout %q", proto, err, stdout.String())
			}

			for _, tc := range []struct {
				u    *url.URL
				want string
			}{
				{e.execURL("exec", "web", "counter", []string{"true"}, false, true, false, false), `container "counter" in pod "web" is not available`},
				{e.execURL("exec", "web", "nope", []string{"true"}, false, true, false, false), `container "nope" not found in pod "web"`},
				{e.execURL("exec", "web", "app", nil, false, true, false, false), "you must specify a command"},
			} {
				err := e.executors(tc.u)[proto].StreamWithContext(c, remotecommand.StreamOptions{Stdout: io.Discard})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s %s: error %v, want %q", proto, tc.u.Path, err, tc.want)
				}
			}
			cancel()
		}
		wrongUID, _ := url.Parse(e.base + "/exec/default/web/not-the-uid/app?command=true&stdout=true")
		err := e.executors(wrongUID)["spdy"].StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), `pod "web" does not exist`) {
			t.Errorf("exec with another pod UID: %v", err)
		}
		if code, body := e.get(e.client, "/exec/default/web/app?command=true&stdout=true"); code != 400 || !strings.Contains(body, "Upgrade request required") {
			t.Errorf("exec without an upgrade: %d %q", code, body)
		}
	})

	t.Run("attach", func(t *testing.T) {
		for proto, exe := range e.executors(e.execURL("attach", "web", "ticker", nil, false, true, true, false)) {
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out := &signalWriter{want: "tick\n", seen: make(chan struct{})}
			done := make(chan error, 1)
			go func() { done <- exe.StreamWithContext(c, remotecommand.StreamOptions{Stdout: out, Stderr: io.Discard}) }()
			select {
			case <-out.seen:
			case err := <-done:
				t.Errorf("%s attach ended before output: %v", proto, err)
			case <-c.Done():
				t.Errorf("%s attach: no output in time", proto)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s attach did not end with its context", proto)
			}
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		u, _ := url.Parse(e.base + "/portForward/default/web")
		roundTripper, upgrader, err := spdy.RoundTripperFor(e.config)
		if err != nil {
			t.Fatal(err)
		}
		tunnel, err := portforward.NewSPDYOverWebsocketDialer(u, e.config)
		if err != nil {
			t.Fatal(err)
		}
		for proto, dialer := range map[string]httpstream.Dialer{
			"spdy":      spdy.NewDialer(upgrader, &http.Client{Transport: roundTripper}, "POST", u),
			"websocket": tunnel,
		} {
			stop, ready := make(chan struct{}), make(chan struct{})
			fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			fwErr := make(chan error, 1)
			go func() { fwErr <- fw.ForwardPorts() }()
			select {
			case <-ready:
			case err := <-fwErr:
				t.Fatalf("%s port-forward: %v", proto, err)
			case <-time.After(20 * time.Second):
				t.Fatalf("%s port-forward not ready", proto)
			}
			ports, err := fw.GetPorts()
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Timeout: 5 * time.Second}
			e.eventually(20*time.Second, func() error {
				r, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
				if err != nil {
					return fmt.Errorf("%s: GET through port-forward: %v", proto, err)
				}
				defer r.Body.Close()
				if b, _ := io.ReadAll(r.Body); string(b) != "forwarded\n" {
					return fmt.Errorf("%s: GET through port-forward = %q", proto, b)
				}
				return nil
			})
			close(stop)
			<-fwErr
		}
	})

	t.Run("stats summary", func(t *testing.T) {
		summary := func() statsv1alpha1.Summary {
			code, body := e.get(e.client, "/stats/summary")
			var s statsv1alpha1.Summary
			if err := json.Unmarshal([]byte(body), &s); err != nil || code != http.StatusOK {
				t.Fatalf("/stats/summary: %d %v %s", code, err, body)
			}
			return s
		}
		summary() // the first sample of every CPU counter
		s := summary()
		n := s.Node
		if n.NodeName != nodeName || n.StartTime.IsZero() || n.CPU == nil || n.CPU.UsageCoreNanoSeconds == nil || n.CPU.UsageNanoCores == nil ||
			n.Memory == nil || n.Memory.WorkingSetBytes == nil || *n.Memory.WorkingSetBytes == 0 ||
			n.Fs == nil || n.Fs.CapacityBytes == nil || *n.Fs.CapacityBytes == 0 {
			b, _ := json.Marshal(n)
			t.Errorf("node stats: %s", b)
		}
		if len(s.Pods) != 1 {
			t.Fatalf("summary pods: %+v", s.Pods)
		}
		p := s.Pods[0]
		if p.PodRef != (statsv1alpha1.PodReference{Name: "web", Namespace: "default", UID: string(web.pod.UID)}) ||
			p.CPU == nil || p.CPU.UsageNanoCores == nil || p.Memory == nil || p.Memory.WorkingSetBytes == nil {
			b, _ := json.Marshal(p)
			t.Errorf("pod stats: %s", b)
		}
		names := map[string]bool{}
		for _, c := range p.Containers {
			names[c.Name] = true
			if c.CPU == nil || c.CPU.UsageCoreNanoSeconds == nil || c.CPU.UsageNanoCores == nil || c.Memory == nil || c.Rootfs == nil {
				b, _ := json.Marshal(c)
				t.Errorf("container stats: %s", b)
			}
		}
		if len(names) != 2 || !names["app"] || !names["ticker"] {
			t.Errorf("summary containers %v, want the running app and ticker", names)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, body := e.get(e.client, "/metrics")
		for _, want := range []string{
			"\nkubelet_running_pods 1\n",
			"\nkubelet_running_containers{container_state=\"running\"} 2\n",
			"\nkubelet_running_containers{container_state=\"exited\"} 2\n",
			"\ngo_goroutines ",
			"\nprocess_resident_memory_bytes ",
		} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("/metrics (%d) lacks %q", code, strings.TrimSpace(want))
			}
		}
	})

	t.Run("shutdown ends streams and follows", func(t *testing.T) {
		exe := e.executors(e.execURL("attach", "web", "ticker", nil, false, true, false, false))["websocket"]
		out := &signalWriter{want: "tick\n", seen: make(chan struct{})}
		attached := make(chan error, 1)
		go func() {
			attached <- exe.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: out})
		}()
		resp, err := e.client.Get(e.base + "/containerLogs/default/web/ticker?follow=true")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		select {
		case <-out.seen:
		case err := <-attached:
			t.Fatalf("attach ended before output: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("attach: no output in time")
		}
		stopped := make(chan error, 1)
		go func() { stopped <- e.stop() }()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after its context was cancelled")
		}
		select {
		case <-attached:
		case <-time.After(10 * time.Second):
			t.Error("the attach stream outlived the server")
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Logf("follow ended with %v", err)
		}
	})
}

func equals(want string) func(string) bool { return func(s string) bool { return s == want } }

func contains(want string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, want) }
}

// signalWriter closes seen once the output holds want.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

func TestParseLogQuery(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		query    string
		previous bool
		follow   bool
		tail     int64 // -1: unset
		limit    int64 // -1: unset
		since    time.Time
		err      string
	}{
		{query: "", tail: -1, limit: -1},
		{query: "follow=true&previous=1&timestamps=false", previous: true, follow: true, tail: -1, limit: -1},
		{query: "tailLines=0&limitBytes=10", tail: 0, limit: 10},
		{query: "sinceSeconds=60", tail: -1, limit: -1, since: now.Add(-time.Minute)},
		{query: "sinceTime=2026-01-01T00:00:00Z", tail: -1, limit: -1, since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{query: "tailLines=-1", err: `invalid tailLines "-1"`},
		{query: "limitBytes=0", err: `invalid limitBytes "0"`},
		{query: "sinceSeconds=0", err: `invalid sinceSeconds "0"`},
		{query: "sinceTime=yesterday", err: `invalid sinceTime "yesterday"`},
		{query: "sinceSeconds=1&sinceTime=2026-01-01T00:00:00Z", err: "at most one of sinceTime or sinceSeconds"},
		{query: "previous=yes", err: `invalid previous "yes"`},
	} {
		q, _ := url.ParseQuery(tc.query)
		lq, err := parseLogQuery(q, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.query, err, tc.err)
			}
			continue
		}
		value := func(p *int64) int64 {
			if p == nil {
				return -1
			}
			return *p
		}
		if err != nil || lq.previous != tc.previous || lq.opts.Follow != tc.follow || value(lq.opts.TailLines) != tc.tail ||
			value(lq.opts.LimitBytes) != tc.limit || !lq.opts.Since.Equal(tc.since) {
			t.Errorf("%q: %+v %v", tc.query, lq, err)
		}
	}
}

func TestParseStreamQuery(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  streamQuery
		err   string
	}{
		{query: "stdout=true&stderr=true", want: streamQuery{stdout: true, stderr: true}},
		{query: "stdin=1&stdout=1&stderr=1&tty=1", want: streamQuery{stdin: true, stdout: true, tty: true}},
		{query: "stdin=false", err: "at least 1 of stdin, stdout, stderr"},
		{query: "stdout=sure", err: `invalid stdout "sure"`},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := parseStreamQuery(q)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.query, got, err, tc.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{}, nil)
	for _, want := range []string{"host", "serving certificate", "node name"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New with nothing: %v, want it to mention %q", err, want)
		}
	}
}
