package builtin

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// TestResources checks every resource against the scheme and runs each strategy function on a
// zero object: nothing may panic, and every row has one cell per column.
func TestResources(t *testing.T) {
	seen := sets.New[string]()
	for _, r := range Resources() {
		gvr := r.GroupVersionResource().String()
		if seen.Has(gvr) {
			t.Errorf("%s listed twice", gvr)
		}
		seen.Insert(gvr)
		for _, kind := range []string{r.Kind, r.ListKind} {
			if _, err := clientgoscheme.Scheme.New(r.GroupVersion.WithKind(kind)); err != nil {
				t.Errorf("%s: kind %s: %v", gvr, kind, err)
			}
		}
		if r.SingularName == "" {
			t.Errorf("%s: no singular name", gvr)
		}
		newObj := func() runtime.Object {
			obj, _ := clientgoscheme.Scheme.New(r.GroupVersionKind())
			return obj
		}
		s := r.Strategy
		obj := newObj()
		if s.PrepareForCreate != nil {
			s.PrepareForCreate(obj)
		}
		if s.Default != nil {
			s.Default(obj)
		}
		if s.Validate != nil {
			s.Validate(obj)
		}
		if s.ValidateUpdate != nil {
			s.ValidateUpdate(obj, newObj())
		}
		if s.Fields != nil {
			s.Fields(newObj())
		}
		cols := s.Columns
		row := registry.DefaultRow(obj)
		if cols == nil {
			cols = registry.DefaultColumns
		} else if s.Row == nil {
			t.Errorf("%s: Columns without Row", gvr)
			continue
		} else {
			row = s.Row(obj)
		}
		if len(row) != len(cols) {
			t.Errorf("%s: %d cells for %d columns", gvr, len(row), len(cols))
		}
		names := 0
		for _, c := range cols {
			if c.Format == "name" {
				names++
			}
		}
		if names != 1 {
			t.Errorf("%s: %d name columns, want 1", gvr, names)
		}
	}
	for _, want := range []string{"/v1, Resource=pods", "apps/v1, Resource=deployments", "batch/v1, Resource=cronjobs",
		"autoscaling/v2, Resource=horizontalpodautoscalers", "events.k8s.io/v1, Resource=events",
		"scheduling.k8s.io/v1, Resource=priorityclasses", "discovery.k8s.io/v1, Resource=endpointslices",
		"coordination.k8s.io/v1, Resource=leases", "policy/v1, Resource=poddisruptionbudgets"} {
		if !seen.Has(want) {
			t.Errorf("missing %s", want)
		}
	}
}
