package daemonset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/nanokube/nanokube/internal/controller/controllerref"
	"github.com/nanokube/nanokube/internal/controller/expectations"
	"github.com/nanokube/nanokube/internal/controller/readiness"
	"github.com/nanokube/nanokube/internal/controller/worker"
)

const (
	// burstReplicas caps the creations and the deletions of one sync, as in Kubernetes.
	burstReplicas = 250
	// Failed daemon pods are deleted (and so recreated) after a backoff per DaemonSet and node
	// that starts at failedPodsBackoffInitial and doubles up to failedPodsBackoffMax.
	failedPodsBackoffInitial = time.Second
	failedPodsBackoffMax     = 15 * time.Minute
	backoffGCInterval        = time.Minute
)

// Event reasons, as kube-controller-manager's daemonset controller words them.
const (
	reasonSelectingAll       = "SelectingAll"
	reasonFailedDaemonPod    = "FailedDaemonPod"
	reasonSucceededDaemonPod = "SucceededDaemonPod"
	reasonSuccessfulCreate   = "SuccessfulCreate"
	reasonSuccessfulDelete   = "SuccessfulDelete"
	reasonFailedCreate       = "FailedCreate"
	reasonFailedDelete       = "FailedDelete"
	reasonInvalidSelector    = "InvalidSelector"
	messageSelectingAll      = "This daemon set is selecting all pods. A non-empty selector is required."
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder // nil: no events
	Log       *slog.Logger         // the caller names the controller in it; nil: discard
}

// Controller is the DaemonSet controller.
type Controller struct {
	client        kubernetes.Interface
	dsLister      appslisters.DaemonSetLister
	historyLister appslisters.ControllerRevisionLister
	nodeLister    corelisters.NodeLister
	podIndex      cache.Indexer
	synced        []cache.InformerSynced

	recorder     record.EventRecorder
	log          *slog.Logger
	queue        workqueue.TypedRateLimitingInterface[string]
	expectations *expectations.Expectations
	clock        clock.Clock
	// failedPodsBackoff spaces the deletions of failed pods per DaemonSet, generation and node,
	// so that a pod the kubelet keeps rejecting is not recreated in a hot loop.
	failedPodsBackoff *flowcontrol.Backoff
}

// New builds the controller and registers its informer handlers and a pod index; it fails
// only if the pod informer has already started.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Informers == nil {
		return nil, errors.New("daemonset: a client and informers are required")
	}
	dsInformer := cfg.Informers.Apps().V1().DaemonSets()
	historyInformer := cfg.Informers.Apps().V1().ControllerRevisions()
	podInformer := cfg.Informers.Core().V1().Pods()
	nodeInformer := cfg.Informers.Core().V1().Nodes()
	c := &Controller{
		client:        cfg.Client,
		dsLister:      dsInformer.Lister(),
		historyLister: historyInformer.Lister(),
		nodeLister:    nodeInformer.Lister(),
		podIndex:      podInformer.Informer().GetIndexer(),
		synced: []cache.InformerSynced{dsInformer.Informer().HasSynced, historyInformer.Informer().HasSynced,
			podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced},
		recorder: cfg.Recorder,
		log:      cfg.Log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "daemonset"}),
	}
	if c.recorder == nil {
		c.recorder = &record.FakeRecorder{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.setClock(clock.RealClock{})
	if err := podInformer.Informer().AddIndexers(cache.Indexers{controllerUIDIndex: controllerref.Index}); err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	for _, h := range []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{dsInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.enqueue, UpdateFunc: c.updateDaemonSet, DeleteFunc: c.deleteDaemonSet}},
		{historyInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.addHistory, UpdateFunc: c.updateHistory, DeleteFunc: c.deleteHistory}},
		{podInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.addPod, UpdateFunc: c.updatePod, DeleteFunc: c.deletePod}},
		{nodeInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.addNode, UpdateFunc: c.updateNode, DeleteFunc: c.deleteNode}},
	} {
		if _, err := h.informer.AddEventHandler(h.handler); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// setClock makes availability, expectations and the failed-pod backoff use clk (tests).
func (c *Controller) setClock(clk clock.Clock) {
	c.clock = clk
	c.expectations = expectations.New(clk.Now)
	c.failedPodsBackoff = flowcontrol.NewFakeBackOff(failedPodsBackoffInitial, failedPodsBackoffMax, clk)
}

// controllerUIDIndex files pods under their controller's UID, and orphans under
// controllerref.OrphanKey(namespace), so that a sync looks at its own pods and the adoptable
// ones only.
const controllerUIDIndex = "daemonset.nanokube.io/controller-uid"

// Run starts workers, and the garbage collection of the failed-pod backoff, and blocks until
// ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	wg.Go(func() {
		wait.UntilWithContext(ctx, func(context.Context) { c.failedPodsBackoff.GC() }, backoffGCInterval)
	})
	worker.Pool{Queue: c.queue, Synced: c.synced, Sync: c.sync, Log: c.log, Name: "daemonset"}.Run(ctx, workers)
	wg.Wait()
}

