package garbagecollector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// ResyncPeriod is how often the served resources are discovered again.
const ResyncPeriod = 30 * time.Second

// ignoredResources are never collected (as in Kubernetes).
var ignoredResources = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// GarbageCollector is the garbage collector controller.
type GarbageCollector struct {
	meta  metadata.Interface
	disco discovery.DiscoveryInterface
	log   *slog.Logger

	mu        sync.Mutex // guards the graph (uidToNode and every node)
	uidToNode map[types.UID]*node

	monMu    sync.Mutex
	mapper   meta.RESTMapper
	monitors map[schema.GroupVersionResource]*monitor

	absentMu sync.Mutex
	absent   map[types.UID]struct{} // owners proven absent; UIDs are never reused

	attemptToDelete workqueue.TypedRateLimitingInterface[*node]
	attemptToOrphan workqueue.TypedRateLimitingInterface[*node]
}

type monitor struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
}

// New builds the garbage collector; Run discovers resources and starts the watches.
func New(meta metadata.Interface, disco discovery.DiscoveryInterface, log *slog.Logger) *GarbageCollector {
	return &GarbageCollector{
		meta:      meta,
		disco:     disco,
		log:       log,
		uidToNode: map[types.UID]*node{},
		monitors:  map[schema.GroupVersionResource]*monitor{},
		absent:    map[types.UID]struct{}{},
		attemptToDelete: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[*node](),
			workqueue.TypedRateLimitingQueueConfig[*node]{Name: "garbage_collector_attempt_to_delete"}),
		attemptToOrphan: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[*node](),
			workqueue.TypedRateLimitingQueueConfig[*node]{Name: "garbage_collector_attempt_to_orphan"}),
	}
}

// Run watches, builds the graph and collects until ctx is done.
func (gc *GarbageCollector) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer gc.attemptToDelete.ShutDown()
	defer gc.attemptToOrphan.ShutDown()
	defer gc.stopMonitors()

	// Discovery must succeed once before anything is collected.
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if err := gc.resync(); err != nil {
			gc.log.Info("discovery failed, retrying", "err", err)
			return false, nil
		}
		return true, nil
	}); err != nil {
		return
	}
	if !gc.waitForSync(ctx, time.Minute) {
		if ctx.Err() != nil {
			return
		}
		gc.log.Warn("some resources did not sync within a minute; collecting anyway")
	}
	gc.log.Info("garbage collector synced")

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { wait.UntilWithContext(ctx, gc.deleteWorker, time.Second) })
		wg.Go(func() { wait.UntilWithContext(ctx, gc.orphanWorker, time.Second) })
	}
	wg.Go(func() {
		wait.UntilWithContext(ctx, func(context.Context) {
			if err := gc.resync(); err != nil {
				gc.log.Info("discovery failed", "err", err)
			}
		}, ResyncPeriod)
	})
	<-ctx.Done()
	gc.attemptToDelete.ShutDown()
	gc.attemptToOrphan.ShutDown()
	wg.Wait()
}

// HasSynced reports whether every watched resource has been listed.
func (gc *GarbageCollector) HasSynced() bool {
	gc.monMu.Lock()
	defer gc.monMu.Unlock()
	if len(gc.monitors) == 0 {
		return false
	}
	for _, m := range gc.monitors {
		if !m.informer.HasSynced() {
			return false
		}
	}
	return true
}

func (gc *GarbageCollector) waitForSync(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		return gc.HasSynced(), nil
	}) == nil
}

// deletableResources lists the resources that can be listed, watched and deleted.
func (gc *GarbageCollector) deletableResources() (map[schema.GroupVersionResource]string, error) {
	lists, err := gc.disco.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, err
	}
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, err
	}
	lists = discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: []string{"delete", "list", "watch"}}, lists)
	out := map[schema.GroupVersionResource]string{}
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			gvr := gv.WithResource(r.Name)
			if ignoredResources[gvr.GroupResource()] {
				continue
			}
			out[gvr] = r.Kind
		}
	}
	return out, err // a partial discovery failure still yields the groups that worked
}

