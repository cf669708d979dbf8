// Package proxy is nanokube's service proxy: kube-proxy's nftables mode, smaller.
//
// It watches Services and EndpointSlices (discovery/v1) and keeps one nftables table (family
// ip, "nanokube-proxy" by default) in step with them:
//
//	nat-prerouting / nat-output ─► services ─► @service-ips       (ClusterIP . proto . port)
//	                                        └► @service-nodeports (proto . port, on node IPs)
//	                                              │ goto
//	        external-<svc> (NodePort) ─► service-<svc> / local-<svc>
//	                      numgen random mod N-i == 0 dnat to endpoint i   (a rule ladder)
//	                      with ClientIP affinity: goto endpoint-<svc>__<ip>/<port>
//	                                              (update @affinity-…, dnat)
//	filter-input/forward/output ─► endpoints-check ─► @no-endpoint-services ─► reject
//	nat-postrouting ─► masquerading: hairpin pairs (@hairpin-endpoints) and packets
//	                                 marked by mark-for-masquerade
//
// The work is split the way kube-proxy splits it, but with decisions kept free of I/O:
// buildServicePorts turns one Service and its slices into a model (which endpoints serve,
// which policy applies); the renderer turns that model into a fragment (chains, map
// elements, affinity sets, the endpoints it DNATs to) that belongs to the Service alone; and
// the Proxier diffs each changed Service's fragment against the one it last applied and
// sends only the difference in one transaction. The whole table is rewritten only at start,
// on the SyncPeriod safety-net resync, and after a failed transaction; a failing full
// rewrite is bisected with checks (transactions the kernel validates and discards) so that
// one bad Service does not keep the others from being programmed. When a UDP endpoint goes
// away, the conntrack entries of its flows are deleted, as kube-proxy does.
//
// Transactions go to the kernel over netlink, one nfnetlink batch each (netlink.go): no
// `nft` process, no ruleset cache to load, no per-message acks. Every rule is built once in
// two forms, nft text (for golden files, logs and diffs) and netlink expressions; a test
// loads the same sync both ways and compares the kernel's listings. The knftables backend
// (backend.go) runs the same transactions as text over knftables' fake for the golden tests.
//
// Kernel objects per Service port: one chain and one rule per endpoint (the rule DNATs
// itself), one map element, one hairpin pair per endpoint shared by the Services that use
// it. Endpoints get chains (and affinity sets) only under ClientIP affinity. Hairpin
// masquerading is a single rule: after DNAT, source . destination is in @hairpin-endpoints
// exactly when a pod reached itself; traffic to a ClusterIP from outside the pod network is
// marked for masquerading by one rule for all Services too. Endpoint selection stays a ladder of plain rules rather
// than kube-proxy's `numgen random mod N vmap { ... }`: every such anonymous map is a kernel
// set, set creation is linear in the sets of the table, and thousands of them made syncs
// quadratic; a shared dnat map is quadratic too, each of its elements being checked against
// each rule bound to it. The ladder makes a new connection evaluate up to N rules, as
// iptables mode does.
//
// Measured by bench/proxy (10 endpoints per Service, into a network namespace, kernel 6.18,
// 2 cores shared with other engineers' work at load average 13 to 15, so wall-clock times
// are inflated and noisy; CPU is the process's user and system time; docs/performance.md):
//
//	                                  full sync   full sync           endpoint change,
//	                                  1,000 svc   10,000 svc          10,000 svc p50 / p99
//	nft -f, 11 chains/svc (before)    4.92 s      56.92 s             over 10 s
//	netlink, 1 chain/svc (now)        0.45 s      7.76 s (CPU 3.7 s)  140 ms / 351 ms
//
// What limits it now. A full sync of 10,000 Services is 220,000 operations (about 45 MB);
// the syncing thread spends 1.4 s in user space (render, diff, encode) and 1.6 s in the
// kernel. An endpoint change is 13 operations and 0.4 ms of user time, yet the kernel
// spends about 63 ms on its commit at 10,000 Services (5 ms at 1,000): a commit that adds a
// rule with a nat or verdict expression, or a goto element, revalidates the whole table
// from its base chains (nft_table_validate), twice over the services graph (from
// nat-prerouting and nat-output), so its cost is proportional to the rules of all Services.
// Per-chain validation was proposed upstream ("nf_tables: add infrastructure for chain
// validation on updates", 2025) but the 6.18 kernel here still validates whole tables;
// sharding Services over several tables would divide the cost.
//
// Contracts: New probes nftables over netlink (listing the table) but changes nothing; Run
// blocks until its context ends and returns nil then (or an error if the informers never
// sync); Ready is closed once the informers have synced and the first full sync has been
// applied. Cached API objects are never mutated. NodePorts are not served on 127.0.0.1, as
// in kube-proxy's nftables mode.
package proxy
