// Package hollow simulates kubelets: kubemark's idea, cheap enough for thousands of nodes in
// one process. A Nodes value registers Node objects (Ready, with capacity, addresses and node
// info), renews their Leases in kube-node-lease, marks pods bound to them Running and Ready, and
// finishes their graceful deletions by deleting them with grace period 0. No container runs.
//
// All nodes share one client, one pod informer (indexed by spec.nodeName) and a bounded pool of
// workers, so the cost per node is a few hundred bytes plus one Lease update per LeaseInterval.
//
// A node can be silenced (Silence) to simulate a kubelet that died: its Lease is no longer
// renewed and its pods are no longer touched, until Resume, which also re-posts a Ready
// condition as a restarted kubelet would.
package hollow
