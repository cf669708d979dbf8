package proxy

import (
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// plan collects the operations of one transaction in the order the kernel needs them:
// references must exist before they are used and be gone before what they name is deleted.
// Operations of all Services are merged phase by phase, so that an element one Service drops
// can be taken by another in the same transaction.
type plan struct {
	delElements []elementSpec
	addChains   []string // added and flushed (new, or revived from stale)
	// newChains are added without a flush: a full sync knows from listing the table that
	// they do not exist yet. A flush is one more kernel operation per chain.
	newChains   []string
	addSets     []setSpec
	flushChains []string // changed or stale chains
	rules       []ruleSpec
	delSets     []string
	addElements []elementSpec
	// stale lists the chains this plan flushes because nothing uses them any more; they are
	// deleted in a later transaction (see Proxier.deleteStaleChains).
	stale []string
	// endpointRefs is the change, per endpoint address, of the number of Services that
	// DNAT to it; finish turns it into hairpin set elements.
	endpointRefs map[string]int
}

func (p *plan) size() int {
	return len(p.delElements) + len(p.addChains) + len(p.newChains) + len(p.addSets) + len(p.flushChains) +
		len(p.rules) + len(p.delSets) + len(p.addElements)
}

// apply appends the plan's operations to tx.
func (p *plan) apply(tx *transaction) {
	for _, e := range p.delElements {
		tx.add(txOp{verb: verbDelete, element: &e})
	}
	for _, c := range p.addChains {
		tx.addChain(c)
		tx.flushChain(c)
	}
	for _, c := range p.newChains {
		tx.addChain(c)
	}
	for _, s := range p.addSets {
		tx.add(txOp{verb: verbAdd, set: &s})
	}
	for _, c := range p.flushChains {
		tx.flushChain(c)
	}
	for _, r := range p.rules {
		tx.add(txOp{verb: verbAdd, rule: &r})
	}
	for _, s := range p.delSets {
		tx.add(txOp{verb: verbDelete, set: &setSpec{name: s, typ: affinitySetTyp}})
	}
	for _, e := range p.addElements {
		tx.add(txOp{verb: verbAdd, element: &e})
	}
}

// diff adds to p the operations that turn old into new (either may be nil). In a full sync
// old is nil: every chain is then re-added and flushed, and the maps were flushed beforehand.
func (p *plan) diff(old, new *fragment) {
	if old == nil {
		old = newFragment()
	}
	if new == nil {
		new = newFragment()
	}
	for _, k := range sortedElementKeys(old.elements) {
		if v, ok := new.elements[k]; !ok || v != old.elements[k] {
			p.delElements = append(p.delElements, element(k, ""))
		}
	}
	for _, name := range sortedKeys(new.chains) {
		rules := new.chains[name]
		oldRules, existed := old.chains[name]
		switch {
		case !existed:
			p.addChains = append(p.addChains, name)
		case !sameRules(oldRules, rules):
			p.flushChains = append(p.flushChains, name)
		default:
			continue
		}
		for _, r := range rules {
			p.rules = append(p.rules, ruleSpec{chain: name, rule: r})
		}
	}
	for _, name := range sortedKeys(old.chains) {
		if _, ok := new.chains[name]; !ok {
			p.flushChains = append(p.flushChains, name)
			p.stale = append(p.stale, name)
		}
	}
	for _, name := range sortedKeys(new.sets) {
		if _, ok := old.sets[name]; !ok {
			p.addSets = append(p.addSets, setSpec{name: name, typ: affinitySetTyp})
		}
	}
	for _, name := range sortedKeys(old.sets) {
		if _, ok := new.sets[name]; !ok {
			p.delSets = append(p.delSets, name)
		}
	}
	for _, k := range sortedElementKeys(new.elements) {
		if v, ok := old.elements[k]; !ok || v != new.elements[k] {
			p.addElements = append(p.addElements, element(k, new.elements[k]))
		}
	}
	if p.endpointRefs == nil {
		p.endpointRefs = map[string]int{}
	}
	for ip := range old.endpoints {
		p.endpointRefs[ip]--
	}
	for ip := range new.endpoints {
		p.endpointRefs[ip]++
	}
}

// hairpin adds the hairpin set elements that the plan's change of endpoint references
// makes appear or disappear, given the references the table holds now.
func (p *plan) hairpin(refs map[string]int) {
	if refs == nil {
		p.addElements = slices.Grow(p.addElements, len(p.endpointRefs))
	}
	for _, ip := range sortedKeys(p.endpointRefs) {
		before := refs[ip]
		after := before + p.endpointRefs[ip]
		switch {
		case before == 0 && after > 0:
			p.addElements = append(p.addElements, hairpinElement(ip))
		case before > 0 && after <= 0:
			p.delElements = append(p.delElements, hairpinElement(ip))
		}
	}
}

// commitRefs applies the plan's change of endpoint references to refs.
func (p *plan) commitRefs(refs map[string]int) {
	for ip, d := range p.endpointRefs {
		if n := refs[ip] + d; n > 0 {
			refs[ip] = n
		} else {
			delete(refs, ip)
		}
	}
}

func hairpinElement(ip string) elementSpec {
	return elementSpec{set: hairpinSet, typ: ipPairSet, key: []string{ip, ip}}
}

func sameRules(a, b []rule) bool {
	return slices.EqualFunc(a, b, func(x, y rule) bool { return x.text == y.text })
}

func element(k elementKey, value string) elementSpec {
	return elementSpec{set: k.Map, typ: mapType(k.Map), key: strings.Split(k.Key, " . "), value: value}
}

// mapType is the type of one of the shared maps.
func mapType(name string) setType {
	switch name {
	case serviceNodePortsMap, noEndpointNodePortsMap:
		return protoPortMap
	default:
		return ipProtoPortMap
	}
}

// baseChain is one of the chains hooked into netfilter.
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority // as nft writes it
	prio     int32                       // the same as a number, for netlink
	rule     rule                        // its only rule
}

