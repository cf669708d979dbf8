package replicaset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/nanokube/nanokube/internal/controller/controllerref"
	"github.com/nanokube/nanokube/internal/controller/expectations"
	"github.com/nanokube/nanokube/internal/controller/readiness"
	"github.com/nanokube/nanokube/internal/controller/worker"
)

// burstReplicas caps the creations or deletions of one sync, as in Kubernetes.
const burstReplicas = 500

// podDeletionCost is the annotation that ranks pods for scale-down (lower goes first).
const podDeletionCost = "controller.kubernetes.io/pod-deletion-cost"

var controllerKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Controller is the ReplicaSet controller.
type Controller struct {
	client   kubernetes.Interface
	rsLister appslisters.ReplicaSetLister
	rsSynced cache.InformerSynced

	podSynced cache.InformerSynced
	podIndex  cache.Indexer

	recorder     record.EventRecorder
	log          *slog.Logger
	expectations *expectations.Expectations
	queue        workqueue.TypedRateLimitingInterface[string]
	now          func() time.Time
}

// New builds the controller and registers its informer handlers and a pod index; it fails
// only if the pod informer has already started.
func New(client kubernetes.Interface, pods coreinformers.PodInformer, rss appsinformers.ReplicaSetInformer,
	recorder record.EventRecorder, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client:       client,
		rsLister:     rss.Lister(),
		rsSynced:     rss.Informer().HasSynced,
		podSynced:    pods.Informer().HasSynced,
		podIndex:     pods.Informer().GetIndexer(),
		recorder:     recorder,
		log:          log,
		expectations: expectations.New(nil),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "replicaset"}),
		now: time.Now,
	}
	_, _ = rss.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: c.updateRS,
		DeleteFunc: c.deleteRS,
	})
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	})
	if err := pods.Informer().AddIndexers(cache.Indexers{controllerUIDIndex: controllerref.Index}); err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	return c, nil
}

// controllerUIDIndex files pods under their controller's UID, and orphans under
// controllerref.OrphanKey(namespace), so that a sync looks at its own pods and the adoptable
// ones, not at the whole namespace.
const controllerUIDIndex = "replicaset.nanokube.io/controller-uid"

// Run starts workers and blocks until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	worker.Pool{Queue: c.queue, Synced: []cache.InformerSynced{c.rsSynced, c.podSynced}, Sync: c.sync,
		Log: c.log, Name: "replicaset"}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

func (c *Controller) enqueueAfter(rs *appsv1.ReplicaSet, d time.Duration) {
	key, err := cache.MetaNamespaceKeyFunc(rs)
	if err != nil {
		return
	}
	c.queue.AddAfter(key, d)
}

func (c *Controller) updateRS(old, cur any) {
	o, n := old.(*appsv1.ReplicaSet), cur.(*appsv1.ReplicaSet)
	if o.UID != n.UID {
		c.deleteRS(cache.DeletedFinalStateUnknown{Key: key(o), Obj: o})
	}
	c.enqueue(cur)
}

func (c *Controller) deleteRS(obj any) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		t, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if rs, ok = t.Obj.(*appsv1.ReplicaSet); !ok {
			return
		}
	}
	c.expectations.Delete(key(rs))
	c.enqueue(rs)
}

func key(o metav1.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

// resolveControllerRef returns the ReplicaSet ref points to, if it is still the same object.
func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	return controllerref.Resolve(ref, controllerKind, c.rsLister.ReplicaSets(namespace).Get)
}

// replicaSetsForPod lists the ReplicaSets whose selector matches an orphan pod.
func (c *Controller) replicaSetsForPod(pod *corev1.Pod) []*appsv1.ReplicaSet {
	return controllerref.Adopters(c.rsLister.ReplicaSets(pod.Namespace).List,
		func(rs *appsv1.ReplicaSet) *metav1.LabelSelector { return rs.Spec.Selector }, pod.Labels)
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		rs := c.resolveControllerRef(pod.Namespace, ref)
		if rs == nil {
			return
		}
		c.expectations.CreationObserved(key(rs))
		c.queue.Add(key(rs))
		return
	}
	for _, rs := range c.replicaSetsForPod(pod) {
		c.queue.Add(key(rs))
	}
}

