package deployment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/nanokube/nanokube/internal/controller/controllerref"
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Controller is the Deployment controller.
type Controller struct {
	client    kubernetes.Interface
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     workqueue.TypedRateLimitingInterface[string]
	now       func() time.Time
}

// New builds the controller and registers its informer handlers.
func New(client kubernetes.Interface, ds appsinformers.DeploymentInformer, rss appsinformers.ReplicaSetInformer,
	pods coreinformers.PodInformer, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client:    client,
		dLister:   ds.Lister(),
		rsLister:  rss.Lister(),
		podLister: pods.Lister(),
		synced:    []cache.InformerSynced{ds.Informer().HasSynced, rss.Informer().HasSynced, pods.Informer().HasSynced},
		recorder:  recorder,
		log:       log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployment"}),
		now: time.Now,
	}
	_, _ = ds.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	})
	_, _ = rss.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addRS,
		UpdateFunc: c.updateRS,
		DeleteFunc: c.deleteRS,
	})
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.deletePod})
	return c
}

// Run starts workers and blocks until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { wait.UntilWithContext(ctx, c.worker, time.Second) })
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

func (c *Controller) worker(ctx context.Context) {
	for {
		key, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.sync(ctx, key)
		switch {
		case err == nil:
			c.queue.Forget(key)
		case c.queue.NumRequeues(key) < 15:
			c.log.Info("sync failed, retrying", "deployment", key, "err", err)
			c.queue.AddRateLimited(key)
		default:
			c.log.Warn("dropping deployment out of the queue", "deployment", key, "err", err)
			c.queue.Forget(key)
		}
		c.queue.Done(key)
	}
}

func (c *Controller) enqueue(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

func key(o metav1.Object) string { return o.GetNamespace() + "/" + o.GetName() }

func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *appsv1.Deployment {
	return controllerref.Resolve(ref, controllerKind, c.dLister.Deployments(namespace).Get)
}

// deploymentsForRS are the Deployments whose selector matches an orphaned ReplicaSet.
func (c *Controller) deploymentsForRS(rs *appsv1.ReplicaSet) []*appsv1.Deployment {
	return controllerref.Adopters(c.dLister.Deployments(rs.Namespace).List,
		func(d *appsv1.Deployment) *metav1.LabelSelector { return d.Spec.Selector }, rs.Labels)
}

func (c *Controller) addRS(obj any) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.DeletionTimestamp != nil {
		c.deleteRS(rs)
		return
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if d := c.resolveControllerRef(rs.Namespace, ref); d != nil {
			c.queue.Add(key(d))
		}
		return
	}
	for _, d := range c.deploymentsForRS(rs) {
		c.queue.Add(key(d))
	}
}

func (c *Controller) updateRS(old, cur any) {
	o, n := old.(*appsv1.ReplicaSet), cur.(*appsv1.ReplicaSet)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	oref, nref := metav1.GetControllerOf(o), metav1.GetControllerOf(n)
	if oref != nil && (nref == nil || oref.UID != nref.UID) {
		if d := c.resolveControllerRef(o.Namespace, oref); d != nil {
			c.queue.Add(key(d))
		}
	}
	if nref != nil {
		if d := c.resolveControllerRef(n.Namespace, nref); d != nil {
			c.queue.Add(key(d))
		}
		return
	}
	if !apiequality.Semantic.DeepEqual(o.Labels, n.Labels) || oref != nil {
		for _, d := range c.deploymentsForRS(n) {
			c.queue.Add(key(d))
		}
	}
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
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if d := c.resolveControllerRef(rs.Namespace, ref); d != nil {
			c.queue.Add(key(d))
		}
	}
}

// deletePod wakes a Recreate Deployment waiting for its old pods to be gone.
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
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if dref := metav1.GetControllerOf(rs); dref != nil {
		if d := c.resolveControllerRef(rs.Namespace, dref); d != nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			c.queue.Add(key(d))
		}
	}
}

