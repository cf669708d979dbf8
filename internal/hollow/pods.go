package hollow

import (
	"context"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// processNext handles one queued pod key; it returns false once the queue shuts down.
func (n *Nodes) processNext(ctx context.Context) bool {
	key, quit := n.queue.Get()
	if quit {
		return false
	}
	defer n.queue.Done(key)
	if err := n.syncPod(ctx, key); err != nil {
		if ctx.Err() == nil && !apierrors.IsNotFound(err) {
			n.queue.AddRateLimited(key)
		}
		return true
	}
	n.queue.Forget(key)
	return true
}

// syncPod does what a kubelet does for a pod bound to it: start it (report it Running and
// Ready) or, once it is being deleted, finish the deletion.
func (n *Nodes) syncPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := n.pods.Pods(ns).Get(name)
	if err != nil {
		return nil // gone
	}
	nd := n.byName[pod.Spec.NodeName]
	if nd == nil || nd.silent.Load() {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		err := n.cfg.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone, or replaced by a new pod of the same name
		}
		return err
	}
	if n.cfg.DisablePodStatus || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		return nil
	}
	if isRunningAndReady(pod) {
		return n.maybeComplete(ctx, key, pod)
	}
	_, err = n.cfg.Client.CoreV1().Pods(ns).UpdateStatus(ctx, n.runningPod(nd, pod), metav1.UpdateOptions{})
	return err
}

// maybeComplete finishes a running pod that is not restarted forever (a Job's) once it has
// run for CompleteAfter: its containers exit 0 and it Succeeds.
func (n *Nodes) maybeComplete(ctx context.Context, key string, cached *v1.Pod) error {
	if n.cfg.CompleteAfter <= 0 || cached.Spec.RestartPolicy == v1.RestartPolicyAlways || cached.Status.StartTime == nil {
		return nil
	}
	if left := time.Until(cached.Status.StartTime.Add(n.cfg.CompleteAfter)); left > 0 {
		n.queue.AddAfter(key, left)
		return nil
	}
	pod := cached.DeepCopy()
	now := metav1.Now()
	pod.Status.Phase = v1.PodSucceeded
	for _, t := range []v1.PodConditionType{v1.ContainersReady, v1.PodReady} {
		setCondition(&pod.Status, v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: "PodCompleted", LastTransitionTime: now})
	}
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		started := now
		if cs.State.Running != nil {
			started = cs.State.Running.StartedAt
		}
		cs.Ready, cs.Started = false, ptr.To(false)
		cs.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
			StartedAt: started, FinishedAt: now, ContainerID: cs.ContainerID}}
	}
	_, err := n.cfg.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}

func isRunningAndReady(pod *v1.Pod) bool {
	if pod.Status.Phase != v1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// runningPod returns a copy of pod with the status of a started, ready pod.
func (n *Nodes) runningPod(nd *node, cached *v1.Pod) *v1.Pod {
	pod := cached.DeepCopy()
	now := metav1.Now()
	st := &pod.Status
	st.Phase = v1.PodRunning
	st.HostIP = nd.hostIP
	st.HostIPs = []v1.HostIP{{IP: nd.hostIP}}
	if st.PodIP == "" {
		ip := nd.hostIP
		if !pod.Spec.HostNetwork {
			ip = nd.podIP()
		}
		st.PodIP, st.PodIPs = ip, []v1.PodIP{{IP: ip}}
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	for _, t := range []v1.PodConditionType{v1.PodScheduled, v1.PodInitialized, v1.ContainersReady, v1.PodReady} {
		setCondition(st, v1.PodCondition{Type: t, Status: v1.ConditionTrue, LastTransitionTime: now})
	}
	containerID := func(c string) string { return "hollow://" + string(pod.UID) + "/" + c }
	st.InitContainerStatuses = st.InitContainerStatuses[:0]
	for _, c := range pod.Spec.InitContainers {
		cs := v1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "hollow://" + c.Image, ContainerID: containerID(c.Name)}
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways { // a sidecar keeps running
			cs.Ready, cs.Started = true, ptr.To(true)
			cs.State.Running = &v1.ContainerStateRunning{StartedAt: now}
		} else {
			cs.Ready, cs.Started = true, ptr.To(false)
			cs.State.Terminated = &v1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now,
				ContainerID: cs.ContainerID}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	st.ContainerStatuses = st.ContainerStatuses[:0]
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, v1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "hollow://" + c.Image, ContainerID: containerID(c.Name),
			Ready: true, Started: ptr.To(true), State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return pod
}

// setCondition sets a condition, keeping its transition time when its status is unchanged.
func setCondition(st *v1.PodStatus, c v1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			if st.Conditions[i].Status == c.Status {
				return
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// podIP hands out the next address of the node's /24 (.2 … .254, then around again; a
// simulated node rarely holds more than 110 pods).
func (nd *node) podIP() string {
	i := nd.nextIP.Add(1)
	a := nd.podNet.Addr().As4()
	a[3] = byte(2 + (i-1)%253)
	return netip.AddrFrom4(a).String()
}
