package resourcequota

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/nanokube/nanokube/internal/controller/worker"

	"github.com/nanokube/nanokube/internal/quota"
)

// DefaultResyncPeriod is how often every quota is recounted (kube-controller-manager's
// --resource-quota-sync-period).
const DefaultResyncPeriod = 5 * time.Minute

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Metadata  metadata.Interface // counts count/<resource>.<group> of other kinds; nil: those stay 0
	Informers informers.SharedInformerFactory
	// ResyncPeriod recounts every quota this often; 0 means DefaultResyncPeriod.
	ResyncPeriod time.Duration
	Log          *slog.Logger // the caller names the controller in it; nil: discard
}

// Controller recomputes ResourceQuota status.
type Controller struct {
	client   kubernetes.Interface
	metadata metadata.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	quotas   corelisters.ResourceQuotaLister
	// listers are the kinds counted from informers, by group-resource.
	listers map[schema.GroupResource]func(namespace string) ([]runtime.Object, error)
	synced  []cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]
	resync  time.Duration
	log     *slog.Logger
	now     func() time.Time
}

// New builds the controller and registers its informer handlers.
func New(cc Config) (*Controller, error) {
	log := cc.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		client:   cc.Client,
		metadata: cc.Metadata,
		listers:  map[schema.GroupResource]func(string) ([]runtime.Object, error){},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "resourcequota"}),
		resync: cc.ResyncPeriod,
		log:    log,
		now:    time.Now,
	}
	if c.resync <= 0 {
		c.resync = DefaultResyncPeriod
	}
	if cc.Client != nil {
		c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cc.Client.Discovery()))
	}
	core := cc.Informers.Core().V1()
	rq := core.ResourceQuotas()
	c.quotas = rq.Lister()
	if _, err := rq.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.ResourceQuota), cur.(*corev1.ResourceQuota)
			// Admission's charges change status.used only: those need no recount.
			if !quota.Equal(o.Spec.Hard, n.Spec.Hard) || !quota.Equal(n.Spec.Hard, n.Status.Hard) {
				c.enqueue(cur)
			}
		},
	}); err != nil {
		return nil, err
	}
	c.synced = append(c.synced, rq.Informer().HasSynced)

	podLister := core.Pods().Lister()
	counted := []struct {
		gr       schema.GroupResource
		informer cache.SharedIndexInformer
		list     func(namespace string) ([]runtime.Object, error)
	}{
		{schema.GroupResource{Resource: "pods"}, core.Pods().Informer(), func(ns string) ([]runtime.Object, error) {
			items, err := podLister.Pods(ns).List(labels.Everything())
			return objects(items), err
		}},
		{schema.GroupResource{Resource: "services"}, core.Services().Informer(), func(ns string) ([]runtime.Object, error) {
			items, err := core.Services().Lister().Services(ns).List(labels.Everything())
			return objects(items), err
		}},
		{schema.GroupResource{Resource: "configmaps"}, core.ConfigMaps().Informer(), func(ns string) ([]runtime.Object, error) {
			items, err := core.ConfigMaps().Lister().ConfigMaps(ns).List(labels.Everything())
			return objects(items), err
		}},
		{schema.GroupResource{Resource: "secrets"}, core.Secrets().Informer(), func(ns string) ([]runtime.Object, error) {
			items, err := core.Secrets().Lister().Secrets(ns).List(labels.Everything())
			return objects(items), err
		}},
		{schema.GroupResource{Resource: "persistentvolumeclaims"}, core.PersistentVolumeClaims().Informer(), func(ns string) ([]runtime.Object, error) {
			items, err := core.PersistentVolumeClaims().Lister().PersistentVolumeClaims(ns).List(labels.Everything())
			return objects(items), err
		}},
		{schema.GroupResource{Resource: "resourcequotas"}, rq.Informer(), func(ns string) ([]runtime.Object, error) {
			items, err := c.quotas.ResourceQuotas(ns).List(labels.Everything())
			return objects(items), err
		}},
	}
	for _, k := range counted {
		c.listers[k.gr] = k.list
		if k.gr.Resource == "resourcequotas" {
			continue
		}
		handler := cache.ResourceEventHandlerFuncs{DeleteFunc: c.replenish}
		if k.gr.Resource == "pods" {
			handler.UpdateFunc = func(old, cur any) {
				// A pod that finishes or whose grace period is set gives its usage back.
				o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
				if quota.PodCounts(o, c.now()) && (!quota.PodCounts(n, c.now()) || n.DeletionTimestamp != nil && o.DeletionTimestamp == nil) {
					c.replenish(cur)
				}
			}
		}
		if k.gr.Resource == "services" || k.gr.Resource == "persistentvolumeclaims" {
			handler.UpdateFunc = func(_, cur any) { c.replenish(cur) } // a type change or a resize
		}
		if _, err := k.informer.AddEventHandler(handler); err != nil {
			return nil, err
		}
		c.synced = append(c.synced, k.informer.HasSynced)
	}
	return c, nil
}

