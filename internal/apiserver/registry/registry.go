// Package registry describes the resources the API server serves: for each one its names,
// scope and subresources (what discovery advertises) and its strategy (defaulting, validation,
// table columns and selectable fields). The API server's generic handlers do everything else.
package registry

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one REST resource in one group-version.
type Resource struct {
	GroupVersion schema.GroupVersion
	Resource     string // plural, lower case: "pods"
	Kind         string // "Pod"
	ListKind     string // "PodList"
	SingularName string
	ShortNames   []string
	Categories   []string
	Namespaced   bool
	// Subresources served under <resource>/<name>/<sub>: "status", "scale", "binding", "log",
	// "exec", "attach", "portforward", "proxy", "eviction".
	Subresources []string
	Strategy     Strategy
	// SharedStorage, when set, stores this resource as another one (events.k8s.io/v1 events
	// are core/v1 events in etcd, as in Kubernetes): one key space, one watch cache, objects
	// converted on the way in and out.
	SharedStorage *SharedStorage
}

// SharedStorage names the resource whose storage is shared and converts between the two.
// The conversions must carry metadata (resourceVersion included) unchanged.
type SharedStorage struct {
	Resource    schema.GroupVersionResource
	ToStorage   func(runtime.Object) runtime.Object
	FromStorage func(runtime.Object) runtime.Object
}

// GroupVersionResource returns the resource's GVR.
func (r *Resource) GroupVersionResource() schema.GroupVersionResource {
	return r.GroupVersion.WithResource(r.Resource)
}

// GroupVersionKind returns the resource's GVK.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion.WithKind(r.Kind)
}

// HasSubresource reports whether sub is served for the resource.
func (r *Resource) HasSubresource(sub string) bool {
	for _, s := range r.Subresources {
		if s == sub {
			return true
		}
	}
	return false
}

// Strategy is the per-resource behaviour. Every function may be nil: nil means "nothing to do"
// (no defaults, no extra validation, only the NAME/AGE table columns, only metadata fields).
// Functions receive typed objects from k8s.io/api (for example *corev1.Pod) and never keep them.
type Strategy struct {
	// Default fills the Kubernetes defaults into obj in place, as kube-apiserver's defaulting
	// does on decode (on create, update and patch results).
	Default func(obj runtime.Object)
	// PrepareForCreate resets what a client may not set on create (for example status for
	// resources that have a status subresource). Runs before Default and Validate.
	PrepareForCreate func(obj runtime.Object)
	// PrepareForUpdate, after the API server has split spec and status between the resource
	// and its status subresource, keeps what the writer of subresource sub ("" for the
	// resource itself) may not change, for resources whose split is finer (a CSR's approval).
	PrepareForUpdate func(sub string, obj, old runtime.Object)
	// Validate checks a new object. Object metadata (name, namespace, labels, annotations) is
	// validated by the API server itself; this checks the rest.
	Validate func(obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update against the stored object: immutable fields and the same
	// rules as Validate.
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
	// Columns and Row make the server-side table (kubectl get), in Kubernetes' column order,
	// NAME and AGE included (see NameColumn, AgeColumn, Age); Row returns one cell per column.
	// Nil Columns means DefaultColumns and DefaultRow.
	Columns []metav1.TableColumnDefinition
	Row     func(obj runtime.Object) []interface{}
	// Fields returns the selectable fields beyond metadata.name and metadata.namespace, for
	// field selectors (for pods: spec.nodeName, status.phase, ...).
	Fields func(obj runtime.Object) fields.Set
}
