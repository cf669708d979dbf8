package hollow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// LeaseNamespace holds the node Leases, as in Kubernetes.
const LeaseNamespace = "kube-node-lease"

// Config configures a set of simulated nodes.
type Config struct {
	Client kubernetes.Interface
	// Count is the number of nodes; they are named NamePrefix0 … NamePrefix<Count-1>.
	Count      int
	NamePrefix string // default "hollow-"
	// CPU, Memory and Pods are each node's capacity and allocatable (default 32, 256Gi, 110).
	CPU    string
	Memory string
	Pods   int
	// Labels are added to every node, next to kubernetes.io/hostname, os and arch.
	Labels map[string]string
	// Zones, when positive, spreads the nodes round-robin over topology.kubernetes.io/zone
	// values zone-0 … zone-<Zones-1>.
	Zones int
	// LeaseInterval is how often each node renews its Lease, the renewals of all nodes spread
	// evenly over it (default 10s; negative: no Leases).
	LeaseInterval time.Duration
	// DisablePodStatus leaves bound pods Pending (they are still deleted when terminating):
	// for benchmarks that measure the scheduler alone.
	DisablePodStatus bool
	// CompleteAfter, when positive, makes pods that are not restarted forever (restartPolicy
	// Never or OnFailure: Jobs' pods) succeed once they have run that long.
	CompleteAfter time.Duration
	// Workers bounds the concurrent API calls (default 16).
	Workers int
	Log     *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("hollow: a client is required"))
	}
	if c.Count < 0 || c.Count > maxNodes {
		errs = append(errs, fmt.Errorf("hollow: count %d is out of range 0-%d", c.Count, maxNodes))
	}
	if c.NamePrefix == "" {
		c.NamePrefix = "hollow-"
	}
	if c.CPU == "" {
		c.CPU = "32"
	}
	if c.Memory == "" {
		c.Memory = "256Gi"
	}
	if c.Pods == 0 {
		c.Pods = 110
	}
	for name, q := range map[string]string{"cpu": c.CPU, "memory": c.Memory} {
		if _, err := resource.ParseQuantity(q); err != nil {
			errs = append(errs, fmt.Errorf("hollow: %s %q: %w", name, q, err))
		}
	}
	if c.LeaseInterval == 0 {
		c.LeaseInterval = 10 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return errors.Join(errs...)
}

// maxNodes is how many nodes the address plan holds: node i has pod network
// 10.(64+i/256).(i%256).0/24 and host IP 100.64.(i/256).(i%256).
const maxNodes = (256 - 64) * 256

// node is the state of one simulated kubelet.
type node struct {
	index  int
	name   string
	hostIP string
	podNet netip.Prefix // a /24 the node's pod IPs come from
	nextIP atomic.Uint32
	silent atomic.Bool
	lease  atomic.Pointer[coordinationv1.Lease] // the last Lease written (for its resourceVersion)
}

// Nodes is a running set of simulated nodes.
type Nodes struct {
	cfg    Config
	nodes  []*node
	byName map[string]*node
	ready  chan struct{}

	pods     corelisters.PodLister
	podIndex cache.Indexer
	queue    workqueue.TypedRateLimitingInterface[string]
	mu       sync.Mutex // guards started
	run      bool
}

// New prepares Count nodes; Run registers them.
func New(cfg Config) (*Nodes, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Nodes{cfg: cfg, byName: make(map[string]*node, cfg.Count), ready: make(chan struct{})}
	for i := range cfg.Count {
		nd := &node{
			index:  i,
			name:   fmt.Sprintf("%s%d", cfg.NamePrefix, i),
			hostIP: fmt.Sprintf("100.64.%d.%d", i>>8, i&0xff),
			podNet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(64 + i>>8), byte(i), 0}), 24),
		}
		n.nodes = append(n.nodes, nd)
		n.byName[nd.name] = nd
	}
	return n, nil
}

// Names returns the node names in order.
func (n *Nodes) Names() []string {
	names := make([]string, len(n.nodes))
	for i, nd := range n.nodes {
		names[i] = nd.name
	}
	return names
}

// Ready is closed once every node is registered and the pod informer has synced.
func (n *Nodes) Ready() <-chan struct{} { return n.ready }

