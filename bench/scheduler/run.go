package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/bench/internal/perfdoc"
	"github.com/nanokube/nanokube/internal/controllermanager"
	"github.com/nanokube/nanokube/internal/hollow"
	"github.com/nanokube/nanokube/internal/scheduler"
	"github.com/nanokube/nanokube/internal/server"
)

const namespace = "bench"

// throughput is one run of pre-created pending pods.
type throughput struct {
	pods      int
	existing  int           // pods already bound when the run started
	total     time.Duration // scheduler start → all bound
	sync      time.Duration // scheduler start → caches synced
	cpu       usage
	latencies []time.Duration // per pod: scheduler start → bound
	lastBind  time.Time       // when the last binding POST was answered 201
	binds     int
	start     time.Time
	putRate   float64 // pods written into etcd per second before the run
}

type latencyRun struct {
	pods     int
	rate     float64 // achieved create rate
	lat      []time.Duration
	cpu      usage
	duration time.Duration
}

type ownerRun struct {
	pods  int
	total time.Duration // Deployment created → all its pods bound
}

type results struct {
	nodes      int
	register   time.Duration
	runs       []throughput
	latency    *latencyRun
	owner      *ownerRun
	podStatus  bool
	leases     bool
	machine    string
	commit     string
	otherCores float64
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "nanokube-bench-scheduler-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	res := &results{nodes: cfg.nodes, podStatus: cfg.podStatus, leases: cfg.leases, machine: describeMachine()}
	res.commit = describeCommit()
	machineStart := readCPU()

	// The control plane.
	progress("starting the control plane in %s", dir)
	ready := make(chan server.Ready, 1)
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- server.Run(ctx, server.Config{DataDir: dir, BindAddress: "127.0.0.1", AdvertiseAddress: "127.0.0.1",
			UnsafeNoFsync: true, DisableAgent: true, DisableScheduler: true, DisableControllerManager: true,
			CompactionInterval: time.Minute, Log: log.With("component", "server")},
			func(r server.Ready) { ready <- r })
	}()
	var kubeconfig string
	select {
	case r := <-ready:
		kubeconfig = r.Kubeconfig
	case err := <-srvDone:
		return fmt.Errorf("control plane: %w", err)
	}
	defer func() { cancel(); <-srvDone }()
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	restCfg.ContentType = "application/vnd.kubernetes.protobuf"
	restCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	restCfg.QPS, restCfg.Burst = -1, 0
	newClient := func() kubernetes.Interface {
		c := rest.CopyConfig(restCfg)
		c.UserAgent = fmt.Sprintf("bench-%d", time.Now().UnixNano()) // own connection
		return kubernetes.NewForConfigOrDie(c)
	}
	binds := &bindCounter{}
	schedClient := func() kubernetes.Interface {
		c := rest.CopyConfig(restCfg)
		c.UserAgent = fmt.Sprintf("scheduler-%d", time.Now().UnixNano())
		c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &bindTimer{next: rt, c: binds} }
		return kubernetes.NewForConfigOrDie(c)
	}
	client := newClient()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}

	// The hollow nodes.
	progress("registering %d hollow nodes", cfg.nodes)
	leaseInterval := time.Duration(-1)
	if cfg.leases {
		leaseInterval = 10 * time.Second
	}
	nodes, err := hollow.New(hollow.Config{Client: newClient(), Count: cfg.nodes, LeaseInterval: leaseInterval,
		DisablePodStatus: !cfg.podStatus, Workers: 32, Log: log.With("component", "hollow")})
	if err != nil {
		return err
	}
	t := time.Now()
	hollowDone := make(chan error, 1)
	go func() { hollowDone <- nodes.Run(ctx) }()
	select {
	case <-nodes.Ready():
	case err := <-hollowDone:
		return fmt.Errorf("hollow nodes: %w", err)
	}
	res.register = time.Since(t)
	progress("nodes registered in %v", res.register.Round(time.Millisecond))

	w, err := newWatcher(ctx, newClient())
	if err != nil {
		return err
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{"unix://" + filepath.Join(dir, "etcd", "client.sock")},
		DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer etcd.Close()
	template, err := storedTemplate(ctx, client, etcd)
	if err != nil {
		return err
	}

	existing := 0
	for i, size := range cfg.sizes {
		progress("run %d: writing %d pending pods into etcd", i+1, size)
		t := time.Now()
		if err := putPods(ctx, etcd, template, fmt.Sprintf("run%d-", i+1), size); err != nil {
			return err
		}
		putRate := float64(size) / time.Since(t).Seconds()
		if err := w.waitSeen(ctx, existing+size); err != nil {
			return err
		}
		progress("run %d: %d pods stored (%.0f/s); starting the scheduler", i+1, size, putRate)
		binds.reset()
		r, err := throughputRun(ctx, schedClient(), w, size, existing, log)
		r.lastBind, r.binds = binds.last()
		if err != nil {
			return err
		}
		r.existing, r.putRate = existing, putRate
		res.runs = append(res.runs, r)
		existing += size
		progress("run %d: %d pods bound in %v: %.0f pods/s", i+1, size, r.total.Round(time.Millisecond), float64(size)/r.total.Seconds())
	}

	if cfg.latencyPods > 0 || cfg.ownerPods > 0 {
		sched, stopSched, err := startScheduler(ctx, newClient(), log)
		if err != nil {
			return err
		}
		_ = sched
		if cfg.latencyPods > 0 {
			progress("latency: creating %d pods at %d/s", cfg.latencyPods, cfg.latencyRate)
			l, err := latencyRunAt(ctx, client, w, cfg.latencyPods, cfg.latencyRate)
			if err != nil {
				stopSched()
				return err
			}
			res.latency = &l
			progress("latency: p50 %v p99 %v", pct(l.lat, 50), pct(l.lat, 99))
		}
		if cfg.ownerPods > 0 {
			progress("deployment: creating a Deployment of %d replicas", cfg.ownerPods)
			o, err := deploymentRun(ctx, restCfg, client, w, cfg.ownerPods, log)
			if err != nil {
				stopSched()
				return err
			}
			res.owner = &o
			progress("deployment: all %d pods bound %v after the Deployment was created", o.pods, o.total.Round(time.Millisecond))
		}
		stopSched()
	}
	machineEnd := readCPU()
	res.otherCores = machineEnd.others(machineStart)

	out := res.render()
	fmt.Print(out)
	if cfg.write {
		if err := perfdoc.WriteSection(cfg.doc, "Scheduler", out); err != nil {
			return err
		}
		progress("wrote %s", cfg.doc)
	}
	return nil
}

