package kubelet

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// objectIdle is how long a watched object may go unread before its watch stops. Pods read
// theirs on every sync (resyncInterval), so only objects no pod uses any more go quiet.
const objectIdle = 2 * time.Minute

// objectCache serves the configMaps and secrets that pods on this node read, at every sync,
// from one watch per object (a list and watch on metadata.name, which the node authorizer
// allows), as the real kubelet's watch-based manager does: an idle pod costs no API request.
// The first read of an object goes to the API; if it succeeds or finds nothing, a watch of
// that object starts and later reads come from it once it has synced. A watch that cannot
// sync (refused, say) leaves reads going to the API, as before.
type objectCache struct {
	client kubernetes.Interface

	mu      sync.Mutex
	watches map[objectKey]*objectWatch
	stopped bool
}

type objectKey struct {
	resource, namespace, name string
}

type objectWatch struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
	lastRead time.Time
}

func newObjectCache(client kubernetes.Interface) *objectCache {
	return &objectCache{client: client, watches: map[objectKey]*objectWatch{}}
}

// ConfigMap returns the configMap, from its watch when there is one. The object is shared:
// the caller must not change it.
func (c *objectCache) ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error) {
	key := objectKey{"configmaps", namespace, name}
	obj, err := c.get(ctx, key, func(ctx context.Context) (any, error) {
		return c.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	}, func(tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
		return coreinformers.NewFilteredConfigMapInformer(c.client, namespace, 0, cache.Indexers{}, tweak)
	})
	if err != nil {
		return nil, err
	}
	return obj.(*v1.ConfigMap), nil
}

// Secret returns the secret, from its watch when there is one. The object is shared: the
// caller must not change it.
func (c *objectCache) Secret(ctx context.Context, namespace, name string) (*v1.Secret, error) {
	key := objectKey{"secrets", namespace, name}
	obj, err := c.get(ctx, key, func(ctx context.Context) (any, error) {
		return c.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	}, func(tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
		return coreinformers.NewFilteredSecretInformer(c.client, namespace, 0, cache.Indexers{}, tweak)
	})
	if err != nil {
		return nil, err
	}
	return obj.(*v1.Secret), nil
}

func (c *objectCache) get(ctx context.Context, key objectKey, direct func(context.Context) (any, error),
	newInformer func(func(*metav1.ListOptions)) cache.SharedIndexInformer) (any, error) {
	c.mu.Lock()
	w := c.watches[key]
	if w != nil {
		w.lastRead = time.Now()
	}
	c.mu.Unlock()
	if w != nil && w.informer.HasSynced() {
		obj, exists, err := w.informer.GetStore().GetByKey(key.namespace + "/" + key.name)
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: key.resource}, key.name)
		}
		return obj, nil
	}
	obj, err := direct(ctx)
	if w == nil && (err == nil || apierrors.IsNotFound(err)) {
		c.watch(key, newInformer)
	}
	return obj, err
}

func (c *objectCache) watch(key objectKey, newInformer func(func(*metav1.ListOptions)) cache.SharedIndexInformer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watches[key] != nil || c.stopped {
		return
	}
	inf := newInformer(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", key.name).String()
	})
	w := &objectWatch{informer: inf, stop: make(chan struct{}), lastRead: time.Now()}
	c.watches[key] = w
	go inf.Run(w.stop)
}

// prune stops the watches of objects no sync has read for objectIdle.
func (c *objectCache) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, w := range c.watches {
		if now.Sub(w.lastRead) > objectIdle {
			close(w.stop)
			delete(c.watches, key)
		}
	}
}

// stop ends every watch; reads go to the API from then on.
func (c *objectCache) stop() {
	c.prune(time.Now().Add(objectIdle + time.Hour))
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}
