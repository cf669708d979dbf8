// Package framework is the scheduler's decision core. It never does I/O: given a pod and a
// Snapshot of the cluster (node infos with the pods on them and their summed requests) it runs
// filter plugins to find feasible nodes, score plugins to rank them, and returns the chosen
// node or a FitError whose message reads like kube-scheduler's. Preempt finds the node and the
// victims whose eviction would let a pod fit.
//
// Contracts: a Snapshot and the NodeInfos and PodInfos it holds are read-only while a
// scheduling cycle runs (filters run in parallel over them); the caller (the scheduler's cache)
// updates a snapshot only between cycles. Plugins keep per-cycle data in the CycleState.
package framework