// startScheduler runs a scheduler until the returned stop function is called.
func startScheduler(ctx context.Context, client kubernetes.Interface, log *slog.Logger) (*scheduler.Scheduler, func(), error) {
	s, err := scheduler.New(scheduler.Config{Log: log.With("component", "scheduler")}, client)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := func() { cancel(); <-done }
	select {
	case <-s.Ready():
		return s, stop, nil
	case err := <-done:
		cancel()
		return nil, nil, err
	}
}

func throughputRun(ctx context.Context, client kubernetes.Interface, w *watcher, size, existing int, log *slog.Logger) (throughput, error) {
	r := throughput{pods: size}
	before := readCPU()
	start := time.Now()
	r.start = start
	w.reset(start)
	_, stop, err := startScheduler(ctx, client, log)
	if err != nil {
		return r, err
	}
	defer stop()
	r.sync = time.Since(start)
	if err := w.waitBound(ctx, existing+size, 10*time.Minute); err != nil {
		return r, err
	}
	r.total = time.Since(start)
	r.cpu = readCPU().since(before)
	r.latencies = w.sinceReset()
	return r, nil
}

// storedTemplate creates one pod through the API (for a scheduler no one runs), reads its
// stored bytes back from etcd and deletes it: the pods of the throughput runs are copies.
func storedTemplate(ctx context.Context, client kubernetes.Interface, etcd *clientv3.Client) (*v1.Pod, error) {
	pod := benchPod("template")
	pod.Spec.SchedulerName = "nobody"
	if _, err := client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	resp, err := etcd.Get(ctx, "/registry/pods/"+namespace+"/template")
	if err != nil || len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("reading the stored pod: %v", err)
	}
	obj, _, err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Decode(resp.Kvs[0].Value, nil, nil)
	if err != nil {
		return nil, err
	}
	stored, ok := obj.(*v1.Pod)
	if !ok {
		return nil, fmt.Errorf("stored pod decodes to %T", obj)
	}
	if err := client.CoreV1().Pods(namespace).Delete(ctx, "template", metav1.DeleteOptions{}); err != nil {
		return nil, err
	}
	stored.APIVersion, stored.Kind = "v1", "Pod"
	stored.Spec.SchedulerName = scheduler.DefaultSchedulerName
	stored.ResourceVersion = ""
	return stored, nil
}

