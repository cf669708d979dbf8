package daemonset

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nanokube/nanokube/internal/controller/readiness"
)

// manage creates the missing daemon pods and deletes the ones that must go: on nodes the
// DaemonSet no longer fits, failed or succeeded ones (failed ones after a backoff), extra
// ones on a node, and unscheduled ones pinned to nodes that do not exist.
func (c *Controller) manage(ctx context.Context, ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string) error {
	var create []string
	var remove []*corev1.Pod
	for _, node := range nodes {
		cr, rm := c.podsShouldBeOnNode(node, byNode, ds, hash)
		create = append(create, cr...)
		remove = append(remove, rm...)
	}
	remove = append(remove, unscheduledPodsWithoutNode(nodes, byNode)...)
	return c.syncNodes(ctx, ds, remove, create, hash)
}

// podsShouldBeOnNode decides for one node: whether it needs a daemon pod and which of its
// daemon pods to delete.
func (c *Controller) podsShouldBeOnNode(node *corev1.Node, byNode map[string][]*corev1.Pod, ds *appsv1.DaemonSet, hash string) (
	create []string, remove []*corev1.Pod) {
	shouldRun, shouldContinueRunning := nodeShouldRunDaemonPod(node, ds)
	pods, exists := byNode[node.Name]
	switch {
	case shouldRun && !exists:
		return []string{node.Name}, nil
	case shouldContinueRunning:
		var running []*corev1.Pod
		for _, pod := range pods {
			if pod.DeletionTimestamp != nil {
				continue
			}
			switch pod.Status.Phase {
			case corev1.PodFailed:
				// The kubelet may keep rejecting this pod: do not fight it in a hot loop.
				backoffKey := failedPodsBackoffKey(ds, node.Name)
				now := c.clock.Now()
				if c.failedPodsBackoff.IsInBackOffSinceUpdate(backoffKey, now) {
					delay := c.failedPodsBackoff.Get(backoffKey)
					c.log.Debug("deleting a failed pod is backing off", "pod", key(pod), "node", node.Name, "delay", delay)
					c.enqueueAfter(ds, delay)
					continue
				}
				c.failedPodsBackoff.Next(backoffKey, now)
				c.recorder.Eventf(ds, corev1.EventTypeWarning, reasonFailedDaemonPod,
					"Found failed daemon pod %s/%s on node %s, will try to kill it", pod.Namespace, pod.Name, node.Name)
				remove = append(remove, pod)
			case corev1.PodSucceeded:
				c.recorder.Eventf(ds, corev1.EventTypeNormal, reasonSucceededDaemonPod,
					"Found succeeded daemon pod %s/%s on node %s, will try to delete it", pod.Namespace, pod.Name, node.Name)
				remove = append(remove, pod)
			default:
				running = append(running, pod)
			}
		}
		sort.Slice(running, func(i, j int) bool { return olderPod(running[i], running[j]) })
		if !allowsSurge(ds) {
			// One pod per node: the oldest stays.
			for _, p := range running[min(1, len(running)):] {
				remove = append(remove, p)
			}
			return nil, remove
		}
		if len(running) == 0 {
			if shouldRun {
				create = append(create, node.Name)
			}
			return create, remove
		}
		// While surging a node may hold the oldest old pod and the oldest new pod: the old one
		// goes once it is not ready or the new one is available. Any other pod goes at once.
		var oldestNew, oldestOld *corev1.Pod
		for _, p := range running {
			if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
				if oldestNew == nil {
					oldestNew = p
					continue
				}
			} else if oldestOld == nil {
				oldestOld = p
				continue
			}
			remove = append(remove, p)
		}
		if oldestNew != nil && oldestOld != nil &&
			(!readiness.Ready(oldestOld) || readiness.Available(oldestNew, ds.Spec.MinReadySeconds, c.clock.Now())) {
			remove = append(remove, oldestOld)
		}
		return create, remove
	case exists:
		// The DaemonSet does not fit the node any more.
		for _, p := range pods {
			if p.DeletionTimestamp == nil {
				remove = append(remove, p)
			}
		}
	}
	return create, remove
}

// failedPodsBackoffKey scopes the failed-pod backoff to a DaemonSet generation on a node: a new
// template gets a fresh start.
func failedPodsBackoffKey(ds *appsv1.DaemonSet, node string) string {
	return fmt.Sprintf("%s/%d/%s", ds.UID, ds.Status.ObservedGeneration, node)
}

