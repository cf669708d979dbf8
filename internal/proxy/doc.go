// Package proxy is nanokube's service proxy: kube-proxy's nftables mode, smaller.
//
// It watches Services and EndpointSlices (discovery/v1) and keeps nftables tables (family ip,
// "nanokube-proxy" by default) in step with them. Each table is laid out as below and holds
// the Services whose key hashes to it; there is one table per 1,000 Services
// (Config.ServicesPerTable), rounded up to a power of two (see shard.go and "What limits it"):
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
// sends only the difference, one transaction per table it touches. The tables are rewritten
// only at start, on the SyncPeriod safety-net resync, and after a failed transaction; a
// failing full rewrite is bisected with checks (transactions the kernel validates and
// discards) so that one bad Service does not keep the others from being programmed. When a
// UDP endpoint goes away, the conntrack entries of its flows are deleted, as kube-proxy does.
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
// 2 cores; docs/performance.md has the latest run):
//
//	                                    full sync   full sync    endpoint change,
//	                                    1,000 svc   10,000 svc   10,000 svc p50 / p99
//	nft -f, 11 chains/svc (first)       4.92 s      56.92 s      over 10 s
//	netlink, one table                  0.25 s      2.16 s       47 ms / 81 ms
//	netlink, 1,000 Services per table   0.18 s      1.39 s       15 ms / 26 ms
//
// Why several tables. A commit that adds a rule with a nat or verdict expression, or a goto
// element, makes the kernel revalidate the whole table from its base chains
// (nft_table_validate), twice over the services graph (from nat-prerouting and nat-output):
// an endpoint change is 13 operations and 0.4 ms of user time, yet its commit cost about
// 63 ms of kernel time in a table of 10,000 Services (5 ms at 1,000). Validation is per
// table, so spreading the Services over tables divides it. (Per-chain validation was
// proposed upstream in 2025; the 6.18 kernel here still validates whole tables.) The price
// is paid per new connection, which passes every table's base chains, each a few map
// lookups; conntrack keeps later packets away from the nat chains. A Service's table is a
// hash of its key modulo the number of tables; the number changes only in a full sync and
// by powers of two, so a Service that moves goes to a table written before the one it
// leaves (tables are written last to first) and is never missing.
//
// What limits a full sync now: 220,000 operations (about 45 MB) for 10,000 Services, about
// 0.5 s of rendering, diffing and encoding and 0.7 s of kernel work. One goroutine prepares
// the next table's transaction while the kernel commits the last.
//
// Contracts: New probes nftables over netlink (listing the family's chains) but changes nothing; Run
// blocks until its context ends and returns nil then (or an error if the informers never
// sync); Ready is closed once the informers have synced and the first full sync has been
// applied. Cached API objects are never mutated. NodePorts are not served on 127.0.0.1, as
// in kube-proxy's nftables mode.
package proxy
