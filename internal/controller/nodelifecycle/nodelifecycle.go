package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Defaults as in kube-controller-manager.
const (
	DefaultNodeMonitorGracePeriod = 40 * time.Second
	DefaultNodeMonitorPeriod      = 5 * time.Second
)

// NodeLeaseNamespace holds the nodes' heartbeat Leases.
const NodeLeaseNamespace = corev1.NamespaceNodeLease

const podsByNodeIndex = "nodelifecycle/nodeName"

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder // nil: no events
	Log       *slog.Logger         // the caller names the controller in it; nil: discard
	// NodeMonitorGracePeriod is how long a node may stay silent before it is marked Unknown
	// (0: DefaultNodeMonitorGracePeriod).
	NodeMonitorGracePeriod time.Duration
	// NodeMonitorPeriod is how often every node is checked besides the timers set from its
	// last heartbeat (0: DefaultNodeMonitorPeriod, or the grace period if shorter).
	NodeMonitorPeriod time.Duration
}

// Controller is the node lifecycle controller with its taint-eviction half.
type Controller struct {
	client      kubernetes.Interface
	nodeLister  corelisters.NodeLister
	leaseLister coordinationlisters.LeaseLister
	podLister   corelisters.PodLister
	podIndexer  cache.Indexer
	synced      []cache.InformerSynced
	nodeQueue   workqueue.TypedRateLimitingInterface[string]
	podQueue    workqueue.TypedRateLimitingInterface[string]
	recorder    record.EventRecorder
	log         *slog.Logger
	grace       time.Duration
	period      time.Duration
	now         func() time.Time

	mu        sync.Mutex
	health    map[string]*nodeHealth
	evictions map[string]time.Time // pod key → when its eviction is due
	// From the last pass over all nodes: the ready nodes of each zone, and how many in all.
	zonesKnown bool
	zoneReady  map[string]map[string]bool
	totalReady int
	allDown    bool
}

// nodeHealth is what the controller last saw of a node's heartbeats.
type nodeHealth struct {
	probe          time.Time // our clock, when a heartbeat last changed
	leaseRenew     time.Time
	readyHeartbeat time.Time
	readyStatus    corev1.ConditionStatus
}

// New builds the controller and registers its informer handlers.
func New(cfg Config) (*Controller, error) {
	nodeInformer := cfg.Informers.Core().V1().Nodes()
	podInformer := cfg.Informers.Core().V1().Pods()
	leaseInformer := cfg.Informers.Coordination().V1().Leases()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		client:      cfg.Client,
		nodeLister:  nodeInformer.Lister(),
		leaseLister: leaseInformer.Lister(),
		podLister:   podInformer.Lister(),
		podIndexer:  podInformer.Informer().GetIndexer(),
		synced: []cache.InformerSynced{nodeInformer.Informer().HasSynced, podInformer.Informer().HasSynced,
			leaseInformer.Informer().HasSynced},
		nodeQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "node_lifecycle"}),
		podQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "taint_eviction"}),
		recorder:  cfg.Recorder,
		log:       log,
		grace:     cfg.NodeMonitorGracePeriod,
		period:    cfg.NodeMonitorPeriod,
		now:       time.Now,
		health:    map[string]*nodeHealth{},
		evictions: map[string]time.Time{},
	}
	if c.recorder == nil {
		c.recorder = &record.FakeRecorder{}
	}
	if c.grace <= 0 {
		c.grace = DefaultNodeMonitorGracePeriod
	}
	if c.period <= 0 {
		c.period = min(DefaultNodeMonitorPeriod, c.grace)
	}
	if err := podInformer.Informer().AddIndexers(cache.Indexers{podsByNodeIndex: func(obj any) ([]string, error) {
		if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName != "" {
			return []string{pod.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			node := obj.(*corev1.Node)
			c.nodeQueue.Add(node.Name)
			if len(noExecuteTaints(node.Spec.Taints)) > 0 {
				c.enqueuePodsOn(node.Name)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Node), cur.(*corev1.Node)
			c.nodeQueue.Add(n.Name)
			if !sameTaints(noExecuteTaints(o.Spec.Taints), noExecuteTaints(n.Spec.Taints)) {
				c.enqueuePodsOn(n.Name)
			}
		},
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.nodeQueue.Add(key)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := leaseInformer.Informer().AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			l, ok := obj.(*coordinationv1.Lease)
			return ok && l.Namespace == NodeLeaseNamespace
		},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.nodeQueue.Add(obj.(*coordinationv1.Lease).Name) },
			UpdateFunc: func(_, obj any) { c.nodeQueue.Add(obj.(*coordinationv1.Lease).Name) },
		},
	}); err != nil {
		return nil, err
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.podChanged,
		UpdateFunc: func(_, obj any) { c.podChanged(obj) },
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.podQueue.Add(key)
			}
		},
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// podChanged queues a pod for the eviction check when its node has NoExecute taints.
func (c *Controller) podChanged(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return
	}
	node, err := c.nodeLister.Get(pod.Spec.NodeName)
	if err != nil || len(noExecuteTaints(node.Spec.Taints)) == 0 {
		c.mu.Lock()
		_, scheduled := c.evictions[podKey(pod)]
		c.mu.Unlock()
		if !scheduled {
			return
		}
	}
	c.podQueue.Add(podKey(pod))
}

