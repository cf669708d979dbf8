package apiserver

import (
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/storage"
)

// resourceStore serves one resource: its etcd prefix, watch cache and field managers.
type resourceStore struct {
	s       *Server
	res     *registry.Resource
	gr      schema.GroupResource
	prefix  string // "/registry/pods/" or "/registry/apps/deployments/"
	store   *storage.Store
	cache   *storage.Cacher  // shared with the owning resource under SharedStorage
	fields  sets.Set[string] // selectable field labels
	managed map[string]*managedfields.FieldManager
	hasSpec bool
	hasStat bool
	// lastCreate is the revision of the newest object this server created: a watch cache at
	// that revision or later holds every object this server made (see namespaceQuotas).
	lastCreate atomic.Int64
}

func newResourceStore(s *Server, res *registry.Resource) (*resourceStore, error) {
	gvk := res.GroupVersionKind()
	obj, err := s.codecs.scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("resource %s: %w", res.Resource, err)
	}
	prefix := "/registry/" + res.Resource + "/"
	if res.GroupVersion.Group != "" {
		prefix = "/registry/" + res.GroupVersion.Group + "/" + res.Resource + "/"
	}
	rs := &resourceStore{
		s: s, res: res, gr: res.GroupVersionResource().GroupResource(), prefix: prefix, store: s.cfg.Store,
		fields:  sets.New("metadata.name", "metadata.namespace"),
		managed: map[string]*managedfields.FieldManager{},
	}
	if res.Strategy.Fields != nil {
		for k := range res.Strategy.Fields(obj) {
			rs.fields.Insert(k)
		}
	}
	v := reflect.ValueOf(obj).Elem()
	rs.hasSpec = v.FieldByName("Spec").IsValid()
	rs.hasStat = v.FieldByName("Status").IsValid() && res.HasSubresource("status")
	for _, sub := range []string{"", "status", "approval"} {
		if sub == "approval" && !res.HasSubresource(sub) {
			continue
		}
		fm, err := managedfields.NewDefaultFieldManager(s.typeConverter, s.codecs.scheme, defaulter{res}, s.codecs.scheme,
			gvk, res.GroupVersion, sub, nil)
		if err != nil {
			return nil, fmt.Errorf("field manager for %s: %w", res.Resource, err)
		}
		rs.managed[sub] = fm
	}
	return rs, nil
}

// defaulter adapts a strategy's Default to runtime.ObjectDefaulter (used by apply).
type defaulter struct{ res *registry.Resource }

func (d defaulter) Default(obj runtime.Object) {
	if d.res.Strategy.Default != nil {
		d.res.Strategy.Default(obj)
	}
}

func (rs *resourceStore) key(namespace, name string) string {
	if rs.res.Namespaced {
		return rs.prefix + namespace + "/" + name
	}
	return rs.prefix + name
}

// listPrefix is the key prefix of a list in namespace ("" = all namespaces).
func (rs *resourceStore) listPrefix(namespace string) string {
	if rs.res.Namespaced && namespace != "" {
		return rs.prefix + namespace + "/"
	}
	return rs.prefix
}

func (rs *resourceStore) newObject() runtime.Object {
	obj, _ := rs.s.codecs.scheme.New(rs.res.GroupVersionKind())
	obj.GetObjectKind().SetGroupVersionKind(rs.res.GroupVersionKind())
	return obj
}

func (rs *resourceStore) newList() runtime.Object {
	gvk := rs.res.GroupVersion.WithKind(rs.res.ListKind)
	obj, _ := rs.s.codecs.scheme.New(gvk)
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj
}

// fieldSet returns the values of the selectable fields of obj.
func (rs *resourceStore) fieldSet(obj runtime.Object) fields.Set {
	m, _ := meta.Accessor(obj)
	set := fields.Set{"metadata.name": m.GetName()}
	if rs.res.Namespaced {
		set["metadata.namespace"] = m.GetNamespace()
	}
	if rs.res.Strategy.Fields != nil {
		for k, v := range rs.res.Strategy.Fields(obj) {
			set[k] = v
		}
	}
	return set
}

// selection is a parsed label and field selector.
type selection struct {
	labels labels.Selector
	fields fields.Selector
}

func (rs *resourceStore) parseSelection(labelSel, fieldSel string) (selection, error) {
	var sel selection
	var err error
	if sel.labels, err = labels.Parse(labelSel); err != nil {
		return sel, badRequest("unable to parse requirement: %v", err)
	}
	if sel.fields, err = fields.ParseSelector(fieldSel); err != nil {
		return sel, badRequest("invalid field selector: %v", err)
	}
	for _, req := range sel.fields.Requirements() {
		if !rs.fields.Has(req.Field) {
			return sel, badRequest("field label not supported: %s", req.Field)
		}
	}
	return sel, nil
}

func (sel selection) empty() bool { return sel.labels.Empty() && sel.fields.Empty() }

// filter returns the predicate of a selection (nil when it selects everything).
func (rs *resourceStore) filter(sel selection) func(runtime.Object) bool {
	if sel.empty() {
		return nil
	}
	return func(obj runtime.Object) bool {
		m, err := meta.Accessor(obj)
		if err != nil {
			return false
		}
		if !sel.labels.Matches(labels.Set(m.GetLabels())) {
			return false
		}
		return sel.fields.Empty() || sel.fields.Matches(rs.fieldSet(obj))
	}
}

// nameFromFieldSelector returns the name a "metadata.name=x" selector pins, if any.
func nameFromFieldSelector(sel fields.Selector) string {
	if v, ok := sel.RequiresExactMatch("metadata.name"); ok {
		return v
	}
	return ""
}

// specOf and statusOf reach the Spec and Status fields that most kinds have.
func fieldOf(obj runtime.Object, name string) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName(name)
}

func specEqual(a, b runtime.Object) bool {
	sa, sb := fieldOf(a, "Spec"), fieldOf(b, "Spec")
	if !sa.IsValid() {
		return true
	}
	return reflect.DeepEqual(sa.Interface(), sb.Interface())
}

// copyField sets dst.<name> = src.<name>.
func copyField(dst, src runtime.Object, name string) {
	d, s := fieldOf(dst, name), fieldOf(src, name)
	if d.IsValid() && d.CanSet() {
		d.Set(s)
	}
}

func qualifiedName(gr schema.GroupResource) string {
	return strings.TrimSuffix(gr.String(), ".")
}
