package statefulset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/nanokube/nanokube/internal/controller/controllerref"
	"github.com/nanokube/nanokube/internal/controller/readiness"
	"github.com/nanokube/nanokube/internal/controller/worker"
)

// Pod labels a StatefulSet sets, as in Kubernetes.
const (
	podNameLabel  = appsv1.StatefulSetPodNameLabel // statefulset.kubernetes.io/pod-name
	podIndexLabel = appsv1.PodIndexLabel           // apps.kubernetes.io/pod-index
)

const (
	reasonSuccessfulCreate = "SuccessfulCreate"
	reasonSuccessfulDelete = "SuccessfulDelete"
	reasonFailedCreate     = "FailedCreate"
	reasonFailedDelete     = "FailedDelete"
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder // nil: no events
	Log       *slog.Logger         // the caller names the controller in it; nil: discard
	Clock     clock.Clock          // nil: the real clock
}

// Controller is the StatefulSet controller.
type Controller struct {
	client        kubernetes.Interface
	setLister     appslisters.StatefulSetLister
	historyLister appslisters.ControllerRevisionLister
	claimLister   corelisters.PersistentVolumeClaimLister
	podIndex      cache.Indexer
	synced        []cache.InformerSynced
	recorder      record.EventRecorder
	log           *slog.Logger
	clock         clock.Clock
	queue         workqueue.TypedRateLimitingInterface[string]
}

const controllerUIDIndex = "statefulset.nanokube.io/controller-uid"

// New builds the controller and registers its informer handlers; it fails only if the pod
// informer has already started (the index cannot be added then).
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Informers == nil {
		return nil, errors.New("statefulset: a client and informers are required")
	}
	setInformer := cfg.Informers.Apps().V1().StatefulSets()
	historyInformer := cfg.Informers.Apps().V1().ControllerRevisions()
	podInformer := cfg.Informers.Core().V1().Pods()
	claimInformer := cfg.Informers.Core().V1().PersistentVolumeClaims()
	c := &Controller{
		client:        cfg.Client,
		setLister:     setInformer.Lister(),
		historyLister: historyInformer.Lister(),
		claimLister:   claimInformer.Lister(),
		podIndex:      podInformer.Informer().GetIndexer(),
		synced: []cache.InformerSynced{setInformer.Informer().HasSynced, historyInformer.Informer().HasSynced,
			podInformer.Informer().HasSynced, claimInformer.Informer().HasSynced},
		recorder: cfg.Recorder,
		log:      cfg.Log,
		clock:    cfg.Clock,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "statefulset"}),
	}
	if c.recorder == nil {
		c.recorder = &record.FakeRecorder{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	if err := podInformer.Informer().AddIndexers(cache.Indexers{controllerUIDIndex: controllerref.Index}); err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	if _, err := setInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue, UpdateFunc: func(_, cur any) { c.enqueue(cur) }, DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.podChanged, UpdateFunc: c.updatePod, DeleteFunc: c.podChanged,
	}); err != nil {
		return nil, err
	}
	// Claims are only read from the cache: the informer needs no handler, but must exist.
	if _, err := claimInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run runs workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	worker.Pool{Queue: c.queue, Synced: c.synced, Sync: c.sync, Log: c.log, Name: "statefulset"}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

func (c *Controller) updatePod(old, cur any) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	c.podChanged(o)
	c.podChanged(n)
	// A pod that just became ready turns available minReadySeconds later.
	if ref := metav1.GetControllerOfNoCopy(n); ref != nil && !readiness.Ready(o) && readiness.Ready(n) {
		if set := controllerref.Resolve(ref, controllerKind, c.setLister.StatefulSets(n.Namespace).Get); set != nil && set.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(n.Namespace+"/"+set.Name, time.Duration(set.Spec.MinReadySeconds)*time.Second+time.Second)
		}
	}
}

