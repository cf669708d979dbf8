// Package job is the batch/v1 Job controller (kube-controller-manager's job-controller) and
// the ttl-after-finished controller.
//
// The Job controller runs pods from spec.template until spec.completions of them succeeded
// (or, without completions, until one succeeded and the rest finished), at most
// spec.parallelism at a time. Pods are named <job>-<random> (Indexed: <job>-<index>-<random>,
// with the batch.kubernetes.io/job-completion-index annotation and label, hostname
// <job>-<index> and a JOB_COMPLETION_INDEX variable in every container), controlled by the
// Job, and carry the batch.kubernetes.io/job-tracking finalizer.
//
// Counting is exactly-once through that finalizer, as in Kubernetes: a sync writes the UIDs
// of pods that finished since the last one to status.uncountedTerminatedPods (Indexed Jobs
// record succeeded indexes in status.completedIndexes), then takes the finalizer off those
// pods, then moves the UIDs to status.succeeded and status.failed. A pod without the finalizer
// is never counted, so deleting finished pods loses nothing and a crash between the steps
// counts no pod twice. Pods the controller deletes itself lose the finalizer first and never
// count as failed; pods that hold it with no live Job controlling them are cleaned up.
//
// Failed pods are replaced after an exponential backoff (10s doubling to six minutes, reset
// by a success) until more than spec.backoffLimit failed; spec.podFailurePolicy rules
// (FailJob, Ignore, Count on exit codes or pod conditions) are applied first. A failing Job
// gets the FailureTarget condition, its active pods are deleted, and once none is terminating
// it gets Failed with reason BackoffLimitExceeded, DeadlineExceeded (activeDeadlineSeconds)
// or PodFailurePolicy. A succeeding Job gets SuccessCriteriaMet, then Complete (reason
// CompletionsReached) and status.completionTime. spec.suspend deletes the active pods and sets
// the Suspended condition; resuming restarts the activeDeadlineSeconds clock. Jobs with a
// spec.managedBy other than kubernetes.io/job-controller are left alone. It records
// SuccessfulCreate, FailedCreate, SuccessfulDelete, FailedDelete, Suspended, Resumed,
// Completed and the Failed condition's reason as events.
//
// Not implemented: backoffLimitPerIndex, maxFailedIndexes and successPolicy.
//
// Pod creations, deletions and finalizer removals are counted in expectations: a Job is not
// synced again until the pod informer has shown all of them (or five minutes passed), so a
// sync never acts on a stale cache. Every sync of a Job is one goroutine at a time (the
// workqueue guarantees it); New takes a Config and Run(ctx, workers) blocks until ctx is done.
package job
