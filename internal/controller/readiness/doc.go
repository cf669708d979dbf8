// Package readiness says when a pod is ready and when it is available, the two counts that
// workload controllers report in their status and pace rolling updates by. They must agree
// on both, so the definitions live here once, as in Kubernetes' pod utilities:
//
//   - ready: the pod's Ready condition is True;
//   - available: ready, and the Ready condition has been True for more than minReadySeconds
//     (at once if minReadySeconds is 0).
//
// The functions are pure: the caller passes the time, so that tests can fix it.
package readiness
