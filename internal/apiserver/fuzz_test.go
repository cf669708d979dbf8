package apiserver

import (
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/apiserver/registry/builtin"
)

// fuzzServer is just enough of a Server to decode and patch: no storage is touched.
func fuzzServer(t testing.TB) (*Server, map[string]*resourceStore) {
	s := &Server{codecs: newCodecs()}
	stores := map[string]*resourceStore{}
	for _, r := range builtin.Resources() {
		stores[r.Resource] = &resourceStore{s: s, res: r, gr: r.GroupVersionResource().GroupResource()}
	}
	return s, stores
}

var contentTypes = []string{runtime.ContentTypeJSON, runtime.ContentTypeYAML, runtime.ContentTypeProtobuf}

// FuzzDecode feeds arbitrary bodies to the request decoder of every kind and content type:
// it must return an object or an error, never panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}}`), uint8(0), uint8(0))
	f.Add([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n"), uint8(1), uint8(1))
	f.Add([]byte("k8s\x00\n\x02v1\x12\x03Pod"), uint8(2), uint8(0))
	f.Add([]byte(`{"metadata":{"name":"a","name":"b"},"nope":[1,2,{}]}`), uint8(0), uint8(3))
	s, stores := fuzzServer(f)
	var resources []*registry.Resource
	for _, rs := range stores {
		resources = append(resources, rs.res)
	}
	f.Fuzz(func(t *testing.T, body []byte, ct, kind uint8) {
		res := resources[int(kind)%len(resources)]
		r := httptest.NewRequest("POST", "/api/v1/namespaces/default/x?fieldValidation=Strict", nil)
		r.Header.Set("Content-Type", contentTypes[int(ct)%len(contentTypes)])
		obj, err := s.decodeObject(httptest.NewRecorder(), r, body, res.GroupVersionKind())
		if err == nil && obj == nil {
			t.Fatal("no object and no error")
		}
		if err == nil && res.Strategy.Default != nil {
			res.Strategy.Default(obj)
		}
		if err == nil && res.Strategy.Validate != nil {
			_ = res.Strategy.Validate(obj)
		}
	})
}

// FuzzPatch applies arbitrary JSON, merge and strategic merge patches to a pod: the result is
// a pod or an error, never a panic.
func FuzzPatch(f *testing.F) {
	f.Add([]byte(`[{"op":"replace","path":"/spec/containers/0/image","value":"x"}]`), uint8(0))
	f.Add([]byte(`{"metadata":{"labels":{"a":null}}}`), uint8(1))
	f.Add([]byte(`{"spec":{"containers":[{"name":"c","$patch":"delete"}],"$setElementOrder/containers":[{"name":"c"}]}}`), uint8(2))
	f.Add([]byte(`{"spec":{"$retainKeys":["containers"],"containers":null}}`), uint8(2))
	s, stores := fuzzServer(f)
	rs := stores["pods"]
	types := []types.PatchType{types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType}
	base := &corev1.Pod{}
	base.APIVersion, base.Kind = "v1", "Pod"
	base.Name, base.Namespace = "p", "default"
	base.Labels = map[string]string{"a": "b"}
	base.Spec.Containers = []corev1.Container{{Name: "c", Image: "i", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}}
	f.Fuzz(func(t *testing.T, patch []byte, kind uint8) {
		pt := types[int(kind)%len(types)]
		r := httptest.NewRequest("PATCH", "/api/v1/namespaces/default/pods/p", strings.NewReader(""))
		r.Header.Set("Content-Type", string(pt))
		obj, err := s.applyPatch(httptest.NewRecorder(), r, rs, pt, patch, base.DeepCopy())
		if err == nil {
			if _, ok := obj.(*corev1.Pod); !ok {
				t.Fatalf("patch produced %T", obj)
			}
		}
	})
}
