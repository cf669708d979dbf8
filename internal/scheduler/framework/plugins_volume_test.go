package framework

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestVolumeBinding(t *testing.T) {
	node := func(name string) *NodeInfo {
		return &NodeInfo{Node: &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}}}}
	}
	onHost := func(h string) *v1.NodeSelector {
		return &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
			{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{h}}}}}}
	}
	for _, tc := range []struct {
		name      string
		volumes   *PodVolumes
		preFilter Code
		fits      map[string]bool // node -> fits, when PreFilter succeeds
	}{
		{name: "no claims", volumes: nil, preFilter: Skip},
		{name: "only delayed claims", volumes: &PodVolumes{Delayed: []*v1.PersistentVolumeClaim{{}}}, preFilter: Skip},
		{name: "unresolvable", volumes: &PodVolumes{Unresolvable: ReasonUnboundImmediateClaims}, preFilter: UnschedulableAndUnresolvable},
		{name: "bound local volume", volumes: &PodVolumes{NodeAffinities: []*v1.NodeSelector{onHost("a")}},
			fits: map[string]bool{"a": true, "b": false}},
		{name: "two volumes on different nodes", volumes: &PodVolumes{NodeAffinities: []*v1.NodeSelector{onHost("a"), onHost("b")}},
			fits: map[string]bool{"a": false, "b": false}},
		{name: "selected node", volumes: &PodVolumes{SelectedNode: "b"}, fits: map[string]bool{"a": false, "b": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := NewCycleState()
			if tc.volumes != nil {
				state.Write(PodVolumesKey, tc.volumes)
			}
			st := (VolumeBinding{}).PreFilter(state, nil, nil)
			if st.CodeOf() != tc.preFilter {
				t.Fatalf("PreFilter %v, want code %v", st, tc.preFilter)
			}
			for n, want := range tc.fits {
				if got := (VolumeBinding{}).Filter(state, nil, node(n)).IsSuccess(); got != want {
					t.Errorf("node %s: fits %v, want %v", n, got, want)
				}
			}
		})
	}
}