func key(o metav1.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

func (c *Controller) enqueueAfter(ds *appsv1.DaemonSet, d time.Duration) {
	c.queue.AddAfter(key(ds), d)
}

func (c *Controller) updateDaemonSet(_, cur any) { c.enqueue(cur) }

func (c *Controller) deleteDaemonSet(obj any) {
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		t, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if ds, ok = t.Obj.(*appsv1.DaemonSet); !ok {
			return
		}
	}
	c.expectations.Delete(key(ds))
	c.enqueue(ds)
}

// resolveControllerRef returns the DaemonSet ref points to, if it is still the same object.
func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *appsv1.DaemonSet {
	return controllerref.Resolve(ref, controllerKind, c.dsLister.DaemonSets(namespace).Get)
}

// daemonSetsSelecting lists the DaemonSets of namespace whose selector matches set (the labels
// of an orphan that one of them may adopt).
func (c *Controller) daemonSetsSelecting(namespace string, set map[string]string) []*appsv1.DaemonSet {
	return controllerref.Adopters(c.dsLister.DaemonSets(namespace).List,
		func(ds *appsv1.DaemonSet) *metav1.LabelSelector { return ds.Spec.Selector }, set)
}

func (c *Controller) addHistory(obj any) {
	h := obj.(*appsv1.ControllerRevision)
	if h.DeletionTimestamp != nil {
		c.deleteHistory(h)
		return
	}
	// A revision with a controller was made by that controller's sync: nothing to do.
	if metav1.GetControllerOfNoCopy(h) != nil {
		return
	}
	for _, ds := range c.daemonSetsSelecting(h.Namespace, h.Labels) {
		c.queue.Add(key(ds))
	}
}

func (c *Controller) updateHistory(old, cur any) {
	o, n := old.(*appsv1.ControllerRevision), cur.(*appsv1.ControllerRevision)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	oref, nref := metav1.GetControllerOf(o), metav1.GetControllerOf(n)
	refChanged := !apiequality.Semantic.DeepEqual(oref, nref)
	if refChanged && oref != nil {
		if ds := c.resolveControllerRef(o.Namespace, oref); ds != nil {
			c.queue.Add(key(ds))
		}
	}
	if nref != nil {
		if ds := c.resolveControllerRef(n.Namespace, nref); ds != nil {
			c.queue.Add(key(ds))
		}
		return
	}
	if refChanged || !apiequality.Semantic.DeepEqual(o.Labels, n.Labels) {
		for _, ds := range c.daemonSetsSelecting(n.Namespace, n.Labels) {
			c.queue.Add(key(ds))
		}
	}
}

func (c *Controller) deleteHistory(obj any) {
	h, ok := obj.(*appsv1.ControllerRevision)
	if !ok {
		t, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if h, ok = t.Obj.(*appsv1.ControllerRevision); !ok {
			return
		}
	}
	if ref := metav1.GetControllerOf(h); ref != nil {
		if ds := c.resolveControllerRef(h.Namespace, ref); ds != nil {
			c.queue.Add(key(ds))
		}
	}
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		// A pod already going away (seen after a restart) is no creation to count.
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		ds := c.resolveControllerRef(pod.Namespace, ref)
		if ds == nil {
			return
		}
		c.expectations.CreationObserved(key(ds))
		c.queue.Add(key(ds))
		return
	}
	for _, ds := range c.daemonSetsSelecting(pod.Namespace, pod.Labels) {
		c.queue.Add(key(ds))
	}
}

