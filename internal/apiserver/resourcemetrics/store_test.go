package resourcemetrics

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// cstat is a container's (or the node's) reading: cumulative CPU ns, optional rate, memory.
type cstat struct {
	name       string
	at         time.Duration // after t0
	cumulative *uint64
	nanoCores  *uint64
	memory     *uint64
	start      time.Duration
}

func summary(node cstat, pods map[string][]cstat) *statsv1alpha1.Summary {
	cpu := func(c cstat) *statsv1alpha1.CPUStats {
		return &statsv1alpha1.CPUStats{Time: metav1.NewTime(t0.Add(c.at)), UsageCoreNanoSeconds: c.cumulative, UsageNanoCores: c.nanoCores}
	}
	mem := func(c cstat) *statsv1alpha1.MemoryStats {
		return &statsv1alpha1.MemoryStats{Time: metav1.NewTime(t0.Add(c.at)), WorkingSetBytes: c.memory}
	}
	s := &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: "n1", CPU: cpu(node), Memory: mem(node)}}
	for name, cs := range pods {
		ps := statsv1alpha1.PodStats{PodRef: statsv1alpha1.PodReference{Name: name, Namespace: "default", UID: "uid-" + name}}
		for _, c := range cs {
			ps.Containers = append(ps.Containers, statsv1alpha1.ContainerStats{Name: c.name, StartTime: metav1.NewTime(t0.Add(c.start)), CPU: cpu(c), Memory: mem(c)})
		}
		s.Pods = append(s.Pods, ps)
	}
	return s
}

func TestStoreRates(t *testing.T) {
	st := NewStore(15 * time.Second)
	// First scrape: only the kubelet's own rate can be reported.
	st.Replace(map[string]*statsv1alpha1.Summary{"n1": summary(
		cstat{at: 0, cumulative: ptr.To[uint64](100e9), nanoCores: ptr.To[uint64](250e6), memory: ptr.To[uint64](1 << 30)},
		map[string][]cstat{
			"web": {{name: "app", at: 0, cumulative: ptr.To[uint64](10e9), nanoCores: ptr.To[uint64](100e6), memory: ptr.To[uint64](64 << 20)}},
			"new": {{name: "app", at: 0, cumulative: ptr.To[uint64](1e9), memory: ptr.To[uint64](8 << 20)}},
		})})
	if u, ok := st.Node("n1"); !ok || u.NanoCores != 250e6 || u.MemoryBytes != 1<<30 || u.Window != 15*time.Second {
		t.Fatalf("node after one scrape = %+v, %v", u, ok)
	}
	if cs, _, window, ok := st.Pod("default", "web", "uid-web"); !ok || cs[0].NanoCores != 100e6 || window != 15*time.Second {
		t.Fatalf("pod after one scrape = %+v, %v", cs, ok)
	}
	if _, _, _, ok := st.Pod("default", "new", ""); ok {
		t.Fatal("a pod with one cumulative sample and no rate has no metrics yet")
	}

	// Second scrape 10s later: rates come from the cumulative counters.
	st.Replace(map[string]*statsv1alpha1.Summary{"n1": summary(
		cstat{at: 10 * time.Second, cumulative: ptr.To[uint64](105e9), nanoCores: ptr.To[uint64](1), memory: ptr.To[uint64](2 << 30)},
		map[string][]cstat{
			"web": {{name: "app", at: 10 * time.Second, cumulative: ptr.To[uint64](12e9), memory: ptr.To[uint64](96 << 20)},
				{name: "sidecar", at: 9 * time.Second, nanoCores: ptr.To[uint64](5e6), memory: ptr.To[uint64](1 << 20)}},
			"new": {{name: "app", at: 10 * time.Second, cumulative: ptr.To[uint64](3e9), memory: ptr.To[uint64](8 << 20)}},
		})})
	if u, ok := st.Node("n1"); !ok || u.NanoCores != 500e6 || u.MemoryBytes != 2<<30 || u.Window != 10*time.Second || !u.Timestamp.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("node after two scrapes = %+v, %v", u, ok)
	}
	cs, ts, _, ok := st.Pod("default", "web", "uid-web")
	if !ok || len(cs) != 2 || cs[0].Name != "app" || cs[0].NanoCores != 200e6 || cs[0].MemoryBytes != 96<<20 || cs[1].Name != "sidecar" || cs[1].NanoCores != 5e6 {
		t.Fatalf("pod after two scrapes = %+v, %v", cs, ok)
	}
	if !ts.Equal(t0.Add(9 * time.Second)) {
		t.Errorf("pod timestamp = %v, want the oldest container's", ts)
	}
	if cs, _, _, ok := st.Pod("default", "new", ""); !ok || cs[0].NanoCores != 200e6 {
		t.Fatalf("new pod after two scrapes = %+v, %v", cs, ok)
	}
	if _, _, _, ok := st.Pod("default", "web", "other-uid"); ok {
		t.Error("metrics of a pod with another UID were returned")
	}

	// A scrape that repeats the last timestamp (the kubelet's cache) keeps the older sample.
	st.Replace(map[string]*statsv1alpha1.Summary{"n1": summary(
		cstat{at: 10 * time.Second, cumulative: ptr.To[uint64](105e9), memory: ptr.To[uint64](2 << 30)},
		map[string][]cstat{"web": {{name: "app", at: 10 * time.Second, cumulative: ptr.To[uint64](12e9), memory: ptr.To[uint64](96 << 20)}}})})
	if u, ok := st.Node("n1"); !ok || u.NanoCores != 500e6 {
		t.Fatalf("node after a repeated sample = %+v, %v", u, ok)
	}

	// A restarted container (new start time, counter reset) without a kubelet rate has no
	// metrics, so neither has its pod.
	st.Replace(map[string]*statsv1alpha1.Summary{"n1": summary(
		cstat{at: 20 * time.Second, cumulative: ptr.To[uint64](110e9), memory: ptr.To[uint64](2 << 30)},
		map[string][]cstat{"web": {{name: "app", at: 20 * time.Second, start: 15 * time.Second, cumulative: ptr.To[uint64](1e9), memory: ptr.To[uint64](10 << 20)}}})})
	if _, _, _, ok := st.Pod("default", "web", ""); ok {
		t.Fatal("a restarted container has no rate yet")
	}

	// A node missing from a batch (unreachable) is forgotten with its pods.
	st.Replace(map[string]*statsv1alpha1.Summary{})
	if _, ok := st.Node("n1"); ok {
		t.Fatal("an unscraped node kept its metrics")
	}
	if _, _, _, ok := st.Pod("default", "new", ""); ok {
		t.Fatal("pods of an unscraped node kept their metrics")
	}
}

func TestStoreSkipsIncompleteStats(t *testing.T) {
	st := NewStore(15 * time.Second)
	st.Replace(map[string]*statsv1alpha1.Summary{"n1": summary(
		cstat{at: 0, nanoCores: ptr.To[uint64](1)},                                     // no memory
		map[string][]cstat{"web": {{name: "app", at: 0, memory: ptr.To[uint64](1)}}})}) // no CPU
	if _, ok := st.Node("n1"); ok {
		t.Error("a node without memory stats has metrics")
	}
	if _, _, _, ok := st.Pod("default", "web", ""); ok {
		t.Error("a pod without CPU stats has metrics")
	}
}
