package garbagecollector

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// identity names an object: its owner-reference fields plus its namespace.
type identity struct {
	APIVersion string
	Kind       string
	Name       string
	UID        types.UID
	Namespace  string
}

// node is an object in the dependency graph. All fields are guarded by
// GarbageCollector.mu.
type node struct {
	id         identity
	observed   bool // false: a virtual node, known only as someone's owner
	owners     []metav1.OwnerReference
	dependents map[*node]struct{}
	// resource is known for observed nodes (from the informer that saw them).
	resource   schema.GroupVersionResource
	namespaced bool

	beingDeleted       bool
	deletingDependents bool // foreground deletion in progress
}

func (n *node) ownerRefTo(owner types.UID) *metav1.OwnerReference {
	for i := range n.owners {
		if n.owners[i].UID == owner {
			return &n.owners[i]
		}
	}
	return nil
}

// blockingDependents are dependents whose reference to n has blockOwnerDeletion=true.
func (n *node) blockingDependents() []*node {
	var out []*node
	for d := range n.dependents {
		if ref := d.ownerRefTo(n.id.UID); ref != nil && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
			out = append(out, d)
		}
	}
	return out
}

// referenceDiffs returns the references only in new, only in old, and those whose
// blockOwnerDeletion went from true to something else.
func referenceDiffs(old, new []metav1.OwnerReference) (added, removed, unblocked []metav1.OwnerReference) {
	oldByUID := map[types.UID]metav1.OwnerReference{}
	for _, r := range old {
		oldByUID[r.UID] = r
	}
	for _, r := range new {
		o, ok := oldByUID[r.UID]
		if !ok {
			added = append(added, r)
			continue
		}
		delete(oldByUID, r.UID)
		if blocks(o) && !blocks(r) {
			unblocked = append(unblocked, r)
		}
	}
	for _, r := range old {
		if _, ok := oldByUID[r.UID]; ok {
			removed = append(removed, r)
		}
	}
	return added, removed, unblocked
}

func blocks(r metav1.OwnerReference) bool {
	return r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion
}

func hasFinalizer(finalizers []string, f string) bool {
	for _, x := range finalizers {
		if x == f {
			return true
		}
	}
	return false
}
