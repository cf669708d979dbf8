package framework

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// Builders for test objects.

func node(name string, cpu, mem string, mods ...func(*v1.Node)) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem),
			v1.ResourcePods: resource.MustParse("110"), v1.ResourceEphemeralStorage: resource.MustParse("10Gi"),
		}}}
	for _, m := range mods {
		m(n)
	}
	return n
}

func withLabels(kv ...string) func(*v1.Node) {
	return func(n *v1.Node) {
		for i := 0; i < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withTaint(key, value string, effect v1.TaintEffect) func(*v1.Node) {
	return func(n *v1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: key, Value: value, Effect: effect})
	}
}

var uidSeq int

func pod(name string, mods ...func(*v1.Pod)) *v1.Pod {
	uidSeq++
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(fmt.Sprint("uid-", uidSeq)),
		Labels: map[string]string{}},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	for _, m := range mods {
		m(p)
	}
	return p
}

func requests(kv ...string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		rl := v1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			rl[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
		}
		p.Spec.Containers[0].Resources.Requests = rl
	}
}

func podLabels(kv ...string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		for i := 0; i < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func onNode(n string) func(*v1.Pod) { return func(p *v1.Pod) { p.Spec.NodeName = n } }

func nodeInfo(n *v1.Node, pods ...*v1.Pod) *NodeInfo {
	ni := NewNodeInfo(n)
	for _, p := range pods {
		ni.AddPod(NewPodInfo(p, 0))
	}
	return ni
}

func reasons(st *Status) string {
	if st.IsSuccess() {
		return ""
	}
	return strings.Join(st.Reasons, "; ")
}

func TestPodRequests(t *testing.T) {
	p := pod("p", requests("cpu", "500m", "memory", "1Gi"))
	p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "b", Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")}}})
	p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("100Mi")}}}}
	p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m")}
	req, nz := PodRequests(p)
	if req.MilliCPU != 2100 || req.Memory != 1<<30 || req.Pods != 1 {
		t.Errorf("requests %+v, want cpu 2100m (init max + overhead), memory 1Gi", req)
	}
	if nz.MilliCPU != 2100 || nz.Memory != 1<<30+DefaultMemoryRequest { // container b has no memory request
		t.Errorf("non-zero %+v", nz)
	}
	_, nz = PodRequests(pod("empty"))
	if nz.MilliCPU != DefaultMilliCPURequest || nz.Memory != DefaultMemoryRequest {
		t.Errorf("defaults not applied: %+v", nz)
	}
	sidecar := pod("s", requests("cpu", "1"))
	sidecar.Spec.InitContainers = []v1.Container{{Name: "proxy", RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways),
		Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m")}}}}
	if req, _ := PodRequests(sidecar); req.MilliCPU != 1500 {
		t.Errorf("sidecar requests %d, want 1500", req.MilliCPU)
	}
}

