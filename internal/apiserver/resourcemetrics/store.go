package resourcemetrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// sample is one reading of a node's or a container's CPU and memory.
type sample struct {
	time          time.Time // when the CPU value was read
	cumulative    uint64    // usageCoreNanoSeconds
	hasCumulative bool
	nanoCores     *uint64 // the kubelet's own rate, when it reports one
	memory        uint64  // workingSetBytes
	start         time.Time
}

// series is the last two samples of one node or container.
type series struct {
	prev, last sample
	hasPrev    bool
}

// Usage is a measured CPU rate and memory working set over [Timestamp-Window, Timestamp].
type Usage struct {
	NanoCores   uint64
	MemoryBytes uint64
	Timestamp   time.Time
	Window      time.Duration
}

// ContainerUsage is the usage of one container of a pod.
type ContainerUsage struct {
	Name string
	Usage
}

// usage computes the CPU rate from the cumulative counter between the two samples (metrics-
// server's way, robust against other clients of the kubelet), falling back to the kubelet's
// usageNanoCores over the given window when there is no usable earlier sample.
func (s *series) usage(fallbackWindow time.Duration) (Usage, bool) {
	last := s.last
	if s.hasPrev && s.prev.hasCumulative && last.hasCumulative && last.time.After(s.prev.time) &&
		last.cumulative >= s.prev.cumulative && last.start.Equal(s.prev.start) {
		window := last.time.Sub(s.prev.time)
		rate := float64(last.cumulative-s.prev.cumulative) / window.Seconds()
		return Usage{NanoCores: uint64(rate), MemoryBytes: last.memory, Timestamp: last.time, Window: window}, true
	}
	if last.nanoCores != nil {
		return Usage{NanoCores: *last.nanoCores, MemoryBytes: last.memory, Timestamp: last.time, Window: fallbackWindow}, true
	}
	return Usage{}, false
}

// next is the series after a new sample: an unchanged timestamp means the kubelet served a
// cached reading, which must not replace the older sample the rate is measured from.
func (s *series) next(smp sample) *series {
	if s == nil {
		return &series{last: smp}
	}
	if smp.time.Equal(s.last.time) {
		return s
	}
	return &series{prev: s.last, last: smp, hasPrev: true}
}

type podSeries struct {
	uid        types.UID
	node       string
	containers map[string]*series
}

// Store holds the last two samples of every node and container seen in the last batch.
type Store struct {
	resolution time.Duration

	mu    sync.RWMutex
	nodes map[string]*series
	pods  map[types.NamespacedName]*podSeries
}

// NewStore returns an empty store; resolution is the window reported for rates taken from
// the kubelet's usageNanoCores.
func NewStore(resolution time.Duration) *Store {
	return &Store{resolution: resolution, nodes: map[string]*series{}, pods: map[types.NamespacedName]*podSeries{}}
}

// sampleOf reads CPU and memory stats; ok is false when either is unusable.
func sampleOf(cpu *statsv1alpha1.CPUStats, mem *statsv1alpha1.MemoryStats, start time.Time) (sample, bool) {
	if cpu == nil || mem == nil || mem.WorkingSetBytes == nil || (cpu.UsageCoreNanoSeconds == nil && cpu.UsageNanoCores == nil) {
		return sample{}, false
	}
	s := sample{time: cpu.Time.Time, nanoCores: cpu.UsageNanoCores, memory: *mem.WorkingSetBytes, start: start}
	if cpu.UsageCoreNanoSeconds != nil {
		s.cumulative, s.hasCumulative = *cpu.UsageCoreNanoSeconds, true
	}
	if s.time.IsZero() {
		s.time = mem.Time.Time
	}
	return s, true
}

// Replace stores one scrape: the summaries of the nodes that answered, by node name. Nodes
// and pods absent from the batch are forgotten.
func (st *Store) Replace(batch map[string]*statsv1alpha1.Summary) {
	st.mu.Lock()
	defer st.mu.Unlock()
	nodes := map[string]*series{}
	pods := map[types.NamespacedName]*podSeries{}
	for nodeName, sum := range batch {
		if sum == nil {
			continue
		}
		if smp, ok := sampleOf(sum.Node.CPU, sum.Node.Memory, sum.Node.StartTime.Time); ok {
			nodes[nodeName] = st.nodes[nodeName].next(smp)
		}
		for i := range sum.Pods {
			p := &sum.Pods[i]
			key := types.NamespacedName{Namespace: p.PodRef.Namespace, Name: p.PodRef.Name}
			old := st.pods[key]
			if old != nil && (old.uid != types.UID(p.PodRef.UID) || old.node != nodeName) {
				old = nil // a new pod of the same name
			}
			ps := &podSeries{uid: types.UID(p.PodRef.UID), node: nodeName, containers: map[string]*series{}}
			for j := range p.Containers {
				c := &p.Containers[j]
				smp, ok := sampleOf(c.CPU, c.Memory, c.StartTime.Time)
				if !ok {
					continue
				}
				var prev *series
				if old != nil {
					prev = old.containers[c.Name]
				}
				ps.containers[c.Name] = prev.next(smp)
			}
			pods[key] = ps
		}
	}
	st.nodes, st.pods = nodes, pods
}

// Node returns the usage of a node.
func (st *Store) Node(name string) (Usage, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	s := st.nodes[name]
	if s == nil {
		return Usage{}, false
	}
	return s.usage(st.resolution)
}

// Pod returns the usage of every container of a pod, sorted by name, with the oldest
// timestamp (and its window) of them; ok is false unless every container the kubelet
// reported has usable values. uid, when set, must match the measured pod's.
func (st *Store) Pod(namespace, name string, uid types.UID) (containers []ContainerUsage, timestamp time.Time, window time.Duration, ok bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	ps := st.pods[types.NamespacedName{Namespace: namespace, Name: name}]
	if ps == nil || len(ps.containers) == 0 || (uid != "" && ps.uid != "" && uid != ps.uid) {
		return nil, time.Time{}, 0, false
	}
	for cname, s := range ps.containers {
		u, ok := s.usage(st.resolution)
		if !ok {
			return nil, time.Time{}, 0, false
		}
		containers = append(containers, ContainerUsage{Name: cname, Usage: u})
		if timestamp.IsZero() || u.Timestamp.Before(timestamp) {
			timestamp, window = u.Timestamp, u.Window
		}
	}
	slices.SortFunc(containers, func(a, b ContainerUsage) int { return strings.Compare(a.Name, b.Name) })
	return containers, timestamp, window, true
}