func (c *Controller) updatePod(old, cur any) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	if n.DeletionTimestamp != nil {
		// The DaemonSet may replace a pod as soon as it is going away, not when it is gone.
		c.deletePod(n)
		return
	}
	oref, nref := metav1.GetControllerOf(o), metav1.GetControllerOf(n)
	refChanged := !apiequality.Semantic.DeepEqual(oref, nref)
	if refChanged && oref != nil {
		if ds := c.resolveControllerRef(o.Namespace, oref); ds != nil {
			c.queue.Add(key(ds))
		}
	}
	if nref != nil {
		ds := c.resolveControllerRef(n.Namespace, nref)
		if ds == nil {
			return
		}
		c.queue.Add(key(ds))
		// A pod that just became ready turns available minReadySeconds later.
		if !readiness.Ready(o) && readiness.Ready(n) && ds.Spec.MinReadySeconds > 0 {
			c.enqueueAfter(ds, time.Duration(ds.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if refChanged || !apiequality.Semantic.DeepEqual(o.Labels, n.Labels) {
		for _, ds := range c.daemonSetsSelecting(n.Namespace, n.Labels) {
			c.queue.Add(key(ds))
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
	ds := c.resolveControllerRef(pod.Namespace, ref)
	if ds == nil {
		return
	}
	c.expectations.DeletionObserved(key(ds), key(pod))
	c.queue.Add(key(ds))
}

// addNode wakes the DaemonSets that want a pod on a new node.
func (c *Controller) addNode(obj any) {
	node := obj.(*corev1.Node)
	c.enqueueDaemonSetsFor(func(ds *appsv1.DaemonSet) bool {
		shouldRun, _ := nodeShouldRunDaemonPod(node, ds)
		return shouldRun
	})
}

// updateNode wakes the DaemonSets whose placement on the node changes with its labels or taints.
func (c *Controller) updateNode(old, cur any) {
	o, n := old.(*corev1.Node), cur.(*corev1.Node)
	if apiequality.Semantic.DeepEqual(o.Labels, n.Labels) && apiequality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) {
		return
	}
	c.enqueueDaemonSetsFor(func(ds *appsv1.DaemonSet) bool {
		oldRun, oldContinue := nodeShouldRunDaemonPod(o, ds)
		newRun, newContinue := nodeShouldRunDaemonPod(n, ds)
		return oldRun != newRun || oldContinue != newContinue
	})
}

// deleteNode wakes the DaemonSets that counted the node, so that their status drops it at
// once; its pods are the pod garbage collector's.
func (c *Controller) deleteNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		t, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if node, ok = t.Obj.(*corev1.Node); !ok {
			return
		}
	}
	c.enqueueDaemonSetsFor(func(ds *appsv1.DaemonSet) bool {
		_, shouldContinue := nodeShouldRunDaemonPod(node, ds)
		return shouldContinue
	})
}

func (c *Controller) enqueueDaemonSetsFor(wants func(*appsv1.DaemonSet) bool) {
	list, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range list {
		if wants(ds) {
			c.queue.Add(key(ds))
		}
	}
}

// sync reconciles one DaemonSet: its history, its pods on every node, its rolling update and
// its status.
func (c *Controller) sync(ctx context.Context, k string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.Delete(k)
		return nil
	}
	if err != nil {
		return err
	}
	if ds.Spec.Selector == nil || apiequality.Semantic.DeepEqual(ds.Spec.Selector, &metav1.LabelSelector{}) {
		c.recorder.Event(ds, corev1.EventTypeWarning, reasonSelectingAll, messageSelectingAll)
		return nil
	}
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		c.recorder.Eventf(ds, corev1.EventTypeWarning, reasonInvalidSelector, "Invalid selector: %v", err)
		return nil
	}
	// While a DaemonSet is being deleted its revisions and pods may already be going: its
	// status cannot be computed reliably, so it is left alone, as in Kubernetes.
	if ds.DeletionTimestamp != nil {
		return nil
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	// Sorted nodes make the choices of a sync (which pods a rolling update replaces first)
	// repeatable.
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })

	pods, err := c.claimPods(ctx, ds, selector)
	if err != nil {
		return err
	}
	cur, old, err := c.constructHistory(ctx, ds, selector, pods)
	if err != nil {
		return fmt.Errorf("revisions of %s: %w", k, err)
	}
	hash := cur.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
	active := podsByNode(pods, false)

	if !c.expectations.Satisfied(k) {
		// Only the status: the controller has not acted on this generation yet.
		return c.updateStatus(ctx, ds, nodes, active, hash, false)
	}
	err = c.manage(ctx, ds, nodes, active, hash)
	if err == nil && c.expectations.Satisfied(k) && ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		err = c.rollingUpdate(ctx, ds, nodes, active, hash)
	}
	if err == nil {
		if err = c.cleanupHistory(ctx, ds, pods, old); err != nil {
			err = fmt.Errorf("clean up revisions of %s: %w", k, err)
		}
	}
	return errors.Join(err, c.updateStatus(ctx, ds, nodes, active, hash, true))
}