// resync rediscovers resources, rebuilds the REST mapper and starts or stops watches.
func (gc *GarbageCollector) resync() error {
	resources, derr := gc.deletableResources()
	if resources == nil {
		return derr
	}
	groups, err := restmapper.GetAPIGroupResources(gc.disco)
	if err != nil && len(groups) == 0 {
		return err
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)

	gc.monMu.Lock()
	defer gc.monMu.Unlock()
	gc.mapper = mapper
	for gvr, kind := range resources {
		if _, ok := gc.monitors[gvr]; ok {
			continue
		}
		mapping, err := mapper.RESTMapping(gvr.GroupVersion().WithKind(kind).GroupKind(), gvr.Version)
		if err != nil {
			continue
		}
		gc.monitors[gvr] = gc.startMonitor(gvr, kind, mapping.Scope.Name() == meta.RESTScopeNameNamespace)
	}
	// A resource is only dropped when discovery fully worked, so that a flaky group does
	// not make the collector forget its objects.
	if derr == nil {
		for gvr, m := range gc.monitors {
			if _, ok := resources[gvr]; !ok {
				close(m.stop)
				delete(gc.monitors, gvr)
			}
		}
	}
	return nil
}

func (gc *GarbageCollector) stopMonitors() {
	gc.monMu.Lock()
	defer gc.monMu.Unlock()
	for gvr, m := range gc.monitors {
		close(m.stop)
		delete(gc.monitors, gvr)
	}
}

func (gc *GarbageCollector) startMonitor(gvr schema.GroupVersionResource, kind string, namespaced bool) *monitor {
	inf := metadatainformer.NewFilteredMetadataInformer(gc.meta, gvr, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	apiVersion := gvr.GroupVersion().String()
	toMeta := func(obj any) *metav1.PartialObjectMetadata {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		m, _ := obj.(*metav1.PartialObjectMetadata)
		return m
	}
	handle := func(obj any, deleted bool) {
		m := toMeta(obj)
		if m == nil {
			return
		}
		gc.observe(m, deleted, apiVersion, kind, gvr, namespaced)
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { handle(obj, false) },
		UpdateFunc: func(_, obj any) { handle(obj, false) },
		DeleteFunc: func(obj any) { handle(obj, true) },
	})
	m := &monitor{informer: inf, stop: make(chan struct{})}
	go inf.Run(m.stop)
	return m
}

// observe applies one watch event to the graph and queues the work it calls for.
func (gc *GarbageCollector) observe(obj *metav1.PartialObjectMetadata, deleted bool, apiVersion, kind string, gvr schema.GroupVersionResource, namespaced bool) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	existing := gc.uidToNode[obj.UID]
	if deleted {
		if existing == nil {
			return
		}
		gc.removeNode(existing)
		return
	}
	id := identity{APIVersion: apiVersion, Kind: kind, Name: obj.Name, UID: obj.UID, Namespace: obj.Namespace}
	n := existing
	if n == nil {
		n = &node{id: id, dependents: map[*node]struct{}{}}
		gc.uidToNode[obj.UID] = n
		n.owners = slices.Clone(obj.OwnerReferences)
		gc.addToOwners(n, n.owners)
	} else {
		if !n.observed && n.id != id {
			// The references that named this owner may have named it wrongly (kind,
			// namespace): let each dependent check its own reference again.
			for d := range n.dependents {
				gc.attemptToDelete.Add(d)
			}
		}
		n.id = id
		added, removed, unblocked := referenceDiffs(n.owners, obj.OwnerReferences)
		for _, r := range append(removed, unblocked...) {
			if o := gc.uidToNode[r.UID]; o != nil && o.deletingDependents {
				gc.attemptToDelete.Add(o)
			}
		}
		n.owners = slices.Clone(obj.OwnerReferences)
		gc.addToOwners(n, added)
		for _, r := range removed {
			if o := gc.uidToNode[r.UID]; o != nil {
				delete(o.dependents, n)
			}
		}
	}
	n.observed = true
	n.resource, n.namespaced = gvr, namespaced
	n.beingDeleted = obj.DeletionTimestamp != nil
	if n.beingDeleted && hasFinalizer(obj.Finalizers, metav1.FinalizerOrphanDependents) {
		gc.attemptToOrphan.Add(n)
	}
	if n.beingDeleted && hasFinalizer(obj.Finalizers, metav1.FinalizerDeleteDependents) {
		n.deletingDependents = true
		for d := range n.dependents {
			gc.attemptToDelete.Add(d)
		}
		gc.attemptToDelete.Add(n)
	} else {
		n.deletingDependents = false
	}
}

// addToOwners links n under each owner, making virtual nodes for owners not seen yet and
// queueing n when an owner may already be gone.
func (gc *GarbageCollector) addToOwners(n *node, refs []metav1.OwnerReference) {
	for _, r := range refs {
		o := gc.uidToNode[r.UID]
		if o == nil {
			o = &node{id: identity{APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name, UID: r.UID, Namespace: n.id.Namespace},
				dependents: map[*node]struct{}{}}
			gc.uidToNode[r.UID] = o
			gc.attemptToDelete.Add(o) // verify the owner exists
		}
		o.dependents[n] = struct{}{}
		if o.deletingDependents || gc.isAbsent(r.UID) {
			gc.attemptToDelete.Add(n)
		}
	}
}

