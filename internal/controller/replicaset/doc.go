// Package replicaset is the ReplicaSet controller: it keeps spec.replicas active pods for each
// ReplicaSet, adopting orphan pods that match its selector and releasing owned pods that no
// longer do, and reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas and
// observedGeneration in the status.
//
// It follows kube-controller-manager's replicaset controller: creations and deletions are
// counted in expectations so that a sync never acts on a stale informer cache; pods are
// created in slow-start batches (1, 2, 4, ...) that stop at the first failure; when scaling
// down, unscheduled, pending, not-ready and newer pods go first. It records SuccessfulCreate,
// SuccessfulDelete, FailedCreate and FailedDelete events on the ReplicaSet.
//
// The package does not import the controller manager; New takes the clients and informers,
// and Run(ctx, workers) blocks until ctx is done.
package replicaset
