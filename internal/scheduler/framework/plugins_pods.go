package framework

import (
	"math"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// topologyPair is one topology domain: a node label key and value.
type topologyPair struct{ key, value string }

// InterPodAffinity enforces required pod affinity and anti-affinity, the incoming pod's and
// that of the pods already running.
type InterPodAffinity struct{}

func (InterPodAffinity) Name() string { return "InterPodAffinity" }

const interPodAffinityKey = "InterPodAffinity"

type interPodAffinityState struct {
	existingAnti map[topologyPair]int // domains where a running pod's anti-affinity forbids the pod
	affinity     map[topologyPair]int // domains with pods matching all the pod's affinity terms
	anti         map[topologyPair]int // domains with pods matching one of the pod's anti-affinity terms
}

func (InterPodAffinity) PreFilter(state *CycleState, pod *PodInfo, snap *Snapshot) *Status {
	s := &interPodAffinityState{existingAnti: map[topologyPair]int{}, affinity: map[topologyPair]int{}, anti: map[topologyPair]int{}}
	for _, ni := range snap.HavePodsWithRequiredAntiAffinity {
		for _, existing := range ni.PodsWithRequiredAntiAffinity {
			for i := range existing.RequiredAntiAffinity {
				t := &existing.RequiredAntiAffinity[i]
				if v, ok := ni.Node.Labels[t.TopologyKey]; ok && t.Matches(pod.Pod) {
					s.existingAnti[topologyPair{t.TopologyKey, v}]++
				}
			}
		}
	}
	if len(pod.RequiredAffinity) == 0 && len(pod.RequiredAntiAffinity) == 0 {
		if len(s.existingAnti) == 0 {
			return NewStatus(Skip)
		}
		state.Write(interPodAffinityKey, s)
		return nil
	}
	for _, ni := range snap.Nodes {
		for _, existing := range ni.Pods {
			if len(pod.RequiredAffinity) > 0 && matchesAll(pod.RequiredAffinity, existing.Pod) {
				for _, t := range pod.RequiredAffinity {
					if v, ok := ni.Node.Labels[t.TopologyKey]; ok {
						s.affinity[topologyPair{t.TopologyKey, v}]++
					}
				}
			}
			for i := range pod.RequiredAntiAffinity {
				t := &pod.RequiredAntiAffinity[i]
				if v, ok := ni.Node.Labels[t.TopologyKey]; ok && t.Matches(existing.Pod) {
					s.anti[topologyPair{t.TopologyKey, v}]++
				}
			}
		}
	}
	state.Write(interPodAffinityKey, s)
	return nil
}

func matchesAll(terms []AffinityTerm, pod *v1.Pod) bool {
	for i := range terms {
		if !terms[i].Matches(pod) {
			return false
		}
	}
	return true
}

func (InterPodAffinity) Filter(state *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	s, _ := state.Read(interPodAffinityKey).(*interPodAffinityState)
	if s == nil {
		return nil
	}
	labels := node.Node.Labels
	if len(pod.RequiredAffinity) > 0 {
		ok := true
		for _, t := range pod.RequiredAffinity {
			v, has := labels[t.TopologyKey]
			if !has || s.affinity[topologyPair{t.TopologyKey, v}] == 0 {
				ok = false
				break
			}
		}
		// The first pod of a group that selects itself may go anywhere the topology exists.
		if !ok && !(len(s.affinity) == 0 && matchesAll(pod.RequiredAffinity, pod.Pod) && hasKeys(labels, pod.RequiredAffinity)) {
			return NewStatus(UnschedulableAndUnresolvable, ReasonPodAffinity)
		}
	}
	for _, t := range pod.RequiredAntiAffinity {
		if v, has := labels[t.TopologyKey]; has && s.anti[topologyPair{t.TopologyKey, v}] > 0 {
			return NewStatus(Unschedulable, ReasonPodAntiAffinity)
		}
	}
	if len(s.existingAnti) > 0 {
		for k, v := range labels {
			if s.existingAnti[topologyPair{k, v}] > 0 {
				return NewStatus(Unschedulable, ReasonExistingAntiAffin)
			}
		}
	}
	return nil
}

func hasKeys(labels map[string]string, terms []AffinityTerm) bool {
	for _, t := range terms {
		if _, ok := labels[t.TopologyKey]; !ok {
			return false
		}
	}
	return true
}

// PodTopologySpread enforces topologySpreadConstraints: DoNotSchedule ones as a filter,
// ScheduleAnyway ones as a score.
type PodTopologySpread struct{}

func (PodTopologySpread) Name() string { return "PodTopologySpread" }

const (
	spreadFilterKey = "PodTopologySpread/filter"
	spreadScoreKey  = "PodTopologySpread/score"
)

type spreadConstraint struct {
	key        string
	maxSkew    int32
	minDomains int32
	selector   labels.Selector
	honorNodeAffinity,
	honorTaints bool
}

type spreadState struct {
	constraints []spreadConstraint
	counts      map[topologyPair]int
	minMatch    []int // per constraint: the smallest count over its domains
	selfMatch   []int
	weights     []float64
}

func buildConstraints(pod *v1.Pod, when v1.UnsatisfiableConstraintAction) ([]spreadConstraint, error) {
	var out []spreadConstraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != when {
			continue
		}
		ls := c.LabelSelector
		if len(c.MatchLabelKeys) > 0 && ls != nil {
			ls = ls.DeepCopy()
			for _, k := range c.MatchLabelKeys {
				if v, ok := pod.Labels[k]; ok {
					ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpIn, Values: []string{v}})
				}
			}
		}
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			return nil, err
		}
		sc := spreadConstraint{key: c.TopologyKey, maxSkew: c.MaxSkew, selector: sel, minDomains: 1,
			honorNodeAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor,
			honorTaints:       c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor}
		if c.MinDomains != nil {
			sc.minDomains = *c.MinDomains
		}
		out = append(out, sc)
	}
	return out, nil
}