// removeNode drops n from the graph: its dependents lost an owner, and owners waiting for
// their dependents to go may now finish.
func (gc *GarbageCollector) removeNode(n *node) {
	delete(gc.uidToNode, n.id.UID)
	for _, r := range n.owners {
		if o := gc.uidToNode[r.UID]; o != nil {
			delete(o.dependents, n)
			if o.deletingDependents {
				gc.attemptToDelete.Add(o)
			}
			if !o.observed && len(o.dependents) == 0 {
				delete(gc.uidToNode, o.id.UID)
			}
		}
	}
	for d := range n.dependents {
		gc.attemptToDelete.Add(d)
	}
}

func (gc *GarbageCollector) isAbsent(uid types.UID) bool {
	gc.absentMu.Lock()
	defer gc.absentMu.Unlock()
	_, ok := gc.absent[uid]
	return ok
}

func (gc *GarbageCollector) markAbsent(uid types.UID) {
	gc.absentMu.Lock()
	defer gc.absentMu.Unlock()
	if len(gc.absent) > 100000 {
		clear(gc.absent)
	}
	gc.absent[uid] = struct{}{}
}

func (gc *GarbageCollector) deleteWorker(ctx context.Context) {
	for {
		n, quit := gc.attemptToDelete.Get()
		if quit {
			return
		}
		err := gc.attemptToDeleteItem(ctx, n)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				gc.log.Info("garbage collection failed, retrying", "object", n.id, "err", err)
			}
			gc.attemptToDelete.AddRateLimited(n)
		} else {
			gc.attemptToDelete.Forget(n)
		}
		gc.attemptToDelete.Done(n)
	}
}

func (gc *GarbageCollector) orphanWorker(ctx context.Context) {
	for {
		n, quit := gc.attemptToOrphan.Get()
		if quit {
			return
		}
		err := gc.orphanDependents(ctx, n)
		if err != nil {
			gc.log.Info("orphaning failed, retrying", "object", n.id, "err", err)
			gc.attemptToOrphan.AddRateLimited(n)
		} else {
			gc.attemptToOrphan.Forget(n)
		}
		gc.attemptToOrphan.Done(n)
	}
}

// resourceFor maps an apiVersion and kind to a resource and whether it is namespaced.
func (gc *GarbageCollector) resourceFor(apiVersion, kind string) (schema.GroupVersionResource, bool, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionResource{}, false, err
	}
	gc.monMu.Lock()
	mapper := gc.mapper
	gc.monMu.Unlock()
	if mapper == nil {
		return schema.GroupVersionResource{}, false, errors.New("no discovery yet")
	}
	m, err := mapper.RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	if err != nil {
		return schema.GroupVersionResource{}, false, err
	}
	return m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// get fetches the live metadata of the object id names (nil, nil when it does not exist or
// is another object of the same name).
func (gc *GarbageCollector) get(ctx context.Context, id identity) (*metav1.PartialObjectMetadata, schema.GroupVersionResource, string, error) {
	gvr, namespaced, err := gc.resourceFor(id.APIVersion, id.Kind)
	if err != nil {
		return nil, gvr, "", err
	}
	ns := ""
	if namespaced {
		ns = id.Namespace
	}
	obj, err := gc.meta.Resource(gvr).Namespace(ns).Get(ctx, id.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, gvr, ns, nil
	}
	if err != nil {
		return nil, gvr, ns, err
	}
	if obj.UID != id.UID {
		return nil, gvr, ns, nil
	}
	return obj, gvr, ns, nil
}