// sync reconciles one Deployment.
func (c *Controller) sync(ctx context.Context, k string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	cached, err := c.dLister.Deployments(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	d := cached.DeepCopy()
	if d.Spec.Selector == nil || (len(d.Spec.Selector.MatchLabels) == 0 && len(d.Spec.Selector.MatchExpressions) == 0) {
		c.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			_, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
			return err
		}
		return nil
	}
	rsList, err := c.replicaSetsForDeployment(ctx, d)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return c.syncStatusOnly(ctx, d, rsList)
	}
	if err := c.checkPausedConditions(ctx, d); err != nil {
		return err
	}
	if d.Spec.Paused {
		return c.syncScale(ctx, d, rsList)
	}
	if c.isScalingEvent(ctx, d, rsList) {
		return c.syncScale(ctx, d, rsList)
	}
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		return c.rolloutRecreate(ctx, d, rsList)
	case appsv1.RollingUpdateDeploymentStrategyType:
		return c.rolloutRolling(ctx, d, rsList)
	}
	return fmt.Errorf("unexpected deployment strategy type: %s", d.Spec.Strategy.Type)
}

// replicaSetsForDeployment adopts matching orphan ReplicaSets, releases owned ones that no
// longer match, and returns those the Deployment owns.
func (c *Controller) replicaSetsForDeployment(ctx context.Context, d *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s has an invalid selector: %w", key(d), err)
	}
	var owned []*appsv1.ReplicaSet
	var errs []error
	var canAdopt *bool
	for _, rs := range all {
		ref := metav1.GetControllerOf(rs)
		matches := selector.Matches(labels.Set(rs.Labels))
		if ref != nil {
			if ref.UID != d.UID {
				continue
			}
			if matches {
				owned = append(owned, rs)
				continue
			}
			if d.DeletionTimestamp != nil {
				continue
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
				"ownerReferences": []map[string]any{{"$patch": "delete", "uid": d.UID}}, "uid": rs.UID}})
			if _, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
				errs = append(errs, err)
			}
			continue
		}
		if !matches || d.DeletionTimestamp != nil || rs.DeletionTimestamp != nil {
			continue
		}
		if canAdopt == nil {
			ok := false
			live, err := c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
			if err == nil && live.UID == d.UID && live.DeletionTimestamp == nil {
				ok = true
			}
			canAdopt = &ok
		}
		if !*canAdopt {
			continue
		}
		t := true
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"ownerReferences": []metav1.OwnerReference{{APIVersion: controllerKind.GroupVersion().String(), Kind: controllerKind.Kind,
				Name: d.Name, UID: d.UID, Controller: &t, BlockOwnerDeletion: &t}},
			"uid": rs.UID}})
		adopted, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		owned = append(owned, adopted)
	}
	return owned, errors.Join(errs...)
}

// podsByReplicaSet groups the Deployment's pods by the UID of their ReplicaSet.
func (c *Controller) podsByReplicaSet(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (map[types.UID][]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := c.podLister.Pods(d.Namespace).List(selector)
	if err != nil {
		return nil, err
	}
	m := make(map[types.UID][]*corev1.Pod, len(rsList))
	for _, rs := range rsList {
		m[rs.UID] = nil
	}
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil {
			continue
		}
		if list, ok := m[ref.UID]; ok {
			m[ref.UID] = append(list, p)
		}
	}
	return m, nil
}

// getAllReplicaSetsAndSyncRevision returns the new ReplicaSet (created when create is set
// and none exists) and the old ones, and brings revision annotations up to date.
func (c *Controller) getAllReplicaSetsAndSyncRevision(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	existing := findNewReplicaSet(d, rsList)
	old := findOldReplicaSets(existing, rsList)
	newRS, err := c.getNewReplicaSet(ctx, d, rsList, old, existing, create)
	if err != nil {
		return nil, nil, err
	}
	return newRS, old, nil
}

