package resourcemetrics

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	"k8s.io/utils/ptr"
)

type fakeSource struct {
	nodes []*corev1.Node
	pods  []*corev1.Pod
}

func (f fakeSource) Nodes(context.Context) ([]*corev1.Node, error) { return f.nodes, nil }

func (f fakeSource) Pods(_ context.Context, ns string) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, p := range f.pods {
		if ns == "" || p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out, nil
}

func testMetrics(t *testing.T) *Metrics {
	t.Helper()
	src := fakeSource{
		nodes: []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}}}},
		pods: []*corev1.Pod{
			{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web", Labels: map[string]string{"app": "web"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "idle", Namespace: "default", UID: "uid-idle", Labels: map[string]string{"app": "idle"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "other", UID: "uid-web2", Labels: map[string]string{"app": "web"}}},
		},
	}
	m, err := New(Config{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	sum := summary(cstat{at: 0, nanoCores: ptr.To[uint64](250e6), memory: ptr.To[uint64](1 << 30)},
		map[string][]cstat{"web": {{name: "app", at: 0, nanoCores: ptr.To[uint64](120e6), memory: ptr.To[uint64](64 << 20)}}})
	other := statsv1alpha1.PodStats{PodRef: statsv1alpha1.PodReference{Name: "web", Namespace: "other", UID: "uid-web2"}}
	other.Containers = sum.Pods[0].Containers
	sum.Pods = append(sum.Pods, other)
	m.Store().Replace(map[string]*statsv1alpha1.Summary{"n1": sum})
	return m
}

func get(t *testing.T, m *Metrics, method, path, accept string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	return w
}

func TestHandler(t *testing.T) {
	m := testMetrics(t)
	for _, tc := range []struct {
		name, method, path string
		code               int
		want               []string // substrings of the body
	}{
		{"node list", "GET", "nodes", 200, []string{`"kind":"NodeMetricsList"`, `"name":"n1"`, `"zone":"a"`, `"cpu":"250m"`, `"memory":"1Gi"`, `"window":"15s"`}},
		{"node list by label", "GET", "nodes?labelSelector=zone%3Db", 200, []string{`"items":[]`}},
		{"one node", "GET", "nodes/n1", 200, []string{`"kind":"NodeMetrics"`, `"apiVersion":"metrics.k8s.io/v1beta1"`}},
		{"unknown node", "GET", "nodes/n2", 404, []string{`"reason":"NotFound"`, `nodes.metrics.k8s.io \"n2\" not found`}},
		{"all pods", "GET", "pods", 200, []string{`"namespace":"default"`, `"namespace":"other"`, `"cpu":"120m"`, `"memory":"64Mi"`}},
		{"pods of a namespace", "GET", "namespaces/other/pods", 200, []string{`"namespace":"other"`}},
		{"one pod", "GET", "namespaces/default/pods/web", 200, []string{`"kind":"PodMetrics"`, `"name":"app"`, `"app":"web"`}},
		{"pod without metrics yet", "GET", "namespaces/default/pods/idle", 404, []string{`pods.metrics.k8s.io \"idle\" not found`}},
		{"list with nothing measured", "GET", "namespaces/default/pods?labelSelector=app%3Didle", 200, []string{`"kind":"PodMetricsList"`, `"items":[]`}},
		{"field selector", "GET", "pods?fieldSelector=metadata.namespace%3Dother", 200, []string{`"namespace":"other"`}},
		{"unsupported field", "GET", "pods?fieldSelector=spec.nodeName%3Dn1", 400, []string{`field label not supported: spec.nodeName`}},
		{"bad label selector", "GET", "pods?labelSelector=a%3D%3D%3D", 400, []string{`"reason":"BadRequest"`}},
		{"write", "POST", "nodes", 405, []string{`"reason":"MethodNotAllowed"`}},
		{"watch", "GET", "pods?watch=true", 405, []string{`"reason":"MethodNotAllowed"`}},
		{"unknown path", "GET", "namespaces/default/services", 404, []string{`"kind":"Status"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, m, tc.method, Prefix+tc.path, "")
			body := w.Body.String()
			if w.Code != tc.code {
				t.Fatalf("code %d, want %d: %s", w.Code, tc.code, body)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %s:\n%s", s, body)
				}
			}
		})
	}
	if body := get(t, m, "GET", Prefix+"namespaces/default/pods", "").Body.String(); strings.Contains(body, `"namespace":"other"`) {
		t.Errorf("a namespaced list returned another namespace's pod: %s", body)
	}
}

func TestHandlerFormats(t *testing.T) {
	m := testMetrics(t)
	w := get(t, m, "GET", Prefix+"namespaces/default/pods/web", "application/vnd.kubernetes.protobuf, application/json")
	if ct := w.Header().Get("Content-Type"); ct != protobufType {
		t.Fatalf("content type %q", ct)
	}
	scheme := runtime.NewScheme()
	if err := metricsv1beta1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	obj, _, err := protobuf.NewSerializer(scheme, scheme).Decode(w.Body.Bytes(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pm, ok := obj.(*metricsv1beta1.PodMetrics)
	if !ok || pm.Name != "web" || len(pm.Containers) != 1 || pm.Containers[0].Usage.Cpu().MilliValue() != 120 || pm.Window.Duration != 15*time.Second {
		t.Fatalf("protobuf PodMetrics = %#v", obj)
	}

	w = get(t, m, "GET", Prefix+"nodes", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	var table metav1.Table
	if err := json.Unmarshal(w.Body.Bytes(), &table); err != nil {
		t.Fatal(err)
	}
	if table.Kind != "Table" || len(table.ColumnDefinitions) != 4 || len(table.Rows) != 1 ||
		table.Rows[0].Cells[0] != "n1" || table.Rows[0].Cells[1] != "250m" || table.Rows[0].Cells[2] != "1024Mi" {
		t.Fatalf("table = %+v", table)
	}
	if !strings.Contains(string(table.Rows[0].Object.Raw), `"kind":"PartialObjectMetadata"`) {
		t.Errorf("row object = %s", table.Rows[0].Object.Raw)
	}

	if w := get(t, m, "GET", Prefix+"nodes", "application/yaml"); w.Code != http.StatusNotAcceptable {
		t.Errorf("unservable Accept: code %d", w.Code)
	}
}

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]format{
		"": formatJSON, "*/*": formatJSON, "application/json": formatJSON,
		"application/vnd.kubernetes.protobuf,application/json":                                                            formatProtobuf,
		"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json": formatTable,
		"application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json":                               formatJSON,
	} {
		if got, ok := negotiate(accept); !ok || got != want {
			t.Errorf("negotiate(%q) = %v, %v; want %v", accept, got, ok, want)
		}
	}
}
