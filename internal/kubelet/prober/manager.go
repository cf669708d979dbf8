package prober

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
)

// Container is a running container of a pod as the runtime reports it.
type Container struct {
	Name string // its name in the pod spec
	ID   string // the runtime's container ID
	// StartedAt is when it started; initialDelaySeconds count from here.
	StartedAt time.Time
}

type probeKind int

const (
	liveness probeKind = iota
	readiness
	startup
	numKinds
)

func (k probeKind) String() string {
	return [...]string{"Liveness", "Readiness", "Startup"}[k]
}

func (k probeKind) of(c *v1.Container) *v1.Probe {
	return [...]*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe}[k]
}

// Manager runs the probes of the running containers of the node's pods, one worker goroutine
// per container ID and probe kind, and keeps their results.
type Manager struct {
	ex       Execer
	rec      record.EventRecorder
	onChange func(types.UID)
	// unit is how long one second of a probe's period and initial delay lasts; tests shrink it.
	unit time.Duration
	wg   sync.WaitGroup

	mu      sync.Mutex
	pods    map[types.UID]*podProbes
	stopped bool
	active  int // worker goroutines still running
}

type podProbes struct {
	pod        *v1.Pod // latest from Sync; read-only
	podIP      string
	containers map[string]*containerProbes // by container ID
}

type containerProbes struct {
	workers [numKinds]*worker // nil where the container has no such probe
}

// started reports whether the startup probe, if any, has succeeded. The caller holds m.mu.
func (cp *containerProbes) started() bool {
	s := cp.workers[startup]
	return s == nil || s.result == Success
}

func (cp *containerProbes) stop() {
	for _, w := range cp.workers {
		if w != nil {
			w.cancel()
		}
	}
}

// worker runs one probe of one container. result is guarded by Manager.mu; last and run are
// owned by the worker's goroutine; the rest never changes.
type worker struct {
	kind      probeKind
	spec      *v1.Probe
	container *v1.Container
	id        string
	startedAt time.Time
	podUID    types.UID
	pod       *podProbes
	siblings  *containerProbes
	cancel    context.CancelFunc
	trigger   chan struct{} // run the probe now rather than at the next tick

	result Result

	last Result // result of the latest attempts
	run  int    // how many attempts in a row had it
}

// NewManager returns a Manager that runs exec probes through ex, records probe events
// through rec (nil records none) and calls onChange (if not nil) with the pod's UID whenever
// a container's Ready, Started or LivenessFailed answer may have changed.
func NewManager(ex Execer, rec record.EventRecorder, onChange func(podUID types.UID)) *Manager {
	return &Manager{ex: ex, rec: rec, onChange: onChange, unit: time.Second, pods: map[types.UID]*podProbes{}}
}

// Sync starts probing the containers in running that were not running at the last Sync and
// stops probing those of the pod that are no longer listed. It does not block on probes.
func (m *Manager) Sync(pod *v1.Pod, podIP string, running []Container) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	pp := m.pods[pod.UID]
	if pp == nil {
		pp = &podProbes{containers: map[string]*containerProbes{}}
		m.pods[pod.UID] = pp
	}
	pp.pod, pp.podIP = pod, podIP
	listed := make(map[string]bool, len(running))
	for _, rc := range running {
		listed[rc.ID] = true
		if pp.containers[rc.ID] != nil {
			continue
		}
		spec := probedContainer(pod, rc.Name)
		if spec == nil {
			continue
		}
		cp := &containerProbes{}
		pp.containers[rc.ID] = cp
		for k := range numKinds {
			if p := k.of(spec); p != nil {
				cp.workers[k] = m.start(pod.UID, pp, cp, k, p, spec, rc)
			}
		}
	}
	for id, cp := range pp.containers {
		if !listed[id] {
			cp.stop()
			delete(pp.containers, id)
		}
	}
}

// RemovePod stops probing the pod's containers and forgets their results.
func (m *Manager) RemovePod(podUID types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pp := m.pods[podUID]; pp != nil {
		for _, cp := range pp.containers {
			cp.stop()
		}
		delete(m.pods, podUID)
	}
}

