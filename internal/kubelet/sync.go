package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/kubelet/prober"
	"github.com/nanokube/nanokube/internal/nodecleanup"
)

// podRuntime is what the runtime holds for one pod.
type podRuntime struct {
	// sandboxes, newest first.
	sandboxes []*runtimeapi.PodSandbox
	// sandbox is the status of the newest sandbox, nil if there is none.
	sandbox *runtimeapi.PodSandboxStatus
	// containers by container name, newest first; statuses of the two newest only.
	containers map[string][]*runtimeapi.ContainerStatus
	// all lists every container of the pod.
	all []*runtimeapi.Container
}

// readySandboxID is the newest sandbox's ID if it is ready, else "".
func (r *podRuntime) readySandboxID() string {
	if len(r.sandboxes) > 0 && r.sandboxes[0].State == runtimeapi.PodSandboxState_SANDBOX_READY {
		return r.sandboxes[0].Id
	}
	return ""
}

// current is the newest container of name in sandbox id, or nil.
func (r *podRuntime) current(name, sandboxID string) *runtimeapi.ContainerStatus {
	cs := r.containers[name]
	if len(cs) == 0 || sandboxID == "" || r.sandboxOf(cs[0].Id) != sandboxID {
		return nil
	}
	return cs[0]
}

func (r *podRuntime) sandboxOf(containerID string) string {
	for _, c := range r.all {
		if c.Id == containerID {
			return c.PodSandboxId
		}
	}
	return ""
}

// nextAttempt is the attempt number of the next container of that name.
func (r *podRuntime) nextAttempt(name string) uint32 {
	if cs := r.containers[name]; len(cs) > 0 {
		return cs[0].Metadata.Attempt + 1
	}
	return 0
}

func (r *podRuntime) running() []*runtimeapi.Container {
	var out []*runtimeapi.Container
	for _, c := range r.all {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING || c.State == runtimeapi.ContainerState_CONTAINER_CREATED {
			out = append(out, c)
		}
	}
	return out
}

// podRuntime reads the pod's sandboxes and containers from the runtime.
func (k *Kubelet) podRuntime(ctx context.Context, uid types.UID) (*podRuntime, error) {
	sel := map[string]string{labelPodUID: string(uid)}
	sbs, err := k.runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	sort.Slice(sbs, func(i, j int) bool { return sbs[i].CreatedAt > sbs[j].CreatedAt })
	all, err := k.runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].CreatedAt > all[j].CreatedAt })
	r := &podRuntime{sandboxes: sbs, all: all, containers: map[string][]*runtimeapi.ContainerStatus{}}
	if len(sbs) > 0 {
		st, err := k.runtime.PodSandboxStatus(ctx, sbs[0].Id, false)
		if err != nil {
			return nil, err
		}
		r.sandbox = st.GetStatus()
	}
	for _, c := range all {
		name := c.Labels[labelContainerName]
		if len(r.containers[name]) >= 2 {
			continue
		}
		st, err := k.runtimeContainerStatus(ctx, c.Id)
		if err != nil {
			return nil, err
		}
		r.containers[name] = append(r.containers[name], st)
	}
	return r, nil
}

// containerStatus asks the runtime, remembering exited containers' statuses, which are final.
func (k *Kubelet) runtimeContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	if st, ok := k.exited.Load(id); ok {
		return st.(*runtimeapi.ContainerStatus), nil
	}
	resp, err := k.runtime.ContainerStatus(ctx, id, false)
	if err != nil {
		return nil, err
	}
	st := resp.GetStatus()
	if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
		k.exited.Store(id, st)
	}
	return st, nil
}

