package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podStatus computes the pod's status from what the runtime holds, the probes' results and
// the reasons containers wait for.
func (k *Kubelet) podStatus(pod *v1.Pod, rt *podRuntime) v1.PodStatus {
	st := v1.PodStatus{
		QOSClass: pod.Status.QOSClass,
		HostIP:   k.cfg.NodeIP, HostIPs: []v1.HostIP{{IP: k.cfg.NodeIP}},
		StartTime: pod.Status.StartTime,
	}
	if prev, ok := k.status.get(pod.UID); ok && prev.StartTime != nil {
		st.StartTime = prev.StartTime
	}
	// Times are kept at the API's precision (seconds), so that the status read back from the
	// API compares equal to the one written.
	now := metav1.Now().Rfc3339Copy()
	if st.StartTime == nil {
		st.StartTime = &now
	}
	sandboxReady := rt.sandbox != nil && rt.sandbox.State == runtimeapi.PodSandboxState_SANDBOX_READY
	if sandboxReady {
		if ip := sandboxIP(rt.sandbox); ip != "" {
			st.PodIP = ip
			st.PodIPs = []v1.PodIP{{IP: ip}}
			for _, extra := range rt.sandbox.GetNetwork().GetAdditionalIps() {
				st.PodIPs = append(st.PodIPs, v1.PodIP{IP: extra.GetIp()})
			}
		} else if pod.Spec.HostNetwork {
			st.PodIP, st.PodIPs = k.cfg.NodeIP, []v1.PodIP{{IP: k.cfg.NodeIP}}
		}
	} else if pod.Status.PodIP != "" && isTerminalPhase(pod.Status.Phase) {
		st.PodIP, st.PodIPs = pod.Status.PodIP, pod.Status.PodIPs
	}

	initialized, initFailed := true, false
	var notInitialized []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := k.containerStatus(pod, c, rt, "PodInitializing")
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
		switch {
		case sidecar && cs.Started != nil && *cs.Started:
		case !sidecar && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
		default:
			initialized = false
			notInitialized = append(notInitialized, c.Name)
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				initFailed = true
			}
		}
	}
	waitReason := "ContainerCreating"
	if !initialized {
		waitReason = "PodInitializing"
	}
	var unready []string
	for i := range pod.Spec.Containers {
		cs := k.containerStatus(pod, &pod.Spec.Containers[i], rt, waitReason)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	st.Phase = podPhase(pod, st, initialized, initFailed)
	if f, ok := k.status.failure(pod.UID); ok {
		st.Phase, st.Reason, st.Message = v1.PodFailed, f.reason, f.message
	}

	// Conditions: ours, then whatever others (the scheduler, controllers) put there.
	cond := func(t v1.PodConditionType, ok bool, reason, msg string) v1.PodCondition {
		c := v1.PodCondition{Type: t, Status: v1.ConditionTrue, LastTransitionTime: now}
		if !ok {
			c.Status, c.Reason, c.Message = v1.ConditionFalse, reason, msg
		}
		return c
	}
	terminal := isTerminalPhase(st.Phase)
	ready := len(unready) == 0 && initialized && !terminal
	readyReason, readyMsg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if terminal {
		readyReason, readyMsg = "PodCompleted", ""
	}
	if ready {
		for _, g := range pod.Spec.ReadinessGates {
			if condStatus(pod.Status.Conditions, g.ConditionType) != v1.ConditionTrue {
				ready, readyReason, readyMsg = false, "ReadinessGatesNotReady", fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType)
			}
		}
	}
	initReason, initMsg := "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInitialized, " "))
	if terminal && !initialized && !initFailed {
		initReason, initMsg = "PodCompleted", ""
	}
	st.Conditions = []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, sandboxReady, "", ""),
		cond(v1.PodInitialized, initialized, initReason, initMsg),
		cond(v1.PodReady, ready, readyReason, readyMsg),
		cond(v1.ContainersReady, ready || (len(unready) == 0 && initialized && !terminal), readyReason, readyMsg),
	}
	// A condition that kept its status keeps its transition time: from the status last
	// computed here when there is one, as the real kubelet's status manager does. The pod
	// from the informer may be an echo of an older write, and taking its times made two
	// writes in flight take turns for ever.
	before := pod.Status.Conditions
	if prev, ok := k.status.get(pod.UID); ok {
		before = prev.Conditions
	}
	for i, c := range st.Conditions {
		for _, o := range before {
			if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
				st.Conditions[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	ours := map[v1.PodConditionType]bool{}
	for _, c := range st.Conditions {
		ours[c.Type] = true
	}
	for _, c := range pod.Status.Conditions {
		if !ours[c.Type] {
			st.Conditions = append(st.Conditions, c)
		}
	}
	return st
}

func condStatus(conds []v1.PodCondition, t v1.PodConditionType) v1.ConditionStatus {
	for _, c := range conds {
		if c.Type == t {
			return c.Status
		}
	}
	return v1.ConditionUnknown
}

// containerStatus is the API status of container c, from its newest two runtime containers.
func (k *Kubelet) containerStatus(pod *v1.Pod, c *v1.Container, rt *podRuntime, waitReason string) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(false)}
	list := rt.containers[c.Name]
	reason, hasReason := k.reasons.get(pod.UID, c.Name)
	if len(list) == 0 {
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: waitReason}
		if hasReason && reason.reason != "" {
			cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason.reason, Message: reason.message}
		}
		return cs
	}
	latest := list[0]
	cs.ContainerID = k.runtimeName() + "://" + latest.Id
	cs.ImageID = latest.ImageRef
	if img := latest.GetImage().GetImage(); img != "" && !strings.HasPrefix(img, "sha256:") {
		cs.Image = img
	}
	cs.RestartCount = int32(latest.Metadata.Attempt)
	switch latest.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(0, latest.StartedAt))}
		cs.Started = new(k.probes.Started(pod.UID, latest.Id))
		cs.Ready = *cs.Started && k.probes.Ready(pod.UID, latest.Id)
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
	default:
		cs.State.Terminated = k.terminated(cs.ContainerID, latest)
		if hasReason && reason.reason != "" && shouldRestart(pod.Spec.RestartPolicy, latest.ExitCode) && !isTerminalPhase(pod.Status.Phase) && pod.DeletionTimestamp == nil {
			cs.LastTerminationState.Terminated = cs.State.Terminated
			cs.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: reason.reason, Message: reason.message}}
		}
	}
	if cs.LastTerminationState.Terminated == nil && len(list) > 1 && list[1].State == runtimeapi.ContainerState_CONTAINER_EXITED {
		cs.LastTerminationState.Terminated = k.terminated(k.runtimeName()+"://"+list[1].Id, list[1])
	}
	return cs
}