func objects[T runtime.Object](items []T) []runtime.Object {
	out := make([]runtime.Object, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

func (c *Controller) enqueue(obj any) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

// replenish queues every quota of the namespace an object left or shrank in.
func (c *Controller) replenish(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	quotas, err := c.quotas.ResourceQuotas(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range quotas {
		c.enqueue(q)
	}
}

// Run runs workers until ctx is done, recounting every quota each resync period.
func (c *Controller) Run(ctx context.Context, workers int) {
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), c.synced...) {
			wait.UntilWithContext(ctx, c.resyncAll, c.resync)
		}
	}()
	worker.Pool{Queue: c.queue, Synced: c.synced, Sync: c.sync, Log: c.log, Name: "quota"}.Run(ctx, workers)
}

func (c *Controller) resyncAll(context.Context) {
	quotas, err := c.quotas.List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range quotas {
		c.enqueue(q)
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	if _, err := c.quotas.ResourceQuotas(namespace).Get(name); apierrors.IsNotFound(err) {
		return nil
	}
	// The lister's copy may not have admission's latest charge yet; judging "unchanged"
	// against it would leave a wrong status.used in place. Compare with the stored quota.
	q, err := c.client.CoreV1().ResourceQuotas(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	used, err := c.usage(ctx, q)
	if err != nil {
		return err
	}
	if quota.Equal(q.Status.Hard, q.Spec.Hard) && quota.Equal(q.Status.Used, used) {
		return nil
	}
	updated := q.DeepCopy()
	updated.Status.Hard = quota.Add(corev1.ResourceList{}, q.Spec.Hard)
	updated.Status.Used = used
	_, err = c.client.CoreV1().ResourceQuotas(namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		// Admission charged it meanwhile, or it is gone: the informer brings the new copy
		// and a conflict is worth a fresh look.
		if apierrors.IsConflict(err) {
			c.queue.AddRateLimited(key)
		}
		return nil
	}
	if err == nil {
		c.log.Debug("quota status updated", "quota", key, "used", quota.Format(used))
	}
	return err
}

// usage counts, for each name in spec.hard, what the namespace's objects in the quota's
// scopes use. Every hard name gets an entry, zero when nothing uses it.
func (c *Controller) usage(ctx context.Context, q *corev1.ResourceQuota) (corev1.ResourceList, error) {
	hard := quota.Names(q.Spec.Hard)
	used := corev1.ResourceList{}
	for _, n := range hard {
		used[n] = *resource.NewQuantity(0, resource.DecimalSI)
	}
	now := c.now()
	for gr, list := range c.listers {
		names := tracked(gr, hard)
		if len(names) == 0 {
			continue
		}
		items, err := list(q.Namespace)
		if err != nil {
			return nil, err
		}
		for _, obj := range items {
			if quota.InScope(q, obj) {
				used = quota.Add(used, quota.Mask(quota.Usage(gr, obj, now), names))
			}
		}
	}
	for _, n := range hard {
		gr, ok := quota.ParseCountName(n)
		if !ok || c.listers[gr] != nil || !quota.InScope(q, &metav1.PartialObjectMetadata{}) {
			continue
		}
		count, err := c.countOther(ctx, gr, q.Namespace)
		if err != nil {
			return nil, err
		}
		used[n] = *resource.NewQuantity(count, resource.DecimalSI)
	}
	return used, nil
}

func tracked(gr schema.GroupResource, names []corev1.ResourceName) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, n := range names {
		if quota.Tracks(gr, n) {
			out = append(out, n)
		}
	}
	return out
}

// countOther counts objects of a kind without an informer here with a metadata-only LIST.
// Kinds the server does not serve count 0.
func (c *Controller) countOther(ctx context.Context, gr schema.GroupResource, namespace string) (int64, error) {
	if c.metadata == nil || c.mapper == nil {
		return 0, nil
	}
	gvr, err := c.mapper.ResourceFor(gr.WithVersion(""))
	if err != nil {
		c.mapper.Reset()
		return 0, nil
	}
	list, err := c.metadata.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", gr, err)
	}
	return int64(len(list.Items)), nil
}
