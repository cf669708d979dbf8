package framework

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Resource is an amount of each schedulable resource.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	Pods             int64
	// Scalar holds extended resources (nvidia.com/gpu, hugepages-2Mi, …); nil when none.
	Scalar map[v1.ResourceName]int64
}

// Add adds r2 to r.
func (r *Resource) Add(r2 *Resource) {
	r.MilliCPU += r2.MilliCPU
	r.Memory += r2.Memory
	r.EphemeralStorage += r2.EphemeralStorage
	r.Pods += r2.Pods
	for k, v := range r2.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[v1.ResourceName]int64{}
		}
		r.Scalar[k] += v
	}
}

// Sub subtracts r2 from r.
func (r *Resource) Sub(r2 *Resource) {
	r.MilliCPU -= r2.MilliCPU
	r.Memory -= r2.Memory
	r.EphemeralStorage -= r2.EphemeralStorage
	r.Pods -= r2.Pods
	for k, v := range r2.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[v1.ResourceName]int64{}
		}
		r.Scalar[k] -= v
	}
}

// max raises each amount of r to at least r2's.
func (r *Resource) max(r2 *Resource) {
	r.MilliCPU = max(r.MilliCPU, r2.MilliCPU)
	r.Memory = max(r.Memory, r2.Memory)
	r.EphemeralStorage = max(r.EphemeralStorage, r2.EphemeralStorage)
	for k, v := range r2.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[v1.ResourceName]int64{}
		}
		r.Scalar[k] = max(r.Scalar[k], v)
	}
}

func (r *Resource) clone() Resource {
	c := *r
	if r.Scalar != nil {
		c.Scalar = make(map[v1.ResourceName]int64, len(r.Scalar))
		for k, v := range r.Scalar {
			c.Scalar[k] = v
		}
	}
	return c
}

// ResourceFromList converts a ResourceList.
func ResourceFromList(rl v1.ResourceList) Resource {
	var r Resource
	for name, q := range rl {
		switch name {
		case v1.ResourceCPU:
			r.MilliCPU = q.MilliValue()
		case v1.ResourceMemory:
			r.Memory = q.Value()
		case v1.ResourceEphemeralStorage:
			r.EphemeralStorage = q.Value()
		case v1.ResourcePods:
			r.Pods = q.Value()
		default:
			if isScalar(name) {
				if r.Scalar == nil {
					r.Scalar = map[v1.ResourceName]int64{}
				}
				r.Scalar[name] = q.Value()
			}
		}
	}
	return r
}

// isScalar reports whether a resource is an extended resource or huge pages (which the
// scheduler counts like kube-scheduler does), as opposed to a native one.
func isScalar(name v1.ResourceName) bool {
	s := string(name)
	return strings.HasPrefix(s, v1.ResourceHugePagesPrefix) ||
		(strings.Contains(s, "/") && !strings.HasPrefix(s, "kubernetes.io/") && !strings.HasPrefix(s, "requests."))
}

// Default requests that scoring assumes for containers that request nothing, as
// kube-scheduler does, so that best-effort pods still spread.
const (
	DefaultMilliCPURequest int64 = 100
	DefaultMemoryRequest   int64 = 200 * 1024 * 1024
)

// PodRequests computes what a pod requests: the sum of its containers (and sidecars), or the
// largest init container if that is more, plus the pod overhead; and the same with the
// scoring defaults for containers that request no CPU or memory.
func PodRequests(pod *v1.Pod) (req, nonZero Resource) {
	var sidecars, sidecarsNZ, initMax, initMaxNZ Resource
	for i := range pod.Spec.Containers {
		r := ResourceFromList(pod.Spec.Containers[i].Resources.Requests)
		req.Add(&r)
		nz := nonZeroOf(r)
		nonZero.Add(&nz)
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		r := ResourceFromList(c.Resources.Requests)
		nz := nonZeroOf(r)
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			req.Add(&r)
			nonZero.Add(&nz)
			sidecars.Add(&r)
			sidecarsNZ.Add(&nz)
			initMax.max(&sidecars)
			initMaxNZ.max(&sidecarsNZ)
			continue
		}
		r.Add(&sidecars)
		nz.Add(&sidecarsNZ)
		initMax.max(&r)
		initMaxNZ.max(&nz)
	}
	req.max(&initMax)
	nonZero.max(&initMaxNZ)
	if pod.Spec.Overhead != nil {
		o := ResourceFromList(pod.Spec.Overhead)
		o.Pods = 0
		req.Add(&o)
		nonZero.Add(&o)
	}
	req.Pods, nonZero.Pods = 1, 1
	return req, nonZero
}

func nonZeroOf(r Resource) Resource {
	nz := Resource{MilliCPU: r.MilliCPU, Memory: r.Memory}
	if nz.MilliCPU == 0 {
		nz.MilliCPU = DefaultMilliCPURequest
	}
	if nz.Memory == 0 {
		nz.Memory = DefaultMemoryRequest
	}
	return nz
}

