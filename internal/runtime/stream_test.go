package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	exitutil "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestExecAndPortForward(t *testing.T) {
	e := newTestEnv(t)
	c := ctx(t)
	e.pull()
	podCfg := e.podConfig("stream")
	pod := e.runPod(podCfg)
	web := e.createContainer(pod, podCfg, "web", "sh", "-c",
		"mkdir -p /tmp/www && echo forwarded > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www")
	e.startContainer(web)
	e.waitState(web, runtimeapi.ContainerState_CONTAINER_RUNNING)

	// Exec with stdin, stdout, stderr and an exit code, as kubectl exec does.
	resp, err := e.rs.Exec(c, &runtimeapi.ExecRequest{ContainerId: web, Cmd: []string{"sh", "-c", "cat; echo to-err >&2; exit 5"},
		Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(resp.Url)
	exe, err := remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = exe.StreamWithContext(c, remotecommand.StreamOptions{Stdin: strings.NewReader("from-stdin\n"), Stdout: &stdout, Stderr: &stderr})
	var exitErr exitutil.CodeExitError
	if !errors.As(err, &exitErr) || exitErr.Code != 5 {
		t.Errorf("exec error %v, want exit code 5", err)
	}
	if stdout.String() != "from-stdin\n" || stderr.String() != "to-err\n" {
		t.Errorf("exec stdout %q stderr %q", stdout.String(), stderr.String())
	}

	// With a terminal.
	resp, err = e.rs.Exec(c, &runtimeapi.ExecRequest{ContainerId: web, Cmd: []string{"sh", "-c", "tty >/dev/null && echo on-a-tty"}, Stdout: true, Tty: true})
	if err != nil {
		t.Fatal(err)
	}
	u, _ = url.Parse(resp.Url)
	exe, _ = remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
	stdout.Reset()
	if err := exe.StreamWithContext(c, remotecommand.StreamOptions{Stdout: &stdout, Tty: true}); err != nil {
		t.Fatalf("tty exec: %v", err)
	}
	if got := strings.TrimSpace(stdout.String()); got != "on-a-tty" {
		t.Errorf("tty exec output %q", got)
	}

	// Port-forward to the pod's 8080 from a local port.
	pf, err := e.rs.PortForward(c, &runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{8080}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ = url.Parse(pf.Url)
	rt, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	fwErr := make(chan error, 1)
	go func() { fwErr <- fw.ForwardPorts() }()
	defer func() { close(stop); <-fwErr }()
	select {
	case <-ready:
	case err := <-fwErr:
		t.Fatalf("port-forward: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("port-forward not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		hc := &http.Client{Timeout: 5 * time.Second}
		r, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
		if err == nil {
			body, _ = io.ReadAll(r.Body)
			r.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET through port-forward: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if string(body) != "forwarded\n" {
		t.Errorf("port-forwarded GET = %q", body)
	}
	_ = context.Background
}
