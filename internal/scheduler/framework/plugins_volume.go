package framework

import v1 "k8s.io/api/core/v1"

// PodVolumesKey is the CycleState key under which the scheduler stores a pod's PodVolumes
// before a cycle; the framework never reads claims or volumes itself.
const PodVolumesKey = "VolumeBinding/podVolumes"

// Reasons of VolumeBinding, in kube-scheduler's words.
const (
	ReasonVolumeNodeAffinityConflict = "node(s) had volume node affinity conflict"
	ReasonUnboundImmediateClaims     = "pod has unbound immediate PersistentVolumeClaims"
	ReasonSelectedNodeConflict       = "node(s) did not match the node selected for a PersistentVolumeClaim"
)

// PodVolumes is what the scheduler's caches say about a pod's PersistentVolumeClaims.
type PodVolumes struct {
	// Unresolvable, when set, makes the pod fit no node: a claim missing or being deleted, an
	// unbound claim of an Immediate class, a class that does not exist.
	Unresolvable string
	// NodeAffinities are the required node affinities of the volumes bound to the pod's
	// claims: a node must satisfy them all.
	NodeAffinities []*v1.NodeSelector
	// SelectedNode is the node an earlier cycle chose for an unbound WaitForFirstConsumer
	// claim (its volume.kubernetes.io/selected-node): the pod must go there too.
	SelectedNode string
	// Delayed are the unbound WaitForFirstConsumer claims without a selected node: the binder
	// annotates them with the chosen node before binding the pod, which starts provisioning.
	Delayed []*v1.PersistentVolumeClaim
}

// VolumeBinding keeps a pod on the nodes its bound volumes can be reached from, as
// kube-scheduler's VolumeBinding plugin does for local volumes; unbound WaitForFirstConsumer
// claims accept any node.
type VolumeBinding struct{}

func (VolumeBinding) Name() string { return "VolumeBinding" }

func (VolumeBinding) PreFilter(state *CycleState, _ *PodInfo, _ *Snapshot) *Status {
	pv, _ := state.Read(PodVolumesKey).(*PodVolumes)
	switch {
	case pv == nil || len(pv.NodeAffinities) == 0 && pv.SelectedNode == "" && pv.Unresolvable == "":
		return NewStatus(Skip)
	case pv.Unresolvable != "":
		return NewStatus(UnschedulableAndUnresolvable, pv.Unresolvable)
	}
	return nil
}

func (VolumeBinding) Filter(state *CycleState, _ *PodInfo, node *NodeInfo) *Status {
	pv, _ := state.Read(PodVolumesKey).(*PodVolumes)
	if pv == nil {
		return nil
	}
	if pv.SelectedNode != "" && node.Name() != pv.SelectedNode {
		return NewStatus(UnschedulableAndUnresolvable, ReasonSelectedNodeConflict)
	}
	for _, sel := range pv.NodeAffinities {
		if ok, err := matchNodeSelectorTerms(node.Node, sel.NodeSelectorTerms); err != nil || !ok {
			return NewStatus(UnschedulableAndUnresolvable, ReasonVolumeNodeAffinityConflict)
		}
	}
	return nil
}