// podChanged wakes the pod's StatefulSet, or for an orphan the sets that may adopt it.
func (c *Controller) podChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		if set := controllerref.Resolve(ref, controllerKind, c.setLister.StatefulSets(pod.Namespace).Get); set != nil {
			c.queue.Add(pod.Namespace + "/" + set.Name)
		}
		return
	}
	for _, set := range controllerref.Adopters(c.setLister.StatefulSets(pod.Namespace).List,
		func(s *appsv1.StatefulSet) *metav1.LabelSelector { return s.Spec.Selector }, pod.Labels) {
		c.queue.Add(pod.Namespace + "/" + set.Name)
	}
}

// sync reconciles one StatefulSet: its revisions, its pods and claims, and its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	set, err := c.setLister.StatefulSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	// A set being deleted leaves its pods to the garbage collector, as in Kubernetes.
	if set.DeletionTimestamp != nil {
		return nil
	}
	selector, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || selector.Empty() {
		c.recorder.Eventf(set, corev1.EventTypeWarning, "InvalidSelector", "Invalid selector: %v", err)
		return nil
	}
	pods, err := c.claimPods(ctx, set, selector)
	if err != nil {
		return err
	}
	owned, err := c.ownedRevisions(set)
	if err != nil {
		return err
	}
	current, update, all, err := c.revisions(ctx, set, owned)
	if err != nil {
		return fmt.Errorf("revisions of %s: %w", key, err)
	}
	steps := decide(decision{set: set, pods: pods, currentRevision: current.Name, updateRevision: update.Name, now: c.clock.Now()})
	byName := map[string]*appsv1.ControllerRevision{current.Name: current, update.Name: update}
	var errs []error
	for _, s := range steps {
		c.log.DebugContext(ctx, "step", "statefulset", key, "step", s.String())
		if err := c.run(ctx, set, s, pods, byName[s.revision]); err != nil {
			errs = append(errs, err)
			break // later steps may depend on this one (ordering)
		}
	}
	if err := c.truncateHistory(ctx, set, pods, all, current, update); err != nil {
		errs = append(errs, fmt.Errorf("truncate history of %s: %w", key, err))
	}
	return errors.Join(append(errs, c.updateStatus(ctx, set, pods, current.Name, update.Name))...)
}

// claimPods returns set's pods by ordinal, after adopting orphans that its selector matches
// and whose names are <set>-<ordinal>, and releasing owned pods it no longer matches.
func (c *Controller) claimPods(ctx context.Context, set *appsv1.StatefulSet, selector labels.Selector) (map[int]*corev1.Pod, error) {
	out := map[int]*corev1.Pod{}
	var errs []error
	for _, k := range []string{string(set.UID), controllerref.OrphanKey(set.Namespace)} {
		objs, err := c.podIndex.ByIndex(controllerUIDIndex, k)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			p := o.(*corev1.Pod)
			if p.Namespace != set.Namespace {
				continue
			}
			ord, member := ordinalOf(set, p)
			matches := selector.Matches(labels.Set(p.Labels))
			if metav1.GetControllerOfNoCopy(p) != nil {
				if matches && member {
					out[ord] = p
					continue
				}
				patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
					"ownerReferences": []map[string]any{{"$patch": "delete", "uid": set.UID}}, "uid": p.UID}})
				if err := c.patchPod(ctx, p, patch); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			if !matches || !member || p.DeletionTimestamp != nil {
				continue
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
				"ownerReferences": []metav1.OwnerReference{ownerRef(set)}, "uid": p.UID}})
			if err := c.patchPod(ctx, p, patch); err != nil {
				errs = append(errs, err)
				continue
			}
			out[ord] = p
		}
	}
	return out, errors.Join(errs...)
}

func (c *Controller) patchPod(ctx context.Context, p *corev1.Pod, patch []byte) error {
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		return nil // gone or replaced meanwhile
	}
	return err
}