// syncPod drives the pod one step towards its spec and publishes its status. It returns
// when the worker should sync again if nothing wakes it earlier.
func (k *Kubelet) syncPod(ctx context.Context, pod *v1.Pod) time.Duration {
	rt, err := k.podRuntime(ctx, pod.UID)
	if err != nil {
		k.log.Warn("reading pod state from the runtime", "pod", klogRef(pod), "err", err)
		return 2 * time.Second
	}
	if pod.DeletionTimestamp != nil || k.status.isTerminal(pod) {
		return k.syncTerminating(ctx, pod, rt)
	}
	if deadline := pod.Spec.ActiveDeadlineSeconds; deadline != nil && pod.Status.StartTime != nil {
		left := time.Until(pod.Status.StartTime.Add(time.Duration(*deadline) * time.Second))
		if left <= 0 {
			k.recorder.Event(pod, v1.EventTypeNormal, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
			k.status.markFailed(pod, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
			return k.syncTerminating(ctx, pod, rt)
		}
	}

	next, acted := k.syncContainers(ctx, pod, rt)
	// The status is made from the runtime's state after the step; when the step changed
	// nothing there (every idle resync), the state read before it is still current.
	if acted {
		if rt, err = k.podRuntime(ctx, pod.UID); err != nil {
			return 2 * time.Second
		}
	}
	status := k.podStatus(pod, rt)
	k.status.set(pod, status)
	if isTerminalPhase(status.Phase) {
		k.kick(pod.UID) // stop what is left of it
	}
	if pod.Spec.ActiveDeadlineSeconds != nil && status.StartTime != nil {
		left := time.Until(status.StartTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second))
		next = min(next, max(left, 10*time.Millisecond))
	}
	return next
}

// syncContainers starts the sandbox and the containers that should run and kills those that
// should not. It returns when to look again, and whether it asked the runtime to change
// anything (then rt is stale).
func (k *Kubelet) syncContainers(ctx context.Context, pod *v1.Pod, rt *podRuntime) (next time.Duration, acted bool) {
	sandboxID := rt.readySandboxID()
	if sandboxID == "" {
		if len(rt.all) > 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever && rt.sandboxes != nil {
			return resyncInterval, false // its containers ran; it is over
		}
		acted = true
		if len(rt.sandboxes) > 0 {
			k.recorder.Event(pod, v1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
			k.killContainers(ctx, pod, rt, 2)
		}
		id, err := k.createSandbox(ctx, pod, rt)
		if err != nil {
			k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			k.log.Warn("creating pod sandbox", "pod", klogRef(pod), "err", err)
			return 2 * time.Second, acted
		}
		var rerr error
		if rt, rerr = k.podRuntime(ctx, pod.UID); rerr != nil {
			return time.Second, acted
		}
		sandboxID = id
	}
	podIP := sandboxIP(rt.sandbox)
	withIPs := k.podWithIPs(pod, rt.sandbox)
	hostPaths, err := k.volumes.Setup(ctx, withIPs, k.allocatable())
	if err != nil {
		k.recordOnce(pod, "", v1.EventTypeWarning, "FailedMount", fmt.Sprintf("MountVolume.SetUp failed: %v", err))
		for _, c := range pod.Spec.Containers {
			k.reasons.set(pod.UID, c.Name, "ContainerCreating", "")
		}
		return 2 * time.Second, acted
	}
	next = resyncInterval
	// A start may have created a container even when it failed, so any attempt counts as
	// a change (a crash-looping pod re-reads its state; a running one does not).
	start := func(c *v1.Container, prev *runtimeapi.ContainerStatus) (bool, time.Duration) {
		acted = true
		return k.startOrBackoff(ctx, pod, c, rt, sandboxID, hostPaths, withIPs, prev)
	}

	// Init containers, in order; each must finish before the next starts. Sidecars
	// (restartPolicy Always) must have started.
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cur := rt.current(c.Name, sandboxID)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
		switch {
		case cur == nil:
			if done, wait := start(c, nil); !done {
				return wait, acted
			}
			if !sidecar {
				return time.Second, acted // the runtime event wakes us earlier
			}
		case cur.State == runtimeapi.ContainerState_CONTAINER_RUNNING:
			if !sidecar {
				return next, acted
			}
			acted = k.checkLiveness(ctx, pod, c, cur) || acted
		case cur.State == runtimeapi.ContainerState_CONTAINER_EXITED && cur.ExitCode == 0 && !sidecar:
			continue
		case cur.State == runtimeapi.ContainerState_CONTAINER_EXITED:
			if pod.Spec.RestartPolicy == v1.RestartPolicyNever && !sidecar {
				return next, acted // the pod failed
			}
			if done, wait := start(c, cur); !done {
				return wait, acted
			}
			if !sidecar {
				return time.Second, acted
			}
		default:
			return time.Second, acted
		}
	}

	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cur := rt.current(c.Name, sandboxID)
		switch {
		case cur == nil:
			if done, wait := start(c, nil); !done {
				next = min(next, wait)
			}
		case cur.State == runtimeapi.ContainerState_CONTAINER_RUNNING:
			if cur.Annotations[annotationImage] != c.Image {
				k.killContainer(ctx, pod, c, cur.Id, gracePeriod(pod), fmt.Sprintf("Container %s definition changed, will be restarted", c.Name))
				acted = true
				next = min(next, 100*time.Millisecond)
				continue
			}
			if k.checkLiveness(ctx, pod, c, cur) {
				acted = true
				next = min(next, 100*time.Millisecond)
			}
		case cur.State == runtimeapi.ContainerState_CONTAINER_EXITED:
			if !shouldRestart(pod.Spec.RestartPolicy, cur.ExitCode) {
				continue
			}
			if done, wait := start(c, cur); !done {
				next = min(next, wait)
			}
		}
	}
	running := make([]prober.Container, 0, len(pod.Spec.Containers))
	for _, cs := range rt.containers {
		if len(cs) > 0 && cs[0].State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running = append(running, prober.Container{Name: cs[0].Metadata.Name, ID: cs[0].Id, StartedAt: time.Unix(0, cs[0].StartedAt)})
		}
	}
	k.probes.Sync(withIPs, podIP, running)
	return next, acted
}

