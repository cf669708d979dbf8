package framework

import (
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
)

// Preemption reasons, worded as kube-scheduler words them.
const (
	ReasonPreemptionNotHelpful = "Preemption is not helpful for scheduling"
	ReasonNoVictims            = "No preemption victims found for incoming pod"
)

// Preemption is the outcome of Preempt.
type Preemption struct {
	Node    string    // "" when no node helps
	Victims []*v1.Pod // pods to evict from Node
	// Message explains a failure, as "preemption: 0/3 nodes are available: …".
	Message string
}

// Preempt looks for the node where evicting the fewest, least important pods of lower
// priority lets pod fit. fitErr is the failed cycle's error and state its CycleState.
//
// Only the pods on the candidate node are reconsidered: pod counts that PreFilter plugins
// computed across the cluster (affinity, topology spread) keep counting the victims, which
// can make preemption give up where kube-scheduler would not, never the other way round.
func (f *Framework) Preempt(state *CycleState, pod *PodInfo, snap *Snapshot, fitErr *FitError) Preemption {
	if p := pod.Pod.Spec.PreemptionPolicy; p != nil && *p == v1.PreemptNever {
		return Preemption{Message: "preemption: not eligible due to preemptionPolicy=Never."}
	}
	// A pod that already evicted pods waits for them to go rather than evicting more.
	if nom := pod.Pod.Status.NominatedNodeName; nom != "" {
		if ni := snap.ByName[nom]; ni != nil {
			for _, p := range ni.Pods {
				if p.Pod.DeletionTimestamp != nil && p.Priority < pod.Priority {
					return Preemption{Message: "preemption: pod is waiting for its victims on " + nom + " to terminate."}
				}
			}
		}
	}

	reasons := map[string]*Status{}
	type candidate struct {
		node    string
		victims []*PodInfo
	}
	var best *candidate
	better := func(a, b *candidate) bool { // is a better than b?
		ha, hb := highest(a.victims), highest(b.victims)
		if ha != hb {
			return ha < hb
		}
		sa, sb := sumPriorities(a.victims), sumPriorities(b.victims)
		if sa != sb {
			return sa < sb
		}
		return len(a.victims) < len(b.victims)
	}
	notHelpful := NewStatus(UnschedulableAndUnresolvable, ReasonPreemptionNotHelpful)
	noVictims := NewStatus(Unschedulable, ReasonNoVictims)
	for _, ni := range snap.Nodes {
		st := fitErr.NodeStatuses[ni.Name()]
		if fitErr.PreFilterMsg != "" || (st != nil && st.Code == UnschedulableAndUnresolvable) {
			reasons[ni.Name()] = notHelpful
			continue
		}
		victims, ok := f.victimsOn(state, pod, ni)
		if !ok {
			reasons[ni.Name()] = noVictims
			continue
		}
		c := &candidate{node: ni.Name(), victims: victims}
		if best == nil || better(c, best) {
			best = c
		}
	}
	if best == nil {
		msg := fmt.Sprintf("preemption: 0/%d nodes are available: %s.", len(snap.Nodes), reasonHistogram(reasons))
		return Preemption{Message: msg}
	}
	out := Preemption{Node: best.node}
	for _, v := range best.victims {
		out.Victims = append(out.Victims, v.Pod)
	}
	return out
}

// victimsOn finds the smallest set of lower-priority pods on ni whose removal lets pod fit:
// remove them all, then put back the most important ones that still leave room.
func (f *Framework) victimsOn(state *CycleState, pod *PodInfo, ni *NodeInfo) ([]*PodInfo, bool) {
	trial := ni.Clone()
	var lower []*PodInfo
	for _, p := range ni.Pods {
		if p.Priority >= pod.Priority {
			continue
		}
		trial.RemovePod(p.Pod)
		if p.Pod.DeletionTimestamp == nil { // terminating pods are going anyway
			lower = append(lower, p)
		}
	}
	if len(lower) == 0 && len(trial.Pods) == len(ni.Pods) {
		return nil, false
	}
	if !f.RunFilters(state, pod, trial).IsSuccess() {
		return nil, false
	}
	sort.SliceStable(lower, func(i, j int) bool { return lower[i].Priority > lower[j].Priority })
	var victims []*PodInfo
	for _, p := range lower {
		trial.AddPod(p)
		if !f.RunFilters(state, pod, trial).IsSuccess() {
			trial.RemovePod(p.Pod)
			victims = append(victims, p)
		}
	}
	return victims, true
}

func highest(ps []*PodInfo) int32 {
	h := int32(-1 << 31)
	for _, p := range ps {
		h = max(h, p.Priority)
	}
	return h
}

func sumPriorities(ps []*PodInfo) int64 {
	var s int64
	for _, p := range ps {
		// Shift so that negative priorities still add up to something comparable.
		s += int64(p.Priority) + (1 << 31)
	}
	return s
}