// countSpread counts, per domain, the pods matching each constraint on the eligible nodes.
func countSpread(pod *v1.Pod, cs []spreadConstraint, nodes []*NodeInfo) *spreadState {
	s := &spreadState{constraints: cs, counts: map[topologyPair]int{}, minMatch: make([]int, len(cs)), selfMatch: make([]int, len(cs))}
	for _, ni := range nodes {
		if !hasAllKeys(ni.Node.Labels, cs) {
			continue
		}
		for _, c := range cs {
			if c.honorNodeAffinity && !NodeSelectorMatches(pod, ni.Node) {
				continue
			}
			if c.honorTaints && !toleratesNoSchedule(pod, ni.Node) {
				continue
			}
			pair := topologyPair{c.key, ni.Node.Labels[c.key]}
			n := 0
			for _, p := range ni.Pods {
				if p.Pod.Namespace == pod.Namespace && p.Pod.DeletionTimestamp == nil && c.selector.Matches(labels.Set(p.Pod.Labels)) {
					n++
				}
			}
			s.counts[pair] += n
		}
	}
	for i, c := range cs {
		domains, lowest := 0, math.MaxInt
		for pair, n := range s.counts {
			if pair.key == c.key {
				domains++
				lowest = min(lowest, n)
			}
		}
		if domains < int(c.minDomains) || lowest == math.MaxInt {
			lowest = 0
		}
		s.minMatch[i] = lowest
		if c.selector.Matches(labels.Set(pod.Labels)) {
			s.selfMatch[i] = 1
		}
		s.weights = append(s.weights, math.Log(float64(domains+2)))
	}
	return s
}

func hasAllKeys(l map[string]string, cs []spreadConstraint) bool {
	for _, c := range cs {
		if _, ok := l[c.key]; !ok {
			return false
		}
	}
	return true
}

func toleratesNoSchedule(pod *v1.Pod, node *v1.Node) bool {
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if (t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute) && !tolerated(pod.Spec.Tolerations, t) {
			return false
		}
	}
	return true
}