func (c *Controller) updatePod(old, cur any) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	labelChanged := !apiequality.Semantic.DeepEqual(o.Labels, n.Labels)
	if n.DeletionTimestamp != nil {
		// A pod going away counts as deleted at once; if its labels also changed, the
		// ReplicaSet that used to match it must hear about it too.
		c.deletePod(n)
		if labelChanged {
			c.deletePod(o)
		}
		return
	}
	oref, nref := metav1.GetControllerOf(o), metav1.GetControllerOf(n)
	if oref != nil && (nref == nil || oref.UID != nref.UID) {
		if rs := c.resolveControllerRef(o.Namespace, oref); rs != nil {
			c.queue.Add(key(rs))
		}
	}
	if nref != nil {
		rs := c.resolveControllerRef(n.Namespace, nref)
		if rs == nil {
			return
		}
		c.queue.Add(key(rs))
		// A pod that just became ready turns available minReadySeconds later.
		if !readiness.Ready(o) && readiness.Ready(n) && rs.Spec.MinReadySeconds > 0 {
			c.enqueueAfter(rs, time.Duration(rs.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if labelChanged || oref != nil {
		for _, rs := range c.replicaSetsForPod(n) {
			c.queue.Add(key(rs))
		}
	}
}

func (c *Controller) deletePod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		t, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = t.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return
	}
	rs := c.resolveControllerRef(pod.Namespace, ref)
	if rs == nil {
		return
	}
	c.expectations.DeletionObserved(key(rs), key(pod))
	c.queue.Add(key(rs))
}

// sync reconciles one ReplicaSet.
func (c *Controller) sync(ctx context.Context, k string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.Delete(k)
		return nil
	}
	if err != nil {
		return err
	}
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		c.recorder.Eventf(rs, corev1.EventTypeWarning, "InvalidSelector", "Invalid selector: %v", err)
		return nil
	}
	needsSync := c.expectations.Satisfied(k)

	candidates, terminating, err := c.candidatePods(rs)
	if err != nil {
		return err
	}
	owned, err := c.claimPods(ctx, rs, selector, candidates)
	if err != nil {
		return err
	}

	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, owned, rs)
	}
	rs = rs.DeepCopy()
	status := calculateStatus(rs, owned, terminating, manageErr, c.now())
	updated, err := c.updateStatus(ctx, rs, status)
	if err != nil {
		return err
	}
	if manageErr == nil && updated.Spec.MinReadySeconds > 0 &&
		updated.Status.ReadyReplicas == *updated.Spec.Replicas &&
		updated.Status.AvailableReplicas != *updated.Spec.Replicas {
		c.enqueueAfter(updated, time.Duration(updated.Spec.MinReadySeconds)*time.Second)
	}
	return manageErr
}

// candidatePods returns the active pods rs owns or could adopt, and how many of its pods are
// terminating.
func (c *Controller) candidatePods(rs *appsv1.ReplicaSet) ([]*corev1.Pod, int32, error) {
	var out []*corev1.Pod
	var terminating int32
	for _, key := range []string{string(rs.UID), controllerref.OrphanKey(rs.Namespace)} {
		objs, err := c.podIndex.ByIndex(controllerUIDIndex, key)
		if err != nil {
			return nil, 0, err
		}
		for _, o := range objs {
			p := o.(*corev1.Pod)
			if p.Namespace != rs.Namespace {
				continue
			}
			if isPodActive(p) {
				out = append(out, p)
			} else if key == string(rs.UID) && p.DeletionTimestamp != nil &&
				p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				terminating++
			}
		}
	}
	return out, terminating, nil
}