// checkLiveness kills a running container whose liveness (or startup) probe failed; the
// restart policy then decides on the restart. It reports whether it killed.
func (k *Kubelet) checkLiveness(ctx context.Context, pod *v1.Pod, c *v1.Container, cur *runtimeapi.ContainerStatus) bool {
	if !k.probes.LivenessFailed(pod.UID, cur.Id) {
		return false
	}
	what := "liveness"
	if !k.probes.Started(pod.UID, cur.Id) {
		what = "startup"
	}
	k.killContainer(ctx, pod, c, cur.Id, gracePeriod(pod), fmt.Sprintf("Container %s failed %s probe, will be restarted", c.Name, what))
	return true
}

func shouldRestart(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// startOrBackoff starts container c unless its crash-loop back-off holds it (prev is its
// previous, exited container). It reports whether it started it, and if not, when to look
// again.
func (k *Kubelet) startOrBackoff(ctx context.Context, pod *v1.Pod, c *v1.Container, rt *podRuntime, sandboxID string,
	hostPaths map[string]string, withIPs *v1.Pod, prev *runtimeapi.ContainerStatus) (bool, time.Duration) {
	if prev != nil {
		key := backoffKey(pod.UID, c.Name)
		finished := time.Unix(0, prev.FinishedAt)
		if left := k.backoff.crash.left(key, finished); left > 0 {
			msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				k.backoff.crash.get(key), c.Name, pod.Name, pod.Namespace, pod.UID)
			if k.reasons.set(pod.UID, c.Name, "CrashLoopBackOff", msg) {
				k.recorder.Eventf(containerRef(pod, c), v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
			}
			return false, left
		}
		k.backoff.crash.next(key, finished)
	}
	// A container that failed to be created or started waits out its back-off; any wake-up
	// of the worker (the relist sees the failed container come and go) must not retry early.
	if left := k.backoff.pull.leftSinceUpdate(backoffKey(pod.UID, "start/"+c.Name)); left > 0 {
		return false, left
	}
	if err := k.startContainer(ctx, pod, c, rt, sandboxID, hostPaths, withIPs); err != nil {
		k.log.Info("container not started", "pod", klogRef(pod), "container", c.Name, "err", err)
		return false, k.backoff.retryAfter(pod.UID, c)
	}
	return true, 0
}

// createSandbox runs the pod's sandbox (network namespace, hostname, DNS).
func (k *Kubelet) createSandbox(ctx context.Context, pod *v1.Pod, rt *podRuntime) (string, error) {
	var attempt uint32
	if len(rt.sandboxes) > 0 {
		attempt = rt.sandboxes[0].Metadata.Attempt + 1
	}
	for _, sb := range rt.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			_ = k.runtime.StopPodSandbox(ctx, sb.Id)
		}
	}
	cfg, err := k.sandboxConfig(pod, attempt)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", err
	}
	return k.runtime.RunPodSandbox(ctx, cfg, "")
}

