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
// which policy applies); renderService turns that model into a fragment (chains, map
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
// exactly when a pod reached itself. Endpoint selection stays a ladder of plain rules rather
// than kube-proxy's `numgen random mod N vmap { ... }`: every such anonymous map is a kernel
// set, set creation is linear in the sets of the table, and thousands of them made syncs
// quadratic; a shared dnat map is quadratic too, each of its elements being checked against
// each rule bound to it. The ladder makes a new connection evaluate up to N rules, as
// iptables mode does.
//
// Measured by bench/proxy (10 endpoints per Service, into a network namespace, kernel 6.18,
// 2 cores shared with other engineers' work at load average 13 to 14, so wall-clock times
// are inflated; CPU is the process's user and system time; see docs/performance.md):
//
//	                                  full sync   full sync    endpoint change, 10,000 svc
//	                                  1,000 svc   10,000 svc   p50 / p99
//	nft -f, 11 chains/svc (before)    4.92 s      56.92 s      over 10 s (lighter load: 3.3 s)
//	netlink, 1 chain/svc (now)        0.42 s      4.86 s       134 ms / 360 ms
//	  of which CPU                    0.23 s      3.26 s       kernel commit: 75-80 ms
//
// What limits it now. A full sync of 10,000 Services sends 230,000 operations (49
// MB); the kernel spends about 1 s of CPU on them, user space (render, diff, encode) about
// 1.7 s. An endpoint change is 14 operations, yet the kernel spends about 75 ms of CPU on
// it at 10,000 Services: a commit that adds a rule with a nat, reject or verdict expression,
// or a goto element, revalidates the whole table from its base chains (nft_table_validate),
// twice over the services graph (from nat-prerouting and nat-output), so its cost is
// proportional to the rules of all Services. Per-chain validation was proposed upstream
// ("nf_tables: add infrastructure for chain validation on updates", May 2025) but the 6.18
// kernel here still validates whole tables.
//
// Contracts: New probes nftables over netlink (listing the table) but changes nothing; Run
// blocks until its context ends and returns nil then (or an error if the informers never
// sync); Ready is closed once the informers have synced and the first full sync has been
// applied. Cached API objects are never mutated. NodePorts are not served on 127.0.0.1, as
// in kube-proxy's nftables mode.
package proxy
