// Package deployment is the Deployment controller. For each Deployment it owns ReplicaSets
// named <deployment>-<pod-template-hash>, one per distinct pod template, and moves replicas
// from the old ones to the new one by the RollingUpdate (maxSurge, maxUnavailable) or Recreate
// strategy. It follows kube-controller-manager's deployment controller closely, because
// kubectl reads its traces:
//
//   - the pod-template-hash label and selector, computed like Kubernetes (fnv32a over the
//     template and status.collisionCount, rand.SafeEncodeString);
//   - the deployment.kubernetes.io/revision, revision-history, desired-replicas and
//     max-replicas annotations (kubectl rollout history and undo read them);
//   - status (observedGeneration, replicas, updatedReplicas, readyReplicas,
//     availableReplicas, unavailableReplicas) and the Available and Progressing conditions
//     with the NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
//     NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused and DeploymentResumed
//     reasons (kubectl rollout status reads them);
//   - proportional scaling of every active ReplicaSet when a Deployment is resized mid-rollout;
//   - revisionHistoryLimit: old ReplicaSets scaled to zero beyond the limit are deleted.
//
// Rollback is kubectl's job (it patches the Deployment's template with an old ReplicaSet's);
// the controller then finds that ReplicaSet again and gives it the next revision.
package deployment
