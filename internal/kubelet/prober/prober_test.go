package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilexec "k8s.io/utils/exec"
)

// fakeRuntime stands in for containers that exec probes and hooks run in. A command's exit
// code is set by its name (argv[0]): 0 (the default) succeeds, -1 times out.
type fakeRuntime struct {
	mu    sync.Mutex
	exits map[string]int
	calls map[string]int // by "containerID/argv[0]"
	last  []string
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{exits: map[string]int{}, calls: map[string]int{}}
}

func (f *fakeRuntime) ExecSync(_ context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[id+"/"+cmd[0]]++
	f.last = cmd
	switch code := f.exits[cmd[0]]; code {
	case 0:
		return []byte(cmd[0] + " ok"), nil, nil
	case -1:
		return nil, nil, fmt.Errorf("command timed out: %q timed out after %s", strings.Join(cmd, " "), timeout)
	default:
		// What the CRI client returns for a non-zero exit.
		return []byte(cmd[0] + " says no\n"), []byte("err"), utilexec.CodeExitError{
			Err: fmt.Errorf("command '%s' exited with %d: %s", strings.Join(cmd, " "), code, "err"), Code: code,
		}
	}
}

func (f *fakeRuntime) setExit(name string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exits[name] = code
}

func (f *fakeRuntime) callCount(containerID, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[containerID+"/"+name]
}

type recorded struct {
	ref                     *v1.ObjectReference
	eventType, reason, text string
}

// eventLog is an EventRecorder that keeps what it is given.
type eventLog struct {
	mu     sync.Mutex
	events []recorded
}

func (l *eventLog) Event(obj runtime.Object, eventType, reason, message string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ref, _ := obj.(*v1.ObjectReference)
	l.events = append(l.events, recorded{ref, eventType, reason, message})
}

func (l *eventLog) Eventf(obj runtime.Object, eventType, reason, format string, args ...any) {
	l.Event(obj, eventType, reason, fmt.Sprintf(format, args...))
}

func (l *eventLog) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventType, reason, format string, args ...any) {
	l.Event(obj, eventType, reason, fmt.Sprintf(format, args...))
}

// with returns the events with that reason and message.
func (l *eventLog) with(reason, text string) []recorded {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []recorded
	for _, e := range l.events {
		if e.reason == reason && e.text == text {
			out = append(out, e)
		}
	}
	return out
}

func testPod(containers ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"},
		Spec:       v1.PodSpec{Containers: containers},
	}
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// closedPort returns a loopback port that nothing listens on.
func closedPort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, l.Addr().String())
	l.Close()
	return p
}

func TestProbeHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "fine") })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "broken", http.StatusInternalServerError) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "yes" || r.UserAgent() != "kube-probe/1.32" || r.Host != "example.test" {
			http.Error(w, fmt.Sprintf("%v %q", r.Header, r.Host), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, "headers seen")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, strings.Repeat("x", 20<<10)) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tlsSrv := httptest.NewTLSServer(mux)
	t.Cleanup(tlsSrv.Close)
	p, tlsPort := port(t, srv.Listener.Addr().String()), port(t, tlsSrv.Listener.Addr().String())
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://localhost:%d/ok", p), http.StatusFound)
	})
	refused := closedPort(t)

	c := &v1.Container{Name: "app", Ports: []v1.ContainerPort{{Name: "http", ContainerPort: p}}}
	for _, tc := range []struct {
		name       string
		get        v1.HTTPGetAction
		want       Result
		wantOutput string // exact, or a prefix when it ends in "…"
	}{
		{"200", v1.HTTPGetAction{Path: "/ok", Port: intstr.FromInt32(p)}, Success, "fine"},
		{"500", v1.HTTPGetAction{Path: "/fail", Port: intstr.FromInt32(p)}, Failure, "HTTP probe failed with statuscode: 500"},
		{"redirect to the same host is followed", v1.HTTPGetAction{Path: "/redirect", Port: intstr.FromInt32(p)}, Success, "fine"},
		{"redirect to another host is not", v1.HTTPGetAction{Path: "/away", Port: intstr.FromInt32(p)}, Success, "Probe terminated redirects, Response body: …"},
		{"named port and headers", v1.HTTPGetAction{Path: "/headers", Port: intstr.FromString("http"), HTTPHeaders: []v1.HTTPHeader{
			{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "example.test"}}}, Success, "headers seen"},
		{"https without verification", v1.HTTPGetAction{Path: "/ok", Port: intstr.FromInt32(tlsPort), Scheme: v1.URISchemeHTTPS}, Success, "fine"},
		{"body cut at 10 KiB", v1.HTTPGetAction{Path: "/big", Port: intstr.FromInt32(p)}, Success, strings.Repeat("x", 10<<10)},
		{"refused", v1.HTTPGetAction{Path: "/ok", Port: intstr.FromInt32(refused)}, Failure,
			fmt.Sprintf(`Get "http://127.0.0.1:%d/ok": dial tcp 127.0.0.1:%d: connect: connection refused`, refused, refused)},
		{"unknown port name", v1.HTTPGetAction{Path: "/ok", Port: intstr.FromString("metrics")}, Unknown, `strconv.Atoi: parsing "metrics": invalid syntax`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &tc.get}}
			got, out := Probe(t.Context(), nil, p, testPod(*c), c, "127.0.0.1", "c1")
			checkProbe(t, got, out, tc.want, tc.wantOutput)
		})
	}
}

