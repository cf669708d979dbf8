package nodelifecycle

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// managedTaintKeys are the taints this controller owns; all others are left as they are.
var managedTaintKeys = map[string]bool{
	corev1.TaintNodeNotReady:           true,
	corev1.TaintNodeUnreachable:        true,
	corev1.TaintNodeMemoryPressure:     true,
	corev1.TaintNodeDiskPressure:       true,
	corev1.TaintNodePIDPressure:        true,
	corev1.TaintNodeNetworkUnavailable: true,
	corev1.TaintNodeUnschedulable:      true,
}

// conditionTaints maps a condition in a status to the NoSchedule taint it brings.
var conditionTaints = []struct {
	cond   corev1.NodeConditionType
	status corev1.ConditionStatus
	key    string
}{
	{corev1.NodeReady, corev1.ConditionFalse, corev1.TaintNodeNotReady},
	{corev1.NodeReady, corev1.ConditionUnknown, corev1.TaintNodeUnreachable},
	{corev1.NodeMemoryPressure, corev1.ConditionTrue, corev1.TaintNodeMemoryPressure},
	{corev1.NodeDiskPressure, corev1.ConditionTrue, corev1.TaintNodeDiskPressure},
	{corev1.NodePIDPressure, corev1.ConditionTrue, corev1.TaintNodePIDPressure},
	{corev1.NodeNetworkUnavailable, corev1.ConditionTrue, corev1.TaintNodeNetworkUnavailable},
}

// disruption says how far NoExecute tainting may go.
type disruption int

const (
	// normal: NoExecute taints follow the Ready condition.
	normal disruption = iota
	// zoneDisrupted: every node of the node's zone is not ready; no NoExecute taint is added
	// (the fault is more likely ours or the network's than every node's), existing ones stay.
	zoneDisrupted
	// allDisrupted: no node of the cluster is ready; NoExecute taints are removed.
	allDisrupted
)

// desiredTaints returns the node's taints as its conditions call for, keeping the timeAdded of
// taints that stay, and whether they differ from the node's.
func desiredTaints(node *corev1.Node, now time.Time, mode disruption) ([]corev1.Taint, bool) {
	var want []corev1.Taint
	for _, ct := range conditionTaints {
		if cond := condition(node.Status.Conditions, ct.cond); cond != nil && cond.Status == ct.status {
			want = append(want, corev1.Taint{Key: ct.key, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if node.Spec.Unschedulable {
		want = append(want, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	if ready := condition(node.Status.Conditions, corev1.NodeReady); ready != nil && mode != allDisrupted {
		var key string
		switch ready.Status {
		case corev1.ConditionFalse:
			key = corev1.TaintNodeNotReady
		case corev1.ConditionUnknown:
			key = corev1.TaintNodeUnreachable
		}
		has := slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool {
			return t.Key == key && t.Effect == corev1.TaintEffectNoExecute
		})
		if key != "" && (mode == normal || has) {
			want = append(want, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoExecute})
		}
	}

	var out []corev1.Taint
	for _, t := range node.Spec.Taints {
		if !managedTaintKeys[t.Key] {
			out = append(out, t)
		}
	}
	changed := false
	for _, w := range want {
		i := slices.IndexFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == w.Key && t.Effect == w.Effect })
		if i >= 0 {
			out = append(out, node.Spec.Taints[i])
			continue
		}
		if w.Effect == corev1.TaintEffectNoExecute {
			w.TimeAdded = &metav1.Time{Time: now}
		}
		out = append(out, w)
		changed = true
	}
	if len(out) != len(node.Spec.Taints) {
		changed = true // a managed taint went (or a duplicate did)
	}
	return out, changed
}

func noExecuteTaints(taints []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

func sameTaints(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].MatchTaint(&b[i]) || a[i].Value != b[i].Value || !a[i].TimeAdded.Equal(b[i].TimeAdded) {
			return false
		}
	}
	return true
}
