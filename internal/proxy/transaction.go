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
	delElements []*knftables.Element
	addChains   []string // added and flushed (new, or revived from stale)
	// newChains are added without a flush: a full sync knows from listing the table that
	// they do not exist yet. A flush is one more kernel operation per chain, and a full sync
	// creates more than ten chains per Service.
	newChains   []string
	addSets     []*knftables.Set
	flushChains []string // changed or stale chains
	rules       []*knftables.Rule
	delSets     []string
	addElements []*knftables.Element
	// stale lists the chains this plan flushes because nothing uses them any more; they are
	// deleted in a later transaction (see Proxier.deleteStaleChains).
	stale []string
}

func (p *plan) size() int {
	return len(p.delElements) + len(p.addChains) + len(p.newChains) + len(p.addSets) + len(p.flushChains) +
		len(p.rules) + len(p.delSets) + len(p.addElements)
}

// apply appends the plan's operations to tx.
func (p *plan) apply(tx *knftables.Transaction) {
	for _, e := range p.delElements {
		tx.Delete(e)
	}
	for _, c := range p.addChains {
		tx.Add(&knftables.Chain{Name: c})
		tx.Flush(&knftables.Chain{Name: c})
	}
	for _, c := range p.newChains {
		tx.Add(&knftables.Chain{Name: c})
	}
	for _, s := range p.addSets {
		tx.Add(s)
	}
	for _, c := range p.flushChains {
		tx.Flush(&knftables.Chain{Name: c})
	}
	for _, r := range p.rules {
		tx.Add(r)
	}
	for _, s := range p.delSets {
		tx.Delete(&knftables.Set{Name: s})
	}
	for _, e := range p.addElements {
		tx.Add(e)
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
		if v, ok := new.elements[k]; !ok || !slices.Equal(v, old.elements[k]) {
			p.delElements = append(p.delElements, element(k, nil))
		}
	}
	for _, name := range sortedKeys(new.chains) {
		rules := new.chains[name]
		oldRules, existed := old.chains[name]
		switch {
		case !existed:
			p.addChains = append(p.addChains, name)
		case !slices.Equal(oldRules, rules):
			p.flushChains = append(p.flushChains, name)
		default:
			continue
		}
		for _, r := range rules {
			p.rules = append(p.rules, &knftables.Rule{Chain: name, Rule: r})
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
			p.addSets = append(p.addSets, affinitySet(name))
		}
	}
	for _, name := range sortedKeys(old.sets) {
		if _, ok := new.sets[name]; !ok {
			p.delSets = append(p.delSets, name)
		}
	}
	for _, k := range sortedElementKeys(new.elements) {
		if v, ok := old.elements[k]; !ok || !slices.Equal(v, new.elements[k]) {
			p.addElements = append(p.addElements, element(k, new.elements[k]))
		}
	}
}

func element(k elementKey, value []string) *knftables.Element {
	return &knftables.Element{Map: k.Map, Key: strings.Split(k.Key, " . "), Value: value}
}

func affinitySet(name string) *knftables.Set {
	return &knftables.Set{
		Name: name,
		Type: "ipv4_addr",
		// "dynamic" because the kernel adds it anyway for sets updated from the packet
		// path, and a later add with different flags would fail.
		Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
	}
}

// baseChain is one of the chains hooked into netfilter.
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
	rule     string // its only rule
}