func (c *Controller) enqueuePodsOn(node string) {
	objs, err := c.podIndexer.ByIndex(podsByNodeIndex, node)
	if err != nil {
		return
	}
	for _, obj := range objs {
		c.podQueue.Add(podKey(obj.(*corev1.Pod)))
	}
}

func podKey(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

// Run runs workers for both queues until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.nodeQueue.ShutDown()
	defer c.podQueue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	if nodes, err := c.nodeLister.List(labels.Everything()); err == nil {
		c.updateZones(nodes)
	}
	for range max(workers, 1) {
		go wait.UntilWithContext(ctx, func(ctx context.Context) { c.drain(ctx, c.nodeQueue, c.syncNode) }, time.Second)
		go wait.UntilWithContext(ctx, func(ctx context.Context) { c.drain(ctx, c.podQueue, c.syncPod) }, time.Second)
	}
	// Every node is looked at every period, whatever the events and timers say, after the
	// zones' disruption states are worked out.
	wait.UntilWithContext(ctx, func(context.Context) {
		nodes, err := c.nodeLister.List(labels.Everything())
		if err != nil {
			return
		}
		c.updateZones(nodes)
		for _, n := range nodes {
			c.nodeQueue.Add(n.Name)
		}
	}, c.period)
}

// zoneKey is a node's failure domain, as Kubernetes' GetZoneKey.
func zoneKey(node *corev1.Node) string {
	return node.Labels[corev1.LabelTopologyRegion] + ":\x00:" + node.Labels[corev1.LabelTopologyZone]
}

func nodeReady(node *corev1.Node) bool {
	ready := condition(node.Status.Conditions, corev1.NodeReady)
	return ready != nil && ready.Status == corev1.ConditionTrue
}

// updateZones records the ready nodes of each zone, from which disruption works out
// Kubernetes' FullDisruption zone state.
func (c *Controller) updateZones(nodes []*corev1.Node) {
	zoneReady := map[string]map[string]bool{}
	total := 0
	for _, n := range nodes {
		z := zoneKey(n)
		if zoneReady[z] == nil {
			zoneReady[z] = map[string]bool{}
		}
		if nodeReady(n) {
			zoneReady[z][n.Name] = true
			total++
		}
	}
	allDown := len(nodes) > 0 && total == 0
	c.mu.Lock()
	was := c.allDown
	c.zonesKnown, c.zoneReady, c.totalReady, c.allDown = true, zoneReady, total, allDown
	c.mu.Unlock()
	switch {
	case allDown && !was:
		c.log.Warn("no node is ready: entering master disruption mode, NoExecute taints are removed and no pod is evicted")
	case !allDown && was:
		c.log.Info("some nodes are ready again: leaving master disruption mode")
	}
}

// disruption is the tainting mode for a node: the last pass's zone states, corrected for the
// node's own readiness now.
func (c *Controller) disruption(node *corev1.Node) disruption {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.zonesKnown {
		return normal
	}
	z := zoneKey(node)
	inZone, total := len(c.zoneReady[z]), c.totalReady
	switch was, is := c.zoneReady[z][node.Name], nodeReady(node); {
	case was && !is:
		inZone, total = inZone-1, total-1
	case !was && is:
		inZone, total = inZone+1, total+1
	}
	switch {
	case total <= 0:
		return allDisrupted
	case inZone <= 0:
		return zoneDisrupted
	}
	return normal
}

func (c *Controller) drain(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], sync func(context.Context, string) error) {
	for {
		key, quit := q.Get()
		if quit {
			return
		}
		if err := sync(ctx, key); err != nil {
			c.log.Info("sync failed, requeued", "key", key, "err", err)
			q.AddRateLimited(key)
		} else {
			q.Forget(key)
		}
		q.Done(key)
	}
}

