// Package nodelifecycle watches node heartbeats and acts when a node goes silent or not
// ready, as Kubernetes' node lifecycle controller and its taint-eviction controller do.
//
// Node health: a node's heartbeat is the renewTime of its Lease in kube-node-lease or the
// lastHeartbeatTime of its Ready condition. The controller notes, on its own clock, when it
// last saw either change (so clock skew between nodes and the control plane does not matter,
// and a node gets a full grace period after the controller starts). A node silent for
// NodeMonitorGracePeriod gets its Ready, MemoryPressure, DiskPressure and PIDPressure
// conditions set to Unknown (reason NodeStatusUnknown, "Kubelet stopped posting node
// status."), a NodeNotReady event, and its pods' Ready conditions set to False. The node's
// kubelet puts the conditions back when it reports again.
//
// Taints follow the conditions: Ready=Unknown gives node.kubernetes.io/unreachable and
// Ready=False node.kubernetes.io/not-ready, each as NoExecute (with timeAdded) and NoSchedule;
// MemoryPressure, DiskPressure, PIDPressure and NetworkUnavailable give their NoSchedule
// taints, spec.unschedulable node.kubernetes.io/unschedulable. Taints of other keys are never
// touched, and all are removed when the condition clears.
//
// Taint eviction: a pod on a node with NoExecute taints is deleted at once if it does not
// tolerate all of them, and otherwise, if its matching tolerations bound the stay, when the
// shortest tolerationSeconds has passed since the taint's timeAdded. Timers are the pod work
// queue's delayed adds; a pod whose taints clear before its time gets a cancelling event.
// Events use Kubernetes' reasons (NodeNotReady, NodeReady, TaintManagerEviction).
//
// Disruption, as Kubernetes' zone states: when every node of a zone (topology labels) is not
// ready, no new NoExecute taint is put on its nodes, and when no node of the cluster is ready,
// NoExecute taints are removed — a fault that large is more likely the control plane's or the
// network's than every node's, and evicting everything would make it worse. A single-node
// cluster therefore never evicts. Zone states are recomputed every NodeMonitorPeriod.
//
// Two queues, two syncs: nodes (health, conditions, taints, pods' readiness) and pods
// (eviction). Writes use optimistic concurrency; conflicts are retried with backoff.
package nodelifecycle
