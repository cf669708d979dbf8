// Package podgc deletes pods nobody else will clean up, as Kubernetes' pod garbage collector
// does, in one pass every GCPeriod over the informer caches:
//
//   - terminated pods (Succeeded or Failed) beyond TerminatedPodThreshold, oldest first;
//   - pods bound to a node that no longer exists, once the node has been missing for
//     Quarantine and a live GET confirms it is gone (a fresh node may not be in the cache yet);
//     they are first marked Failed with a DisruptionTarget condition (DeletionByPodGC);
//   - pods being deleted that were never scheduled (no kubelet will finish their deletion).
//
// Deletions are forced (grace period 0) with a UID precondition, so a pod recreated under the
// same name is never hit. A pass returns the first error; the next pass retries.
package podgc