// claimPods returns ds's pods after adopting matching orphans and releasing owned pods that no
// longer match its selector. Finished and terminating pods are included.
func (c *Controller) claimPods(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) ([]*corev1.Pod, error) {
	var candidates []*corev1.Pod
	for _, k := range []string{string(ds.UID), controllerref.OrphanKey(ds.Namespace)} {
		objs, err := c.podIndex.ByIndex(controllerUIDIndex, k)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if p := o.(*corev1.Pod); p.Namespace == ds.Namespace {
				candidates = append(candidates, p)
			}
		}
	}
	return claim(ctx, c.newClaimer(ds, selector), candidates, func(ctx context.Context, p *corev1.Pod, patch []byte) error {
		_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		return err
	})
}

// podsByNode groups pods by the node they run on or are pinned to. Unless
// includeDeletedFinished, finished pods that are being deleted are left out: nothing is left
// to do with them.
func podsByNode(pods []*corev1.Pod, includeDeletedFinished bool) map[string][]*corev1.Pod {
	out := map[string][]*corev1.Pod{}
	for _, p := range pods {
		if !includeDeletedFinished && podFinished(p) && p.DeletionTimestamp != nil {
			continue
		}
		node, err := targetNode(p)
		if err != nil {
			continue
		}
		out[node] = append(out[node], p)
	}
	return out
}

// claimer adopts and releases the objects of one DaemonSet.
type claimer struct {
	c        *Controller
	ds       *appsv1.DaemonSet
	selector labels.Selector
	mayAdopt *bool // checked once, against the API server
}

func (c *Controller) newClaimer(ds *appsv1.DaemonSet, selector labels.Selector) *claimer {
	return &claimer{c: c, ds: ds, selector: selector}
}

// canAdopt reads the DaemonSet from the API server, not the cache: a DaemonSet being deleted
// must not adopt anything.
func (cl *claimer) canAdopt(ctx context.Context) bool {
	if cl.mayAdopt == nil {
		live, err := cl.c.client.AppsV1().DaemonSets(cl.ds.Namespace).Get(ctx, cl.ds.Name, metav1.GetOptions{})
		ok := err == nil && live.UID == cl.ds.UID && live.DeletionTimestamp == nil
		cl.mayAdopt = &ok
	}
	return *cl.mayAdopt
}

