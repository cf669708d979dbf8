package controllerref

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// is reports whether ref names an object of kind (its group, version and kind).
func is(ref *metav1.OwnerReference, kind schema.GroupVersionKind) bool {
	return ref.Kind == kind.Kind && ref.APIVersion == kind.GroupVersion().String()
}

// Resolve returns the owner that ref names, read with get (a lister's Get for ref's
// namespace), if ref is of kind and the cached object is the one ref was written for (the
// same UID); otherwise it returns T's zero value, nil for the pointer types listers return.
func Resolve[T metav1.Object](ref *metav1.OwnerReference, kind schema.GroupVersionKind, get func(name string) (T, error)) T {
	var none T
	if !is(ref, kind) {
		return none
	}
	owner, err := get(ref.Name)
	if err != nil || owner.GetUID() != ref.UID {
		return none
	}
	return owner
}

// Adopters returns the owners that may adopt an orphan labelled orphanLabels: those, of the
// ones list (a lister's List for the orphan's namespace) returns, whose selector matches. An
// owner whose selector is invalid or empty adopts nothing, and an orphan without labels has
// no adopters; neither has one when list fails.
func Adopters[T any](list func(labels.Selector) ([]T, error), selector func(T) *metav1.LabelSelector, orphanLabels map[string]string) []T {
	if len(orphanLabels) == 0 {
		return nil
	}
	owners, err := list(labels.Everything())
	if err != nil {
		return nil
	}
	var out []T
	for _, o := range owners {
		sel, err := metav1.LabelSelectorAsSelector(selector(o))
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(orphanLabels)) {
			out = append(out, o)
		}
	}
	return out
}

// OrphanKey is the value Index files the objects of namespace without a controller under.
func OrphanKey(namespace string) string { return "orphan/" + namespace }

// Index is an informer index function that files an object under the UID of its controller,
// whatever its kind (a UID names one object, so a lookup by an owner's UID finds only that
// owner's dependents), and an object without a controller under OrphanKey(namespace).
func Index(obj any) ([]string, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return []string{OrphanKey(o.GetNamespace())}, nil
}