func checkProbe(t *testing.T, got Result, out string, want Result, wantOutput string) {
	t.Helper()
	if prefix, ok := strings.CutSuffix(wantOutput, "…"); ok {
		if got != want || !strings.HasPrefix(out, prefix) {
			t.Errorf("got %v %q, want %v %q…", got, out, want, prefix)
		}
		return
	}
	if got != want || out != wantOutput {
		t.Errorf("got %v %q, want %v %q", got, out, want, wantOutput)
	}
}

func TestProbeTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	open, refused := port(t, l.Addr().String()), closedPort(t)
	c := &v1.Container{Name: "app", Ports: []v1.ContainerPort{{Name: "db", ContainerPort: open}}}
	for _, tc := range []struct {
		name       string
		action     v1.TCPSocketAction
		want       Result
		wantOutput string
	}{
		{"open", v1.TCPSocketAction{Port: intstr.FromInt32(open)}, Success, ""},
		{"named port", v1.TCPSocketAction{Port: intstr.FromString("db")}, Success, ""},
		{"host", v1.TCPSocketAction{Port: intstr.FromInt32(open), Host: "127.0.0.1"}, Success, ""},
		{"refused", v1.TCPSocketAction{Port: intstr.FromInt32(refused)}, Failure,
			fmt.Sprintf("dial tcp 127.0.0.1:%d: connect: connection refused", refused)},
		{"port out of range", v1.TCPSocketAction{Port: intstr.FromInt32(70000)}, Unknown, "invalid port number: 70000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &tc.action}}
			got, out := Probe(t.Context(), nil, p, testPod(*c), c, "127.0.0.1", "c1")
			checkProbe(t, got, out, tc.want, tc.wantOutput)
		})
	}
}

func serveGRPC(t *testing.T, withHealth bool) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	if withHealth {
		h := health.NewServer()
		h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		h.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
		healthpb.RegisterHealthServer(s, h)
	}
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return port(t, l.Addr().String())
}

func TestProbeGRPC(t *testing.T) {
	healthy, bare, refused := serveGRPC(t, true), serveGRPC(t, false), closedPort(t)
	for _, tc := range []struct {
		name       string
		port       int32
		service    string
		want       Result
		wantOutput string
	}{
		{"serving", healthy, "", Success, "service healthy"},
		{"not serving", healthy, "down", Failure, `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", healthy, "other", Failure, "error: health rpc probe failed: rpc error: code = NotFound…"},
		{"no health service", bare, "", Failure, "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): …"},
		{"refused", refused, "", Failure, fmt.Sprintf(`timeout: failed to connect service "127.0.0.1:%d" within 1s: context deadline exceeded`, refused)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1.Probe{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: tc.port, Service: &tc.service}}}
			c := &v1.Container{Name: "app"}
			got, out := Probe(t.Context(), nil, p, testPod(*c), c, "127.0.0.1", "c1")
			checkProbe(t, got, out, tc.want, tc.wantOutput)
		})
	}
}

func TestProbeExec(t *testing.T) {
	rt := newFakeRuntime()
	rt.setExit("no", 1)
	rt.setExit("slow", -1)
	c := &v1.Container{Name: "app", Env: []v1.EnvVar{{Name: "GREETING", Value: "hello"}}}
	for _, tc := range []struct {
		name       string
		cmd        []string
		want       Result
		wantOutput string
	}{
		{"exit 0", []string{"yes"}, Success, "yes ok"},
		{"exit 1", []string{"no"}, Failure, "no says no\nerr"},
		{"timeout", []string{"slow", "arg"}, Failure, `command timed out: "slow arg" timed out after 1s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: tc.cmd}}}
			got, out := Probe(t.Context(), rt, p, testPod(*c), c, "127.0.0.1", "c1")
			checkProbe(t, got, out, tc.want, tc.wantOutput)
		})
	}

	t.Run("env expansion", func(t *testing.T) {
		p := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"yes", "$(GREETING) $(MISSING) $$(GREETING) $("}}}}
		Probe(t.Context(), rt, p, testPod(*c), c, "127.0.0.1", "c1")
		if got, want := rt.last[1], "hello $(MISSING) $(GREETING) $("; got != want {
			t.Errorf("command ran as %q, want %q", got, want)
		}
	})
}

