package openapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

var (
	podGVK        = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
)

// testResources are a few resources shaped as the API server registers them.
func testResources() []*registry.Resource {
	core := schema.GroupVersion{Version: "v1"}
	apps := schema.GroupVersion{Group: "apps", Version: "v1"}
	return []*registry.Resource{
		{GroupVersion: core, Resource: "namespaces", Kind: "Namespace", ListKind: "NamespaceList", Subresources: []string{"status", "finalize"}},
		{GroupVersion: core, Resource: "pods", Kind: "Pod", ListKind: "PodList", Namespaced: true,
			Subresources: []string{"status", "binding", "eviction", "log", "exec", "attach", "portforward", "proxy", "ephemeralcontainers"}},
		{GroupVersion: core, Resource: "configmaps", Kind: "ConfigMap", ListKind: "ConfigMapList", Namespaced: true},
		{GroupVersion: apps, Resource: "deployments", Kind: "Deployment", ListKind: "DeploymentList", Namespaced: true,
			Subresources: []string{"status", "scale"}},
	}
}

func newTestSpec(t testing.TB) *Spec {
	t.Helper()
	s, err := New(testResources())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t testing.TB, h http.Handler, target, accept string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestV2Document(t *testing.T) {
	s := newTestSpec(t)
	rec := get(t, s, "/openapi/v2", "application/json")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi/v2: %d %s", rec.Code, rec.Body)
	}
	var doc spec.Swagger
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("v2 document does not parse: %v", err)
	}
	t.Logf("v2 JSON: %d bytes, %d definitions, %d paths", rec.Body.Len(), len(doc.Definitions), len(doc.Paths.Paths))

	pod, ok := doc.Definitions["io.k8s.api.core.v1.Pod"]
	if !ok {
		t.Fatal("no io.k8s.api.core.v1.Pod definition")
	}
	if !strings.Contains(pod.Description, "Pod is a collection of containers") {
		t.Errorf("Pod description = %q", pod.Description)
	}
	var gvks []map[string]string
	if err := pod.Extensions.GetObject(extGVK, &gvks); err != nil || len(gvks) != 1 ||
		gvks[0]["group"] != "" || gvks[0]["version"] != "v1" || gvks[0]["kind"] != "Pod" {
		t.Errorf("Pod %s = %v (%v)", extGVK, gvks, err)
	}
	q := doc.Definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"]
	if !q.Type.Contains("string") {
		t.Errorf("Quantity v2 schema type = %v, want string", q.Type)
	}
	ios := doc.Definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
	if !ios.Type.Contains("string") || ios.Format != "int-or-string" {
		t.Errorf("IntOrString v2 schema = %v %q, want string int-or-string", ios.Type, ios.Format)
	}

	patch := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"].Patch
	if patch == nil {
		t.Fatal("no PATCH on pods/{name}")
	}
	if patch.ID != "patchCoreV1NamespacedPod" {
		t.Errorf("operation ID = %q", patch.ID)
	}
	if a, _ := patch.Extensions.GetString(extAction); a != "patch" {
		t.Errorf("%s = %q", extAction, a)
	}
	if !hasParam(patch.Parameters, "fieldValidation") {
		t.Error("PATCH pods/{name} has no fieldValidation parameter")
	}
	scale := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"].Get
	var gvk map[string]string
	if scale == nil || scale.Extensions.GetObject(extGVK, &gvk) != nil || gvk["group"] != "autoscaling" || gvk["kind"] != "Scale" {
		t.Errorf("deployments/scale GET %s = %v", extGVK, gvk)
	}
}

func hasParam(params []spec.Parameter, name string) bool {
	for _, p := range params {
		if p.Name == name {
			return true
		}
	}
	return false
}