// syncTerminating stops a pod that is being deleted or has finished, publishes its final
// status and, once nothing runs, lets the status manager delete the API object.
func (k *Kubelet) syncTerminating(ctx context.Context, pod *v1.Pod, rt *podRuntime) time.Duration {
	k.probes.RemovePod(pod.UID)
	grace := gracePeriod(pod)
	if pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	}
	if len(rt.running()) > 0 {
		k.killContainers(ctx, pod, rt, grace)
		var err error
		if rt, err = k.podRuntime(ctx, pod.UID); err != nil {
			return time.Second
		}
	}
	for _, sb := range rt.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			if err := k.runtime.StopPodSandbox(ctx, sb.Id); err != nil {
				k.log.Warn("stopping pod sandbox", "pod", klogRef(pod), "err", err)
				return time.Second
			}
		}
	}
	status := k.podStatus(pod, rt)
	if !isTerminalPhase(status.Phase) {
		status.Phase = finalPhase(pod, status)
	}
	k.status.set(pod, status)
	if pod.DeletionTimestamp != nil {
		k.status.requestDelete(pod)
	}
	return resyncInterval
}

// finalPhase is the phase of a pod whose containers were all stopped: Succeeded if every
// container exited 0, else Failed.
func finalPhase(pod *v1.Pod, st v1.PodStatus) v1.PodPhase {
	for _, cs := range st.ContainerStatuses {
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			return v1.PodFailed
		}
	}
	if len(st.ContainerStatuses) == 0 {
		return v1.PodFailed
	}
	return v1.PodSucceeded
}

// killContainers stops every running container of the pod in parallel.
func (k *Kubelet) killContainers(ctx context.Context, pod *v1.Pod, rt *podRuntime, grace int64) {
	var wg sync.WaitGroup
	for _, c := range rt.running() {
		spec := containerSpec(pod, c.Labels[labelContainerName])
		wg.Go(func() { k.killContainer(ctx, pod, spec, c.Id, grace, "") })
	}
	wg.Wait()
}