func (PodTopologySpread) PreFilter(state *CycleState, pod *PodInfo, snap *Snapshot) *Status {
	cs, err := buildConstraints(pod.Pod, v1.DoNotSchedule)
	if err != nil {
		return NewStatus(UnschedulableAndUnresolvable, err.Error())
	}
	if len(cs) == 0 {
		return NewStatus(Skip)
	}
	state.Write(spreadFilterKey, countSpread(pod.Pod, cs, snap.Nodes))
	return nil
}

func (PodTopologySpread) Filter(state *CycleState, _ *PodInfo, node *NodeInfo) *Status {
	s, _ := state.Read(spreadFilterKey).(*spreadState)
	if s == nil {
		return nil
	}
	for i, c := range s.constraints {
		v, ok := node.Node.Labels[c.key]
		if !ok {
			return NewStatus(UnschedulableAndUnresolvable, ReasonTopologySpreadKeys)
		}
		if skew := s.counts[topologyPair{c.key, v}] + s.selfMatch[i] - s.minMatch[i]; skew > int(c.maxSkew) {
			return NewStatus(Unschedulable, ReasonTopologySpread)
		}
	}
	return nil
}

func (PodTopologySpread) PreScore(state *CycleState, pod *PodInfo, snap *Snapshot, _ []*NodeInfo) *Status {
	cs, err := buildConstraints(pod.Pod, v1.ScheduleAnyway)
	if err != nil || len(cs) == 0 {
		return NewStatus(Skip)
	}
	state.Write(spreadScoreKey, countSpread(pod.Pod, cs, snap.Nodes))
	return nil
}

// Score is the weighted number of matching pods in the node's domains (fewer is better);
// nodes without the topology keys get the worst score.
func (PodTopologySpread) Score(state *CycleState, _ *PodInfo, node *NodeInfo) int64 {
	s := state.Read(spreadScoreKey).(*spreadState)
	var score float64
	for i, c := range s.constraints {
		v, ok := node.Node.Labels[c.key]
		if !ok {
			return -1
		}
		score += float64(s.counts[topologyPair{c.key, v}]+int(c.maxSkew)-1) * s.weights[i]
	}
	return int64(math.Round(score))
}

func (PodTopologySpread) NormalizeScores(_ *CycleState, _ *PodInfo, scores []int64) {
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, s := range scores {
		if s >= 0 {
			lo, hi = min(lo, s), max(hi, s)
		}
	}
	for i, s := range scores {
		switch {
		case s < 0:
			scores[i] = 0
		case hi == lo:
			scores[i] = MaxNodeScore
		default:
			scores[i] = MaxNodeScore * (hi - s) / (hi - lo)
		}
	}
}

// SelectorSpread spreads the pods of one controller (same namespace and controller owner)
// across nodes.
type SelectorSpread struct{}

func (SelectorSpread) Name() string { return "SelectorSpread" }

const selectorSpreadKey = "SelectorSpread"

func (SelectorSpread) PreScore(state *CycleState, pod *PodInfo, _ *Snapshot, _ []*NodeInfo) *Status {
	ref := metav1.GetControllerOf(pod.Pod)
	if ref == nil || len(pod.Pod.Spec.TopologySpreadConstraints) > 0 {
		return NewStatus(Skip)
	}
	state.Write(selectorSpreadKey, ref.UID)
	return nil
}

// Score counts the node's pods of the same controller (normalized so that fewer is better).
func (SelectorSpread) Score(state *CycleState, pod *PodInfo, node *NodeInfo) int64 {
	uid := state.Read(selectorSpreadKey)
	var n int64
	for _, p := range node.Pods {
		if p.Pod.Namespace != pod.Pod.Namespace || p.Pod.DeletionTimestamp != nil {
			continue
		}
		if ref := metav1.GetControllerOfNoCopy(p.Pod); ref != nil && ref.UID == uid {
			n++
		}
	}
	return n
}

func (SelectorSpread) NormalizeScores(_ *CycleState, _ *PodInfo, scores []int64) {
	normalize(scores, true)
}