func TestV2Protobuf(t *testing.T) {
	s := newTestSpec(t)
	rec := get(t, s, "/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi/v2 (protobuf): %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" {
		t.Errorf("Content-Type = %q", ct)
	}
	t.Logf("v2 protobuf: %d bytes", rec.Body.Len())
}

func TestV3Documents(t *testing.T) {
	s := newTestSpec(t)
	rec := get(t, s, "/openapi/v3", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi/v3: %d", rec.Code)
	}
	var index handler3.OpenAPIV3Discovery
	if err := json.Unmarshal(rec.Body.Bytes(), &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Paths) != 2 {
		t.Fatalf("index paths = %v, want api/v1 and apis/apps/v1", index.Paths)
	}
	for _, gv := range []string{"api/v1", "apis/apps/v1"} {
		u := index.Paths[gv].ServerRelativeURL
		if !strings.HasPrefix(u, "/openapi/v3/"+gv+"?hash=") {
			t.Fatalf("index[%s] = %q", gv, u)
		}
		rec := get(t, s, u, "application/json")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", u, rec.Code)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "public, immutable" {
			t.Errorf("GET %s: Cache-Control = %q", u, cc)
		}
		if rec.Header().Get("Etag") == "" {
			t.Errorf("GET %s: no ETag", u)
		}
		var doc spec3.OpenAPI
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("%s does not parse: %v", gv, err)
		}
		t.Logf("v3 %s JSON: %d bytes, %d schemas, %d paths", gv, rec.Body.Len(), len(doc.Components.Schemas), len(doc.Paths.Paths))

		req := httptest.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("If-None-Match", rec.Header().Get("Etag"))
		cached := httptest.NewRecorder()
		s.ServeHTTP(cached, req)
		if cached.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", u, cached.Code)
		}
		pb := get(t, s, u, "application/com.github.proto-openapi.spec.v3@v1.0+protobuf")
		if pb.Code != http.StatusOK || pb.Header().Get("Content-Type") != "application/com.github.proto-openapi.spec.v3.v1.0+protobuf" {
			t.Errorf("GET %s as protobuf: %d %q", u, pb.Code, pb.Header().Get("Content-Type"))
		}
		if stale := get(t, s, "/openapi/v3/"+gv+"?hash=0123", ""); stale.Code != http.StatusMovedPermanently ||
			stale.Header().Get("Location") != u {
			t.Errorf("GET with a stale hash: %d Location %q, want 301 to %s", stale.Code, stale.Header().Get("Location"), u)
		}
	}

	doc, err := s.V3("api/v1")
	if err != nil {
		t.Fatal(err)
	}
	pod := doc.Components.Schemas["io.k8s.api.core.v1.Pod"]
	if pod == nil || pod.Description == "" {
		t.Fatal("api/v1 has no described io.k8s.api.core.v1.Pod schema")
	}
	if _, ok := pod.Extensions[extGVK]; !ok {
		t.Errorf("v3 Pod has no %s", extGVK)
	}
	if _, ok := doc.Components.Schemas["io.k8s.api.apps.v1.Deployment"]; ok {
		t.Error("api/v1 document holds apps/v1 schemas")
	}
	patch := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"].Patch
	found := false
	for _, p := range patch.Parameters {
		found = found || p.Name == "fieldValidation"
	}
	if !found {
		t.Error("v3 PATCH pods/{name} lacks an operation-level fieldValidation parameter (kubectl only looks there)")
	}

	if rec := get(t, s, "/openapi/v3/apis/nope/v1", ""); rec.Code != http.StatusNotFound {
		t.Errorf("unknown group-version: %d, want 404", rec.Code)
	}
}

func TestV3HashesAreStable(t *testing.T) {
	index := func() string {
		return get(t, newTestSpec(t), "/openapi/v3", "").Body.String()
	}
	if a, b := index(), index(); a != b {
		t.Errorf("v3 index differs between two builds:\n%s\n%s", a, b)
	}
}

func TestNewRejectsUnknownKinds(t *testing.T) {
	_, err := New([]*registry.Resource{{GroupVersion: schema.GroupVersion{Group: "example.com", Version: "v1"},
		Resource: "widgets", Kind: "Widget"}})
	if err == nil {
		t.Fatal("New accepted a kind that has no type")
	}
	if _, err := New(append(testResources(), testResources()[0])); err == nil {
		t.Fatal("New accepted a resource given twice")
	}
}

// TestConcurrentFirstUse lets many requests race to build and serialize the documents.
func TestConcurrentFirstUse(t *testing.T) {
	s := newTestSpec(t)
	targets := []string{"/openapi/v3", "/openapi/v2", "/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1"}
	done := make(chan int, 2*len(targets)+1)
	for i := 0; i < 2*len(targets); i++ {
		go func(target string) {
			done <- get(t, s, target, "").Code
		}(targets[i%len(targets)])
	}
	go func() {
		if got := s.UnknownFields(podGVK, map[string]interface{}{"x": 1}); len(got) != 1 {
			t.Errorf("UnknownFields = %q", got)
		}
		done <- http.StatusOK
	}()
	for i := 0; i < 2*len(targets)+1; i++ {
		if code := <-done; code != http.StatusOK {
			t.Errorf("status %d", code)
		}
	}
}
