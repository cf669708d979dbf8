// Package nodeipam gives every Node a pod CIDR (spec.podCIDR and spec.podCIDRs) cut from the
// cluster CIDR, as kube-controller-manager's range allocator does with --cluster-cidr and
// --node-cidr-mask-size.
//
// Before its workers start, the controller marks the CIDRs of the nodes in the cache as used,
// so a restart never hands out a range twice. sync(ctx, nodeName) allocates the lowest free
// range for a node without one and writes it with an optimistic-concurrency Update (a conflict
// releases the range and retries); a deleted node's range is released. A node whose podCIDR
// lies outside the cluster CIDR is left as it is. When the cluster CIDR is exhausted the node
// gets a CIDRNotAvailable event and is retried with backoff.
package nodeipam