// killContainer runs the preStop hook, then stops the container within what is left of the
// grace period. spec may be nil for a container no longer in the pod's spec.
func (k *Kubelet) killContainer(ctx context.Context, pod *v1.Pod, spec *v1.Container, id string, grace int64, why string) {
	start := time.Now()
	if spec != nil {
		msg := "Stopping container " + spec.Name
		if why != "" {
			msg = why
		}
		k.recorder.Event(containerRef(pod, spec), v1.EventTypeNormal, "Killing", msg)
		if spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil && grace > 0 {
			hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
			if err := prober.RunHook(hctx, k.runtime, spec.Lifecycle.PreStop, pod, spec, pod.Status.PodIP, id); err != nil {
				k.recorder.Eventf(containerRef(pod, spec), v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v", err)
			}
			cancel()
		}
	}
	left := max(grace-int64(time.Since(start)/time.Second), 0)
	if grace > 0 && left < 2 {
		left = 2 // a little time to stop after the hook, as the kubelet gives
	}
	if err := k.runtime.StopContainer(ctx, id, left); err != nil {
		k.log.Warn("stopping container", "pod", klogRef(pod), "id", id, "err", err)
	}
}

// teardownPod removes everything the runtime and the disk hold for a pod that is gone.
func (k *Kubelet) teardownPod(ctx context.Context, uid types.UID) error {
	k.probes.RemovePod(uid)
	rt, err := k.podRuntime(ctx, uid)
	if err != nil {
		return err
	}
	var logDir string
	for _, c := range rt.running() {
		if err := k.runtime.StopContainer(ctx, c.Id, 0); err != nil {
			return err
		}
	}
	for _, c := range rt.all {
		if err := k.runtime.RemoveContainer(ctx, c.Id); err != nil {
			return err
		}
		k.exited.Delete(c.Id)
	}
	for _, sb := range rt.sandboxes {
		if logDir == "" && sb.Metadata != nil {
			logDir = filepath.Join(k.cfg.PodLogsDir, podLogDirName(sb.Metadata.Namespace, sb.Metadata.Name, types.UID(sb.Metadata.Uid)))
		}
		if err := k.runtime.StopPodSandbox(ctx, sb.Id); err != nil {
			return err
		}
		if err := k.runtime.RemovePodSandbox(ctx, sb.Id); err != nil {
			return err
		}
	}
	if err := k.volumes.Teardown(ctx, uid); err != nil {
		return err
	}
	// runc leaves the pod cgroups it made as parents.
	for _, qos := range []string{"", "burstable", "besteffort"} {
		nodecleanup.RemoveCgroupsEverywhere(filepath.Join(k.cfg.CgroupRoot, qos, "pod"+string(uid)))
	}
	if logDir != "" {
		if err := os.RemoveAll(logDir); err != nil {
			return err
		}
	}
	k.status.forget(uid)
	k.reasons.forget(uid)
	k.backoff.forget(uid)
	return nil
}

// collectContainers removes dead containers of live pods beyond the newest two per
// container name (the current one and the one `kubectl logs --previous` reads), and dead
// sandboxes that are not a pod's newest.
func (k *Kubelet) collectContainers(ctx context.Context) {
	all, err := k.runtime.ListContainers(ctx, nil)
	if err != nil {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].CreatedAt > all[j].CreatedAt })
	seen := map[string]int{}
	inUse := map[string]bool{}
	for _, c := range all {
		key := c.Labels[labelPodUID] + "/" + c.Labels[labelContainerName]
		seen[key]++
		if seen[key] <= 2 || c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			inUse[c.PodSandboxId] = true
			continue
		}
		if err := k.runtime.RemoveContainer(ctx, c.Id); err != nil {
			k.log.Warn("removing dead container", "id", c.Id, "err", err)
		}
		k.exited.Delete(c.Id)
	}
	sbs, err := k.runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return
	}
	sort.Slice(sbs, func(i, j int) bool { return sbs[i].CreatedAt > sbs[j].CreatedAt })
	newest := map[string]bool{}
	for _, sb := range sbs {
		uid := sb.Labels[labelPodUID]
		if !newest[uid] {
			newest[uid] = true
			continue
		}
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY && !inUse[sb.Id] {
			if err := k.runtime.RemovePodSandbox(ctx, sb.Id); err != nil {
				k.log.Warn("removing dead sandbox", "id", sb.Id, "err", err)
			}
		}
	}
}

func containerSpec(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

func gracePeriod(pod *v1.Pod) int64 {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return v1.DefaultTerminationGracePeriodSeconds
}

func isTerminalPhase(p v1.PodPhase) bool { return p == v1.PodSucceeded || p == v1.PodFailed }

func podLogDirName(namespace, name string, uid types.UID) string {
	return namespace + "_" + name + "_" + string(uid)
}

func klogRef(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }

func containerRef(pod *v1.Pod, c *v1.Container) *v1.ObjectReference {
	path := "spec.containers{" + c.Name + "}"
	for _, ic := range pod.Spec.InitContainers {
		if ic.Name == c.Name {
			path = "spec.initContainers{" + c.Name + "}"
		}
	}
	return &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
		UID: pod.UID, ResourceVersion: pod.ResourceVersion, FieldPath: path}
}

// recordOnce records an event unless the same reason and message were recorded last for
// this pod and container: a failing sync that retries every two seconds would flood.
func (k *Kubelet) recordOnce(pod *v1.Pod, container, eventType, reason, msg string) {
	if k.reasons.note(pod.UID, "event/"+container+"/"+reason, msg) {
		k.recorder.Event(pod, eventType, reason, msg)
	}
}

func sandboxIP(st *runtimeapi.PodSandboxStatus) string {
	return st.GetNetwork().GetIp()
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