func (c *Controller) getNewReplicaSet(ctx context.Context, d *appsv1.Deployment, rsList, old []*appsv1.ReplicaSet, existing *appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	newRevision := strconv.FormatInt(maxRevision(old)+1, 10)
	if existing != nil {
		rsCopy := existing.DeepCopy()
		annotationsUpdated := setNewReplicaSetAnnotations(d, rsCopy, newRevision, true)
		if annotationsUpdated || rsCopy.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rsCopy.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			return c.client.AppsV1().ReplicaSets(rsCopy.Namespace).Update(ctx, rsCopy, metav1.UpdateOptions{})
		}
		if err := c.setDeploymentRevision(ctx, d, rsCopy.Annotations[RevisionAnnotation]); err != nil {
			return nil, err
		}
		if hasProgressDeadline(d) && getCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, FoundNewRSReason,
				fmt.Sprintf("Found new replica set %q", rsCopy.Name), c.now()))
			if err := c.updateStatus(ctx, d); err != nil {
				return nil, err
			}
		}
		return rsCopy, nil
	}
	if !create {
		return nil, nil
	}

	hash := ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
	template := d.Spec.Template.DeepCopy()
	if template.Labels == nil {
		template.Labels = map[string]string{}
	}
	template.Labels[DefaultDeploymentUniqueLabelKey] = hash
	selector := d.Spec.Selector.DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[DefaultDeploymentUniqueLabelKey] = hash
	t := true
	newRS := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:      d.Name + "-" + hash,
			Namespace: d.Namespace,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: controllerKind.GroupVersion().String(), Kind: controllerKind.Kind,
				Name: d.Name, UID: d.UID, Controller: &t, BlockOwnerDeletion: &t}},
			Labels: template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        *template,
		},
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	n := newRSNewReplicas(d, all, newRS)
	newRS.Spec.Replicas = &n
	setNewReplicaSetAnnotations(d, newRS, newRevision, false)

	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, newRS, metav1.CreateOptions{})
	alreadyExists := false
	switch {
	case apierrors.IsAlreadyExists(err):
		alreadyExists = true
		rs, getErr := c.rsLister.ReplicaSets(newRS.Namespace).Get(newRS.Name)
		if getErr != nil {
			return nil, getErr
		}
		// The name is taken by our own ReplicaSet with the same template: the cache had not
		// seen it yet.
		if ref := metav1.GetControllerOf(rs); ref != nil && ref.UID == d.UID && EqualIgnoreHash(&d.Spec.Template, &rs.Spec.Template) {
			created = rs
			err = nil
			break
		}
		// A hash collision: bump collisionCount so that the next sync computes another name.
		if d.Status.CollisionCount == nil {
			d.Status.CollisionCount = new(int32)
		}
		pre := *d.Status.CollisionCount
		*d.Status.CollisionCount++
		if _, uerr := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); uerr == nil {
			c.log.Info("hash collision, collisionCount bumped", "deployment", key(d), "from", pre, "to", *d.Status.CollisionCount)
		}
		return nil, err
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", newRS.Name, err)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, FailedRSCreateReason, msg, c.now()))
			_ = c.updateStatus(ctx, d)
		}
		c.recorder.Event(d, corev1.EventTypeWarning, FailedRSCreateReason, msg)
		return nil, err
	}
	if !alreadyExists && n > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", created.Name, n)
	}
	if err := c.setDeploymentRevision(ctx, d, newRevision); err != nil {
		return nil, err
	}
	if !alreadyExists && hasProgressDeadline(d) {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, NewReplicaSetReason,
			fmt.Sprintf("Created new replica set %q", created.Name), c.now()))
		if err := c.updateStatus(ctx, d); err != nil {
			return nil, err
		}
	}
	return created, nil
}