func (k *Kubelet) terminated(containerID string, s *runtimeapi.ContainerStatus) *v1.ContainerStateTerminated {
	t := &v1.ContainerStateTerminated{
		ExitCode: s.ExitCode, Reason: s.Reason, Message: s.Message, ContainerID: containerID,
		StartedAt: metav1.NewTime(time.Unix(0, s.StartedAt)), FinishedAt: metav1.NewTime(time.Unix(0, s.FinishedAt)),
	}
	if t.Reason == "" {
		t.Reason = "Error"
		if s.ExitCode == 0 {
			t.Reason = "Completed"
		}
	}
	if p := s.Annotations[annotationTerminationLog]; p != "" {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			t.Message = string(b[:min(len(b), 4096)])
		}
	}
	return t
}

// podPhase is Kubernetes' getPhase: Pending until every container has been created,
// Running while any runs or will restart, then Succeeded or Failed.
func podPhase(pod *v1.Pod, st v1.PodStatus, initialized, initFailed bool) v1.PodPhase {
	if initFailed {
		return v1.PodFailed
	}
	if !initialized {
		return v1.PodPending
	}
	var pending, running, succeeded, failed int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			succeeded++
		case cs.State.Terminated != nil:
			failed++
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			running++ // restarting
		default:
			pending++
		}
	}
	switch {
	case pending > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case pod.Spec.RestartPolicy == v1.RestartPolicyAlways:
		return v1.PodRunning
	case failed > 0 && pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure:
		return v1.PodRunning
	case failed > 0:
		return v1.PodFailed
	default:
		return v1.PodSucceeded
	}
}

