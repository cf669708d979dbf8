// Package controllerref answers three questions a workload controller asks about the objects
// it controls through their controller owner reference (metadata.ownerReferences with
// controller: true):
//
//   - which cached owner does a dependent's reference name (Resolve): the informer event
//     handlers use it to turn a pod event into the key of the owner to sync. A reference of
//     another kind, to an owner not in the cache, or to an owner since replaced by a
//     namesake (another UID) resolves to nothing.
//   - which owners may adopt an orphan (Adopters): the event handlers wake them when an
//     object without a controller appears or changes its labels.
//   - which dependents may a sync look at (Index, OrphanKey): an informer index that
//     files each dependent under its controller's UID and each dependent without a
//     controller under its namespace's orphan key, so that a sync reads the objects its owner
//     controls and the ones it may adopt, not the whole namespace.
//
// It holds no state; every function is safe for concurrent use. Adoption and release (the
// patches, and when they are allowed) stay with each controller: they differ per kind.
package controllerref
