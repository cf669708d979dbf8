// Package proxy is nanokube's service proxy: kube-proxy's nftables mode, smaller.
//
// It watches Services and EndpointSlices (discovery/v1) and keeps one nftables table (family
// ip, "nanokube-proxy" by default) in step with them:
//
//	nat-prerouting / nat-output ─► services ─► @service-ips       (ClusterIP . proto . port)
//	                                        └► @service-nodeports (proto . port, on node IPs)
//	                                              │ goto
//	        external-<svc> (NodePort) ─► service-<svc> / local-<svc>
//	                                              │ numgen random mod N-i == 0 goto (ladder)
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
// Endpoint selection is a ladder of plain rules (rule i of N: `numgen random mod N-i == 0
// goto endpoint-i`, the last unconditional), not kube-proxy's one `numgen random mod N vmap
// { ... }` per chain: every such anonymous map is a kernel set of its own, and creating
// thousands in one transaction dominated the full sync. Measured with `nft -f` into a
// network namespace (kernel 6.18, nft 1.0.6, 2 cores), Services × 10 endpoints:
//
//	                                    1,000     3,000    10,000
//	anonymous vmap per chain (before)   2.2 s     11.3 s   210 s (whole sync)
//	rule ladder (now)                   1.6 s     3.8 s    14.8 s
//	ladder, no flush of new chains      -         -        13.9 s
//	no dispatch rules at all            1.55 s    3.4 s    -
//	shared map, `numgen ... offset K    1.7 s     9.5 s    -
//	  vmap @endpoints` (goto elements)
//	shared dnat map, no endpoint chains 1.5 s     3.2 s    33.7 s (kernel time grows
//	                                                       quadratically with bindings)
//
// The ladder costs no more than having no dispatch rules; what remains is nft parsing about
// 300,000 commands (two thirds of the time is user space) for 11 chains per Service. A full
// sync also skips the flush of chains the listing shows do not exist yet. The ladder makes a
// new connection evaluate up to N rules instead of one lookup, as iptables mode does.
//
// Contracts: New does not touch nftables beyond probing that `nft` works; Run blocks until its
// context ends and returns nil then (or an error if the informers never sync); Ready is closed
// once the informers have synced and the first full sync has been applied. Cached API objects
// are never mutated. NodePorts are not served on 127.0.0.1, as in kube-proxy's nftables mode.
package proxy