// runtimeName is the CRI runtime's name for container IDs (nanokube://…, containerd://…).
func (k *Kubelet) runtimeName() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.criName == "" {
		if v, err := k.runtime.Version(context.Background(), "v1"); err == nil {
			k.criName = v.RuntimeName
		} else {
			return "cri"
		}
	}
	return k.criName
}

// statusManager writes pod statuses through pods/status when they change, several at a
// time, and deletes the API object of a pod that finished terminating.
type statusManager struct {
	client kubernetes.Interface
	log    *slog.Logger
	kick   chan struct{}

	mu   sync.Mutex
	pods map[types.UID]*statusEntry
}

type statusEntry struct {
	pod    *v1.Pod
	status v1.PodStatus
	dirty  bool
	// The resourceVersion of the pod last known to hold this status in the API, so that
	// a pod seen again at that version needs no comparison.
	matchedRV  string
	deleteMe   bool
	failed     *waitReason
	terminated bool // the final status reached the API
	// A write or deletion of this pod is in flight. One at a time per pod: two patches in
	// flight may land out of order.
	busy bool
}

func newStatusManager(client kubernetes.Interface, log *slog.Logger) *statusManager {
	return &statusManager{client: client, log: log, kick: make(chan struct{}, 1), pods: map[types.UID]*statusEntry{}}
}

func (m *statusManager) entry(pod *v1.Pod) *statusEntry {
	e, ok := m.pods[pod.UID]
	if !ok {
		e = &statusEntry{pod: pod, status: pod.Status}
		m.pods[pod.UID] = e
	}
	e.pod = pod
	return e
}

// set records the pod's status, to be written if it changed or if the API's copy of the
// pod holds another: someone else changed it (the node lifecycle controller marks the
// pods of an unreachable node unready), or it is the echo of an older write. Writing the
// same status again converges either way, as the real kubelet's reconciliation does.
func (m *statusManager) set(pod *v1.Pod, st v1.PodStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(pod)
	if isTerminalPhase(e.status.Phase) && !isTerminalPhase(st.Phase) {
		st.Phase = e.status.Phase // a pod never leaves a terminal phase
	}
	if apiequality.Semantic.DeepEqual(e.status, st) {
		if e.dirty || e.busy || pod.ResourceVersion == e.matchedRV {
			return
		}
		if apiHolds(pod.Status, st) {
			e.matchedRV = pod.ResourceVersion
			return
		}
	}
	e.status, e.dirty = st, true
	m.wake()
}

// apiHolds reports whether the API's status already says all that ours says, as the API
// keeps it (times in seconds): our conditions, and every other field the kubelet sets.
// Fields and conditions set by others are not ours to compare.
func apiHolds(api, ours v1.PodStatus) bool {
	kubeletView := func(s *v1.PodStatus, conds []v1.PodCondition) []byte {
		v := v1.PodStatus{
			Phase: s.Phase, Reason: s.Reason, Message: s.Message, QOSClass: s.QOSClass,
			HostIP: s.HostIP, HostIPs: s.HostIPs, PodIP: s.PodIP, PodIPs: s.PodIPs, StartTime: s.StartTime,
			InitContainerStatuses: s.InitContainerStatuses, ContainerStatuses: s.ContainerStatuses,
			Conditions: conds,
		}
		b, _ := json.Marshal(v) // cannot fail for these types
		return b
	}
	var theirs []v1.PodCondition
	for _, c := range ours.Conditions {
		for _, a := range api.Conditions {
			if a.Type == c.Type {
				theirs = append(theirs, a)
			}
		}
	}
	return string(kubeletView(&api, theirs)) == string(kubeletView(&ours, ours.Conditions))
}