func TestFilters(t *testing.T) {
	small := node("n", "2", "4Gi")
	full := nodeInfo(node("n", "2", "4Gi"), pod("a", requests("cpu", "1500m", "memory", "3Gi"), onNode("n")))
	pods1 := nodeInfo(node("n", "2", "4Gi", func(n *v1.Node) { n.Status.Allocatable[v1.ResourcePods] = resource.MustParse("1") }),
		pod("a", onNode("n")))
	port := func(hp int32, ip string) func(*v1.Pod) {
		return func(p *v1.Pod) {
			p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: hp, HostIP: ip}}
		}
	}
	tol := func(key, value string, effect v1.TaintEffect) func(*v1.Pod) {
		return func(p *v1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Key: key, Value: value, Effect: effect, Operator: v1.TolerationOpEqual})
		}
	}
	tests := []struct {
		name   string
		plugin FilterPlugin
		pod    *v1.Pod
		node   *NodeInfo
		want   string
	}{
		{"fits", NodeResourcesFit{}, pod("p", requests("cpu", "500m")), full, ""},
		{"cpu", NodeResourcesFit{}, pod("p", requests("cpu", "1")), full, "Insufficient cpu"},
		{"cpu and memory", NodeResourcesFit{}, pod("p", requests("cpu", "1", "memory", "2Gi")), full, "Insufficient cpu; Insufficient memory"},
		{"ephemeral", NodeResourcesFit{}, pod("p", requests("ephemeral-storage", "20Gi")), nodeInfo(small), "Insufficient ephemeral-storage"},
		{"extended", NodeResourcesFit{}, pod("p", requests("nvidia.com/gpu", "1")), nodeInfo(small), "Insufficient nvidia.com/gpu"},
		{"pods", NodeResourcesFit{}, pod("p"), pods1, "Too many pods"},
		{"node name ok", NodeName{}, pod("p", onNode("n")), nodeInfo(small), ""},
		{"node name", NodeName{}, pod("p", onNode("other")), nodeInfo(small), ReasonNodeName},
		{"cordoned", NodeUnschedulable{}, pod("p"), nodeInfo(node("n", "1", "1Gi", func(n *v1.Node) { n.Spec.Unschedulable = true })), ReasonUnschedulable},
		{"cordoned tolerated", NodeUnschedulable{}, pod("p", func(p *v1.Pod) {
			p.Spec.Tolerations = []v1.Toleration{{Key: v1.TaintNodeUnschedulable, Operator: v1.TolerationOpExists}}
		}), nodeInfo(node("n", "1", "1Gi", func(n *v1.Node) { n.Spec.Unschedulable = true })), ""},
		{"selector", NodeAffinity{}, pod("p", func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }), nodeInfo(small), ReasonNodeAffinity},
		{"selector ok", NodeAffinity{}, pod("p", func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
			nodeInfo(node("n", "1", "1Gi", withLabels("disk", "ssd"))), ""},
		{"required affinity", NodeAffinity{}, pod("p", func(p *v1.Pod) {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{
					{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"a"}}}},
					{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "cores", Operator: v1.NodeSelectorOpGt, Values: []string{"8"}}}},
				}}}}
		}), nodeInfo(node("n", "1", "1Gi", withLabels("zone", "b", "cores", "16"))), ""},
		{"required affinity by field", NodeAffinity{}, pod("p", func(p *v1.Pod) {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchFields: []v1.NodeSelectorRequirement{
					{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"other"}}}}}}}}
		}), nodeInfo(small), ReasonNodeAffinity},
		{"taint", TaintToleration{}, pod("p"), nodeInfo(node("n", "1", "1Gi", withTaint("k", "v", v1.TaintEffectNoSchedule))), "node(s) had untolerated taint {k: v}"},
		{"taint NoExecute", TaintToleration{}, pod("p", tol("k", "v", v1.TaintEffectNoSchedule)),
			nodeInfo(node("n", "1", "1Gi", withTaint("k", "v", v1.TaintEffectNoExecute))), "node(s) had untolerated taint {k: v}"},
		{"taint tolerated", TaintToleration{}, pod("p", tol("k", "v", "")), nodeInfo(node("n", "1", "1Gi", withTaint("k", "v", v1.TaintEffectNoSchedule))), ""},
		{"prefer taint passes", TaintToleration{}, pod("p"), nodeInfo(node("n", "1", "1Gi", withTaint("k", "v", v1.TaintEffectPreferNoSchedule))), ""},
		{"port conflict", NodePorts{}, pod("p", port(8080, "")), nodeInfo(small, pod("a", port(8080, "10.0.0.1"), onNode("n"))), ReasonNodePorts},
		{"port other ip", NodePorts{}, pod("p", port(8080, "10.0.0.2")), nodeInfo(small, pod("a", port(8080, "10.0.0.1"), onNode("n"))), ""},
		{"port free", NodePorts{}, pod("p", port(8081, "")), nodeInfo(small, pod("a", port(8080, ""), onNode("n"))), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := NewCycleState()
			pi := NewPodInfo(tt.pod, 0)
			if pf, ok := tt.plugin.(PreFilterPlugin); ok {
				if st := pf.PreFilter(state, pi, NewSnapshot(tt.node)); st.CodeOf() == Skip {
					if tt.want != "" {
						t.Fatalf("PreFilter skipped, want %q", tt.want)
					}
					return
				}
			}
			if got := reasons(tt.plugin.Filter(state, pi, tt.node)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func antiAffinity(key string, sel ...string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Spec.Affinity = &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{sel[0]: sel[1]}}, TopologyKey: key}}}}
	}
}