// AffinityTerm is a parsed pod (anti-)affinity term.
type AffinityTerm struct {
	Namespaces    map[string]bool // nil with AllNamespaces
	AllNamespaces bool
	Selector      labels.Selector
	TopologyKey   string
	Weight        int32 // preferred terms only
}

// Matches reports whether pod is selected by the term.
func (t *AffinityTerm) Matches(pod *v1.Pod) bool {
	if !t.AllNamespaces && !t.Namespaces[pod.Namespace] {
		return false
	}
	return t.Selector.Matches(labels.Set(pod.Labels))
}

// PodInfo is a pod with what the plugins need precomputed once.
type PodInfo struct {
	Pod      *v1.Pod
	Requests Resource
	NonZero  Resource // Requests with the scoring defaults
	Priority int32
	// RequiredAffinity and RequiredAntiAffinity are the pod's parsed required inter-pod terms.
	RequiredAffinity     []AffinityTerm
	RequiredAntiAffinity []AffinityTerm
	// ParseErr is set when a selector of the pod does not parse; the pod is unschedulable.
	ParseErr error
}

// NewPodInfo precomputes a PodInfo. priority is the pod's resolved priority.
func NewPodInfo(pod *v1.Pod, priority int32) *PodInfo {
	pi := &PodInfo{Pod: pod, Priority: priority}
	pi.Requests, pi.NonZero = PodRequests(pod)
	if a := pod.Spec.Affinity; a != nil {
		if a.PodAffinity != nil {
			pi.RequiredAffinity, pi.ParseErr = parseTerms(pod, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
		}
		if a.PodAntiAffinity != nil && pi.ParseErr == nil {
			pi.RequiredAntiAffinity, pi.ParseErr = parseTerms(pod, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
		}
	}
	return pi
}

func parseTerms(pod *v1.Pod, terms []v1.PodAffinityTerm) ([]AffinityTerm, error) {
	out := make([]AffinityTerm, 0, len(terms))
	for i := range terms {
		t := &terms[i]
		sel, err := podAffinitySelector(t)
		if err != nil {
			return nil, err
		}
		at := AffinityTerm{Selector: sel, TopologyKey: t.TopologyKey}
		switch {
		case len(t.Namespaces) == 0 && t.NamespaceSelector == nil:
			at.Namespaces = map[string]bool{pod.Namespace: true}
		case t.NamespaceSelector != nil && len(t.NamespaceSelector.MatchLabels) == 0 && len(t.NamespaceSelector.MatchExpressions) == 0:
			at.AllNamespaces = true // an empty namespace selector selects every namespace
		default:
			// A non-empty namespaceSelector would need namespace labels; only the listed
			// namespaces are considered.
			at.Namespaces = make(map[string]bool, len(t.Namespaces))
			for _, ns := range t.Namespaces {
				at.Namespaces[ns] = true
			}
		}
		out = append(out, at)
	}
	return out, nil
}

// NodeInfo is a node with the pods on it (including assumed ones) and what they request.
type NodeInfo struct {
	Node *v1.Node
	Pods []*PodInfo
	// PodsWithAffinity holds pods with any inter-pod affinity; PodsWithRequiredAntiAffinity
	// those with required anti-affinity, which constrain every incoming pod.
	PodsWithAffinity             []*PodInfo
	PodsWithRequiredAntiAffinity []*PodInfo
	UsedPorts                    HostPorts
	Requested                    Resource
	NonZeroRequested             Resource
	Allocatable                  Resource
	// Generation increases on every change; the cache copies only changed nodes into a
	// snapshot.
	Generation int64
}

// NewNodeInfo returns an empty NodeInfo for node (which may be nil while only pods are known).
func NewNodeInfo(node *v1.Node) *NodeInfo {
	ni := &NodeInfo{}
	ni.SetNode(node)
	return ni
}

// Name is the node's name ("" when the node object is unknown).
func (ni *NodeInfo) Name() string {
	if ni.Node == nil {
		return ""
	}
	return ni.Node.Name
}

// SetNode sets the node object.
func (ni *NodeInfo) SetNode(node *v1.Node) {
	ni.Node = node
	if node != nil {
		ni.Allocatable = ResourceFromList(node.Status.Allocatable)
	}
}

// AddPod accounts for a pod on the node.
func (ni *NodeInfo) AddPod(pi *PodInfo) {
	ni.Pods = append(ni.Pods, pi)
	if hasAffinity(pi.Pod) {
		ni.PodsWithAffinity = append(ni.PodsWithAffinity, pi)
	}
	if len(pi.RequiredAntiAffinity) > 0 {
		ni.PodsWithRequiredAntiAffinity = append(ni.PodsWithRequiredAntiAffinity, pi)
	}
	ni.Requested.Add(&pi.Requests)
	ni.NonZeroRequested.Add(&pi.NonZero)
	ni.UsedPorts.addPod(pi.Pod)
}

// RemovePod removes a pod by UID; it reports whether the pod was there.
func (ni *NodeInfo) RemovePod(pod *v1.Pod) bool {
	for i, pi := range ni.Pods {
		if pi.Pod.UID != pod.UID {
			continue
		}
		ni.Pods = deleteAt(ni.Pods, i)
		ni.PodsWithAffinity = removeUID(ni.PodsWithAffinity, pod)
		ni.PodsWithRequiredAntiAffinity = removeUID(ni.PodsWithRequiredAntiAffinity, pod)
		ni.Requested.Sub(&pi.Requests)
		ni.NonZeroRequested.Sub(&pi.NonZero)
		ni.UsedPorts = nil
		for _, p := range ni.Pods {
			ni.UsedPorts.addPod(p.Pod)
		}
		return true
	}
	return false
}

// deleteAt removes s[i] without touching the backing array that clones may share.
func deleteAt(s []*PodInfo, i int) []*PodInfo {
	out := make([]*PodInfo, 0, len(s)-1)
	out = append(out, s[:i]...)
	return append(out, s[i+1:]...)
}

func removeUID(s []*PodInfo, pod *v1.Pod) []*PodInfo {
	for i, pi := range s {
		if pi.Pod.UID == pod.UID {
			return deleteAt(s, i)
		}
	}
	return s
}

func hasAffinity(pod *v1.Pod) bool {
	a := pod.Spec.Affinity
	return a != nil && (a.PodAffinity != nil || a.PodAntiAffinity != nil)
}

// Clone returns a copy that shares the (immutable) pods but not the slices or maps.
func (ni *NodeInfo) Clone() *NodeInfo {
	c := *ni
	c.Pods = append([]*PodInfo(nil), ni.Pods...)
	if ni.PodsWithAffinity != nil {
		c.PodsWithAffinity = append([]*PodInfo(nil), ni.PodsWithAffinity...)
	}
	if ni.PodsWithRequiredAntiAffinity != nil {
		c.PodsWithRequiredAntiAffinity = append([]*PodInfo(nil), ni.PodsWithRequiredAntiAffinity...)
	}
	c.UsedPorts = append(HostPorts(nil), ni.UsedPorts...)
	c.Requested = ni.Requested.clone()
	c.NonZeroRequested = ni.NonZeroRequested.clone()
	c.Allocatable = ni.Allocatable.clone()
	return &c
}

// HostPort is a host port in use.
type HostPort struct {
	IP       string
	Protocol v1.Protocol
	Port     int32
}

// HostPorts are the host ports in use on a node (few, so a slice).
type HostPorts []HostPort

func (hp *HostPorts) addPod(pod *v1.Pod) {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				*hp = append(*hp, hostPortOf(p))
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				*hp = append(*hp, hostPortOf(p))
			}
		}
	}
}

