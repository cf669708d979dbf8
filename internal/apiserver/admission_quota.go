package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/quota"
	"github.com/nanokube/nanokube/internal/storage"
)

// ResourceQuota admission, as in Kubernetes: a new object's usage is checked against every
// quota of its namespace that governs it, and charged to each quota's status.used with a
// compare-and-swap on the quota's resourceVersion before the object is written, so that
// racing creates cannot both take the last unit (the loser sees the conflict, re-reads and
// is refused). The resourcequota controller later recomputes status.used from the objects
// themselves. Unlike Kubernetes, a charge whose object then fails to be written is given back
// at once instead of waiting for the controller.

var resourceQuotasGVR = schema.GroupVersionResource{Version: "v1", Resource: "resourcequotas"}

// quotaCharge is usage charged to one quota.
type quotaCharge struct {
	namespace, name string
	usage           corev1.ResourceList
}

// chargeQuotas checks obj, about to be created as resource rs, against its namespace's
// quotas and, unless dryRun, charges them; undo gives the charges back.
func (s *Server) chargeQuotas(ctx context.Context, rs *resourceStore, obj runtime.Object, dryRun bool) (undo func(), err error) {
	undo = func() {}
	qs := s.resources[resourceQuotasGVR]
	if qs == nil || !rs.res.Namespaced {
		return undo, nil
	}
	m, _ := meta.Accessor(obj)
	items, err := namespaceQuotas(ctx, qs, m.GetNamespace(), false)
	if err != nil || len(items) == 0 {
		return undo, toStatusOrNil(err, qs.gr)
	}
	sort.Slice(items, func(i, j int) bool { return nameOf(items[i]) < nameOf(items[j]) })
	usage := quota.Usage(rs.gr, obj, time.Now())
	var charged []quotaCharge
	undo = func() {
		for _, c := range charged {
			s.unchargeQuota(context.WithoutCancel(ctx), qs, c)
		}
	}
	for _, it := range items {
		c, err := s.chargeQuota(ctx, qs, it.(*corev1.ResourceQuota), rs.gr, m.GetName(), obj, usage, dryRun)
		if err != nil {
			undo()
			return func() {}, err
		}
		if c != nil {
			charged = append(charged, *c)
		}
	}
	return undo, nil
}

// chargeQuota charges one quota, re-reading it from etcd after a conflict; it returns nil
// when the quota does not govern obj.
func (s *Server) chargeQuota(ctx context.Context, qs *resourceStore, q *corev1.ResourceQuota, gr schema.GroupResource, name string, obj runtime.Object, usage corev1.ResourceList, dryRun bool) (*quotaCharge, error) {
	key := qs.key(q.Namespace, q.Name)
	for attempt := 0; ; attempt++ {
		names := quota.Governs(q, gr, obj)
		if names == nil {
			return nil, nil
		}
		if pod, ok := obj.(*corev1.Pod); ok {
			if err := quota.Constraints(pod, names); err != nil {
				return nil, apierrors.NewForbidden(gr, name, fmt.Errorf("failed quota: %s: %v", q.Name, err))
			}
		}
		var unknown []string
		for _, n := range names {
			if _, ok := q.Status.Used[n]; !ok {
				unknown = append(unknown, string(n))
			}
		}
		if len(unknown) > 0 {
			return nil, apierrors.NewForbidden(gr, name, fmt.Errorf("status unknown for quota: %s, resources: %s", q.Name, strings.Join(unknown, ",")))
		}
		requested := quota.Mask(usage, names)
		if len(requested) == 0 {
			return nil, nil
		}
		newUsed := quota.Add(q.Status.Used, requested)
		if exceeded := quota.Exceeded(quota.Mask(newUsed, quota.Names(requested)), q.Status.Hard); len(exceeded) > 0 {
			return nil, apierrors.NewForbidden(gr, name, fmt.Errorf("exceeded quota: %s, requested: %s, used: %s, limited: %s", q.Name,
				quota.Format(quota.Mask(requested, exceeded)), quota.Format(quota.Mask(q.Status.Used, exceeded)), quota.Format(quota.Mask(q.Status.Hard, exceeded))))
		}
		if dryRun {
			return nil, nil
		}
		updated := q.DeepCopy()
		updated.Status.Used = newUsed
		rev, _ := strconv.ParseInt(q.ResourceVersion, 10, 64)
		err := qs.update(ctx, key, updated, rev)
		if err == nil {
			return &quotaCharge{namespace: q.Namespace, name: q.Name, usage: requested}, nil
		}
		if !errors.Is(err, storage.ErrConflict) || attempt >= 64 {
			return nil, toStatus(err, qs.gr, q.Name)
		}
		fresh, err := qs.get(ctx, key, 0)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil // the quota went away meanwhile
		}
		if err != nil {
			return nil, toStatus(err, qs.gr, q.Name)
		}
		q = fresh.(*corev1.ResourceQuota)
	}
}

