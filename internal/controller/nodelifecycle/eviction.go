package nodelifecycle

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// syncPod decides whether the taints of a pod's node evict it now, later or never.
func (c *Controller) syncPod(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.podLister.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if pod.DeletionTimestamp != nil || pod.Spec.NodeName == "" {
		c.forget(key)
		return nil
	}
	node, err := c.nodeLister.Get(pod.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		c.forget(key) // the pod garbage collector's business
		return nil
	}
	if err != nil {
		return err
	}
	taints := noExecuteTaints(node.Spec.Taints)
	if len(taints) == 0 {
		c.cancel(pod)
		return nil
	}
	stay, ok := tolerationTime(taints, pod.Spec.Tolerations)
	if !ok {
		return c.evict(ctx, pod)
	}
	if stay < 0 {
		c.cancel(pod) // tolerated for ever
		return nil
	}
	now := c.now()
	c.mu.Lock()
	due, scheduled := c.evictions[key]
	if !scheduled {
		// Count from when the node was tainted, so that a restart does not extend the stay.
		start := now
		for _, t := range taints {
			if t.TimeAdded != nil && t.TimeAdded.Time.Before(start) {
				start = t.TimeAdded.Time
			}
		}
		due = start.Add(stay)
		c.evictions[key] = due
	}
	c.mu.Unlock()
	if !now.Before(due) {
		return c.evict(ctx, pod)
	}
	c.podQueue.AddAfter(key, due.Sub(now))
	return nil
}

// tolerationTime returns how long a pod may stay on a node with these NoExecute taints:
// false when one of them is not tolerated, negative when it may stay for ever.
func tolerationTime(taints []corev1.Taint, tolerations []corev1.Toleration) (time.Duration, bool) {
	stay := time.Duration(-1)
	for i := range taints {
		tolerated := false
		for j := range tolerations {
			tol := &tolerations[j]
			if tol.Effect != "" && tol.Effect != corev1.TaintEffectNoExecute {
				continue
			}
			if !tolerates(tol, &taints[i]) {
				continue
			}
			tolerated = true
			if tol.TolerationSeconds == nil {
				continue
			}
			d := max(time.Duration(*tol.TolerationSeconds)*time.Second, 0)
			if stay < 0 || d < stay {
				stay = d
			}
		}
		if !tolerated {
			return 0, false
		}
	}
	return stay, true
}

func (c *Controller) evict(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod)
	c.log.Info("evicting pod from tainted node", "pod", key, "node", pod.Spec.NodeName)
	c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s", key)
	uid := pod.UID
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("evicting pod %s: %w", key, err)
	}
	c.forget(key)
	return nil
}

// cancel drops a scheduled eviction, with the event Kubernetes emits.
func (c *Controller) cancel(pod *corev1.Pod) {
	key := podKey(pod)
	c.mu.Lock()
	_, scheduled := c.evictions[key]
	delete(c.evictions, key)
	c.mu.Unlock()
	if scheduled {
		c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Cancelling deletion of Pod %s", key)
	}
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	delete(c.evictions, key)
	c.mu.Unlock()
}

// tolerates is corev1.Toleration.ToleratesTaint for the Exists and Equal operators.
func tolerates(tol *corev1.Toleration, taint *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != taint.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != taint.Key {
		return false
	}
	switch tol.Operator {
	case "", corev1.TolerationOpEqual:
		return tol.Value == taint.Value
	case corev1.TolerationOpExists:
		return true
	}
	return false
}