func (gc *GarbageCollector) attemptToDeleteItem(ctx context.Context, n *node) error {
	gc.mu.Lock()
	if n.beingDeleted && !n.deletingDependents {
		gc.mu.Unlock()
		return nil
	}
	id, observed, deletingDependents := n.id, n.observed, n.deletingDependents
	gc.mu.Unlock()

	latest, gvr, ns, err := gc.get(ctx, id)
	if err != nil {
		if meta.IsNoMatchError(err) && !observed {
			gc.virtualDelete(n) // an owner of a kind nobody serves cannot exist
			return nil
		}
		return err
	}
	if latest == nil {
		gc.markAbsent(id.UID)
		if !observed {
			gc.virtualDelete(n)
		}
		return nil
	}
	if !observed {
		return nil // the owner exists; its informer will show it
	}
	if deletingDependents {
		return gc.processDeletingDependents(ctx, n, gvr, ns)
	}
	if len(latest.OwnerReferences) == 0 {
		return nil
	}
	solid, dangling, waiting, err := gc.classifyReferences(ctx, latest)
	if err != nil {
		return err
	}
	switch {
	case len(solid) != 0:
		if len(dangling) == 0 && len(waiting) == 0 {
			return nil
		}
		drop := map[types.UID]bool{}
		for _, r := range append(dangling, waiting...) {
			drop[r.UID] = true
		}
		return gc.removeOwnerReferences(ctx, gvr, ns, id.Name, id.UID, drop)
	case len(waiting) != 0 && gc.hasDependents(n):
		// n's owner waits for n, and n has dependents: delete n in the foreground too. If a
		// dependent of n is itself waiting (a cycle), unblock n's references first.
		if gc.dependentDeletingDependents(n) {
			if err := gc.unblockOwnerReferences(ctx, gvr, ns, latest); err != nil {
				return err
			}
		}
		return gc.deleteObject(ctx, gvr, ns, id, metav1.DeletePropagationForeground)
	default:
		policy := metav1.DeletePropagationBackground
		switch {
		case hasFinalizer(latest.Finalizers, metav1.FinalizerOrphanDependents):
			policy = metav1.DeletePropagationOrphan
		case hasFinalizer(latest.Finalizers, metav1.FinalizerDeleteDependents):
			policy = metav1.DeletePropagationForeground
		}
		gc.log.Debug("deleting object whose owners are gone", "object", id, "propagation", policy)
		return gc.deleteObject(ctx, gvr, ns, id, policy)
	}
}

func (gc *GarbageCollector) hasDependents(n *node) bool {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return len(n.dependents) > 0
}

func (gc *GarbageCollector) dependentDeletingDependents(n *node) bool {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for d := range n.dependents {
		if d.deletingDependents {
			return true
		}
	}
	return false
}

// virtualDelete removes a virtual node proven absent, which queues its dependents.
func (gc *GarbageCollector) virtualDelete(n *node) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if cur := gc.uidToNode[n.id.UID]; cur == n && !n.observed {
		gc.removeNode(n)
	}
}

// classifyReferences sorts latest's owners into present (solid), absent (dangling) and
// being deleted in the foreground (waiting), with live GETs.
func (gc *GarbageCollector) classifyReferences(ctx context.Context, latest *metav1.PartialObjectMetadata) (solid, dangling, waiting []metav1.OwnerReference, err error) {
	for _, r := range latest.OwnerReferences {
		if gc.isAbsent(r.UID) {
			dangling = append(dangling, r)
			continue
		}
		owner, _, _, gerr := gc.get(ctx, identity{APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name, UID: r.UID, Namespace: latest.Namespace})
		if gerr != nil {
			return nil, nil, nil, fmt.Errorf("owner %s %s: %w", r.Kind, r.Name, gerr)
		}
		switch {
		case owner == nil:
			gc.markAbsent(r.UID)
			dangling = append(dangling, r)
		case owner.DeletionTimestamp != nil && hasFinalizer(owner.Finalizers, metav1.FinalizerDeleteDependents):
			waiting = append(waiting, r)
		default:
			solid = append(solid, r)
		}
	}
	return solid, dangling, waiting, nil
}

// processDeletingDependents finishes a foreground deletion once no blocking dependent is
// left, and otherwise makes sure each blocking dependent is being deleted.
func (gc *GarbageCollector) processDeletingDependents(ctx context.Context, n *node, gvr schema.GroupVersionResource, ns string) error {
	gc.mu.Lock()
	blocking := n.blockingDependents()
	var pending []*node
	for _, d := range blocking {
		if !d.deletingDependents {
			pending = append(pending, d)
		}
	}
	gc.mu.Unlock()
	if len(blocking) == 0 {
		return gc.removeFinalizer(ctx, gvr, ns, n.id, metav1.FinalizerDeleteDependents)
	}
	for _, d := range pending {
		gc.attemptToDelete.Add(d)
	}
	return nil
}