// claim returns the objects the DaemonSet controls after adopting orphans its selector matches
// and releasing owned objects it no longer matches. patch sends a strategic merge patch whose
// metadata.uid makes the API server refuse it if the object was replaced meanwhile.
func claim[T metav1.Object](ctx context.Context, cl *claimer, objs []T, patch func(context.Context, T, []byte) error) ([]T, error) {
	var owned []T
	var errs []error
	ds := cl.ds
	for _, o := range objs {
		matches := cl.selector.Matches(labels.Set(o.GetLabels()))
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
			switch {
			case ref.UID != ds.UID:
			case matches:
				owned = append(owned, o)
			case ds.DeletionTimestamp == nil:
				release, _ := json.Marshal(map[string]any{"metadata": map[string]any{
					"ownerReferences": []map[string]any{{"$patch": "delete", "uid": ds.UID}},
					"uid":             o.GetUID(),
				}})
				// Not found or invalid: the object is gone, replaced or has no such owner any more.
				if err := patch(ctx, o, release); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
					errs = append(errs, err)
				}
			}
			continue
		}
		if !matches || ds.DeletionTimestamp != nil || o.GetDeletionTimestamp() != nil || !cl.canAdopt(ctx) {
			continue
		}
		adopt, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"ownerReferences": []metav1.OwnerReference{ownerRef(ds)},
			"uid":             o.GetUID(),
		}})
		if err := patch(ctx, o, adopt); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		owned = append(owned, o)
	}
	return owned, errors.Join(errs...)
}

func ownerRef(ds *appsv1.DaemonSet) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: controllerKind.GroupVersion().String(), Kind: controllerKind.Kind,
		Name: ds.Name, UID: ds.UID, Controller: &t, BlockOwnerDeletion: &t}
}

// updateStatus writes the DaemonSet's counts (and, if updateObservedGen, observedGeneration)
// unless they are unchanged, retrying once on a conflict with a fresh copy.
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, nodes []*corev1.Node,
	byNode map[string][]*corev1.Pod, hash string, updateObservedGen bool) error {
	now := c.clock.Now()
	var desired, current, misscheduled, ready, updated, available int32
	for _, node := range nodes {
		shouldRun, _ := nodeShouldRunDaemonPod(node, ds)
		pods := byNode[node.Name]
		if !shouldRun {
			if len(pods) > 0 {
				misscheduled++
			}
			continue
		}
		desired++
		if len(pods) == 0 {
			continue
		}
		current++
		// The oldest pod speaks for the node.
		pods = append([]*corev1.Pod(nil), pods...)
		sort.Slice(pods, func(i, j int) bool { return olderPod(pods[i], pods[j]) })
		pod := pods[0]
		if readiness.Ready(pod) {
			ready++
			if readiness.Available(pod, ds.Spec.MinReadySeconds, now) {
				available++
			}
		}
		if isPodUpdated(ds, pod, hash) {
			updated++
		}
	}
	apply := func(st *appsv1.DaemonSetStatus) {
		st.DesiredNumberScheduled = desired
		st.CurrentNumberScheduled = current
		st.NumberMisscheduled = misscheduled
		st.NumberReady = ready
		st.UpdatedNumberScheduled = updated
		st.NumberAvailable = available
		st.NumberUnavailable = desired - available
		if updateObservedGen {
			st.ObservedGeneration = ds.Generation
		}
	}
	if ds.Spec.MinReadySeconds > 0 && ready != available {
		// A last resort against clock skew: look again once the ready pods should be available.
		c.enqueueAfter(ds, time.Duration(ds.Spec.MinReadySeconds)*time.Second)
	}
	want := ds.Status.DeepCopy()
	apply(want)
	if apiequality.Semantic.DeepEqual(&ds.Status, want) {
		return nil
	}
	dsClient := c.client.AppsV1().DaemonSets(ds.Namespace)
	toUpdate := ds.DeepCopy()
	for attempt := 0; ; attempt++ {
		apply(&toUpdate.Status)
		_, err := dsClient.UpdateStatus(ctx, toUpdate, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if attempt > 0 || !apierrors.IsConflict(err) {
			return fmt.Errorf("update status of %s: %w", key(ds), err)
		}
		if toUpdate, err = dsClient.Get(ctx, ds.Name, metav1.GetOptions{}); err != nil {
			return err
		}
	}
}

// olderPod orders a node's daemon pods: scheduled before unscheduled, then by creation time.
func olderPod(a, b *corev1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName != ""
	}
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.Name < b.Name
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

func podFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}
