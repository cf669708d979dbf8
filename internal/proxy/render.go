package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"
)

// Names of the table's fixed objects, as in kube-proxy's nftables mode.
const (
	servicesChain          = "services"
	serviceIPsMap          = "service-ips"
	serviceNodePortsMap    = "service-nodeports"
	nodePortIPsSet         = "nodeport-ips"
	endpointsCheckChain    = "endpoints-check"
	noEndpointServicesMap  = "no-endpoint-services"
	noEndpointNodePortsMap = "no-endpoint-nodeports"
	rejectChain            = "reject-chain"
	markMasqChain          = "mark-for-masquerade"
	masqueradingChain      = "masquerading"
	hairpinSet             = "hairpin-endpoints"

	// masqueradeMark is the packet mark bit that asks nat-postrouting to masquerade
	// (kube-proxy's default --masquerade-bit 14).
	masqueradeMark = 0x00004000

	clusterChainPrefix  = "service-"
	localChainPrefix    = "local-"
	externalChainPrefix = "external-"
	endpointChainPrefix = "endpoint-"
	affinitySetPrefix   = "affinity-"
)

// isServiceObjectName reports whether a chain or set name is one of the per-service ones
// (they, and only they, contain a "/").
func isServiceObjectName(name string) bool { return strings.Contains(name, "/") }

// fragment is the part of the table that belongs to one Service: its chains, its elements in
// the shared maps, and its affinity sets. Fragments of different Services never share a chain
// or set name, so each can be diffed on its own.
type fragment struct {
	chains   map[string][]rule     // chain name → rules, in order
	elements map[elementKey]string // map element → value ("goto chain", "drop", ...)
	sets     map[string]int32      // affinity set name → timeout seconds (informational)
	// endpoints are the addresses traffic may be DNATed to. Hairpin masquerading is one
	// rule for all Services over a shared set of (endpoint . endpoint) pairs, which several
	// Services may need: the Proxier counts references (see plan.hairpin).
	endpoints map[string]bool
	// udp are the UDP flows the fragment DNATs: when one goes, its conntrack entries are
	// deleted, or clients would keep sending to an endpoint that is gone (UDP has no
	// connection to break).
	udp map[udpFlow]bool
}

// udpFlow is UDP traffic to a Service address (Dst "" for a NodePort on any node address)
// and port, DNATed to an endpoint address.
type udpFlow struct {
	Dst      string
	Port     int32
	Endpoint string
}

// elementKey names one element of one map: its map and its key parts joined by " . ".
type elementKey struct {
	Map string
	Key string
}

func newFragment() *fragment {
	return &fragment{chains: map[string][]rule{}, elements: map[elementKey]string{}, sets: map[string]int32{}, endpoints: map[string]bool{}, udp: map[udpFlow]bool{}}
}

func (f *fragment) addRule(chain string, r *ruleBuilder) {
	f.chains[chain] = append(f.chains[chain], r.build())
}

func (f *fragment) empty() bool {
	return f == nil || (len(f.chains) == 0 && len(f.elements) == 0 && len(f.sets) == 0 && len(f.endpoints) == 0)
}

// renderer turns service ports into fragments. It does no I/O.
type renderer struct {
	clusterCIDR string // "" when unknown: then ClusterIP traffic is never masqueraded for leaving it
}

// chainBase is the per-service-port part of chain names: a hash (so truncation and
// near-identical names stay distinct) followed by the readable "ns/name/proto/port".
func chainBase(parts ...string) string {
	name := strings.Join(parts, "/")
	sum := sha256.Sum256([]byte(name))
	name = base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	const max = 256 - 16 // room for the longest prefix
	if len(name) > max {
		name = name[:max-3] + "..."
	}
	return name
}

func servicePortBase(sp *servicePort) string {
	return chainBase(sp.Namespace, sp.Service, sp.Protocol, sp.PortName)
}

func endpointBase(sp *servicePort, e endpoint) string {
	return chainBase(sp.Namespace, sp.Service, sp.Protocol, sp.PortName+"__"+e.IP, strconv.Itoa(int(e.Port)))
}

// render returns the fragment of one Service from the desired state of its ports.
func (r *renderer) render(ports []servicePort) *fragment {
	f := newFragment()
	for i := range ports {
		r.renderPort(f, &ports[i])
	}
	return f
}