// setDeploymentRevision records revision in the Deployment's own annotation. Kubernetes does
// this through the status subresource; a metadata patch works whatever the status strategy.
func (c *Controller) setDeploymentRevision(ctx context.Context, d *appsv1.Deployment, revision string) error {
	if d.Annotations[RevisionAnnotation] == revision {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{RevisionAnnotation: revision}, "uid": d.UID}})
	updated, err := c.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return err
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = revision
	d.ResourceVersion = updated.ResourceVersion
	return nil
}

func (c *Controller) updateStatus(ctx context.Context, d *appsv1.Deployment) error {
	updated, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	d.ResourceVersion = updated.ResourceVersion
	return nil
}

// checkPausedConditions records pausing and resuming in the Progressing condition, so that
// time spent paused does not count against the progress deadline.
func (c *Controller) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) error {
	if !hasProgressDeadline(d) {
		return nil
	}
	cond := getCondition(d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == TimedOutReason {
		return nil
	}
	paused := cond != nil && cond.Reason == PausedDeployReason
	switch {
	case d.Spec.Paused && !paused:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, PausedDeployReason, "Deployment is paused", c.now()))
	case !d.Spec.Paused && paused:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ResumedDeployReason, "Deployment is resumed", c.now()))
	default:
		return nil
	}
	return c.updateStatus(ctx, d)
}

// isScalingEvent reports whether spec.replicas changed since the active ReplicaSets were
// last sized (their desired-replicas annotation).
func (c *Controller) isScalingEvent(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) bool {
	newRS, old, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return false
	}
	for _, rs := range activeReplicaSets(append(old, newRS)) {
		if desired, ok := intAnnotation(rs, DesiredReplicasAnnotation); ok && desired != replicas(d.Spec.Replicas) {
			return true
		}
	}
	return false
}

// syncStatusOnly only refreshes the status (a Deployment being deleted).
func (c *Controller) syncStatusOnly(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	return c.syncDeploymentStatus(ctx, append(old, newRS), newRS, d)
}

// syncScale resizes the ReplicaSets for a scaling event or a paused Deployment.
func (c *Controller) syncScale(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	if err := c.scale(ctx, d, newRS, old); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanupDeployment(ctx, old, d); err != nil {
			return err
		}
	}
	return c.syncDeploymentStatus(ctx, append(old, newRS), newRS, d)
}

func (c *Controller) syncDeploymentStatus(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	status := c.calculateStatus(all, newRS, d)
	if apiequality.Semantic.DeepEqual(d.Status, status) {
		return nil
	}
	d.Status = status
	return c.updateStatus(ctx, d)
}