// Filtering runs before DNAT so that it sees the Service address; reject is only valid in
// input, forward and output, hence no filter-prerouting.
var baseChains = []baseChain{
	{"filter-input", knftables.FilterType, knftables.InputHook, knftables.DNATPriority + "-10", -110, newRule().ctStateNew().verdict("jump " + endpointsCheckChain).build()},
	{"filter-forward", knftables.FilterType, knftables.ForwardHook, knftables.DNATPriority + "-10", -110, newRule().ctStateNew().verdict("jump " + endpointsCheckChain).build()},
	{"filter-output", knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10", -110, newRule().ctStateNew().verdict("jump " + endpointsCheckChain).build()},
	{"nat-prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, -100, newRule().verdict("jump " + servicesChain).build()},
	{"nat-output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority, -100, newRule().verdict("jump " + servicesChain).build()},
	{"nat-postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority, 100, newRule().verdict("jump " + masqueradingChain).build()},
}

// writeBase appends to tx the table's fixed part: base chains, dispatch chains, the shared
// maps (flushed: a full sync re-adds every element) and the NodePort address set. With reset
// the table is deleted first, throwing away whatever was there (affinity state included).
func writeBase(tx *transaction, nodeIPs []string, clusterCIDR string, reset bool) {
	tx.addTable()
	if reset {
		tx.deleteTable()
		tx.addTable()
	}
	for _, name := range []string{servicesChain, endpointsCheckChain, rejectChain, markMasqChain, masqueradingChain} {
		tx.addChain(name)
		tx.flushChain(name)
	}
	for i := range baseChains {
		bc := &baseChains[i]
		tx.add(txOp{verb: verbAdd, chain: &chainSpec{name: bc.name, base: bc}})
		tx.flushChain(bc.name)
		tx.addRule(bc.name, bc.rule)
	}
	for _, m := range []setSpec{
		{serviceIPsMap, ipProtoPortMap},
		{serviceNodePortsMap, protoPortMap},
		{noEndpointServicesMap, ipProtoPortMap},
		{noEndpointNodePortsMap, protoPortMap},
		{hairpinSet, ipPairSet},
	} {
		tx.add(txOp{verb: verbAdd, set: &m})
		tx.add(txOp{verb: verbFlush, set: &m})
	}

	nodePortIPs := setSpec{nodePortIPsSet, ipv4Set}
	tx.add(txOp{verb: verbAdd, set: &nodePortIPs})
	nodePorts := func() *ruleBuilder { return newRule().fibLocal("daddr").ip("daddr", true, "127.0.0.0/8") }
	if len(nodeIPs) == 0 {
		tx.add(txOp{verb: verbDelete, set: &nodePortIPs})
	} else {
		tx.add(txOp{verb: verbFlush, set: &nodePortIPs})
		for _, ip := range nodeIPs {
			tx.add(txOp{verb: verbAdd, element: &elementSpec{set: nodePortIPsSet, typ: ipv4Set, key: []string{ip}}})
		}
		nodePorts = func() *ruleBuilder { return newRule().inSet(nodePortIPsSet, selDaddr) }
	}

	if clusterCIDR != "" {
		// ClusterIP traffic from outside the pod network is masqueraded: it may have been
		// routed here from off-cluster, and replies must come back through this node. One
		// rule for all Services: @service-ips holds exactly the ClusterIP ports with
		// endpoints to go to.
		tx.addRule(servicesChain, newRule().ip("saddr", true, clusterCIDR).
			inSet(serviceIPsMap, selDaddr, selL4proto, selDport).verdict("jump "+markMasqChain).build())
	}
	tx.addRule(servicesChain, newRule().vmap(serviceIPsMap, selDaddr, selL4proto, selDport).build())
	tx.addRule(servicesChain, nodePorts().vmap(serviceNodePortsMap, selL4proto, selDport).build())
	tx.addRule(endpointsCheckChain, newRule().vmap(noEndpointServicesMap, selDaddr, selL4proto, selDport).build())
	tx.addRule(endpointsCheckChain, nodePorts().vmap(noEndpointNodePortsMap, selL4proto, selDport).build())
	// TCP gets a reset, everything else ICMP port-unreachable: both fail a client at once.
	tx.addRule(rejectChain, newRule().l4proto("tcp").rejectTCPReset().build())
	tx.addRule(rejectChain, newRule().rejectICMP().build())
	tx.addRule(markMasqChain, newRule().markOr(masqueradeMark).build())
	// Hairpin: a pod that reaches itself through a Service must see the node as the source,
	// or it would answer itself directly. One rule for all endpoints: after DNAT the
	// destination is the endpoint, so the pair (source . destination) is in the set exactly
	// when a pod was sent to itself.
	tx.addRule(masqueradingChain, newRule().ctStatusDNAT().inSet(hairpinSet, selSaddr, selDaddr).verdict("jump "+markMasqChain).build())
	tx.addRule(masqueradingChain, newRule().markClear(masqueradeMark).verdict("return").build())
	tx.addRule(masqueradingChain, newRule().markXor(masqueradeMark).build())
	tx.addRule(masqueradingChain, newRule().masquerade().build())
}

// fullPlan is the plan of a full sync: every fragment written from scratch, plus the
// removal of per-service chains and sets found in the table that no fragment wants.
// existingChains and existingSets are what the table holds; with listed false they are
// unknown, and every chain is flushed as it is added in case it exists.
func fullPlan(frags map[string]*fragment, existingChains, existingSets []string, listed bool) *plan {
	// Sized up front: a full sync of 10,000 Services has 100,000 rules.
	var nChains, nRules, nElements, nEndpoints int
	for _, f := range frags {
		nChains += len(f.chains)
		for _, r := range f.chains {
			nRules += len(r)
		}
		nElements += len(f.elements)
		nEndpoints += len(f.endpoints)
	}
	p := &plan{
		addChains:    make([]string, 0, nChains),
		rules:        make([]ruleSpec, 0, nRules),
		addElements:  make([]elementSpec, 0, nElements+nEndpoints),
		endpointRefs: make(map[string]int, nEndpoints),
	}
	wantChains, wantSets := make(map[string]bool, nChains), map[string]bool{}
	for _, key := range sortedKeys(frags) {
		f := frags[key]
		p.diff(nil, f)
		for c := range f.chains {
			wantChains[c] = true
		}
		for s := range f.sets {
			wantSets[s] = true
		}
	}
	p.hairpin(nil) // the set was flushed
	exists := make(map[string]bool, len(existingChains))
	for _, c := range existingChains {
		exists[c] = true
		if isServiceObjectName(c) && !wantChains[c] {
			p.flushChains = append(p.flushChains, c)
			p.stale = append(p.stale, c)
		}
	}
	if listed {
		all := p.addChains
		p.addChains = nil
		for _, c := range all {
			if exists[c] {
				p.addChains = append(p.addChains, c)
			} else {
				p.newChains = append(p.newChains, c)
			}
		}
	}
	for _, s := range existingSets {
		if isServiceObjectName(s) && strings.HasPrefix(s, affinitySetPrefix) && !wantSets[s] {
			p.delSets = append(p.delSets, s)
		}
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedElementKeys(m map[elementKey]string) []elementKey {
	keys := make([]elementKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b elementKey) int {
		if c := strings.Compare(a.Map, b.Map); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return keys
}