func TestRunHook(t *testing.T) {
	rt := newFakeRuntime()
	rt.setExit("no", 1)
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path+" "+r.UserAgent())
		mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	p, refused := port(t, srv.Listener.Addr().String()), closedPort(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()

	c := &v1.Container{Name: "app"}
	pod := testPod(*c)
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		handler v1.LifecycleHandler
		wantErr string // "" for none; a prefix when it ends in "…"
	}{
		{"exec", t.Context(), v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"yes"}}}, ""},
		{"exec fails", t.Context(), v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"no"}}},
			`Exec lifecycle hook ([no]) for Container "app" in Pod "web_default(uid-1)" failed - error: command 'no' exited with 1: err, message: "no says no\nerr"`},
		{"http", t.Context(), v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/start", Port: intstr.FromInt32(p)}}, ""},
		{"http status is not checked", t.Context(), v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/fail", Port: intstr.FromInt32(p)}}, ""},
		{"http refused", t.Context(), v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/stop", Port: intstr.FromInt32(refused)}},
			fmt.Sprintf(`HTTP lifecycle hook (/stop) for Container "app" in Pod "web_default(uid-1)" failed - error: Get "http://127.0.0.1:%d/stop": dial tcp…`, refused)},
		{"sleep", t.Context(), v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 0}}, ""},
		{"sleep cut short", cancelled, v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 60}},
			`Sleep lifecycle hook (60) for Container "app" in Pod "web_default(uid-1)" failed - error: container terminated before sleep hook finished`},
		{"tcpSocket is not a hook", t.Context(), v1.LifecycleHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(p)}},
			"Cannot run handler: invalid handler: …"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RunHook(tc.ctx, rt, &tc.handler, pod, c, "127.0.0.1", "c1")
			prefix, isPrefix := strings.CutSuffix(tc.wantErr, "…")
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.wantErr == "":
			case err == nil:
				t.Errorf("got no error, want %q", tc.wantErr)
			case isPrefix && !strings.HasPrefix(err.Error(), prefix), !isPrefix && err.Error() != tc.wantErr:
				t.Errorf("got %q, want %q", err, tc.wantErr)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/start kube-lifecycle/1.32", "/fail kube-lifecycle/1.32"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("hook requests %q, want %q", seen, want)
	}
}

// managerFixture is a Manager whose probe seconds last 10ms.
type managerFixture struct {
	*Manager
	rt      *fakeRuntime
	events  *eventLog
	changes atomic.Int32
}

func newManagerFixture(t *testing.T) *managerFixture {
	f := &managerFixture{rt: newFakeRuntime(), events: &eventLog{}}
	f.Manager = NewManager(f.rt, f.events, func(uid types.UID) {
		if uid != "uid-1" {
			t.Errorf("onChange(%q)", uid)
		}
		f.changes.Add(1)
	})
	f.unit = 10 * time.Millisecond
	t.Cleanup(f.Stop)
	return f
}

func (f *managerFixture) activeWorkers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

// eventually fails the test unless cond holds within a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func execProbe(name string, failureThreshold int32) *v1.Probe {
	return &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{name}}},
		PeriodSeconds: 1, FailureThreshold: failureThreshold,
	}
}