func (m *statusManager) get(uid types.UID) (v1.PodStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.pods[uid]
	if !ok {
		return v1.PodStatus{}, false
	}
	return e.status, true
}

// isTerminal reports whether the pod reached Succeeded or Failed, by the API or by us.
func (m *statusManager) isTerminal(pod *v1.Pod) bool {
	if isTerminalPhase(pod.Status.Phase) {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.pods[pod.UID]
	return ok && (isTerminalPhase(e.status.Phase) || e.failed != nil)
}

// markFailed fails the pod with a reason (DeadlineExceeded, ...).
func (m *statusManager) markFailed(pod *v1.Pod, reason, message string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entry(pod).failed = &waitReason{reason, message}
}

func (m *statusManager) failure(uid types.UID) (waitReason, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.pods[uid]; ok && e.failed != nil {
		return *e.failed, true
	}
	return waitReason{}, false
}

// requestDelete asks for the pod's API object to be deleted once its status is written.
func (m *statusManager) requestDelete(pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(pod)
	if !e.deleteMe {
		e.deleteMe = true
		m.wake()
	}
}

func (m *statusManager) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pods, uid)
}

func (m *statusManager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// run writes dirty statuses and pending deletions, up to 8 at once, retrying failures.
func (m *statusManager) run(ctx context.Context) {
	retry := time.NewTicker(2 * time.Second)
	defer retry.Stop()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-retry.C:
		}
		m.dispatch(ctx, sem, &wg)
	}
}

// dispatch starts the writes and deletions due now, at most one per pod and len(sem) in
// all, and returns how many it started; wg counts them until they end.
func (m *statusManager) dispatch(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup) int {
	type job struct {
		pod    *v1.Pod
		status *v1.PodStatus
		delete bool
	}
	var jobs []job
	m.mu.Lock()
	for _, e := range m.pods {
		switch {
		case e.busy:
		case e.dirty:
			st := e.status.DeepCopy()
			e.dirty, e.busy = false, true
			jobs = append(jobs, job{pod: e.pod, status: st})
		case e.deleteMe:
			e.deleteMe, e.busy = false, true
			jobs = append(jobs, job{pod: e.pod, delete: true})
		}
	}
	m.mu.Unlock()
	sort.Slice(jobs, func(i, j int) bool { return !jobs[i].delete && jobs[j].delete })
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var (
				err error
				rv  string
			)
			if j.delete {
				err = m.deletePod(ctx, j.pod)
			} else {
				rv, err = m.writeStatus(ctx, j.pod, *j.status)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			e, ok := m.pods[j.pod.UID]
			if !ok {
				return
			}
			e.busy = false
			switch {
			case err != nil && ctx.Err() == nil:
				m.log.Warn("pod status", "pod", klogRef(j.pod), "delete", j.delete, "err", err)
				if j.delete {
					e.deleteMe = true
				} else {
					e.dirty = true
				}
				return // the retry ticker tries again
			case err == nil && !j.delete && !e.dirty:
				// The API holds our status at the version the write returned: its echo
				// needs no comparison, whatever the API normalised on the way.
				e.matchedRV = rv
			}
			if e.dirty || e.deleteMe {
				m.wake() // what came in while this one was in flight
			}
		})
	}
	return len(jobs)
}

// writeStatus patches the pod's status and returns the resourceVersion it got ("" if the
// pod is gone).
func (m *statusManager) writeStatus(ctx context.Context, pod *v1.Pod, st v1.PodStatus) (string, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID}, "status": st})
	if err != nil {
		return "", err
	}
	out, err := m.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	switch {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", err
	}
	return out.ResourceVersion, nil
}

// deletePod removes a pod whose containers all stopped: the last step of graceful deletion.
func (m *statusManager) deletePod(ctx context.Context, pod *v1.Pod) error {
	err := m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)), Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