func benchPod(name string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": "bench"}},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10",
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
				v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("128Mi")}}}}},
	}
}

// putPods writes n copies of template into etcd, 64 at a time, one put each.
func putPods(ctx context.Context, etcd *clientv3.Client, template *v1.Pod, prefix string, n int) error {
	const workers = 64
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	g, ctx := errgroup.WithContext(ctx)
	now := metav1.Now()
	for wk := range workers {
		g.Go(func() error {
			p := template.DeepCopy()
			p.CreationTimestamp = now
			var buf bytes.Buffer
			for i := wk; i < n; i += workers {
				p.Name, p.UID = fmt.Sprintf("%s%06d", prefix, i), types.UID(uuid.NewUUID())
				buf.Reset()
				if err := codec.Encode(p, &buf); err != nil {
					return err
				}
				if _, err := etcd.Put(ctx, "/registry/pods/"+namespace+"/"+p.Name, buf.String()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// latencyRunAt creates pods at a steady rate and measures create → bound per pod.
func latencyRunAt(ctx context.Context, client kubernetes.Interface, w *watcher, n, rate int) (latencyRun, error) {
	r := latencyRun{pods: n}
	before := readCPU()
	start := time.Now()
	sent := make([]time.Time, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	interval := time.Second / time.Duration(rate)
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the load generator, not synchronisation
		}
		g.Go(func() error {
			pod := benchPod(fmt.Sprintf("lat-%06d", i))
			sent[i] = time.Now()
			w.expect(pod.Name, sent[i])
			_, err := client.CoreV1().Pods(namespace).Create(gctx, pod, metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	r.rate = float64(n) / time.Since(start).Seconds()
	if err := w.waitExpected(ctx, 5*time.Minute); err != nil {
		return r, err
	}
	r.duration = time.Since(start)
	r.cpu = readCPU().since(before)
	r.lat = w.expectedLatencies()
	return r, nil
}

// deploymentRun creates a Deployment and times it until every one of its pods is bound; the
// ReplicaSet and Deployment controllers run in this process for it.
func deploymentRun(ctx context.Context, restCfg *rest.Config, client kubernetes.Interface, w *watcher, n int, log *slog.Logger) (ownerRun, error) {
	r := ownerRun{pods: n}
	cm, err := controllermanager.New(controllermanager.Config{RESTConfig: rest.CopyConfig(restCfg),
		Controllers: []string{"replicaset", "deployment"}, Log: log.With("component", "controller-manager")})
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cm.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-cm.Ready():
	case err := <-done:
		return r, fmt.Errorf("controller manager: %w", err)
	}
	labels := map[string]string{"app": "web"}
	start := time.Now()
	_, err = client.AppsV1().Deployments(namespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(n)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: benchPod("x").Spec}},
	}, metav1.CreateOptions{})
	if err != nil {
		return r, err
	}
	err = w.waitFor(ctx, 10*time.Minute, fmt.Sprintf("%d deployment pods bound", n), func() (bool, string) {
		bound := 0
		for name := range w.bound {
			if strings.HasPrefix(name, "web-") {
				bound++
			}
		}
		return bound >= n, fmt.Sprintf("%d bound", bound)
	})
	r.total = time.Since(start)
	return r, err
}

// watcher timestamps, through an informer on the bench namespace, when each pod is first
// seen bound.
type watcher struct {
	mu       sync.Mutex
	seen     int
	bound    map[string]time.Time
	resetAt  time.Time
	expected map[string]time.Time // name → create time, for the latency runs
	changed  chan struct{}
}

func newWatcher(ctx context.Context, client kubernetes.Interface) (*watcher, error) {
	w := &watcher{bound: map[string]time.Time{}, expected: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	inf := f.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.observe(obj.(*v1.Pod), true) },
		UpdateFunc: func(_, obj any) { w.observe(obj.(*v1.Pod), false) },
	})
	if err != nil {
		return nil, err
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return w, nil
}

func (w *watcher) observe(pod *v1.Pod, added bool) {
	now := time.Now()
	w.mu.Lock()
	if added {
		w.seen++
	}
	if _, ok := w.bound[pod.Name]; !ok && pod.Spec.NodeName != "" {
		w.bound[pod.Name] = now
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watcher) reset(t time.Time) {
	w.mu.Lock()
	w.resetAt = t
	w.mu.Unlock()
}

func (w *watcher) expect(name string, created time.Time) {
	w.mu.Lock()
	w.expected[name] = created
	w.mu.Unlock()
}

// waitFor polls cond whenever the watcher saw a change (and at least every 100ms).
func (w *watcher) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		w.mu.Lock()
		ok, state := cond()
		w.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("timed out waiting for %s (%s)", what, state)
		case <-w.changed:
		case <-tick.C:
		}
	}
}

func (w *watcher) waitSeen(ctx context.Context, n int) error {
	return w.waitFor(ctx, 5*time.Minute, fmt.Sprintf("%d pods", n), func() (bool, string) {
		return w.seen >= n, fmt.Sprintf("%d seen", w.seen)
	})
}

func (w *watcher) waitBound(ctx context.Context, n int, timeout time.Duration) error {
	return w.waitFor(ctx, timeout, fmt.Sprintf("%d pods bound", n), func() (bool, string) {
		return len(w.bound) >= n, fmt.Sprintf("%d bound", len(w.bound))
	})
}

func (w *watcher) waitExpected(ctx context.Context, timeout time.Duration) error {
	return w.waitFor(ctx, timeout, "the created pods bound", func() (bool, string) {
		missing := 0
		for name := range w.expected {
			if _, ok := w.bound[name]; !ok {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d not bound", missing)
	})
}

// sinceReset returns, for the pods bound after the last reset, the time since the reset.
func (w *watcher) sinceReset() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	for _, t := range w.bound {
		if t.After(w.resetAt) {
			out = append(out, t.Sub(w.resetAt))
		}
	}
	slices.Sort(out)
	return out
}

// expectedLatencies returns create → bound of the expected pods and forgets them.
func (w *watcher) expectedLatencies() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	for name, created := range w.expected {
		out = append(out, w.bound[name].Sub(created))
	}
	w.expected = map[string]time.Time{}
	slices.Sort(out)
	return out
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)].Round(100 * time.Microsecond)
}

// bindCounter records the successful binding calls of the scheduler's client.
type bindCounter struct {
	mu    sync.Mutex
	n     int
	lastT time.Time
}

func (b *bindCounter) reset() { b.mu.Lock(); b.n, b.lastT = 0, time.Time{}; b.mu.Unlock() }

func (b *bindCounter) last() (time.Time, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastT, b.n
}

type bindTimer struct {
	next http.RoundTripper
	c    *bindCounter
}

func (t *bindTimer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusCreated && req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/binding") {
		now := time.Now()
		t.c.mu.Lock()
		t.c.n++
		t.c.lastT = now
		t.c.mu.Unlock()
	}
	return resp, err
}