func affinity(key string, sel ...string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Spec.Affinity = &v1.Affinity{PodAffinity: &v1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{sel[0]: sel[1]}}, TopologyKey: key}}}}
	}
}

// filterAll runs the default framework's PreFilter and Filter over a snapshot and returns each
// node's verdict.
func filterAll(t *testing.T, p *v1.Pod, nodes ...*NodeInfo) map[string]string {
	t.Helper()
	fw := Default()
	snap := NewSnapshot(nodes...)
	state := NewCycleState()
	pi := NewPodInfo(p, 0)
	out := map[string]string{}
	if st := fw.RunPreFilters(state, pi, snap); st != nil {
		for _, n := range nodes {
			out[n.Name()] = reasons(st)
		}
		return out
	}
	for _, n := range nodes {
		out[n.Name()] = reasons(fw.RunFilters(state, pi, n))
	}
	return out
}

func TestInterPodAffinity(t *testing.T) {
	zoneA1 := node("a1", "4", "8Gi", withLabels("zone", "a"))
	zoneA2 := node("a2", "4", "8Gi", withLabels("zone", "a"))
	zoneB := node("b1", "4", "8Gi", withLabels("zone", "b"))
	db := pod("db", podLabels("app", "db"), onNode("a1"))
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]string
	}{
		{"affinity to zone", pod("web", affinity("zone", "app", "db")),
			map[string]string{"a1": "", "a2": "", "b1": ReasonPodAffinity}},
		{"anti-affinity by zone", pod("db2", podLabels("app", "db"), antiAffinity("zone", "app", "db")),
			map[string]string{"a1": ReasonPodAntiAffinity, "a2": ReasonPodAntiAffinity, "b1": ""}},
		{"anti-affinity by host", pod("db2", antiAffinity("kubernetes.io/hostname", "app", "db")),
			map[string]string{"a1": ReasonPodAntiAffinity, "a2": "", "b1": ""}},
		{"first of its group", pod("cache", podLabels("app", "cache"), affinity("zone", "app", "cache")),
			map[string]string{"a1": "", "a2": "", "b1": ""}},
		{"no group, not self", pod("x", affinity("zone", "app", "nothing")),
			map[string]string{"a1": ReasonPodAffinity, "a2": ReasonPodAffinity, "b1": ReasonPodAffinity}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := filterAll(t, tt.pod, nodeInfo(zoneA1, db), nodeInfo(zoneA2), nodeInfo(zoneB))
			for n, want := range tt.want {
				if got[n] != want {
					t.Errorf("%s: got %q, want %q", n, got[n], want)
				}
			}
		})
	}
	t.Run("existing pod's anti-affinity", func(t *testing.T) {
		guard := pod("guard", podLabels("app", "guard"), antiAffinity("zone", "app", "web"), onNode("a1"))
		got := filterAll(t, pod("web", podLabels("app", "web")), nodeInfo(zoneA1, guard), nodeInfo(zoneA2), nodeInfo(zoneB))
		want := map[string]string{"a1": ReasonExistingAntiAffin, "a2": ReasonExistingAntiAffin, "b1": ""}
		for n, w := range want {
			if got[n] != w {
				t.Errorf("%s: got %q, want %q", n, got[n], w)
			}
		}
	})
}

func TestPodTopologySpreadFilter(t *testing.T) {
	spread := func(p *v1.Pod) {
		p.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone",
			WhenUnsatisfiable: v1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	}
	a := node("a1", "4", "8Gi", withLabels("zone", "a"))
	b := node("b1", "4", "8Gi", withLabels("zone", "b"))
	none := node("x", "4", "8Gi")
	web := func(n string) *v1.Pod { return pod("w", podLabels("app", "web"), onNode(n)) }
	got := filterAll(t, pod("new", podLabels("app", "web"), spread),
		nodeInfo(a, web("a1"), web("a1")), nodeInfo(b, web("b1")), nodeInfo(none))
	want := map[string]string{"a1": ReasonTopologySpread, "b1": "", "x": ReasonTopologySpreadKeys}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: got %q, want %q", n, got[n], w)
		}
	}
}