// Silence makes a node behave like a dead kubelet: its Lease is no longer renewed and its pods
// are left as they are.
func (n *Nodes) Silence(name string) error {
	nd, ok := n.byName[name]
	if !ok {
		return fmt.Errorf("hollow: no node %q", name)
	}
	nd.silent.Store(true)
	return nil
}

// Resume brings a silenced node back: it renews its Lease at once, re-posts Ready=True and
// handles its pods again.
func (n *Nodes) Resume(ctx context.Context, name string) error {
	nd, ok := n.byName[name]
	if !ok {
		return fmt.Errorf("hollow: no node %q", name)
	}
	nd.silent.Store(false)
	if n.cfg.LeaseInterval > 0 {
		if err := n.renewLease(ctx, nd); err != nil {
			return err
		}
	}
	if err := n.postReady(ctx, nd); err != nil {
		return err
	}
	if n.pods != nil {
		pods, _ := n.podsOn(nd.name)
		for _, p := range pods {
			n.queue.Add(p.Namespace + "/" + p.Name)
		}
	}
	return nil
}

// Run registers the nodes, then renews Leases and serves pods until ctx is done.
func (n *Nodes) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.run {
		n.mu.Unlock()
		return errors.New("hollow: Run called twice")
	}
	n.run = true
	n.mu.Unlock()

	log := n.cfg.Log
	start := time.Now()
	if err := n.parallel(ctx, func(ctx context.Context, nd *node) error { return n.register(ctx, nd) }); err != nil {
		return err
	}
	log.Info("hollow nodes registered", "count", len(n.nodes), "took", time.Since(start).Round(time.Millisecond))

	factory := informers.NewSharedInformerFactory(n.cfg.Client, 0)
	podInformer := factory.Core().V1().Pods().Informer()
	if err := podInformer.AddIndexers(cache.Indexers{nodeNameIndex: indexByNodeName}); err != nil {
		return err
	}
	n.pods = factory.Core().V1().Pods().Lister()
	n.podIndex = podInformer.GetIndexer()
	n.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "hollow-pods"})
	defer n.queue.ShutDown()
	enqueue := func(obj any) {
		pod, ok := obj.(*v1.Pod)
		if !ok {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				pod, _ = tomb.Obj.(*v1.Pod)
			}
		}
		if pod == nil || n.byName[pod.Spec.NodeName] == nil {
			return
		}
		n.queue.Add(pod.Namespace + "/" + pod.Name)
	}
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced) {
		return ctx.Err()
	}
	for range n.cfg.Workers {
		go func() {
			for n.processNext(ctx) {
			}
		}()
	}
	close(n.ready)
	if n.cfg.LeaseInterval > 0 {
		n.renewLeases(ctx)
	}
	<-ctx.Done()
	return ctx.Err()
}

const nodeNameIndex = "spec.nodeName"

func indexByNodeName(obj any) ([]string, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return nil, nil
	}
	return []string{pod.Spec.NodeName}, nil
}

// podsOn lists the cached pods bound to a node.
func (n *Nodes) podsOn(name string) ([]*v1.Pod, error) {
	objs, err := n.podIndex.ByIndex(nodeNameIndex, name)
	pods := make([]*v1.Pod, 0, len(objs))
	for _, o := range objs {
		pods = append(pods, o.(*v1.Pod))
	}
	return pods, err
}

// parallel runs f for every node with at most Workers calls in flight.
func (n *Nodes) parallel(ctx context.Context, f func(context.Context, *node) error) error {
	sem := make(chan struct{}, n.cfg.Workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, nd := range n.nodes {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(ctx, nd); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %s: %w", nd.name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more errors", len(errs)-3))
	}
	return errors.Join(errs...)
}

// retry retries transient API errors a few times with backoff.
func retry(ctx context.Context, f func() error) error {
	var err error
	_ = wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Steps: 6, Cap: 2 * time.Second},
		func(context.Context) (bool, error) {
			err = f()
			if err == nil {
				return true, nil
			}
			if apierrors.IsConflict(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
				apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsTimeout(err) {
				return false, nil
			}
			return false, err
		})
	return err
}