func (r *renderer) renderPort(f *fragment, sp *servicePort) {
	base := servicePortBase(sp)
	clusterChain := clusterChainPrefix + base
	localChain := localChainPrefix + base
	externalChain := externalChainPrefix + base
	proto := sp.Protocol
	port := strconv.Itoa(int(sp.Port))
	nodePort := strconv.Itoa(int(sp.NodePort))
	exposed := sp.NodePort != 0

	clusterEps := usableEndpoints(sp.Endpoints, false)
	localEps := usableEndpoints(sp.Endpoints, true)
	hasEndpoints := len(clusterEps) > 0

	// Which policy chains exist, as in kube-proxy: the cluster chain also serves the
	// short-circuit of node- and pod-originated traffic to a Local external policy.
	usesClusterChain := hasEndpoints && (!sp.InternalLocal || exposed)
	usesLocalChain := len(localEps) > 0 && (sp.InternalLocal || (exposed && sp.ExternalLocal))

	internalChain, hasInternal := clusterChain, hasEndpoints
	if sp.InternalLocal {
		internalChain, hasInternal = localChain, len(localEps) > 0
	}
	externalPolicyChain, hasExternal := clusterChain, hasEndpoints
	if sp.ExternalLocal {
		externalPolicyChain, hasExternal = localChain, len(localEps) > 0
	}
	usesExternalChain := hasEndpoints && exposed

	internalVerdict, externalVerdict := "drop", "drop"
	if !hasEndpoints {
		internalVerdict, externalVerdict = "goto "+rejectChain, "goto "+rejectChain
	}

	ipKey := elementKey{Map: serviceIPsMap, Key: sp.ClusterIP + " . " + proto + " . " + port}
	if hasInternal {
		f.elements[ipKey] = "goto " + internalChain
	} else {
		f.elements[elementKey{Map: noEndpointServicesMap, Key: ipKey.Key}] = internalVerdict
	}
	if exposed {
		npKey := proto + " . " + nodePort
		if usesExternalChain {
			f.elements[elementKey{Map: serviceNodePortsMap, Key: npKey}] = "goto " + externalChain
		}
		if !hasExternal {
			f.elements[elementKey{Map: noEndpointNodePortsMap, Key: npKey}] = externalVerdict
		}
	}

	if usesExternalChain {
		if !sp.ExternalLocal {
			// Endpoints may be on another node: masquerade so replies return here.
			f.addRule(externalChain, newRule().verdict("jump "+markMasqChain))
		} else {
			if r.clusterCIDR != "" {
				// Pod traffic to a NodePort is subject to neither policy.
				f.addRule(externalChain, newRule().ip("saddr", false, r.clusterCIDR).verdict("goto "+clusterChain))
			}
			f.addRule(externalChain, newRule().fibLocal("saddr").verdict("jump "+markMasqChain))
			f.addRule(externalChain, newRule().fibLocal("saddr").verdict("goto "+clusterChain))
		}
		if hasExternal {
			f.addRule(externalChain, newRule().verdict("goto "+externalPolicyChain))
		}
	}

	if usesClusterChain {
		r.dispatch(f, sp, clusterChain, clusterEps)
	}
	if proto == "udp" {
		for _, eps := range [][]endpoint{clusterEps, localEps} {
			for _, e := range eps {
				f.udp[udpFlow{sp.ClusterIP, sp.Port, e.IP}] = true
				if exposed {
					f.udp[udpFlow{"", sp.NodePort, e.IP}] = true
				}
			}
		}
	}
	if usesLocalChain {
		r.dispatch(f, sp, localChain, localEps)
	}
}

// dispatch writes the rules of a policy chain: clients with a live affinity entry go back to
// their endpoint, everyone else is spread with equal probability. The spreading is a ladder
// of plain rules, as iptables' statistic match does it: rule i of n picks its endpoint with
// probability 1/(n-i), each drawing a fresh number, the last one always. A single
// `numgen random mod n vmap { ... }` would be one rule, but each such anonymous map is a set
// of its own in the kernel, and creating thousands of sets in one transaction is what made
// full syncs slow (see doc.go).
//
// Without affinity the ladder DNATs directly: an endpoint needs no chain of its own, since
// hairpin traffic is masqueraded by one shared rule (see writeBase). With affinity each
// endpoint has a chain that records the client in the endpoint's affinity set and DNATs.
func (r *renderer) dispatch(f *fragment, sp *servicePort, chain string, eps []endpoint) {
	affinity := sp.AffinitySeconds > 0
	for _, e := range eps {
		f.endpoints[e.IP] = true
		if !affinity {
			continue
		}
		epBase := endpointBase(sp, e)
		epChain, set := endpointChainPrefix+epBase, affinitySetPrefix+epBase
		f.addRule(chain, newRule().inSet(set, selSaddr).verdict("goto "+epChain))
		if _, done := f.chains[epChain]; done {
			continue // reachable from both policy chains
		}
		f.sets[set] = sp.AffinitySeconds
		f.addRule(epChain, newRule().updateSaddr(set, sp.AffinitySeconds))
		f.addRule(epChain, newRule().dnat(sp.Protocol, e.IP, e.Port))
	}
	for i, e := range eps {
		b := newRule()
		if left := len(eps) - i; left > 1 {
			b.numgen(left)
		}
		if affinity {
			b.verdict("goto " + endpointChainPrefix + endpointBase(sp, e))
		} else {
			b.dnat(sp.Protocol, e.IP, e.Port)
		}
		f.addRule(chain, b)
	}
}