func TestManagerReadiness(t *testing.T) {
	f := newManagerFixture(t)
	pod := testPod(v1.Container{Name: "app", ReadinessProbe: execProbe("ready", 2)})
	f.Sync(pod, "127.0.0.1", []Container{{Name: "app", ID: "c1", StartedAt: time.Now()}})

	eventually(t, "ready", func() bool { return f.Ready("uid-1", "c1") })
	if f.changes.Load() == 0 {
		t.Error("onChange was not called when the container became ready")
	}
	if !f.Started("uid-1", "c1") || f.LivenessFailed("uid-1", "c1") {
		t.Error("a container without startup and liveness probes is started and alive")
	}

	f.rt.setExit("ready", 1)
	eventually(t, "not ready", func() bool { return !f.Ready("uid-1", "c1") })
	failed := f.events.with("Unhealthy", "Readiness probe failed: ready says no\nerr")
	if len(failed) < 2 {
		t.Fatalf("not ready after %d failures, want failureThreshold 2", len(failed))
	}
	want := v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web", Namespace: "default", UID: "uid-1", FieldPath: "spec.containers{app}"}
	if e := failed[0]; e.ref == nil || *e.ref != want || e.eventType != v1.EventTypeWarning {
		t.Errorf("event %+v on %+v, want a Warning on %+v", e, e.ref, want)
	}
	if f.LivenessFailed("uid-1", "c1") {
		t.Error("a readiness failure is not a liveness failure")
	}
}

func TestManagerReadinessHTTP(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	f := newManagerFixture(t)
	probe := &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 1}
	pod := testPod(v1.Container{Name: "app", ReadinessProbe: probe,
		Ports: []v1.ContainerPort{{Name: "http", ContainerPort: port(t, srv.Listener.Addr().String())}}})
	f.Sync(pod, "127.0.0.1", []Container{{Name: "app", ID: "c1", StartedAt: time.Now()}})

	eventually(t, "ready", func() bool { return f.Ready("uid-1", "c1") })
	code.Store(http.StatusInternalServerError)
	eventually(t, "not ready", func() bool { return !f.Ready("uid-1", "c1") })
	if len(f.events.with("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500")) < 3 {
		t.Error("not ready before the default failureThreshold of 3")
	}
}

func TestManagerLivenessFailure(t *testing.T) {
	f := newManagerFixture(t)
	f.rt.setExit("live", 1)
	pod := testPod(v1.Container{Name: "app", LivenessProbe: execProbe("live", 3)})
	f.Sync(pod, "127.0.0.1", []Container{{Name: "app", ID: "c1", StartedAt: time.Now()}})

	eventually(t, "liveness failed", func() bool { return f.LivenessFailed("uid-1", "c1") })
	if n := len(f.events.with("Unhealthy", "Liveness probe failed: live says no\nerr")); n < 3 {
		t.Errorf("liveness failed after %d failures, want failureThreshold 3", n)
	}
	eventually(t, "the worker stopped probing the failed container", func() bool { return f.activeWorkers() == 0 })

	// The kubelet restarts the container: the new one is probed afresh.
	f.rt.setExit("live", 0)
	f.Sync(pod, "127.0.0.1", []Container{{Name: "app", ID: "c2", StartedAt: time.Now()}})
	eventually(t, "the new container is probed", func() bool { return f.rt.callCount("c2", "live") > 0 })
	if f.LivenessFailed("uid-1", "c2") || f.LivenessFailed("uid-1", "c1") {
		t.Error("the restarted container inherited the failure")
	}
}

func TestManagerStartupGates(t *testing.T) {
	f := newManagerFixture(t)
	f.rt.setExit("start", 1)
	pod := testPod(v1.Container{Name: "app",
		StartupProbe:   execProbe("start", 1000),
		LivenessProbe:  execProbe("live", 3),
		ReadinessProbe: execProbe("ready", 3),
	})
	f.Sync(pod, "127.0.0.1", []Container{{Name: "app", ID: "c1", StartedAt: time.Now()}})

	eventually(t, "startup probed thrice", func() bool { return f.rt.callCount("c1", "start") >= 3 })
	if f.rt.callCount("c1", "live")+f.rt.callCount("c1", "ready") != 0 {
		t.Error("liveness or readiness ran before the startup probe succeeded")
	}
	if f.Started("uid-1", "c1") || f.Ready("uid-1", "c1") || f.LivenessFailed("uid-1", "c1") {
		t.Error("want not started, not ready, liveness not failed while starting")
	}

	f.rt.setExit("start", 0)
	eventually(t, "started and ready", func() bool { return f.Started("uid-1", "c1") && f.Ready("uid-1", "c1") })
	eventually(t, "liveness runs", func() bool { return f.rt.callCount("c1", "live") > 0 })
	eventually(t, "the startup worker ended", func() bool { return f.activeWorkers() == 2 })
}