// unscheduledPodsWithoutNode returns the unscheduled pods pinned to nodes that do not exist:
// the scheduler never binds them and the pod garbage collector only collects bound pods.
func unscheduledPodsWithoutNode(nodes []*corev1.Node, byNode map[string][]*corev1.Pod) []*corev1.Pod {
	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n.Name] = true
	}
	names := make([]string, 0, len(byNode))
	for n := range byNode {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*corev1.Pod
	for _, n := range names {
		if known[n] {
			continue
		}
		for _, p := range byNode[n] {
			if p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// syncNodes deletes pods and creates a pod of revision hash for each of nodes, at most
// burstReplicas of each, counting them in the expectations first.
func (c *Controller) syncNodes(ctx context.Context, ds *appsv1.DaemonSet, remove []*corev1.Pod, nodes []string, hash string) error {
	k := key(ds)
	nodes = nodes[:min(len(nodes), burstReplicas)]
	remove = remove[:min(len(remove), burstReplicas)]
	removeKeys := make([]string, len(remove))
	for i, p := range remove {
		removeKeys[i] = key(p)
	}
	c.expectations.ExpectCreations(k, len(nodes))
	c.expectations.ExpectDeletions(k, removeKeys)

	template := podTemplate(ds, hash)
	attempted, createErr := slowStartBatch(len(nodes), 1, func(i int) error {
		err := c.createPod(ctx, ds, template, nodes[i])
		if err != nil {
			c.expectations.CreationObserved(k)
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // the namespace controller is deleting everything here anyway
			}
		}
		return err
	})
	// The pods never attempted will never be observed.
	for range len(nodes) - attempted {
		c.expectations.CreationObserved(k)
	}

	var wg sync.WaitGroup
	errc := make(chan error, len(remove))
	for _, p := range remove {
		wg.Go(func() {
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
			if err == nil {
				c.recorder.Eventf(ds, corev1.EventTypeNormal, reasonSuccessfulDelete, "Deleted pod: %v", p.Name)
				return
			}
			c.expectations.DeletionObserved(k, key(p))
			if !apierrors.IsNotFound(err) {
				c.recorder.Eventf(ds, corev1.EventTypeWarning, reasonFailedDelete, "Error deleting: %v", err)
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	errs := []error{createErr}
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// createPod creates a daemon pod for node from template. The pod is not bound: a required
// node affinity on metadata.name makes the scheduler place it on node, as Kubernetes does
// since 1.12.
func (c *Controller) createPod(ctx context.Context, ds *appsv1.DaemonSet, template *corev1.PodTemplateSpec, node string) error {
	t := template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    ds.Name + "-",
			Namespace:       ds.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{ownerRef(ds)},
		},
		Spec: t.Spec,
	}
	pod.Spec.Affinity = pinToNode(pod.Spec.Affinity, node)
	created, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(ds, corev1.EventTypeWarning, reasonFailedCreate, "Error creating: %v", err)
		}
		return err
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, reasonSuccessfulCreate, "Created pod: %v", created.Name)
	return nil
}

// slowStartBatch calls fn(0) … fn(count-1) in batches that double from initial, stopping after
// the first batch with an error; it returns how many calls were made.
func slowStartBatch(count, initial int, fn func(i int) error) (int, error) {
	pos := 0
	for batch := min(count, initial); batch > 0; batch = min(2*batch, count-pos) {
		var wg sync.WaitGroup
		errc := make(chan error, batch)
		for i := pos; i < pos+batch; i++ {
			wg.Go(func() {
				if err := fn(i); err != nil {
					errc <- err
				}
			})
		}
		wg.Wait()
		close(errc)
		pos += batch
		var errs []error
		for err := range errc {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return pos, errors.Join(errs...)
		}
	}
	return pos, nil
}

// rollingUpdate replaces old pods within the strategy's limits. Without surge it deletes old
// pods (manage then creates their replacements) while at most maxUnavailable nodes are
// unavailable; with surge it creates new pods next to old ones on at most maxSurge nodes and
// deletes each old pod once its replacement is available.
func (c *Controller) rollingUpdate(ctx context.Context, ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string) error {
	nodeByName := make(map[string]*corev1.Node, len(nodes))
	desired := 0
	names := make([]string, 0, len(byNode))
	for n := range byNode {
		names = append(names, n)
	}
	for _, n := range nodes {
		nodeByName[n.Name] = n
		if shouldRun, _ := nodeShouldRunDaemonPod(n, ds); shouldRun {
			desired++
			if _, ok := byNode[n.Name]; !ok {
				names = append(names, n.Name)
			}
		}
	}
	sort.Strings(names)
	maxSurge, maxUnavailable, err := updateLimits(ds, desired)
	if err != nil {
		return err
	}
	now := c.clock.Now()
	available := func(p *corev1.Pod) bool { return readiness.Available(p, ds.Spec.MinReadySeconds, now) }
	shouldRun := func(name string) bool {
		n, ok := nodeByName[name]
		if !ok {
			return false
		}
		run, _ := nodeShouldRunDaemonPod(n, ds)
		return run
	}

	if maxSurge == 0 {
		// Invariant: at most maxUnavailable nodes lack an available pod. A node with no pod or
		// with two counts as unavailable (manage is fixing it); a node whose old pod is not
		// available may be replaced at once.
		var numUnavailable int
		var replace, candidates []*corev1.Pod
		for _, name := range names {
			newPod, oldPod, ok := updatedPodsOnNode(ds, byNode[name], hash)
			switch {
			case !ok, newPod == nil && oldPod == nil, newPod != nil && oldPod != nil:
				numUnavailable++
			case newPod != nil:
				if !available(newPod) {
					numUnavailable++
				}
			case !available(oldPod):
				replace = append(replace, oldPod)
				numUnavailable++
			case numUnavailable < maxUnavailable:
				candidates = append(candidates, oldPod)
			}
		}
		n := min(max(maxUnavailable-numUnavailable, 0), len(candidates))
		return c.syncNodes(ctx, ds, append(replace, candidates[:n]...), nil, hash)
	}

	// Invariant: no more than maxSurge old, available pods have a new pod starting next to
	// them; a node whose old pod is not available gets its new pod at once.
	var remove, shouldNotRun []*corev1.Pod
	var allowedNew, candidateNew []string
	var numSurge, numAvailable int
	for _, name := range names {
		newPod, oldPod, ok := updatedPodsOnNode(ds, byNode[name], hash)
		if !ok {
			numSurge++ // manage prunes the extra pods
			continue
		}
		switch {
		case oldPod != nil && available(oldPod), oldPod == nil && newPod != nil && available(newPod):
			numAvailable++
		}
		switch {
		case oldPod == nil:
			// Nothing to replace; manage creates a missing pod.
		case newPod == nil:
			switch {
			case !available(oldPod) && !shouldRun(name):
				remove = append(remove, oldPod)
			case !available(oldPod):
				allowedNew = append(allowedNew, name)
			case !shouldRun(name):
				shouldNotRun = append(shouldNotRun, oldPod)
			case numSurge < maxSurge:
				candidateNew = append(candidateNew, name)
			}
		case !available(newPod):
			numSurge++ // waiting for the new pod
		default:
			remove = append(remove, oldPod) // replaced: the old pod goes
		}
	}
	// With surge the owner expects full availability: an available old pod on a node the
	// DaemonSet no longer fits goes only while more pods are available than desired.
	if n := min(numAvailable-desired, len(shouldNotRun)); n > 0 {
		remove = append(remove, shouldNotRun[:n]...)
	}
	n := min(max(maxSurge-numSurge, 0), len(candidateNew))
	return c.syncNodes(ctx, ds, remove, append(allowedNew, candidateNew[:n]...), hash)
}

// updatedPodsOnNode splits a node's live daemon pods into the one of the current revision and
// the old one; ok is false if there are more than one of either (manage prunes them first).
func updatedPodsOnNode(ds *appsv1.DaemonSet, pods []*corev1.Pod, hash string) (newPod, oldPod *corev1.Pod, ok bool) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if isPodUpdated(ds, p, hash) {
			if newPod != nil {
				return nil, nil, false
			}
			newPod = p
		} else {
			if oldPod != nil {
				return nil, nil, false
			}
			oldPod = p
		}
	}
	return newPod, oldPod, true
}

// updateLimits scales the rolling update's maxSurge and maxUnavailable to desired nodes (both
// rounded up). Unset values take apps/v1's defaults (0 and 1); if both are 0, maxUnavailable
// is 1 so that an update can progress.
func updateLimits(ds *appsv1.DaemonSet, desired int) (maxSurge, maxUnavailable int, err error) {
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		return 0, 0, nil
	}
	surge, unavailable := intstr.FromInt32(0), intstr.FromInt32(1)
	if r := ds.Spec.UpdateStrategy.RollingUpdate; r != nil {
		if r.MaxSurge != nil {
			surge = *r.MaxSurge
		}
		if r.MaxUnavailable != nil {
			unavailable = *r.MaxUnavailable
		}
	}
	if maxSurge, err = intstr.GetScaledValueFromIntOrPercent(&surge, desired, true); err != nil {
		return 0, 0, fmt.Errorf("invalid maxSurge: %w", err)
	}
	if maxUnavailable, err = intstr.GetScaledValueFromIntOrPercent(&unavailable, desired, true); err != nil {
		return 0, 0, fmt.Errorf("invalid maxUnavailable: %w", err)
	}
	if desired > 0 && maxSurge == 0 && maxUnavailable == 0 {
		maxUnavailable = 1
	}
	return maxSurge, maxUnavailable, nil
}

// allowsSurge reports whether the DaemonSet may run two pods on a node during an update.
func allowsSurge(ds *appsv1.DaemonSet) bool {
	surge, _, err := updateLimits(ds, 1)
	return err == nil && surge > 0
}
