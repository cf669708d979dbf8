// Package scheduler assigns pods to nodes, like kube-scheduler and through the same API
// calls: it watches pods, nodes and PriorityClasses with client-go informers, keeps a cache of
// nodes with the pods bound or assumed on them, and for each pending pod (taken from a
// priority queue with backoff, package queue) asks the I/O-free decision core (package
// framework) for a node over an incrementally updated snapshot. It then assumes the pod in the
// cache, so that the next decision sees it, and binds it asynchronously (POST pods/binding)
// with a bounded number of binding goroutines.
//
// A pod that fits nowhere gets PodScheduled=False/Unschedulable with kube-scheduler's message
// and a FailedScheduling event; if it has a higher priority than pods in the way, those are
// preempted (DisruptionTarget condition, graceful delete, Preempted event) and the pod is
// nominated to the node (status.nominatedNodeName). Unschedulable pods are retried when nodes
// or pods change. A bound pod gets a Scheduled event. Pods of another schedulerName are left
// alone. With LeaderElect, only the holder of the kube-system/kube-scheduler Lease schedules.
//
// Volumes (VolumeBinding): before each cycle the scheduler resolves the pod's
// PersistentVolumeClaims from its caches (framework.PodVolumes); a missing claim or an unbound
// claim of an Immediate class makes the pod unschedulable, a bound volume's required node
// affinity restricts the nodes, and an unbound WaitForFirstConsumer claim accepts any node
// (or the node already in its volume.kubernetes.io/selected-node). Before binding the pod,
// the binder writes that annotation on such claims, which starts their provisioning; unlike
// kube-scheduler it does not wait for the volumes to be bound (the kubelet does). Claim,
// volume and class changes retry the pods VolumeBinding rejected.
//
// Not implemented yet: other volume filters (attach limits, zones), PodDisruptionBudgets in
// preemption, non-empty namespaceSelectors in pod affinity terms, and reserving nominated
// nodes for preemptors against pods of lower priority.
package scheduler
