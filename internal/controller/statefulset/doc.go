// Package statefulset is the StatefulSet controller (kube-controller-manager's
// "statefulset-controller"): it gives each replica a stable identity and stable storage, and
// creates, deletes and replaces pods in a defined order.
//
// Identity: the pod of ordinal i is named <set>-<i> (i from spec.ordinals.start), carries the
// labels statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index and
// controller-revision-hash (the name of the ControllerRevision it was made from), and has
// hostname <set>-<i> and subdomain spec.serviceName. Each volumeClaimTemplate t becomes the
// claim <t>-<set>-<i>, created before the pod, labelled with the template's and the selector's
// labels, and mounted in place of the pod volume of the same name. Claims outlive their pods
// (a recreated pod finds its data again); with persistentVolumeClaimRetentionPolicy
// whenDeleted: Delete they are owned by the StatefulSet and go with it (garbage collector).
// whenScaled: Delete is not implemented: scaled-down claims are kept.
//
// Ordering: the decision of a sync (decide, free of I/O) walks the ordinals up. With
// podManagementPolicy OrderedReady it stops at the first missing, terminating, failed or
// not-yet-ready (Running, Ready and, with minReadySeconds, available) pod, so pod i+1 is only
// created once pod i is ready; pods beyond the replica count are deleted one at a time, highest
// ordinal first, each only once the previous one is gone. Parallel creates and deletes them all
// at once. Failed and succeeded pods are deleted, and so recreated.
//
// Updates: history lives in ControllerRevisions named <set>-<hash> holding the strategic merge
// patch {"spec":{"template":{...,"$patch":"replace"}}} (what kubectl rollout history/undo read),
// labelled with the template labels and controller.kubernetes.io/hash. RollingUpdate replaces,
// highest ordinal first and one at a time (waiting for the replacement to be ready), the pods
// whose index is at least spec.updateStrategy.rollingUpdate.partition; pods below the partition
// are (re)created from the current revision. OnDelete only makes pods deleted by someone else
// from the update revision. Once every replica runs the update revision and is ready,
// status.currentRevision becomes the update revision. spec.revisionHistoryLimit old revisions no
// pod uses are kept.
//
// Status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas,
// currentRevision, updateRevision, observedGeneration and collisionCount, which is what kubectl
// rollout status reads. Events: SuccessfulCreate, SuccessfulDelete, FailedCreate, FailedDelete,
// with kube-controller-manager's wording.
package statefulset
