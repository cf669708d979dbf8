// Package podautoscaler is the horizontal pod autoscaler controller (autoscaling/v2), after
// kube-controller-manager's pkg/controller/podautoscaler.
//
// Every autoscaler is evaluated when it appears or its spec changes, and then every
// SyncPeriod (--horizontal-pod-autoscaler-sync-period, 15s): the target's scale subresource
// (Deployment, ReplicaSet, StatefulSet, ReplicationController) gives the current replicas
// and the pod selector; each Resource metric (cpu, memory; Utilization or AverageValue
// target) is read from the resource metrics API (metrics.k8s.io PodMetrics) and turned into
// a replica proposal by Kubernetes' calculation (replicas.go): tolerance 0.1, pods without
// metrics assumed at 100% of their request on a scale-down and 0% on a scale-up, pending
// and (for CPU) not yet ready pods left out unless they would stop a scale-up. The largest
// proposal is stabilised and rate-limited (behavior.go): without spec.behavior a scale-down
// takes the highest recommendation of the last 5 minutes and a scale-up at most doubles
// (at least 4); with it, the scale-up/scale-down stabilisation windows and the Pods/Percent
// policies with selectPolicy Max, Min or Disabled apply. min/max replicas bound the result.
//
// Status holds currentReplicas, desiredReplicas, currentMetrics and lastScaleTime, and the
// conditions AbleToScale, ScalingActive and ScalingLimited with kube-controller-manager's
// reasons (SucceededGetScale, FailedGetScale, ValidMetricFound, FailedGetResourceMetric,
// ScalingDisabled, DesiredWithinRange, TooManyReplicas, TooFewReplicas, ScaleUpLimit,
// ScaleDownStabilized, ...). Failures are also events on the autoscaler; a failed metric
// never lets the target shrink.
//
// Pods, Object, External and ContainerResource metrics are recognised but fail with
// Kubernetes' reasons, as nanokube serves no custom or external metrics API.
// Recommendations and scale events live in memory only, as in Kubernetes.
package podautoscaler