// scale resizes the active ReplicaSets to spec.replicas, proportionally to their sizes when
// several are active (a resize in the middle of a rollout).
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	if rs := findActiveOrLatest(newRS, old); rs != nil {
		if replicas(rs.Spec.Replicas) == replicas(d.Spec.Replicas) {
			return nil
		}
		_, _, err := c.scaleReplicaSetAndRecordEvent(ctx, rs, replicas(d.Spec.Replicas), d)
		return err
	}
	if isSaturated(d, newRS) {
		for _, rs := range activeReplicaSets(old) {
			if _, _, err := c.scaleReplicaSetAndRecordEvent(ctx, rs, 0, d); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRollingUpdate(d) {
		return nil
	}
	all := activeReplicaSets(append(append([]*appsv1.ReplicaSet(nil), old...), newRS))
	allowed := replicas(d.Spec.Replicas)
	if allowed > 0 {
		allowed += MaxSurge(d)
	}
	toAdd := allowed - specReplicaCount(all)
	switch {
	case toAdd > 0:
		bySize(all, true)
	case toAdd < 0:
		bySize(all, false)
	}
	var added int32
	sizes := make(map[string]int32, len(all))
	for _, rs := range all {
		if toAdd != 0 {
			p := getProportion(rs, d, toAdd, added)
			sizes[rs.Name] = replicas(rs.Spec.Replicas) + p
			added += p
		} else {
			sizes[rs.Name] = replicas(rs.Spec.Replicas)
		}
	}
	if toAdd != 0 && len(all) > 0 {
		sizes[all[0].Name] += toAdd - added
		if sizes[all[0].Name] < 0 {
			sizes[all[0].Name] = 0
		}
	}
	for _, rs := range all {
		if _, _, err := c.scaleReplicaSet(ctx, rs, sizes[rs.Name], d); err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) scaleReplicaSetAndRecordEvent(ctx context.Context, rs *appsv1.ReplicaSet, n int32, d *appsv1.Deployment) (bool, *appsv1.ReplicaSet, error) {
	if replicas(rs.Spec.Replicas) == n {
		return false, rs, nil
	}
	return c.scaleReplicaSet(ctx, rs, n, d)
}

// scaleReplicaSet sets rs's size and replica annotations, recording a ScalingReplicaSet event.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, n int32, d *appsv1.Deployment) (bool, *appsv1.ReplicaSet, error) {
	sizeChanged := replicas(rs.Spec.Replicas) != n
	annotationsChanged := replicasAnnotationsNeedUpdate(rs, replicas(d.Spec.Replicas), replicas(d.Spec.Replicas)+MaxSurge(d))
	if !sizeChanged && !annotationsChanged {
		return false, rs, nil
	}
	from := replicas(rs.Spec.Replicas)
	rsCopy := rs.DeepCopy()
	rsCopy.Spec.Replicas = &n
	setReplicasAnnotations(rsCopy, replicas(d.Spec.Replicas), replicas(d.Spec.Replicas)+MaxSurge(d))
	updated, err := c.client.AppsV1().ReplicaSets(rsCopy.Namespace).Update(ctx, rsCopy, metav1.UpdateOptions{})
	if err != nil {
		return false, nil, err
	}
	if sizeChanged {
		op := "down"
		if n > from {
			op = "up"
		}
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", op, rs.Name, from, n)
	}
	return sizeChanged, updated, nil
}

// cleanupDeployment deletes old, empty ReplicaSets beyond revisionHistoryLimit, oldest
// revision first.
func (c *Controller) cleanupDeployment(ctx context.Context, old []*appsv1.ReplicaSet, d *appsv1.Deployment) error {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var cleanable []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs != nil && rs.DeletionTimestamp == nil {
			cleanable = append(cleanable, rs)
		}
	}
	diff := len(cleanable) - int(*d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return nil
	}
	byRevision(cleanable)
	for _, rs := range cleanable[:diff] {
		if rs.Status.Replicas != 0 || replicas(rs.Spec.Replicas) != 0 || rs.Generation > rs.Status.ObservedGeneration || rs.DeletionTimestamp != nil {
			continue
		}
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (c *Controller) calculateStatus(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) appsv1.DeploymentStatus {
	available := availableReplicaCount(all)
	unavailable := max(specReplicaCount(all)-available, 0)
	s := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            actualReplicaCount(all),
		UpdatedReplicas:     actualReplicaCount([]*appsv1.ReplicaSet{newRS}),
		ReadyReplicas:       readyReplicaCount(all),
		AvailableReplicas:   available,
		UnavailableReplicas: unavailable,
		CollisionCount:      d.Status.CollisionCount,
	}
	var terminating *int32
	for _, rs := range all {
		if rs != nil && rs.Status.TerminatingReplicas != nil {
			if terminating == nil {
				terminating = new(int32)
			}
			*terminating += *rs.Status.TerminatingReplicas
		}
	}
	s.TerminatingReplicas = terminating
	s.Conditions = append(s.Conditions, d.Status.Conditions...)
	if available >= replicas(d.Spec.Replicas)-MaxUnavailable(d) {
		setCondition(&s, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, MinimumReplicasAvailable, "Deployment has minimum availability.", c.now()))
	} else {
		setCondition(&s, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, MinimumReplicasUnavail, "Deployment does not have minimum availability.", c.now()))
	}
	return s
}