// claimPods adopts matching orphans and releases owned pods that no longer match; it returns
// the pods this ReplicaSet owns afterwards.
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var owned []*corev1.Pod
	var errs []error
	var fresh *bool // whether rs may adopt, checked once against the API server
	canAdopt := func() bool {
		if fresh == nil {
			ok := false
			live, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
			if err == nil && live.UID == rs.UID && live.DeletionTimestamp == nil {
				ok = true
			}
			fresh = &ok
		}
		return *fresh
	}
	for _, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if ref != nil {
			if ref.UID != rs.UID {
				continue
			}
			if selector.Matches(labels.Set(pod.Labels)) {
				owned = append(owned, pod)
				continue
			}
			if rs.DeletionTimestamp != nil {
				continue
			}
			if err := c.releasePod(ctx, rs, pod); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		if rs.DeletionTimestamp != nil || pod.DeletionTimestamp != nil || !selector.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if !canAdopt() {
			continue
		}
		if err := c.adoptPod(ctx, rs, pod); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		owned = append(owned, pod)
	}
	return owned, errors.Join(errs...)
}

func ownerRef(rs *appsv1.ReplicaSet) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: controllerKind.GroupVersion().String(), Kind: controllerKind.Kind,
		Name: rs.Name, UID: rs.UID, Controller: &t, BlockOwnerDeletion: &t}
}

// adoptPod adds rs as the pod's controller with a strategic merge patch whose uid makes the
// API server refuse it if the pod was replaced meanwhile.
func (c *Controller) adoptPod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{ownerRef(rs)},
		"uid":             pod.UID,
	}})
	_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	return err
}

func (c *Controller) releasePod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []map[string]any{{"$patch": "delete", "uid": rs.UID}},
		"uid":             pod.UID,
	}})
	_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsInvalid(err) {
		return nil // the pod has no such owner any more, or is being deleted
	}
	return err
}

func (c *Controller) manageReplicas(ctx context.Context, pods []*corev1.Pod, rs *appsv1.ReplicaSet) error {
	k := key(rs)
	diff := len(pods) - int(*rs.Spec.Replicas)
	switch {
	case diff < 0:
		n := min(-diff, burstReplicas)
		c.expectations.ExpectCreations(k, n)
		created, err := slowStartBatch(n, 1, func() error {
			err := c.createPod(ctx, rs)
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // the namespace controller is deleting everything here anyway
			}
			return err
		})
		// The pods never created will never be observed: lower the expectations for them.
		for range n - created {
			c.expectations.CreationObserved(k)
		}
		return err
	case diff > 0:
		n := min(diff, burstReplicas)
		victims := podsToDelete(pods, n)
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = key(p)
		}
		c.expectations.ExpectDeletions(k, keys)
		var wg sync.WaitGroup
		errc := make(chan error, n)
		for _, p := range victims {
			wg.Go(func() {
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
				if err != nil {
					c.expectations.DeletionObserved(k, key(p))
					if apierrors.IsNotFound(err) {
						return
					}
					c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					errc <- err
					return
				}
				c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
			})
		}
		wg.Wait()
		close(errc)
		var errs []error
		for err := range errc {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	return nil
}

func (c *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod := newPod(rs)
	created, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		}
		return err
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", created.Name)
	return nil
}

// newPod is the pod rs asks for: its template, named after rs, controlled by rs.
func newPod(rs *appsv1.ReplicaSet) *corev1.Pod {
	t := rs.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    rs.Name + "-",
			Namespace:       rs.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{ownerRef(rs)},
		},
		Spec: t.Spec,
	}
	return pod
}

// slowStartBatch calls fn count times in batches that double from initial, stopping after the
// first batch with an error; it returns how many calls succeeded.
func slowStartBatch(count, initial int, fn func() error) (int, error) {
	remaining, done := count, 0
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		var wg sync.WaitGroup
		errc := make(chan error, batch)
		for range batch {
			wg.Go(func() {
				if err := fn(); err != nil {
					errc <- err
				}
			})
		}
		wg.Wait()
		close(errc)
		ok := batch - len(errc)
		done += ok
		if err, failed := <-errc; failed {
			return done, err
		}
		remaining -= batch
	}
	return done, nil
}

func isPodActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// podsToDelete picks the n pods that cost least to lose, in Kubernetes' order.
func podsToDelete(pods []*corev1.Pod, n int) []*corev1.Pod {
	if n >= len(pods) {
		return pods
	}
	perNode := map[string]int{}
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			perNode[p.Spec.NodeName]++
		}
	}
	ranked := append([]*corev1.Pod(nil), pods...)
	rank := func(p *corev1.Pod) int {
		if p.Spec.NodeName == "" {
			return 0
		}
		return perNode[p.Spec.NodeName]
	}
	sort.SliceStable(ranked, func(i, j int) bool { return deleteBefore(ranked[i], ranked[j], rank(ranked[i]), rank(ranked[j])) })
	return ranked[:n]
}