func hostPortOf(p v1.ContainerPort) HostPort {
	hp := HostPort{IP: p.HostIP, Protocol: p.Protocol, Port: p.HostPort}
	if hp.IP == "" {
		hp.IP = "0.0.0.0"
	}
	if hp.Protocol == "" {
		hp.Protocol = v1.ProtocolTCP
	}
	return hp
}

// Conflicts reports whether p clashes with a port in use (0.0.0.0 clashes with any IP).
func (hp HostPorts) Conflicts(p HostPort) bool {
	for _, u := range hp {
		if u.Port == p.Port && u.Protocol == p.Protocol && (u.IP == p.IP || u.IP == "0.0.0.0" || p.IP == "0.0.0.0") {
			return true
		}
	}
	return false
}

// Snapshot is a read-only view of the cluster for one scheduling cycle.
type Snapshot struct {
	Nodes []*NodeInfo // nodes with a Node object, in a stable order
	// HavePodsWithAffinity and HavePodsWithRequiredAntiAffinity are the subsets of Nodes with
	// such pods, so that pods without affinity pay nothing for it.
	HavePodsWithAffinity             []*NodeInfo
	HavePodsWithRequiredAntiAffinity []*NodeInfo
	ByName                           map[string]*NodeInfo
	// Generation is the cache generation the snapshot reflects.
	Generation int64
}

// NewSnapshot builds a snapshot from node infos (for tests and tools).
func NewSnapshot(nodes ...*NodeInfo) *Snapshot {
	s := &Snapshot{ByName: map[string]*NodeInfo{}}
	for _, n := range nodes {
		s.ByName[n.Name()] = n
	}
	s.RebuildLists(nodes)
	return s
}

// RebuildLists resets the node lists from nodes.
func (s *Snapshot) RebuildLists(nodes []*NodeInfo) {
	s.Nodes = s.Nodes[:0]
	s.HavePodsWithAffinity = s.HavePodsWithAffinity[:0]
	s.HavePodsWithRequiredAntiAffinity = s.HavePodsWithRequiredAntiAffinity[:0]
	for _, n := range nodes {
		if n.Node == nil {
			continue
		}
		s.Nodes = append(s.Nodes, n)
		if len(n.PodsWithAffinity) > 0 {
			s.HavePodsWithAffinity = append(s.HavePodsWithAffinity, n)
		}
		if len(n.PodsWithRequiredAntiAffinity) > 0 {
			s.HavePodsWithRequiredAntiAffinity = append(s.HavePodsWithRequiredAntiAffinity, n)
		}
	}
}
