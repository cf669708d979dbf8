package framework

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Code is the outcome of a plugin.
type Code int

const (
	Success Code = iota
	// Unschedulable: the pod does not fit the node now; preempting pods may help.
	Unschedulable
	// UnschedulableAndUnresolvable: the node is wrong for the pod whatever runs on it.
	UnschedulableAndUnresolvable
	// Error: the plugin failed.
	Error
	// Skip, from PreFilter or PreScore: the plugin has nothing to do for this pod.
	Skip
)

// Status is a plugin's verdict with the reasons a user reads in FailedScheduling events.
type Status struct {
	Code    Code
	Reasons []string
	Plugin  string
}

// NewStatus returns a status; nil means Success.
func NewStatus(code Code, reasons ...string) *Status { return &Status{Code: code, Reasons: reasons} }

// IsSuccess reports whether s is nil or Success.
func (s *Status) IsSuccess() bool { return s == nil || s.Code == Success }

// CodeOf returns Success for nil.
func (s *Status) CodeOf() Code {
	if s == nil {
		return Success
	}
	return s.Code
}

// Plugin is anything with a name.
type Plugin interface{ Name() string }

// PreFilterPlugin computes per-cycle state over the whole snapshot before filtering. A
// non-success status other than Skip makes the pod unschedulable on every node.
type PreFilterPlugin interface {
	Plugin
	PreFilter(state *CycleState, pod *PodInfo, snap *Snapshot) *Status
}

// FilterPlugin decides whether the pod fits one node. It runs in parallel over nodes.
type FilterPlugin interface {
	Plugin
	Filter(state *CycleState, pod *PodInfo, node *NodeInfo) *Status
}

// PreScorePlugin prepares scoring over the feasible nodes.
type PreScorePlugin interface {
	Plugin
	PreScore(state *CycleState, pod *PodInfo, snap *Snapshot, feasible []*NodeInfo) *Status
}

// MaxNodeScore is the best score a plugin gives a node.
const MaxNodeScore int64 = 100

// ScorePlugin ranks one feasible node. It runs in parallel over nodes.
type ScorePlugin interface {
	Plugin
	Score(state *CycleState, pod *PodInfo, node *NodeInfo) int64
}

// ScoreNormalizer rescales a plugin's raw scores (one per feasible node) to 0…MaxNodeScore.
type ScoreNormalizer interface {
	NormalizeScores(state *CycleState, pod *PodInfo, scores []int64)
}

// CycleState is plugin data for one scheduling cycle, written by PreFilter and PreScore and
// read by Filter and Score.
type CycleState struct {
	mu   sync.RWMutex
	data map[string]any
	// filters are the filters that did not skip this cycle (nil: all).
	filters []FilterPlugin
}

// NewCycleState returns an empty state.
func NewCycleState() *CycleState { return &CycleState{data: map[string]any{}} }

// Write stores plugin data.
func (s *CycleState) Write(key string, v any) {
	s.mu.Lock()
	s.data[key] = v
	s.mu.Unlock()
}

// Read returns plugin data.
func (s *CycleState) Read(key string) any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data[key]
}

// NodeSelectorMatches reports whether a node satisfies the pod's spec.nodeSelector and
// required node affinity (used by NodeAffinity and PodTopologySpread).
func NodeSelectorMatches(pod *v1.Pod, node *v1.Node) bool {
	if len(pod.Spec.NodeSelector) > 0 && !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	ok, _ := matchNodeSelectorTerms(node, a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms)
	return ok
}

func podAffinitySelector(t *v1.PodAffinityTerm) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(t.LabelSelector)
}
