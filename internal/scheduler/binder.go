package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nanokube/nanokube/internal/scheduler/framework"
	"github.com/nanokube/nanokube/internal/scheduler/queue"
)

func metaFor(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}

// bind POSTs the binding of an assumed pod, after selecting its node for the pod's delayed
// (WaitForFirstConsumer) claims. On failure the pod is forgotten and retried after its
// backoff, unless it is gone or already bound. Unlike kube-scheduler, the binding does not
// wait for the claims to be provisioned: the kubelet waits for them.
func (s *Scheduler) bind(ctx context.Context, qp *queue.QueuedPod, assumed *v1.Pod, volumes *framework.PodVolumes) {
	node := assumed.Spec.NodeName
	if err := s.selectNode(ctx, volumes, node); err != nil {
		s.cache.forget(assumed.UID)
		if ctx.Err() != nil {
			return
		}
		s.log.Info("scheduler: selecting the node of claims failed", "pod", klogRef(assumed), "node", node, "err", err)
		s.recorder.Eventf(qp.Pod, nil, v1.EventTypeWarning, "FailedScheduling", "Scheduling",
			"running PreBind plugin \"VolumeBinding\": %v", err)
		s.queue.AddBackoff(qp)
		s.queue.MoveAllToActiveOrBackoff(podRemovedHelps...)
		return
	}
	err := s.client.CoreV1().Pods(assumed.Namespace).Bind(ctx, &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: assumed.Namespace, Name: assumed.Name, UID: assumed.UID},
		Target:     v1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	if err == nil {
		s.recorder.Eventf(assumed, nil, v1.EventTypeNormal, "Scheduled", "Binding",
			"Successfully assigned %s/%s to %s", assumed.Namespace, assumed.Name, node)
		return
	}
	s.cache.forget(assumed.UID)
	if ctx.Err() != nil {
		return
	}
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		// Deleted, or bound by someone else: the informer brings the truth.
		s.log.Debug("scheduler: binding not needed", "pod", klogRef(assumed), "err", err)
		s.queue.Done(assumed.UID)
		return
	}
	s.log.Warn("scheduler: binding failed", "pod", klogRef(assumed), "node", node, "err", err)
	s.recorder.Eventf(qp.Pod, nil, v1.EventTypeWarning, "FailedScheduling", "Scheduling", "Binding rejected: %v", err)
	s.queue.AddBackoff(qp)
	s.queue.MoveAllToActiveOrBackoff(podRemovedHelps...) // the forgotten pod's room is free again
}

// recordFailure reports why a pod was not scheduled: a FailedScheduling event and the
// PodScheduled=False condition (written only when it changes).
// A preemptor also gets its nominated node.
func (s *Scheduler) recordFailure(ctx context.Context, pod *v1.Pod, reason, msg, nominated string) {
	s.recorder.Eventf(pod, nil, v1.EventTypeWarning, "FailedScheduling", "Scheduling", "%s", msg)
	s.async(func() { s.patchCondition(ctx, pod, reason, msg, nominated) })
}

// patchCondition sets PodScheduled=False (and, when nominated is set, the nominated node) on
// the latest version of the pod.
func (s *Scheduler) patchCondition(ctx context.Context, pod *v1.Pod, reason, msg, nominated string) {
	if cur, err := s.pods.Pods(pod.Namespace).Get(pod.Name); err == nil {
		if cur.UID != pod.UID || cur.Spec.NodeName != "" {
			return
		}
		pod = cur
	}
	status := map[string]any{}
	if c := podCondition(pod, v1.PodScheduled); c == nil || c.Status != v1.ConditionFalse || c.Reason != reason || c.Message != msg {
		status["conditions"] = []map[string]any{{
			"type": v1.PodScheduled, "status": v1.ConditionFalse, "reason": reason, "message": msg,
			"lastProbeTime": nil, "lastTransitionTime": metav1.Now().Rfc3339Copy(),
		}}
	}
	if nominated != "" && pod.Status.NominatedNodeName != nominated {
		status["nominatedNodeName"] = nominated
	}
	if len(status) == 0 {
		return
	}
	s.patchStatus(ctx, pod, map[string]any{"status": status})
}

func (s *Scheduler) patchStatus(ctx context.Context, pod *v1.Pod, patch map[string]any) {
	patch["metadata"] = map[string]any{"uid": pod.UID}
	data, _ := json.Marshal(patch)
	_, err := s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, data,
		metav1.PatchOptions{}, "status")
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		s.log.Warn("scheduler: updating pod status failed", "pod", klogRef(pod), "err", err)
	}
}

func podCondition(pod *v1.Pod, t v1.PodConditionType) *v1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// preempt evicts the victims: a DisruptionTarget condition, then a graceful delete.
func (s *Scheduler) preempt(ctx context.Context, pod *v1.Pod, p framework.Preemption) {
	s.log.Info("scheduler: preempting", "pod", klogRef(pod), "node", p.Node, "victims", len(p.Victims))
	msg := fmt.Sprintf("%s: preempting to accommodate a higher priority pod", s.cfg.SchedulerName)
	for _, victim := range p.Victims {
		s.async(func() {
			s.patchStatus(ctx, victim, map[string]any{"status": map[string]any{"conditions": []map[string]any{{
				"type": v1.DisruptionTarget, "status": v1.ConditionTrue, "reason": v1.PodReasonPreemptionByScheduler,
				"message": msg, "lastTransitionTime": metav1.Now().Rfc3339Copy(),
			}}}})
			err := s.client.CoreV1().Pods(victim.Namespace).Delete(ctx, victim.Name,
				metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &victim.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				s.log.Warn("scheduler: preemption delete failed", "pod", klogRef(victim), "err", err)
				return
			}
			s.recorder.Eventf(victim, pod, v1.EventTypeNormal, "Preempted", "Preempting",
				"Preempted by pod %s on node %s", pod.UID, p.Node)
		})
	}
}

// async runs f on a binding slot (bounded concurrency, waited for on shutdown).
func (s *Scheduler) async(f func()) {
	s.bindWG.Add(1)
	go func() {
		defer s.bindWG.Done()
		select {
		case s.bindSlots <- struct{}{}:
		case <-time.After(time.Minute):
			return
		}
		defer func() { <-s.bindSlots }()
		f()
	}()
}
