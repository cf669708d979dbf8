package framework

import (
	"fmt"
	"strconv"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Reasons, worded as kube-scheduler words them.
const (
	ReasonTooManyPods        = "Too many pods"
	ReasonNodeName           = "node(s) didn't match the requested node name"
	ReasonUnschedulable      = "node(s) were unschedulable"
	ReasonNodeAffinity       = "node(s) didn't match Pod's node affinity/selector"
	ReasonNodePorts          = "node(s) didn't have free ports for the requested pod ports"
	ReasonPodAffinity        = "node(s) didn't match pod affinity rules"
	ReasonPodAntiAffinity    = "node(s) didn't match pod anti-affinity rules"
	ReasonExistingAntiAffin  = "node(s) didn't satisfy existing pods anti-affinity rules"
	ReasonTopologySpread     = "node(s) didn't match pod topology spread constraints"
	ReasonTopologySpreadKeys = "node(s) didn't match pod topology spread constraints (missing required label)"
)

// NodeResourcesFit rejects nodes without room for the pod's requests and, as a scorer,
// prefers the least allocated nodes (kube-scheduler's LeastAllocated strategy).
type NodeResourcesFit struct{}

func (NodeResourcesFit) Name() string { return "NodeResourcesFit" }

// Filter checks pod count, CPU, memory, ephemeral storage and extended resources.
func (NodeResourcesFit) Filter(_ *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	var reasons []string
	req, used, alloc := &pod.Requests, &node.Requested, &node.Allocatable
	if int64(len(node.Pods))+1 > alloc.Pods {
		reasons = append(reasons, ReasonTooManyPods)
	}
	if req.MilliCPU > 0 && req.MilliCPU > alloc.MilliCPU-used.MilliCPU {
		reasons = append(reasons, "Insufficient cpu")
	}
	if req.Memory > 0 && req.Memory > alloc.Memory-used.Memory {
		reasons = append(reasons, "Insufficient memory")
	}
	if req.EphemeralStorage > 0 && req.EphemeralStorage > alloc.EphemeralStorage-used.EphemeralStorage {
		reasons = append(reasons, "Insufficient ephemeral-storage")
	}
	for name, q := range req.Scalar {
		if q > 0 && q > alloc.Scalar[name]-used.Scalar[name] {
			reasons = append(reasons, "Insufficient "+string(name))
		}
	}
	if len(reasons) > 0 {
		return NewStatus(Unschedulable, reasons...)
	}
	return nil
}

// Score is the mean free fraction of CPU and memory after placing the pod.
func (NodeResourcesFit) Score(_ *CycleState, pod *PodInfo, node *NodeInfo) int64 {
	free := func(requested, allocatable int64) int64 {
		if allocatable == 0 || requested > allocatable {
			return 0
		}
		return (allocatable - requested) * MaxNodeScore / allocatable
	}
	cpu := free(node.NonZeroRequested.MilliCPU+pod.NonZero.MilliCPU, node.Allocatable.MilliCPU)
	mem := free(node.NonZeroRequested.Memory+pod.NonZero.Memory, node.Allocatable.Memory)
	return (cpu + mem) / 2
}

// BalancedAllocation prefers nodes whose CPU and memory would be used in equal proportion.
type BalancedAllocation struct{}

func (BalancedAllocation) Name() string { return "NodeResourcesBalancedAllocation" }

// Score is (1 − standard deviation of the used fractions) × 100.
func (BalancedAllocation) Score(_ *CycleState, pod *PodInfo, node *NodeInfo) int64 {
	frac := func(requested, allocatable int64) float64 {
		if allocatable == 0 {
			return 1
		}
		return min(float64(requested)/float64(allocatable), 1)
	}
	cpu := frac(node.NonZeroRequested.MilliCPU+pod.NonZero.MilliCPU, node.Allocatable.MilliCPU)
	mem := frac(node.NonZeroRequested.Memory+pod.NonZero.Memory, node.Allocatable.Memory)
	std := cpu - mem
	if std < 0 {
		std = -std
	}
	return int64((1 - std/2) * float64(MaxNodeScore))
}

// NodeName keeps a pod that names a node to that node.
type NodeName struct{}

func (NodeName) Name() string { return "NodeName" }

func (NodeName) Filter(_ *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	if n := pod.Pod.Spec.NodeName; n != "" && n != node.Name() {
		return NewStatus(UnschedulableAndUnresolvable, ReasonNodeName)
	}
	return nil
}

// NodeUnschedulable keeps pods off cordoned nodes unless they tolerate the
// node.kubernetes.io/unschedulable taint.
type NodeUnschedulable struct{}

func (NodeUnschedulable) Name() string { return "NodeUnschedulable" }

func (NodeUnschedulable) Filter(_ *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	if !node.Node.Spec.Unschedulable {
		return nil
	}
	taint := v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule}
	for i := range pod.Pod.Spec.Tolerations {
		if Tolerates(&pod.Pod.Spec.Tolerations[i], &taint) {
			return nil
		}
	}
	return NewStatus(UnschedulableAndUnresolvable, ReasonUnschedulable)
}

// NodeAffinity enforces spec.nodeSelector and required node affinity and scores preferred
// node affinity.
type NodeAffinity struct{}

func (NodeAffinity) Name() string { return "NodeAffinity" }

func (NodeAffinity) Filter(_ *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	if !NodeSelectorMatches(pod.Pod, node.Node) {
		return NewStatus(UnschedulableAndUnresolvable, ReasonNodeAffinity)
	}
	return nil
}

func (NodeAffinity) PreScore(_ *CycleState, pod *PodInfo, _ *Snapshot, _ []*NodeInfo) *Status {
	a := pod.Pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return NewStatus(Skip)
	}
	return nil
}

