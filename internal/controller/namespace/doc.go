// Package namespace is the namespace controller: when a namespace is deleted (the API server
// sets its deletionTimestamp and phase Terminating and keeps it while spec.finalizers holds
// "kubernetes"), it deletes every namespaced object in it — every resource discovery lists
// with the delete verb, by deletecollection where served, else one by one — waits until
// nothing is left, then removes "kubernetes" from spec.finalizers through the finalize
// subresource, upon which the API server deletes the namespace.
//
// Progress is reported in the namespace's conditions like Kubernetes
// (NamespaceDeletionDiscoveryFailure, NamespaceDeletionContentFailure,
// NamespaceContentRemaining, NamespaceFinalizersRemaining). While content remains, the
// namespace is checked again after a short, growing delay.
package namespace