// ownedRevisions lists the ControllerRevisions set controls. Revisions are not adopted: a
// StatefulSet only uses what it made.
func (c *Controller) ownedRevisions(set *appsv1.StatefulSet) ([]*appsv1.ControllerRevision, error) {
	all, err := c.historyLister.ControllerRevisions(set.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ControllerRevision
	for _, r := range all {
		if metav1.IsControlledBy(r, set) {
			out = append(out, r)
		}
	}
	return out, nil
}

// run carries out one step.
func (c *Controller) run(ctx context.Context, set *appsv1.StatefulSet, s step, pods map[int]*corev1.Pod, rev *appsv1.ControllerRevision) error {
	switch s.op {
	case opCreate:
		template, err := templateOf(rev)
		if err != nil {
			return err
		}
		pod := newPod(set, template, rev.Name, s.ordinal)
		if err := c.createClaims(ctx, set, pod, s.ordinal); err != nil {
			c.recorder.Eventf(set, corev1.EventTypeWarning, reasonFailedCreate, "create Pod %s in StatefulSet %s failed error: %v", pod.Name, set.Name, err)
			return err
		}
		_, err = c.client.CoreV1().Pods(set.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // the cache is behind our own earlier create
		}
		if err != nil {
			c.recorder.Eventf(set, corev1.EventTypeWarning, reasonFailedCreate, "create Pod %s in StatefulSet %s failed error: %v", pod.Name, set.Name, err)
			return err
		}
		c.recorder.Eventf(set, corev1.EventTypeNormal, reasonSuccessfulCreate, "create Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	case opDelete:
		p := pods[s.ordinal]
		err := c.client.CoreV1().Pods(set.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		if err != nil {
			c.recorder.Eventf(set, corev1.EventTypeWarning, reasonFailedDelete, "delete Pod %s in StatefulSet %s failed error: %v", p.Name, set.Name, err)
			return err
		}
		c.recorder.Eventf(set, corev1.EventTypeNormal, reasonSuccessfulDelete, "delete Pod %s in StatefulSet %s successful", p.Name, set.Name)
	}
	return nil
}

// newPod builds the pod of ordinal from a revision's template.
func newPod(set *appsv1.StatefulSet, template *corev1.PodTemplateSpec, revision string, ordinal int) *corev1.Pod {
	name := podName(set, ordinal)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: set.Namespace,
			Labels:          maps.Clone(template.Labels),
			Annotations:     maps.Clone(template.Annotations),
			OwnerReferences: []metav1.OwnerReference{ownerRef(set)},
		},
		Spec: *template.Spec.DeepCopy(),
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[podNameLabel] = name
	pod.Labels[podIndexLabel] = strconv.Itoa(ordinal)
	pod.Labels[appsv1.ControllerRevisionHashLabelKey] = revision
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = set.Spec.ServiceName
	// Each claim template replaces the template volume of its name, or is added.
	for _, t := range set.Spec.VolumeClaimTemplates {
		vol := corev1.Volume{Name: t.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(set, t.Name, ordinal)}}}
		replaced := false
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == t.Name {
				pod.Spec.Volumes[i], replaced = vol, true
			}
		}
		if !replaced {
			pod.Spec.Volumes = append(pod.Spec.Volumes, vol)
		}
	}
	return pod
}

// newClaim builds the claim of template for the pod of ordinal.
func newClaim(set *appsv1.StatefulSet, template *corev1.PersistentVolumeClaim, ordinal int) *corev1.PersistentVolumeClaim {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: claimName(set, template.Name, ordinal), Namespace: set.Namespace,
			Labels: maps.Clone(template.Labels), Annotations: maps.Clone(template.Annotations),
		},
		Spec: *template.Spec.DeepCopy(),
	}
	if claim.Labels == nil {
		claim.Labels = map[string]string{}
	}
	if set.Spec.Selector != nil {
		maps.Copy(claim.Labels, set.Spec.Selector.MatchLabels)
	}
	if r := set.Spec.PersistentVolumeClaimRetentionPolicy; r != nil && r.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		// Not a controller reference: the claim is the set's only for garbage collection.
		claim.OwnerReferences = []metav1.OwnerReference{{APIVersion: controllerKind.GroupVersion().String(),
			Kind: controllerKind.Kind, Name: set.Name, UID: set.UID}}
	}
	return claim
}