// scoreAll scores nodes with one plugin after PreScore, normalized.
func scoreAll(t *testing.T, plugin ScorePlugin, p *v1.Pod, nodes ...*NodeInfo) map[string]int64 {
	t.Helper()
	state := NewCycleState()
	pi := NewPodInfo(p, 0)
	if ps, ok := plugin.(PreScorePlugin); ok {
		if st := ps.PreScore(state, pi, NewSnapshot(nodes...), nodes); st.CodeOf() == Skip {
			t.Fatalf("PreScore skipped")
		}
	}
	scores := make([]int64, len(nodes))
	for i, n := range nodes {
		scores[i] = plugin.Score(state, pi, n)
	}
	if nz, ok := plugin.(ScoreNormalizer); ok {
		nz.NormalizeScores(state, pi, scores)
	}
	out := map[string]int64{}
	for i, n := range nodes {
		out[n.Name()] = scores[i]
	}
	return out
}

func TestScores(t *testing.T) {
	busy := nodeInfo(node("busy", "4", "8Gi"), pod("a", requests("cpu", "3", "memory", "2Gi"), onNode("busy")))
	idle := nodeInfo(node("idle", "4", "8Gi"))
	p := pod("p", requests("cpu", "1", "memory", "2Gi"))

	t.Run("LeastAllocated", func(t *testing.T) {
		got := scoreAll(t, NodeResourcesFit{}, p, busy, idle)
		// busy: cpu 0% free, memory 50% free → 25; idle: cpu 75%, memory 75% → 75.
		if got["busy"] != 25 || got["idle"] != 75 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("BalancedAllocation", func(t *testing.T) {
		got := scoreAll(t, BalancedAllocation{}, p, busy, idle)
		// busy: cpu 1.0, memory 0.5 → 75; idle: 0.25 and 0.25 → 100.
		if got["busy"] != 75 || got["idle"] != 100 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("preferred NodeAffinity", func(t *testing.T) {
		pref := pod("p", func(p *v1.Pod) {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{
				{Weight: 10, Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "disk", Operator: v1.NodeSelectorOpIn, Values: []string{"ssd"}}}}},
				{Weight: 30, Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpExists}}}},
			}}}
		})
		got := scoreAll(t, NodeAffinity{}, pref,
			nodeInfo(node("both", "1", "1Gi", withLabels("disk", "ssd", "zone", "a"))),
			nodeInfo(node("zone", "1", "1Gi", withLabels("zone", "a"))),
			nodeInfo(node("none", "1", "1Gi")))
		if got["both"] != 100 || got["zone"] != 75 || got["none"] != 0 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("TaintToleration PreferNoSchedule", func(t *testing.T) {
		got := scoreAll(t, TaintToleration{}, pod("p"),
			nodeInfo(node("two", "1", "1Gi", withTaint("a", "", v1.TaintEffectPreferNoSchedule), withTaint("b", "", v1.TaintEffectPreferNoSchedule))),
			nodeInfo(node("one", "1", "1Gi", withTaint("a", "", v1.TaintEffectPreferNoSchedule))),
			nodeInfo(node("clean", "1", "1Gi")))
		if got["two"] != 0 || got["one"] != 50 || got["clean"] != 100 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("PodTopologySpread ScheduleAnyway", func(t *testing.T) {
		spread := pod("p", podLabels("app", "web"), func(p *v1.Pod) {
			p.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone",
				WhenUnsatisfiable: v1.ScheduleAnyway, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
		})
		web := func(n string) *v1.Pod { return pod("w", podLabels("app", "web"), onNode(n)) }
		got := scoreAll(t, PodTopologySpread{}, spread,
			nodeInfo(node("a1", "1", "1Gi", withLabels("zone", "a")), web("a1"), web("a1")),
			nodeInfo(node("b1", "1", "1Gi", withLabels("zone", "b"))),
			nodeInfo(node("x", "1", "1Gi")))
		if got["b1"] != 100 || got["a1"] >= got["b1"] || got["x"] != 0 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("SelectorSpread", func(t *testing.T) {
		owner := func(p *v1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-1", Controller: ptr.To(true)}}
		}
		got := scoreAll(t, SelectorSpread{}, pod("p", owner),
			nodeInfo(node("two", "1", "1Gi"), pod("a", owner, onNode("two")), pod("b", owner, onNode("two"))),
			nodeInfo(node("one", "1", "1Gi"), pod("c", owner, onNode("one")), pod("other", onNode("one"))),
			nodeInfo(node("zero", "1", "1Gi")))
		if got["two"] != 0 || got["one"] != 50 || got["zero"] != 100 {
			t.Errorf("got %v", got)
		}
	})
}

func TestFitErrorMessage(t *testing.T) {
	fw := Default()
	nodes := []*NodeInfo{
		nodeInfo(node("n1", "1", "1Gi", withTaint("dedicated", "gpu", v1.TaintEffectNoSchedule))),
		nodeInfo(node("n2", "1", "1Gi")),
		nodeInfo(node("n3", "1", "1Gi")),
	}
	snap := NewSnapshot(nodes...)
	state := NewCycleState()
	pi := NewPodInfo(pod("p", requests("cpu", "2")), 0)
	_, err := fw.Schedule(context.Background(), state, pi, snap)
	fe, ok := err.(*FitError)
	if !ok {
		t.Fatalf("got %v, want a FitError", err)
	}
	fe.PostFilterMsg = fw.Preempt(state, pi, snap, fe).Message
	want := "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. " +
		"preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.."
	if fe.Error() != want {
		t.Errorf("message:\n got %q\nwant %q", fe.Error(), want)
	}
}

func TestPreemptPicksCheapestVictims(t *testing.T) {
	fw := Default()
	low := func(name, n string, prio int32) *PodInfo {
		return NewPodInfo(pod(name, requests("cpu", "1"), onNode(n)), prio)
	}
	n1 := NewNodeInfo(node("n1", "2", "4Gi"))
	n1.AddPod(low("a", "n1", 10))
	n1.AddPod(low("b", "n1", 10))
	n2 := NewNodeInfo(node("n2", "2", "4Gi"))
	n2.AddPod(low("c", "n2", 1))
	n2.AddPod(low("d", "n2", 500)) // too important to preempt
	n3 := NewNodeInfo(node("n3", "2", "4Gi"))
	n3.AddPod(low("e", "n3", 5))
	n3.AddPod(low("f", "n3", 200))
	snap := NewSnapshot(n1, n2, n3)
	state := NewCycleState()
	pi := NewPodInfo(pod("vip", requests("cpu", "1")), 100)
	_, err := fw.Schedule(context.Background(), state, pi, snap)
	fe, ok := err.(*FitError)
	if !ok {
		t.Fatalf("got %v, want a FitError", err)
	}
	p := fw.Preempt(state, pi, snap, fe)
	// n2 evicts c (priority 1) and n3 evicts e (priority 5): the lowest top victim wins.
	if p.Node != "n2" || len(p.Victims) != 1 || p.Victims[0].Name != "c" {
		t.Errorf("got node %q victims %v", p.Node, p.Victims)
	}
	never := NewPodInfo(pod("vip", requests("cpu", "1"), func(p *v1.Pod) { p.Spec.PreemptionPolicy = ptr.To(v1.PreemptNever) }), 100)
	if p := fw.Preempt(state, never, snap, fe); p.Node != "" {
		t.Errorf("PreemptNever pod preempted on %s", p.Node)
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	fw := &Framework{}
	for _, tt := range []struct{ nodes, want int }{{50, 50}, {100, 100}, {1000, 420}, {5000, 500}, {10000, 500}, {150, 100}} {
		if got := fw.NumFeasibleNodesToFind(tt.nodes); got != tt.want {
			t.Errorf("%d nodes: got %d, want %d", tt.nodes, got, tt.want)
		}
	}
}