// Score sums the weights of the preferred terms the node matches.
func (NodeAffinity) Score(_ *CycleState, pod *PodInfo, node *NodeInfo) int64 {
	var sum int64
	for _, t := range pod.Pod.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		if t.Weight == 0 {
			continue
		}
		if ok, _ := matchNodeSelectorTerms(node.Node, []v1.NodeSelectorTerm{t.Preference}); ok {
			sum += int64(t.Weight)
		}
	}
	return sum
}

func (NodeAffinity) NormalizeScores(_ *CycleState, _ *PodInfo, scores []int64) {
	normalize(scores, false)
}

// normalize rescales scores to 0…MaxNodeScore by the highest; reverse makes lower better.
func normalize(scores []int64, reverse bool) {
	var top int64
	for _, s := range scores {
		top = max(top, s)
	}
	for i, s := range scores {
		switch {
		case top == 0 && reverse:
			scores[i] = MaxNodeScore
		case top == 0:
			scores[i] = 0
		case reverse:
			scores[i] = MaxNodeScore - s*MaxNodeScore/top
		default:
			scores[i] = s * MaxNodeScore / top
		}
	}
}

// matchNodeSelectorTerms ORs the terms; within a term every expression and field must hold.
// An empty term matches nothing.
func matchNodeSelectorTerms(node *v1.Node, terms []v1.NodeSelectorTerm) (bool, error) {
	for _, t := range terms {
		if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
			continue
		}
		ok, err := matchRequirements(t.MatchExpressions, node.Labels)
		if err != nil || !ok {
			continue
		}
		if ok, err = matchRequirements(t.MatchFields, map[string]string{"metadata.name": node.Name}); err == nil && ok {
			return true, nil
		}
	}
	return false, nil
}

func matchRequirements(reqs []v1.NodeSelectorRequirement, set map[string]string) (bool, error) {
	for _, r := range reqs {
		var op selection.Operator
		switch r.Operator {
		case v1.NodeSelectorOpIn:
			op = selection.In
		case v1.NodeSelectorOpNotIn:
			op = selection.NotIn
		case v1.NodeSelectorOpExists:
			op = selection.Exists
		case v1.NodeSelectorOpDoesNotExist:
			op = selection.DoesNotExist
		case v1.NodeSelectorOpGt:
			op = selection.GreaterThan
		case v1.NodeSelectorOpLt:
			op = selection.LessThan
		default:
			return false, fmt.Errorf("unknown operator %q", r.Operator)
		}
		if op == selection.GreaterThan || op == selection.LessThan {
			if len(r.Values) != 1 {
				return false, nil
			}
			if _, err := strconv.ParseInt(r.Values[0], 10, 64); err != nil {
				return false, nil
			}
		}
		req, err := labels.NewRequirement(r.Key, op, r.Values)
		if err != nil {
			return false, err
		}
		if !req.Matches(labels.Set(set)) {
			return false, nil
		}
	}
	return true, nil
}

// Tolerates reports whether a toleration tolerates a taint.
func Tolerates(t *v1.Toleration, taint *v1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case v1.TolerationOpExists:
		return true
	case "", v1.TolerationOpEqual:
		return t.Value == taint.Value
	}
	return false
}

// TaintToleration keeps pods off nodes with NoSchedule/NoExecute taints they do not tolerate
// and prefers nodes with fewer untolerated PreferNoSchedule taints.
type TaintToleration struct{}

func (TaintToleration) Name() string { return "TaintToleration" }

func (TaintToleration) Filter(_ *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	for i := range node.Node.Spec.Taints {
		taint := &node.Node.Spec.Taints[i]
		if taint.Effect != v1.TaintEffectNoSchedule && taint.Effect != v1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(pod.Pod.Spec.Tolerations, taint) {
			return NewStatus(UnschedulableAndUnresolvable,
				fmt.Sprintf("node(s) had untolerated taint {%s: %s}", taint.Key, taint.Value))
		}
	}
	return nil
}

func tolerated(tols []v1.Toleration, taint *v1.Taint) bool {
	for i := range tols {
		if Tolerates(&tols[i], taint) {
			return true
		}
	}
	return false
}

// Score counts untolerated PreferNoSchedule taints (normalized so that fewer is better).
func (TaintToleration) Score(_ *CycleState, pod *PodInfo, node *NodeInfo) int64 {
	var n int64
	for i := range node.Node.Spec.Taints {
		taint := &node.Node.Spec.Taints[i]
		if taint.Effect == v1.TaintEffectPreferNoSchedule && !tolerated(pod.Pod.Spec.Tolerations, taint) {
			n++
		}
	}
	return n
}

func (TaintToleration) NormalizeScores(_ *CycleState, _ *PodInfo, scores []int64) {
	normalize(scores, true)
}

// NodePorts keeps pods off nodes where their host ports are taken.
type NodePorts struct{}

func (NodePorts) Name() string { return "NodePorts" }

const nodePortsKey = "NodePorts"

func (NodePorts) PreFilter(state *CycleState, pod *PodInfo, _ *Snapshot) *Status {
	var want HostPorts
	want.addPod(pod.Pod)
	if len(want) == 0 {
		return NewStatus(Skip)
	}
	state.Write(nodePortsKey, want)
	return nil
}

func (NodePorts) Filter(state *CycleState, _ *PodInfo, node *NodeInfo) *Status {
	want, _ := state.Read(nodePortsKey).(HostPorts)
	for _, p := range want {
		if node.UsedPorts.Conflicts(p) {
			return NewStatus(Unschedulable, ReasonNodePorts)
		}
	}
	return nil
}
