package apiserver

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nanokube/nanokube/internal/storage"
)

// The resourceStore's reads and writes. For a resource with shared storage (events.k8s.io
// events) they convert between the served kind and the stored one; for every other resource
// they are the storage calls themselves.

func (rs *resourceStore) out(obj runtime.Object) runtime.Object {
	if rs.res.SharedStorage == nil || obj == nil {
		return obj
	}
	return rs.res.SharedStorage.FromStorage(obj)
}

func (rs *resourceStore) in(obj runtime.Object) runtime.Object {
	if rs.res.SharedStorage == nil {
		return obj
	}
	return rs.res.SharedStorage.ToStorage(obj)
}

// inFilter adapts a filter on the served kind to the stored objects the cache holds.
func (rs *resourceStore) inFilter(f func(runtime.Object) bool) func(runtime.Object) bool {
	if rs.res.SharedStorage == nil || f == nil {
		return f
	}
	return func(obj runtime.Object) bool { return f(rs.out(obj)) }
}

func (rs *resourceStore) get(ctx context.Context, key string, rev int64) (runtime.Object, error) {
	obj, err := rs.store.Get(ctx, key, rev)
	return rs.out(obj), err
}

func (rs *resourceStore) create(ctx context.Context, key string, obj runtime.Object) error {
	stored := rs.in(obj)
	if err := rs.store.Create(ctx, key, stored); err != nil {
		return err
	}
	copyResourceVersion(obj, stored)
	if m, err := meta.Accessor(stored); err == nil {
		if rev, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64); err == nil {
			raiseTo(&rs.lastCreate, rev)
		}
	}
	return nil
}

// raiseTo sets a to v unless it already holds more.
func raiseTo(a *atomic.Int64, v int64) {
	for last := a.Load(); v > last; last = a.Load() {
		if a.CompareAndSwap(last, v) {
			return
		}
	}
}

func (rs *resourceStore) update(ctx context.Context, key string, obj runtime.Object, rev int64) error {
	stored := rs.in(obj)
	if err := rs.store.Update(ctx, key, stored, rev); err != nil {
		return err
	}
	copyResourceVersion(obj, stored)
	return nil
}

func (rs *resourceStore) remove(ctx context.Context, key string, rev int64) (runtime.Object, error) {
	obj, err := rs.store.Delete(ctx, key, rev)
	return rs.out(obj), err
}

func (rs *resourceStore) listPage(ctx context.Context, prefix string, opts storage.ListOptions) (*storage.ListResult, error) {
	page, err := rs.store.List(ctx, prefix, opts)
	if err == nil && rs.res.SharedStorage != nil {
		for i := range page.Items {
			page.Items[i] = rs.out(page.Items[i])
		}
	}
	return page, err
}

func (rs *resourceStore) cacheGet(ctx context.Context, key string, minRev int64) (runtime.Object, error) {
	obj, _, err := rs.cache.Get(ctx, key, minRev)
	return rs.out(obj), err
}

func (rs *resourceStore) cacheList(ctx context.Context, prefix string, minRev int64, filter func(runtime.Object) bool) ([]runtime.Object, int64, error) {
	items, rev, err := rs.cache.List(ctx, prefix, minRev, rs.inFilter(filter))
	if err == nil && rs.res.SharedStorage != nil {
		for i := range items {
			items[i] = rs.out(items[i])
		}
	}
	return items, rev, err
}

func copyResourceVersion(dst, src runtime.Object) {
	if dst == src {
		return
	}
	d, _ := meta.Accessor(dst)
	s, _ := meta.Accessor(src)
	d.SetResourceVersion(s.GetResourceVersion())
}

// lookup reads the object at key from the watch cache, and from etcd when the cache has not
// seen it (it may lag a write that just happened), as admission's existence checks need.
func (rs *resourceStore) lookup(ctx context.Context, key string) (runtime.Object, error) {
	obj, err := rs.cacheGet(ctx, key, 0)
	if errors.Is(err, storage.ErrNotFound) {
		obj, err = rs.get(ctx, key, 0)
	}
	return obj, err
}

// currentForUpdate returns a private copy of the object at key: from the watch cache when
// fromCache (falling back to etcd if the cache has not seen it yet), else from etcd.
func (rs *resourceStore) currentForUpdate(ctx context.Context, key string, fromCache bool) (runtime.Object, error) {
	if fromCache {
		obj, err := rs.cacheGet(ctx, key, 0)
		if err == nil {
			return obj.DeepCopyObject(), nil
		}
	}
	return rs.get(ctx, key, 0)
}