var phaseOrder = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// deleteBefore orders pods for deletion like Kubernetes' ActivePodsWithRanks.
func deleteBefore(a, b *corev1.Pod, rankA, rankB int) bool {
	// 1. unassigned before assigned
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	// 2. pending before unknown before running
	if phaseOrder[a.Status.Phase] != phaseOrder[b.Status.Phase] {
		return phaseOrder[a.Status.Phase] < phaseOrder[b.Status.Phase]
	}
	// 3. not ready before ready
	if readiness.Ready(a) != readiness.Ready(b) {
		return !readiness.Ready(a)
	}
	// 4. lower pod-deletion-cost first
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	// 5. pods doubled up on a node first
	if rankA != rankB {
		return rankA > rankB
	}
	// 6. ready for less time first
	if readiness.Ready(a) && readiness.Ready(b) {
		ta, tb := readiness.Condition(a).LastTransitionTime, readiness.Condition(b).LastTransitionTime
		if !ta.Equal(&tb) {
			return afterOrZero(&ta, &tb)
		}
	}
	// 7. more restarts first
	if ra, rb := maxRestarts(a), maxRestarts(b); ra != rb {
		return ra > rb
	}
	// 8. newer first
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return afterOrZero(&a.CreationTimestamp, &b.CreationTimestamp)
	}
	return a.Name < b.Name
}

func afterOrZero(t1, t2 *metav1.Time) bool {
	if t1.Time.IsZero() || t2.Time.IsZero() {
		return t1.Time.IsZero()
	}
	return t1.After(t2.Time)
}

func deletionCost(p *corev1.Pod) int64 {
	v, ok := p.Annotations[podDeletionCost]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return n
}

func maxRestarts(p *corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n = max(n, s.RestartCount)
	}
	return n
}

func calculateStatus(rs *appsv1.ReplicaSet, pods []*corev1.Pod, terminating int32, manageErr error, now time.Time) appsv1.ReplicaSetStatus {
	status := *rs.Status.DeepCopy()
	templateLabels := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	var fully, ready, available int32
	for _, p := range pods {
		if templateLabels.Matches(labels.Set(p.Labels)) {
			fully++
		}
		if readiness.Ready(p) {
			ready++
			if readiness.Available(p, rs.Spec.MinReadySeconds, now) {
				available++
			}
		}
	}
	failure := -1
	for i, c := range status.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure {
			failure = i
		}
	}
	switch {
	case manageErr != nil && failure < 0:
		reason := "FailedCreate"
		if len(pods) > int(*rs.Spec.Replicas) {
			reason = "FailedDelete"
		}
		status.Conditions = append(status.Conditions, appsv1.ReplicaSetCondition{Type: appsv1.ReplicaSetReplicaFailure,
			Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now), Reason: reason, Message: manageErr.Error()})
	case manageErr == nil && failure >= 0:
		status.Conditions = append(status.Conditions[:failure], status.Conditions[failure+1:]...)
	}
	status.Replicas = int32(len(pods))
	status.FullyLabeledReplicas = fully
	status.ReadyReplicas = ready
	status.AvailableReplicas = available
	status.TerminatingReplicas = &terminating
	return status
}

// updateStatus writes status (and observedGeneration) unless it is unchanged, retrying once
// on a conflict with a fresh copy.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	status.ObservedGeneration = rs.Generation
	for attempt := 0; ; attempt++ {
		status.ObservedGeneration = rs.Generation
		if apiequality.Semantic.DeepEqual(rs.Status, status) {
			return rs, nil
		}
		rs.Status = status
		updated, err := c.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
		if err == nil {
			return updated, nil
		}
		if attempt > 0 || !apierrors.IsConflict(err) {
			return nil, fmt.Errorf("update status of %s: %w", key(rs), err)
		}
		if rs, err = c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{}); err != nil {
			return nil, err
		}
	}
}
