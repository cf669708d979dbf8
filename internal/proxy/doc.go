// Package proxy is nanokube's service proxy: kube-proxy's nftables mode, smaller.
//
// It watches Services and EndpointSlices (discovery/v1) and keeps one nftables table (family
// ip, "nanokube-proxy" by default) in step with them:
//
//	nat-prerouting / nat-output ─► services ─► @service-ips       (ClusterIP . proto . port)
//	                                        └► @service-nodeports (proto . port, on node IPs)
//	                                              │ goto
//	        external-<svc> (NodePort) ─► service-<svc> / local-<svc>
//	                                              │ numgen random mod N vmap
//	                                        endpoint-<svc>__<ip>/<port>: mark hairpin, dnat
//	filter-input/forward/output ─► endpoints-check ─► @no-endpoint-services ─► reject
//	nat-postrouting ─► masquerading (packets marked by mark-for-masquerade)
//
// The work is split the way kube-proxy splits it, but with decisions kept free of I/O:
// buildServicePorts turns one Service and its slices into a model (which endpoints serve,
// which policy applies); renderService turns that model into a fragment (chains, map
// elements, affinity sets) that belongs to the Service alone; and the Proxier diffs each
// changed Service's fragment against the one it last applied and sends only the difference in
// one nftables transaction. The whole table is rewritten only at start, on the SyncPeriod
// safety-net resync, and after a failed transaction; a failing full rewrite is bisected with
// `nft --check` so that one bad Service does not keep the others from being programmed.
//
// Contracts: New does not touch nftables beyond probing that `nft` works; Run blocks until its
// context ends and returns nil then (or an error if the informers never sync); Ready is closed
// once the informers have synced and the first full sync has been applied. Cached API objects
// are never mutated. NodePorts are not served on 127.0.0.1, as in kube-proxy's nftables mode.
package proxy