// orphanDependents removes owner's references from its dependents, then the orphan finalizer.
func (gc *GarbageCollector) orphanDependents(ctx context.Context, owner *node) error {
	gc.mu.Lock()
	id := owner.id
	gvr, ns := owner.resource, ""
	if owner.namespaced {
		ns = id.Namespace
	}
	deps := make([]*node, 0, len(owner.dependents))
	for d := range owner.dependents {
		deps = append(deps, d)
	}
	type target struct {
		gvr  schema.GroupVersionResource
		ns   string
		name string
		uid  types.UID
	}
	targets := make([]target, 0, len(deps))
	for _, d := range deps {
		dns := ""
		if d.namespaced {
			dns = d.id.Namespace
		}
		if d.observed {
			targets = append(targets, target{d.resource, dns, d.id.Name, d.id.UID})
		}
	}
	gc.mu.Unlock()

	var errs []error
	for _, t := range targets {
		if err := gc.removeOwnerReferences(ctx, t.gvr, t.ns, t.name, t.uid, map[types.UID]bool{id.UID: true}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return gc.removeFinalizer(ctx, gvr, ns, id, metav1.FinalizerOrphanDependents)
}

func (gc *GarbageCollector) deleteObject(ctx context.Context, gvr schema.GroupVersionResource, ns string, id identity, policy metav1.DeletionPropagation) error {
	uid := id.UID
	err := gc.meta.Resource(gvr).Namespace(ns).Delete(ctx, id.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or replaced by another object of the same name
	}
	return err
}

// jsonPatchOp is one RFC 6902 operation.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// patchList replaces a metadata list with a JSON patch whose test operation makes the API
// server refuse it if the list changed since it was read.
func (gc *GarbageCollector) patchList(ctx context.Context, gvr schema.GroupVersionResource, ns, name string, uid types.UID, path string, old, new any, empty bool) error {
	ops := []jsonPatchOp{
		{Op: "test", Path: "/metadata/uid", Value: uid},
		{Op: "test", Path: path, Value: old},
	}
	if empty {
		ops = append(ops, jsonPatchOp{Op: "remove", Path: path})
	} else {
		ops = append(ops, jsonPatchOp{Op: "replace", Path: path, Value: new})
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	_, err = gc.meta.Resource(gvr).Namespace(ns).Patch(ctx, name, types.JSONPatchType, body, metav1.PatchOptions{})
	return err
}

// removeOwnerReferences drops the references to the given owners from an object.
func (gc *GarbageCollector) removeOwnerReferences(ctx context.Context, gvr schema.GroupVersionResource, ns, name string, uid types.UID, drop map[types.UID]bool) error {
	for attempt := 0; ; attempt++ {
		obj, err := gc.meta.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if obj.UID != uid {
			return nil
		}
		var keep []metav1.OwnerReference
		for _, r := range obj.OwnerReferences {
			if !drop[r.UID] {
				keep = append(keep, r)
			}
		}
		if len(keep) == len(obj.OwnerReferences) {
			return nil
		}
		err = gc.patchList(ctx, gvr, ns, name, uid, "/metadata/ownerReferences", obj.OwnerReferences, keep, len(keep) == 0)
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if attempt >= 5 || !retriablePatchError(err) {
			return err
		}
	}
}

// unblockOwnerReferences sets blockOwnerDeletion=false on latest's references to owners that
// are waiting for their dependents (breaks foreground cycles).
func (gc *GarbageCollector) unblockOwnerReferences(ctx context.Context, gvr schema.GroupVersionResource, ns string, latest *metav1.PartialObjectMetadata) error {
	refs := slices.Clone(latest.OwnerReferences)
	f := false
	for i := range refs {
		if blocks(refs[i]) {
			refs[i].BlockOwnerDeletion = &f
		}
	}
	err := gc.patchList(ctx, gvr, ns, latest.Name, latest.UID, "/metadata/ownerReferences", latest.OwnerReferences, refs, false)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// removeFinalizer removes one finalizer from the live object id names.
func (gc *GarbageCollector) removeFinalizer(ctx context.Context, gvr schema.GroupVersionResource, ns string, id identity, finalizer string) error {
	for attempt := 0; ; attempt++ {
		obj, err := gc.meta.Resource(gvr).Namespace(ns).Get(ctx, id.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if obj.UID != id.UID || !hasFinalizer(obj.Finalizers, finalizer) {
			return nil
		}
		keep := slices.DeleteFunc(slices.Clone(obj.Finalizers), func(f string) bool { return f == finalizer })
		err = gc.patchList(ctx, gvr, ns, id.Name, id.UID, "/metadata/finalizers", obj.Finalizers, keep, len(keep) == 0)
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if attempt >= 5 || !retriablePatchError(err) {
			return err
		}
	}
}

// retriablePatchError: a failed test operation (the object changed under us) or a conflict.
func retriablePatchError(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}
