package openapi

import (
	"net/http"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// allResources are the resources of issue 2, for measuring the full documents.
func allResources() []*registry.Resource {
	res := func(g, v, plural, kind string, namespaced bool, subs ...string) *registry.Resource {
		return &registry.Resource{GroupVersion: schema.GroupVersion{Group: g, Version: v}, Resource: plural, Kind: kind,
			ListKind: kind + "List", Namespaced: namespaced, Subresources: subs}
	}
	return []*registry.Resource{
		res("", "v1", "namespaces", "Namespace", false, "status", "finalize"),
		res("", "v1", "pods", "Pod", true, "status", "binding", "eviction", "log", "exec", "attach", "portforward", "proxy", "ephemeralcontainers", "resize"),
		res("", "v1", "nodes", "Node", false, "status", "proxy"),
		res("", "v1", "services", "Service", true, "status", "proxy"),
		res("", "v1", "endpoints", "Endpoints", true),
		res("", "v1", "configmaps", "ConfigMap", true),
		res("", "v1", "secrets", "Secret", true),
		res("", "v1", "serviceaccounts", "ServiceAccount", true),
		res("", "v1", "events", "Event", true),
		res("events.k8s.io", "v1", "events", "Event", true),
		res("coordination.k8s.io", "v1", "leases", "Lease", true),
		res("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true),
		res("apps", "v1", "deployments", "Deployment", true, "status", "scale"),
		res("apps", "v1", "replicasets", "ReplicaSet", true, "status", "scale"),
		res("apps", "v1", "statefulsets", "StatefulSet", true, "status", "scale"),
		res("apps", "v1", "daemonsets", "DaemonSet", true, "status"),
		res("apps", "v1", "controllerrevisions", "ControllerRevision", true),
		res("batch", "v1", "jobs", "Job", true, "status"),
		res("batch", "v1", "cronjobs", "CronJob", true, "status"),
		res("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, "status"),
		res("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, "status"),
		res("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, "status"),
		res("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false),
	}
}

func TestAllResources(t *testing.T) {
	s, err := New(allResources())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, gv := range s.GroupVersionPaths() {
		rec := get(t, s, "/openapi/v3/"+gv, "application/json")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", gv, rec.Code)
		}
		total += rec.Body.Len()
	}
	v2 := get(t, s, "/openapi/v2", "application/json")
	pb := get(t, s, "/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	doc, err := s.V2()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all resources: v2 JSON %d bytes (%d definitions), v2 protobuf %d bytes; %d v3 documents, %d JSON bytes in all",
		v2.Body.Len(), len(doc.Definitions), pb.Body.Len(), len(s.GroupVersionPaths()), total)
}

func BenchmarkNewAllResources(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := New(allResources()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildAllResources(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s, err := New(allResources())
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Build(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeAll measures New plus the first request for every document, which
// serializes them.
func BenchmarkServeAll(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s, err := New(allResources())
		if err != nil {
			b.Fatal(err)
		}
		get(b, s, "/openapi/v3", "")
		get(b, s, "/openapi/v2", "application/json")
		get(b, s, "/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	}
}
