// Package queue is the scheduler's queue of pods waiting for a node, modelled on
// kube-scheduler's: an active heap ordered by priority (then arrival), a backoff heap for pods
// that recently failed (exponential backoff, 1s doubling to 10s by default), and a set of
// unschedulable pods that wait for a cluster change (MoveAllToActiveOrBackoff) or, at the
// latest, MaxUnschedulableDuration.
//
// Pods are keyed by UID. Pop blocks until a pod is ready and marks it in flight; the caller
// then reports the outcome with Done (scheduled), AddUnschedulable or AddBackoff. A cluster
// change that happens while a pod is in flight sends that pod to backoff rather than to the
// unschedulable set, so the change is not missed. All methods are safe for concurrent use.
package queue
