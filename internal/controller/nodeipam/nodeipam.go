package nodeipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// DefaultNodeCIDRMaskSize is the IPv4 node CIDR prefix length Kubernetes uses.
const DefaultNodeCIDRMaskSize = 24

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder // nil: no events
	Log       *slog.Logger         // the caller names the controller in it; nil: discard
	// ClusterCIDR is the pod network; zero: the controller does nothing.
	ClusterCIDR netip.Prefix
	// NodeCIDRMaskSize is the prefix length of each node's range (0: 24 for IPv4, 64 for IPv6).
	NodeCIDRMaskSize int
}

// Controller is the node IPAM (range allocator) controller.
type Controller struct {
	client     kubernetes.Interface
	nodeLister corelisters.NodeLister
	synced     cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[string]
	recorder   record.EventRecorder
	log        *slog.Logger

	mu        sync.Mutex
	set       *cidrSet
	allocated map[string]netip.Prefix // node name → range we count as its
}

// New builds the controller; with a zero ClusterCIDR it returns one whose Run only waits.
func New(cfg Config) (*Controller, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{client: cfg.Client, recorder: cfg.Recorder, log: log,
		allocated: map[string]netip.Prefix{}}
	if c.recorder == nil {
		c.recorder = &record.FakeRecorder{}
	}
	if !cfg.ClusterCIDR.IsValid() {
		return c, nil
	}
	mask := cfg.NodeCIDRMaskSize
	if mask == 0 {
		mask = DefaultNodeCIDRMaskSize
		if cfg.ClusterCIDR.Addr().Is6() {
			mask = 64
		}
	}
	set, err := newCIDRSet(cfg.ClusterCIDR, mask)
	if err != nil {
		return nil, err
	}
	c.set = set
	nodeInformer := cfg.Informers.Core().V1().Nodes()
	c.nodeLister = nodeInformer.Lister()
	c.synced = nodeInformer.Informer().HasSynced
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodeipam"})
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, cur any) {
			if o, n := old.(*corev1.Node), cur.(*corev1.Node); o.Spec.PodCIDR != n.Spec.PodCIDR || n.Spec.PodCIDR == "" {
				enqueue(cur)
			}
		},
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run runs workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	if c.set == nil {
		<-ctx.Done()
		return
	}
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return
	}
	if err := c.recover(); err != nil {
		c.log.Error("recovering allocated node CIDRs", "err", err)
	}
	for range workers {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	<-ctx.Done()
}

// recover marks the ranges of the nodes in the cache as used.
func (c *Controller) recover() error {
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		c.observe(n)
	}
	return nil
}

// observe records the range a node already has; c.mu is held.
func (c *Controller) observe(n *corev1.Node) bool {
	for _, s := range podCIDRs(n) {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Is4() != c.set.cluster.Addr().Is4() {
			continue
		}
		if prev, ok := c.allocated[n.Name]; ok && prev != p {
			c.set.release(prev)
		}
		if c.set.occupy(p) {
			c.allocated[n.Name] = p
		}
		return true
	}
	return false
}

func podCIDRs(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		c.log.Info("sync failed, requeued", "node", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		if p, ok := c.allocated[name]; ok {
			c.set.release(p)
			delete(c.allocated, name)
			c.log.Info("released node CIDR", "node", name, "cidr", p)
		}
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.observe(node) {
		c.mu.Unlock()
		return nil
	}
	if p, ok := c.allocated[name]; ok {
		// Our earlier write has not reached the cache yet (or the node was recreated).
		c.mu.Unlock()
		return c.write(ctx, node, p)
	}
	p, err := c.set.allocate()
	if err == nil {
		c.allocated[name] = p
	}
	c.mu.Unlock()
	if err != nil {
		c.recorder.Eventf(node, corev1.EventTypeNormal, "CIDRNotAvailable", "Node %s status is now: CIDRNotAvailable", name)
		return fmt.Errorf("allocating a CIDR for node %s: %w", name, err)
	}
	return c.write(ctx, node, p)
}

// write sets the node's range. The range stays ours on failure: the retry either writes it
// again or finds the range the node got meanwhile (and observe releases ours); it is freed when
// the node is gone.
func (c *Controller) write(ctx context.Context, node *corev1.Node, p netip.Prefix) error {
	updated := node.DeepCopy()
	updated.Spec.PodCIDR = p.String()
	updated.Spec.PodCIDRs = []string{p.String()}
	_, err := c.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{})
	switch {
	case err == nil:
		c.log.Info("allocated node CIDR", "node", node.Name, "cidr", p)
		return nil
	case apierrors.IsNotFound(err):
		return nil // the delete event releases the range
	case !apierrors.IsConflict(err):
		c.recorder.Eventf(node, corev1.EventTypeWarning, "CIDRAssignmentFailed", "Failed to update node %s PodCIDR to %s: %v", node.Name, p, err)
	}
	return errors.Join(fmt.Errorf("updating node %s with pod CIDR %s", node.Name, p), err)
}