// observe updates what is known of a node's heartbeats and returns when the last one was seen.
func (c *Controller) observe(node *corev1.Node, lease *coordinationv1.Lease, now time.Time) *nodeHealth {
	var renew, heartbeat time.Time
	if lease != nil && lease.Spec.RenewTime != nil {
		renew = lease.Spec.RenewTime.Time
	}
	ready := condition(node.Status.Conditions, corev1.NodeReady)
	if ready != nil {
		heartbeat = ready.LastHeartbeatTime.Time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.health[node.Name]
	if !ok {
		h = &nodeHealth{probe: now, leaseRenew: renew, readyHeartbeat: heartbeat}
		if ready != nil {
			h.readyStatus = ready.Status
		}
		c.health[node.Name] = h
	}
	if !renew.Equal(h.leaseRenew) {
		h.leaseRenew, h.probe = renew, now
	}
	if !heartbeat.Equal(h.readyHeartbeat) {
		h.readyHeartbeat, h.probe = heartbeat, now
	}
	cp := *h
	return &cp
}

func (c *Controller) syncNode(ctx context.Context, name string) error {
	node, err := c.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.health, name)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	lease, err := c.leaseLister.Leases(NodeLeaseNamespace).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	now := c.now()
	h := c.observe(node, lease, now)
	if silent := now.Sub(h.probe); silent >= c.grace {
		if updated, changed := markUnknown(node, now); changed {
			c.log.Info("node stopped posting status", "node", name, "silentFor", silent.Round(time.Millisecond))
			node, err = c.client.CoreV1().Nodes().UpdateStatus(ctx, updated, metav1.UpdateOptions{})
			if err != nil {
				return fmt.Errorf("marking node %s unknown: %w", name, err)
			}
		}
	} else {
		c.nodeQueue.AddAfter(name, c.grace-silent)
	}

	c.recordReadyChange(node)
	if taints, changed := desiredTaints(node, now, c.disruption(node)); changed {
		updated := node.DeepCopy()
		updated.Spec.Taints = taints
		if node, err = c.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating taints of node %s: %w", name, err)
		}
	}
	if ready := condition(node.Status.Conditions, corev1.NodeReady); ready != nil && ready.Status == corev1.ConditionUnknown {
		return c.markPodsNotReady(ctx, node.Name, now)
	}
	return nil
}

// recordReadyChange emits NodeNotReady / NodeReady when the Ready condition changes.
func (c *Controller) recordReadyChange(node *corev1.Node) {
	status := corev1.ConditionUnknown
	if ready := condition(node.Status.Conditions, corev1.NodeReady); ready != nil {
		status = ready.Status
	}
	c.mu.Lock()
	h := c.health[node.Name]
	prev := h.readyStatus
	h.readyStatus = status
	c.mu.Unlock()
	switch {
	case prev == corev1.ConditionTrue && status != corev1.ConditionTrue:
		c.recorder.Eventf(node, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", node.Name)
	case prev != corev1.ConditionTrue && prev != "" && status == corev1.ConditionTrue:
		c.recorder.Eventf(node, corev1.EventTypeNormal, "NodeReady", "Node %s status is now: NodeReady", node.Name)
	}
}

// markPodsNotReady sets Ready=False on the pods of a node whose status is unknown.
func (c *Controller) markPodsNotReady(ctx context.Context, nodeName string, now time.Time) error {
	objs, err := c.podIndexer.ByIndex(podsByNodeIndex, nodeName)
	if err != nil {
		return err
	}
	var errs []error
	for _, obj := range objs {
		pod := obj.(*corev1.Pod)
		if pod.Spec.NodeName != nodeName || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		ready := podCondition(pod.Status.Conditions, corev1.PodReady)
		if ready == nil || ready.Status == corev1.ConditionFalse {
			continue
		}
		updated := pod.DeepCopy()
		cond := podCondition(updated.Status.Conditions, corev1.PodReady)
		cond.Status, cond.LastTransitionTime = corev1.ConditionFalse, metav1.NewTime(now)
		if _, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("marking pod %s not ready: %w", podKey(pod), err))
			}
			continue
		}
		c.recorder.Event(pod, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
	}
	return errors.Join(errs...)
}

// nodeConditionTypes are the conditions a silent node's kubelet no longer vouches for.
var nodeConditionTypes = []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure,
	corev1.NodeDiskPressure, corev1.NodePIDPressure}

// markUnknown returns a copy of node with its conditions Unknown, and whether anything changed.
func markUnknown(node *corev1.Node, now time.Time) (*corev1.Node, bool) {
	updated := node.DeepCopy()
	changed := false
	for _, t := range nodeConditionTypes {
		cond := condition(updated.Status.Conditions, t)
		switch {
		case cond == nil:
			updated.Status.Conditions = append(updated.Status.Conditions, corev1.NodeCondition{
				Type: t, Status: corev1.ConditionUnknown, Reason: "NodeStatusNeverUpdated",
				Message: "Kubelet never posted node status.", LastHeartbeatTime: node.CreationTimestamp,
				LastTransitionTime: metav1.NewTime(now)})
			changed = true
		case cond.Status != corev1.ConditionUnknown:
			cond.Status, cond.Reason, cond.Message = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
			cond.LastTransitionTime = metav1.NewTime(now)
			changed = true
		}
	}
	return updated, changed
}

func condition(conds []corev1.NodeCondition, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func podCondition(conds []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}