func TestManagerStartupFailure(t *testing.T) {
	f := newManagerFixture(t)
	f.rt.setExit("start", 1)
	pod := testPod(v1.Container{Name: "app", StartupProbe: execProbe("start", 2), LivenessProbe: execProbe("live", 3)})
	f.Sync(pod, "127.0.0.1", []Container{{Name: "app", ID: "c1", StartedAt: time.Now()}})

	eventually(t, "startup failed", func() bool { return f.LivenessFailed("uid-1", "c1") })
	if len(f.events.with("Unhealthy", "Startup probe failed: start says no\nerr")) < 2 {
		t.Error("startup failed before failureThreshold 2")
	}
	if f.rt.callCount("c1", "live") != 0 {
		t.Error("liveness ran although the container never started")
	}
}

func TestManagerFirstProbeAfterInitialDelay(t *testing.T) {
	f := newManagerFixture(t)
	// A period of 1000 s (10 s here) would outlast the deadline: the first attempt must come
	// right after the initial delay.
	p := execProbe("ready", 3)
	p.InitialDelaySeconds, p.PeriodSeconds = 5, 1000
	pod := testPod(v1.Container{Name: "app", ReadinessProbe: p})
	f.Sync(pod, "127.0.0.1", []Container{{Name: "app", ID: "c1", StartedAt: time.Now()}})
	eventually(t, "ready", func() bool { return f.Ready("uid-1", "c1") })
}

func TestManagerTerminatingPod(t *testing.T) {
	f := newManagerFixture(t)
	f.rt.setExit("live", 1)
	pod := testPod(v1.Container{Name: "app", LivenessProbe: execProbe("live", 1)})
	pod.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	f.Sync(pod, "127.0.0.1", []Container{{Name: "app", ID: "c1", StartedAt: time.Now()}})

	eventually(t, "liveness stopped", func() bool { return f.activeWorkers() == 0 })
	if f.LivenessFailed("uid-1", "c1") || f.rt.callCount("c1", "live") != 0 {
		t.Error("liveness probed a terminating pod")
	}
}

func TestManagerStopsWorkers(t *testing.T) {
	f := newManagerFixture(t)
	pod := testPod(
		v1.Container{Name: "a", ReadinessProbe: execProbe("ready", 3), LivenessProbe: execProbe("live", 3)},
		v1.Container{Name: "b", ReadinessProbe: execProbe("ready", 3), LivenessProbe: execProbe("live", 3)},
	)
	now := time.Now()
	both := []Container{{Name: "a", ID: "ca", StartedAt: now}, {Name: "b", ID: "cb", StartedAt: now}}
	f.Sync(pod, "127.0.0.1", both)
	f.Sync(pod, "127.0.0.1", both) // known containers keep their workers
	if n := f.activeWorkers(); n != 4 {
		t.Fatalf("%d workers, want 4", n)
	}
	eventually(t, "both ready", func() bool { return f.Ready("uid-1", "ca") && f.Ready("uid-1", "cb") })

	f.Sync(pod, "127.0.0.1", both[:1])
	if f.Ready("uid-1", "cb") {
		t.Error("a container no longer running is still ready")
	}
	eventually(t, "b's workers stopped", func() bool { return f.activeWorkers() == 2 })

	f.RemovePod("uid-1")
	if f.Ready("uid-1", "ca") {
		t.Error("a removed pod's container is still ready")
	}
	eventually(t, "all workers stopped", func() bool { return f.activeWorkers() == 0 })

	f.Sync(pod, "127.0.0.1", both)
	f.Stop()
	if n := f.activeWorkers(); n != 0 {
		t.Fatalf("%d workers after Stop", n)
	}
	f.Sync(pod, "127.0.0.1", both)
	if n := f.activeWorkers(); n != 0 {
		t.Fatalf("Sync after Stop started %d workers", n)
	}
}
