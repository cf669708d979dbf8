package apiserver

import (
	"context"
	"net/http"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/apiserver/resourcemetrics"
)

// The resource metrics API (metrics.k8s.io) is served by the API server itself from
// scraped kubelet summaries; see package resourcemetrics. (The file also holds the
// conversions of resources served in two versions, needed since autoscaling/v1.)

func (s *Server) newResourceMetrics() (*resourcemetrics.Metrics, error) {
	return resourcemetrics.New(resourcemetrics.Config{Source: cachedNodesAndPods{s}, ClientCert: s.cfg.KubeletClientCert,
		Resolution: s.cfg.MetricResolution, Log: s.log.With("component", "resource-metrics")})
}

// serveResourceMetrics answers /apis/metrics.k8s.io/v1beta1/...; the group-version root
// itself is discovery.
func (s *Server) serveResourceMetrics(w http.ResponseWriter, r *http.Request) {
	if strings.TrimSuffix(r.URL.Path, "/")+"/" == resourcemetrics.Prefix {
		s.discovery.serveGroupOrVersion(w, r, s.codecs)
		return
	}
	s.resourceMetrics.ServeHTTP(w, r)
}

// cachedNodesAndPods reads nodes and pods from the watch caches: scrapes and metric lists
// need no consistent read, and the cache costs etcd nothing.
type cachedNodesAndPods struct{ s *Server }

func (c cachedNodesAndPods) Nodes(ctx context.Context) ([]*corev1.Node, error) {
	rs := c.s.resources[schema.GroupVersionResource{Version: "v1", Resource: "nodes"}]
	items, _, err := rs.cacheList(ctx, rs.listPrefix(""), 0, nil)
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Node, 0, len(items))
	for _, it := range items {
		if n, ok := it.(*corev1.Node); ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func (c cachedNodesAndPods) Pods(ctx context.Context, namespace string) ([]*corev1.Pod, error) {
	rs := c.s.resources[schema.GroupVersionResource{Version: "v1", Resource: "pods"}]
	items, _, err := rs.cacheList(ctx, rs.listPrefix(namespace), 0, nil)
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, 0, len(items))
	for _, it := range items {
		if p, ok := it.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// extraGroupVersion is a group-version whose resources discovery lists as given.
type extraGroupVersion struct {
	gv        schema.GroupVersion
	resources []metav1.APIResource
}

// registerSharedStorageConversions teaches the scheme to convert between each served kind
// and the kind it is stored as, so that the field manager can move managedFields entries
// between the two versions (an autoscaling/v1 write of an autoscaling/v2 object).
func registerSharedStorageConversions(scheme *runtime.Scheme, resources []*registry.Resource) error {
	for _, res := range resources {
		sh := res.SharedStorage
		if sh == nil {
			continue
		}
		served, err := scheme.New(res.GroupVersionKind())
		if err != nil {
			return err
		}
		var stored runtime.Object
		for _, owner := range resources {
			if owner.GroupVersionResource() == sh.Resource {
				if stored, err = scheme.New(owner.GroupVersionKind()); err != nil {
					return err
				}
			}
		}
		if stored == nil {
			continue // reported by New
		}
		convert := func(fn func(runtime.Object) runtime.Object) conversion.ConversionFunc {
			return func(a, b any, _ conversion.Scope) error {
				out := fn(a.(runtime.Object).DeepCopyObject())
				reflect.ValueOf(b).Elem().Set(reflect.ValueOf(out).Elem())
				return nil
			}
		}
		if err := scheme.AddConversionFunc(served, stored, convert(sh.ToStorage)); err != nil {
			return err
		}
		if err := scheme.AddConversionFunc(stored, served, convert(sh.FromStorage)); err != nil {
			return err
		}
	}
	return nil
}