// checkQuotaUpdate refuses an update that makes an object use more than its quotas allow
// (a Service turned NodePort, a claim grown). It charges nothing: the resourcequota
// controller recounts on such updates. Kubernetes charges here too; doing so inside the
// update's retry loop would charge every retry.
func (s *Server) checkQuotaUpdate(ctx context.Context, rs *resourceStore, obj, old runtime.Object) error {
	qs := s.resources[resourceQuotasGVR]
	if qs == nil || !rs.res.Namespaced {
		return nil
	}
	now := time.Now()
	delta := corev1.ResourceList{}
	for name, q := range quota.Subtract(quota.Usage(rs.gr, obj, now), quota.Usage(rs.gr, old, now)) {
		if q.Sign() > 0 {
			delta[name] = q
		}
	}
	if len(delta) == 0 {
		return nil
	}
	m, _ := meta.Accessor(obj)
	// From etcd: nothing is charged here, so no compare-and-swap would notice a usage the
	// cache has not seen yet.
	items, err := namespaceQuotas(ctx, qs, m.GetNamespace(), true)
	if err != nil {
		return toStatus(err, qs.gr, "")
	}
	for _, it := range items {
		if _, err := s.chargeQuota(ctx, qs, it.(*corev1.ResourceQuota), rs.gr, m.GetName(), obj, delta, true); err != nil {
			return err
		}
	}
	return nil
}

// namespaceQuotas returns the quotas of namespace: from the watch cache, unless fromEtcd.
// The cache may lag a quota created just before, and a create it let through would not be
// charged: an empty answer from a cache that has not yet seen every quota this server
// created is checked against etcd (kube-apiserver looks quotas up live when its lister finds
// none). Namespaces without quotas, the usual case, cost no etcd read once the cache is
// current.
func namespaceQuotas(ctx context.Context, qs *resourceStore, namespace string, fromEtcd bool) ([]runtime.Object, error) {
	if !fromEtcd {
		items, rev, err := qs.cacheList(ctx, qs.listPrefix(namespace), 0, nil)
		if err != nil || len(items) > 0 || rev >= qs.lastCreate.Load() {
			return items, err
		}
	}
	page, err := qs.listPage(ctx, qs.listPrefix(namespace), storage.ListOptions{})
	if err != nil {
		return nil, err
	}
	return page.Items, nil
}

// unchargeQuota gives back a charge whose object was not written. It is best effort: the
// resourcequota controller corrects whatever it misses.
func (s *Server) unchargeQuota(ctx context.Context, qs *resourceStore, c quotaCharge) {
	key := qs.key(c.namespace, c.name)
	for attempt := 0; attempt < 16; attempt++ {
		obj, err := qs.get(ctx, key, 0)
		if err != nil {
			return
		}
		q := obj.(*corev1.ResourceQuota)
		used := quota.Subtract(q.Status.Used, c.usage)
		for n, v := range used {
			if v.Sign() < 0 {
				v.Set(0)
				used[n] = v
			}
		}
		q.Status.Used = used
		rev, _ := strconv.ParseInt(q.ResourceVersion, 10, 64)
		err = qs.update(ctx, key, q, rev)
		if !errors.Is(err, storage.ErrConflict) {
			if err != nil {
				s.log.Warn("giving back a quota charge", "quota", c.namespace+"/"+c.name, "err", err)
			}
			return
		}
	}
}

func nameOf(obj runtime.Object) string {
	m, _ := meta.Accessor(obj)
	return m.GetName()
}

func toStatusOrNil(err error, gr schema.GroupResource) error {
	if err == nil {
		return nil
	}
	return toStatus(err, gr, "")
}