// Filtering runs before DNAT so that it sees the Service address; reject is only valid in
// input, forward and output, hence no filter-prerouting.
var baseChains = []baseChain{
	{"filter-input", knftables.FilterType, knftables.InputHook, knftables.DNATPriority + "-10", "ct state new jump " + endpointsCheckChain},
	{"filter-forward", knftables.FilterType, knftables.ForwardHook, knftables.DNATPriority + "-10", "ct state new jump " + endpointsCheckChain},
	{"filter-output", knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10", "ct state new jump " + endpointsCheckChain},
	{"nat-prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, "jump " + servicesChain},
	{"nat-output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority, "jump " + servicesChain},
	{"nat-postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority, "jump " + masqueradingChain},
}

// writeBase appends to tx the table's fixed part: base chains, dispatch chains, the shared
// maps (flushed: a full sync re-adds every element) and the NodePort address set. With reset
// the table is deleted first, throwing away whatever was there (affinity state included).
func writeBase(tx *knftables.Transaction, nodeIPs []string, reset bool) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("nanokube service proxy")})
	if reset {
		tx.Delete(&knftables.Table{})
		tx.Add(&knftables.Table{Comment: knftables.PtrTo("nanokube service proxy")})
	}
	for _, name := range []string{servicesChain, endpointsCheckChain, rejectChain, markMasqChain, masqueradingChain} {
		tx.Add(&knftables.Chain{Name: name})
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, bc := range baseChains {
		c := &knftables.Chain{Name: bc.name, Type: knftables.PtrTo(bc.typ), Hook: knftables.PtrTo(bc.hook), Priority: knftables.PtrTo(bc.priority)}
		tx.Add(c)
		tx.Flush(c)
		tx.Add(&knftables.Rule{Chain: bc.name, Rule: bc.rule})
	}
	for _, m := range []struct{ name, typ string }{
		{serviceIPsMap, "ipv4_addr . inet_proto . inet_service : verdict"},
		{serviceNodePortsMap, "inet_proto . inet_service : verdict"},
		{noEndpointServicesMap, "ipv4_addr . inet_proto . inet_service : verdict"},
		{noEndpointNodePortsMap, "inet_proto . inet_service : verdict"},
	} {
		tx.Add(&knftables.Map{Name: m.name, Type: m.typ})
		tx.Flush(&knftables.Map{Name: m.name})
	}

	tx.Add(&knftables.Set{Name: nodePortIPsSet, Type: "ipv4_addr"})
	nodePorts := "fib daddr type local ip daddr != 127.0.0.0/8"
	if len(nodeIPs) == 0 {
		tx.Delete(&knftables.Set{Name: nodePortIPsSet})
	} else {
		tx.Flush(&knftables.Set{Name: nodePortIPsSet})
		for _, ip := range nodeIPs {
			tx.Add(&knftables.Element{Set: nodePortIPsSet, Key: []string{ip}})
		}
		nodePorts = "ip daddr @" + nodePortIPsSet
	}

	tx.Add(&knftables.Rule{Chain: servicesChain, Rule: "ip daddr . meta l4proto . th dport vmap @" + serviceIPsMap})
	tx.Add(&knftables.Rule{Chain: servicesChain, Rule: nodePorts + " meta l4proto . th dport vmap @" + serviceNodePortsMap})
	tx.Add(&knftables.Rule{Chain: endpointsCheckChain, Rule: "ip daddr . meta l4proto . th dport vmap @" + noEndpointServicesMap})
	tx.Add(&knftables.Rule{Chain: endpointsCheckChain, Rule: nodePorts + " meta l4proto . th dport vmap @" + noEndpointNodePortsMap})
	// TCP gets a reset, everything else ICMP port-unreachable: both fail a client at once.
	tx.Add(&knftables.Rule{Chain: rejectChain, Rule: "meta l4proto tcp reject with tcp reset"})
	tx.Add(&knftables.Rule{Chain: rejectChain, Rule: "reject"})
	tx.Add(&knftables.Rule{Chain: markMasqChain, Rule: "mark set mark or " + masqueradeMark})
	tx.Add(&knftables.Rule{Chain: masqueradingChain, Rule: "mark and " + masqueradeMark + " == 0 return"})
	tx.Add(&knftables.Rule{Chain: masqueradingChain, Rule: "mark set mark xor " + masqueradeMark})
	tx.Add(&knftables.Rule{Chain: masqueradingChain, Rule: "masquerade fully-random"})
}

// fullPlan is the plan of a full sync: every fragment written from scratch, plus the
// removal of per-service chains and sets found in the table that no fragment wants.
// existingChains and existingSets are what the table holds; with listed false they are
// unknown, and every chain is flushed as it is added in case it exists.
func fullPlan(frags map[string]*fragment, existingChains, existingSets []string, listed bool) *plan {
	p := &plan{}
	wantChains, wantSets := map[string]bool{}, map[string]bool{}
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

func sortedElementKeys(m map[elementKey][]string) []elementKey {
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
