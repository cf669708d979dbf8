// Package dns is the cluster DNS server: what CoreDNS's kubernetes plugin does for a
// Kubernetes cluster, built on github.com/miekg/dns.
//
// It owns one listen address, served over UDP and TCP on the same port, and answers the
// cluster domain (ClusterDomain, "cluster.local" by default) from a watch-fed cache of
// Services and discovery.k8s.io/v1 EndpointSlices, following the Kubernetes DNS
// specification (https://github.com/kubernetes/dns/blob/master/docs/specification.md):
//
//	<svc>.<ns>.svc.<zone>                   A/AAAA: the ClusterIPs; for a headless Service the
//	                                        ready endpoint addresses (NXDOMAIN if it has none);
//	                                        for an ExternalName Service a CNAME, followed while
//	                                        the chain stays in the zone
//	<label>.<svc>.<ns>.svc.<zone>           A/AAAA of a headless Service's ready endpoint whose
//	                                        hostname, else dashed IP ("10-0-0-1"), is label
//	_<port>._<proto>.<svc>.<ns>.svc.<zone>  SRV per named port: the Service name for a
//	                                        ClusterIP Service, one per ready endpoint for a
//	                                        headless one, with the targets' addresses in the
//	                                        additional section
//	<a-b-c-d>.<ns>.pod.<zone>               A/AAAA of the dashed IP, unchecked ("pods insecure")
//	dns-version.<zone>                      TXT "1.1.0"
//	reverse names of ClusterIPs and         PTR to the Service name or the endpoint's name;
//	headless endpoint addresses             other reverse names are forwarded
//
// A name in the zone that does not exist is NXDOMAIN and an existing name without records
// of the asked type is NODATA; both carry the zone's SOA, whose minimum TTL is TTL, so
// resolvers walking a pod's search path (ndots:5) cache the miss. The server answers each
// name as asked: appending search domains is the client's business. Every other name is
// forwarded to the upstreams in turn, over UDP and again over TCP when the answer is
// truncated; when none answers the reply is SERVFAIL.
//
// Contracts:
//   - New validates the Config and builds the informers; it does no I/O. Run listens,
//     waits for the caches to sync, serves until its context ends and then returns nil;
//     it returns an error only if it cannot listen or a transport fails. Run is called once.
//   - Ready is closed once the caches synced and both sockets listen; Addr is valid after.
//     Queries are not served before the caches synced, so no answer comes from an empty
//     cache.
//   - A query is answered from the informers' indexes (map lookups under their read lock)
//     in time proportional to the answer, never by listing. Cached objects are shared and
//     never modified.
//   - Malformed queries never crash the server: miekg/dns answers FORMERR (or NOTIMP for
//     other opcodes) where the header can be read and drops the packet otherwise; the
//     handler answers FORMERR for a wrong question count or several OPT records, BADVERS
//     for EDNS versions other than 0, and drops responses. Replies too large for the
//     client's UDP size are truncated with TC set.
package dns
