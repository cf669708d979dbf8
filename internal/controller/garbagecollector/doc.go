// Package garbagecollector deletes objects whose owners are gone, following
// metadata.ownerReferences like kube-controller-manager's garbage collector.
//
// It discovers every resource the API server serves with the list, watch and delete verbs
// (events excepted), watches each through a metadata-only informer
// (k8s.io/client-go/metadata/metadatainformer, so objects are held as PartialObjectMetadata),
// and keeps a graph of owner → dependents keyed by UID. Owners referenced before they are
// observed are virtual nodes until a live GET proves them present or absent. Discovery is
// redone every 30 seconds, so resources added later are collected too.
//
// Three deletion modes:
//   - background: when an owner disappears, each dependent is checked with live GETs of all
//     its owners; one without a remaining owner is deleted (with the propagation its own
//     finalizers ask for), one with others only loses the dangling references;
//   - foreground: an owner with deletionTimestamp and the foregroundDeletion finalizer has its
//     dependents deleted first; once no dependent with blockOwnerDeletion=true remains, the
//     finalizer is removed and the API server deletes the owner;
//   - orphan: an owner with deletionTimestamp and the orphan finalizer has its references
//     removed from every dependent, then the finalizer removed.
//
// Every decision is made on live objects fetched from the API server, never on the cache
// alone; changes are JSON patches with a test operation, so a concurrent writer causes a
// retry, not a lost update.
package garbagecollector