// createClaims creates the claims of the pod of ordinal that do not exist yet.
func (c *Controller) createClaims(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod, ordinal int) error {
	for i := range set.Spec.VolumeClaimTemplates {
		claim := newClaim(set, &set.Spec.VolumeClaimTemplates[i], ordinal)
		existing, err := c.claimLister.PersistentVolumeClaims(set.Namespace).Get(claim.Name)
		if err == nil {
			if existing.DeletionTimestamp != nil {
				return fmt.Errorf("claim %s is being deleted", claim.Name)
			}
			continue
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		_, err = c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(ctx, claim, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			c.recorder.Eventf(set, corev1.EventTypeWarning, reasonFailedCreate, "create Claim %s for Pod %s in StatefulSet %s failed error: %v",
				claim.Name, pod.Name, set.Name, err)
			return err
		}
		if err == nil {
			c.recorder.Eventf(set, corev1.EventTypeNormal, reasonSuccessfulCreate, "create Claim %s Pod %s in StatefulSet %s success",
				claim.Name, pod.Name, set.Name)
		}
	}
	return nil
}

func ownerRef(set *appsv1.StatefulSet) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: controllerKind.GroupVersion().String(), Kind: controllerKind.Kind,
		Name: set.Name, UID: set.UID, Controller: &t, BlockOwnerDeletion: &t}
}

// computeStatus counts the pods as Kubernetes does: every pod counts in replicas, running and
// ready ones in readyReplicas (and availableReplicas after minReadySeconds), and pods not
// being deleted in currentReplicas or updatedReplicas by their revision. Once every replica is
// updated and ready, the update revision becomes the current one.
func computeStatus(set *appsv1.StatefulSet, pods map[int]*corev1.Pod, current, update string, now time.Time) appsv1.StatefulSetStatus {
	st := *set.Status.DeepCopy()
	st.ObservedGeneration = set.Generation
	st.CurrentRevision, st.UpdateRevision = current, update
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas, st.UpdatedReplicas = 0, 0, 0, 0, 0
	for _, p := range pods {
		st.Replicas++
		if p.Status.Phase == corev1.PodRunning && readiness.Ready(p) && p.DeletionTimestamp == nil {
			st.ReadyReplicas++
			if readiness.Available(p, set.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
		if p.DeletionTimestamp == nil {
			if revisionOf(p) == current {
				st.CurrentReplicas++
			}
			if revisionOf(p) == update {
				st.UpdatedReplicas++
			}
		}
	}
	n := replicasOf(set)
	if current != update && st.UpdatedReplicas == n && st.ReadyReplicas == n && st.Replicas == n {
		st.CurrentRevision, st.CurrentReplicas = update, st.UpdatedReplicas
	}
	return st
}

// updateStatus writes the status if it changed, retrying once on a conflict.
func (c *Controller) updateStatus(ctx context.Context, set *appsv1.StatefulSet, pods map[int]*corev1.Pod, current, update string) error {
	want := computeStatus(set, pods, current, update, c.clock.Now())
	if set.Spec.MinReadySeconds > 0 && want.ReadyReplicas != want.AvailableReplicas {
		c.queue.AddAfter(set.Namespace+"/"+set.Name, time.Duration(set.Spec.MinReadySeconds)*time.Second)
	}
	if apiequality.Semantic.DeepEqual(set.Status, want) {
		return nil
	}
	client := c.client.AppsV1().StatefulSets(set.Namespace)
	toUpdate := set.DeepCopy()
	for attempt := 0; ; attempt++ {
		collisions := toUpdate.Status.CollisionCount
		toUpdate.Status = want
		toUpdate.Status.CollisionCount = collisions
		_, err := client.UpdateStatus(ctx, toUpdate, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if attempt > 0 || !apierrors.IsConflict(err) {
			return fmt.Errorf("update status of %s/%s: %w", set.Namespace, set.Name, err)
		}
		if toUpdate, err = client.Get(ctx, set.Name, metav1.GetOptions{}); err != nil {
			return err
		}
		if toUpdate.UID != set.UID {
			return nil
		}
	}
}