// Stop stops all workers and waits for them to return; later Syncs do nothing.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.stopped = true
	for uid, pp := range m.pods {
		for _, cp := range pp.containers {
			cp.stop()
		}
		delete(m.pods, uid)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Ready reports whether the container is started and, if it has a readiness probe, that probe
// last reached its success threshold. A container Sync has not listed is not ready.
func (m *Manager) Ready(podUID types.UID, containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := m.lookup(podUID, containerID)
	if cp == nil || !cp.started() {
		return false
	}
	r := cp.workers[readiness]
	return r == nil || r.result == Success
}

// Started reports whether the container has no startup probe or it has succeeded. A container
// Sync has not listed is not started.
func (m *Manager) Started(podUID types.UID, containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := m.lookup(podUID, containerID)
	return cp != nil && cp.started()
}

// LivenessFailed reports whether the container's liveness or startup probe reached its failure
// threshold. It stays true for that container ID, whose probes stop; the kubelet is to kill
// the container and restart it, and the new container ID is probed afresh.
func (m *Manager) LivenessFailed(podUID types.UID, containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := m.lookup(podUID, containerID)
	if cp == nil {
		return false
	}
	for _, w := range []*worker{cp.workers[liveness], cp.workers[startup]} {
		if w != nil && w.result == Failure {
			return true
		}
	}
	return false
}

func (m *Manager) lookup(podUID types.UID, containerID string) *containerProbes {
	if pp := m.pods[podUID]; pp != nil {
		return pp.containers[containerID]
	}
	return nil
}

// start starts a worker; the caller holds m.mu.
func (m *Manager) start(uid types.UID, pp *podProbes, cp *containerProbes, k probeKind, p *v1.Probe, c *v1.Container, rc Container) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{
		kind: k, spec: p, container: c, id: rc.ID, startedAt: rc.StartedAt, podUID: uid,
		pod: pp, siblings: cp, cancel: cancel, trigger: make(chan struct{}, 1),
	}
	if k == liveness {
		// A container is alive until its liveness probe says otherwise.
		w.result = Success
	}
	m.active++
	m.wg.Add(1)
	go m.run(ctx, w)
	return w
}

func (m *Manager) run(ctx context.Context, w *worker) {
	defer func() {
		m.mu.Lock()
		m.active--
		m.mu.Unlock()
		m.wg.Done()
	}()
	// The first attempt comes as soon as the initial delay has passed, not a period later.
	if d := time.Until(w.startedAt.Add(time.Duration(w.spec.InitialDelaySeconds) * m.unit)); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	select {
	case <-w.trigger: // the attempt below is the one asked for
	default:
	}
	ticker := time.NewTicker(time.Duration(orDefault(w.spec.PeriodSeconds, 10)) * m.unit)
	defer ticker.Stop()
	for m.attempt(ctx, w) {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-w.trigger:
		}
	}
}

// attempt runs the probe once and applies the thresholds; false ends the worker.
func (m *Manager) attempt(ctx context.Context, w *worker) (keepGoing bool) {
	m.mu.Lock()
	pod, podIP, started := w.pod.pod, w.pod.podIP, w.siblings.started()
	m.mu.Unlock()

	if pod.DeletionTimestamp != nil && w.kind != readiness {
		// A terminating container is not restarted, so liveness no longer matters.
		m.set(ctx, w, Success)
		return false
	}
	if w.kind != startup && !started {
		return true // liveness and readiness wait for the startup probe
	}

	o := probe(ctx, m.ex, w.spec, pod, w.container, podIP, w.id)
	if ctx.Err() != nil {
		return false
	}
	switch {
	case o.result == Unknown:
		// The probe could not run; like the kubelet, keep the previous result.
		m.event(pod, w, "Unhealthy", "%s probe errored and resulted in unknown state: %s", w.kind, o.output)
		return true
	case o.result == Failure:
		m.event(pod, w, "Unhealthy", "%s probe failed: %s", w.kind, o.output)
	case o.warning:
		m.event(pod, w, "ProbeWarning", "%s probe warning: %s", w.kind, o.output)
	}

	if o.result == w.last {
		w.run++
	} else {
		w.last, w.run = o.result, 1
	}
	threshold := orDefault(w.spec.FailureThreshold, 3)
	if o.result == Success {
		threshold = 1 // liveness and startup must use 1
		if w.kind == readiness {
			threshold = orDefault(w.spec.SuccessThreshold, 1)
		}
	}
	if w.run < int(threshold) {
		return true
	}
	m.set(ctx, w, o.result)

	switch {
	case w.kind == startup && o.result == Success:
		// Liveness and readiness take over now rather than at their next tick.
		m.mu.Lock()
		for _, s := range w.siblings.workers {
			if s != nil && s != w {
				select {
				case s.trigger <- struct{}{}:
				default:
				}
			}
		}
		m.mu.Unlock()
		return false
	case w.kind != readiness && o.result == Failure:
		// The kubelet restarts the container; exec'ing into one being killed is pointless.
		return false
	}
	return true
}

// set stores a worker's result, unless the worker was stopped meanwhile, and reports a change.
func (m *Manager) set(ctx context.Context, w *worker, r Result) {
	m.mu.Lock()
	changed := ctx.Err() == nil && w.result != r
	if changed {
		w.result = r
	}
	m.mu.Unlock()
	if changed && m.onChange != nil {
		m.onChange(w.podUID)
	}
}

func (m *Manager) event(pod *v1.Pod, w *worker, reason, format string, args ...any) {
	if m.rec == nil {
		return
	}
	ref := &v1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
		ResourceVersion: pod.ResourceVersion, FieldPath: "spec.containers{" + w.container.Name + "}",
	}
	if w.container.RestartPolicy != nil {
		ref.FieldPath = "spec.initContainers{" + w.container.Name + "}"
	}
	m.rec.Eventf(ref, v1.EventTypeWarning, reason, format, args...)
}

// probedContainer finds the spec of a container that may have probes: a regular container or
// a sidecar (an init container that restarts always).
func probedContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.Name == name && c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			return c
		}
	}
	return nil
}
