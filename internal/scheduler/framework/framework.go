package framework

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
)

// WeightedScore is a score plugin with its weight.
type WeightedScore struct {
	Plugin ScorePlugin
	Weight int64
}

// Framework is a configured set of plugins; it is safe for concurrent use as long as each
// cycle has its own CycleState.
type Framework struct {
	PreFilters []PreFilterPlugin
	Filters    []FilterPlugin
	PreScores  []PreScorePlugin
	Scores     []WeightedScore
	// PercentageOfNodesToScore bounds how many feasible nodes are looked for: 0 is adaptive
	// (50% − nodes/125, at least 5%), 100 means all. At least 100 nodes are always looked for.
	PercentageOfNodesToScore int
	// Parallelism is the number of goroutines that filter and score (default GOMAXPROCS).
	Parallelism int

	nextStart atomic.Int64 // round-robin start so that every node gets looked at
}

// Result is a scheduling decision.
type Result struct {
	Node string
	// Evaluated and Feasible count the nodes filtered and the nodes that passed.
	Evaluated, Feasible int
}

// FitError says why a pod fits no node; Error() is kube-scheduler's message.
type FitError struct {
	Pod      *v1.Pod
	NumNodes int
	// NodeStatuses holds the failing status of each node filtered.
	NodeStatuses map[string]*Status
	// PreFilterMsg is set when a PreFilter rejected the pod outright.
	PreFilterMsg string
	// PostFilterMsg is preemption's explanation.
	PostFilterMsg string
}

// Error reads like kube-scheduler's: "0/3 nodes are available: 1 node(s) had untolerated
// taint {k: v}, 2 Insufficient cpu. preemption: …".
func (f *FitError) Error() string {
	msg := fmt.Sprintf("0/%d nodes are available:", f.NumNodes)
	if f.PreFilterMsg != "" {
		msg += " " + f.PreFilterMsg + "."
	} else if h := reasonHistogram(f.NodeStatuses); h != "" {
		msg += " " + h + "."
	}
	if f.PostFilterMsg != "" {
		msg += " " + f.PostFilterMsg + "."
	}
	return msg
}

// reasonHistogram counts nodes per reason: "1 node(s) were unschedulable, 2 Insufficient cpu".
func reasonHistogram(statuses map[string]*Status) string {
	counts := map[string]int{}
	for _, s := range statuses {
		for _, r := range s.Reasons {
			counts[r]++
		}
	}
	parts := make([]string, 0, len(counts))
	for r, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// NumFeasibleNodesToFind is how many feasible nodes a cycle looks for among n.
func (f *Framework) NumFeasibleNodesToFind(n int) int {
	const minNodes, minPercent = 100, 5
	if n < minNodes || f.PercentageOfNodesToScore >= 100 {
		return n
	}
	pct := f.PercentageOfNodesToScore
	if pct <= 0 {
		pct = max(50-n/125, minPercent)
	}
	return max(n*pct/100, minNodes)
}

func (f *Framework) parallelism() int {
	if f.Parallelism > 0 {
		return f.Parallelism
	}
	return runtime.GOMAXPROCS(0)
}

// RunPreFilters runs the PreFilter plugins; a non-nil status means the pod fits nowhere.
func (f *Framework) RunPreFilters(state *CycleState, pod *PodInfo, snap *Snapshot) *Status {
	skip := map[string]bool{}
	for _, p := range f.PreFilters {
		st := p.PreFilter(state, pod, snap)
		switch st.CodeOf() {
		case Success:
		case Skip:
			skip[p.Name()] = true
		default:
			st.Plugin = p.Name()
			return st
		}
	}
	state.filters = make([]FilterPlugin, 0, len(f.Filters))
	for _, p := range f.Filters {
		if !skip[p.Name()] {
			state.filters = append(state.filters, p)
		}
	}
	return nil
}

// RunFilters runs the filters that did not skip on one node and returns the first failure.
func (f *Framework) RunFilters(state *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	filters := state.filters
	if filters == nil {
		filters = f.Filters
	}
	for _, p := range filters {
		if st := p.Filter(state, pod, node); !st.IsSuccess() {
			st.Plugin = p.Name()
			return st
		}
	}
	return nil
}

// Schedule picks a node for pod. On failure the error is a *FitError (or a plugin error).
// The caller must not change snap during the call.
func (f *Framework) Schedule(ctx context.Context, state *CycleState, pod *PodInfo, snap *Snapshot) (Result, error) {
	n := len(snap.Nodes)
	if n == 0 {
		return Result{}, &FitError{Pod: pod.Pod, NodeStatuses: map[string]*Status{}}
	}
	if pod.ParseErr != nil {
		return Result{}, &FitError{Pod: pod.Pod, NumNodes: n, PreFilterMsg: pod.ParseErr.Error()}
	}
	if st := f.RunPreFilters(state, pod, snap); st != nil {
		if st.Code == Error {
			return Result{}, fmt.Errorf("%s: %s", st.Plugin, strings.Join(st.Reasons, ", "))
		}
		return Result{}, &FitError{Pod: pod.Pod, NumNodes: n, PreFilterMsg: strings.Join(st.Reasons, ", "),
			NodeStatuses: allNodes(snap, st)}
	}

	// A pod nominated by preemption tries its node first.
	if nom := pod.Pod.Status.NominatedNodeName; nom != "" {
		if ni := snap.ByName[nom]; ni != nil && ni.Node != nil && f.RunFilters(state, pod, ni).IsSuccess() {
			return Result{Node: nom, Evaluated: 1, Feasible: 1}, nil
		}
	}

	feasible, statuses, evaluated := f.findFeasible(ctx, state, pod, snap)
	if len(feasible) == 0 {
		return Result{Evaluated: evaluated}, &FitError{Pod: pod.Pod, NumNodes: n, NodeStatuses: statuses}
	}
	res := Result{Evaluated: evaluated, Feasible: len(feasible)}
	if len(feasible) == 1 {
		res.Node = feasible[0].Name()
		return res, nil
	}
	res.Node = f.selectHost(state, pod, snap, feasible)
	return res, nil
}

func allNodes(snap *Snapshot, st *Status) map[string]*Status {
	m := make(map[string]*Status, len(snap.Nodes))
	for _, n := range snap.Nodes {
		m[n.Name()] = st
	}
	return m
}

// findFeasible filters nodes in parallel chunks, starting where the previous cycle stopped,
// until enough feasible nodes are found.
func (f *Framework) findFeasible(ctx context.Context, state *CycleState, pod *PodInfo, snap *Snapshot) ([]*NodeInfo, map[string]*Status, int) {
	n := len(snap.Nodes)
	want := f.NumFeasibleNodesToFind(n)
	start := int(f.nextStart.Load() % int64(n))
	feasible := make([]*NodeInfo, want)
	var found, processed atomic.Int64
	var mu sync.Mutex
	statuses := map[string]*Status{}

	check := func(i int) {
		ni := snap.Nodes[(start+i)%n]
		st := f.RunFilters(state, pod, ni)
		processed.Add(1)
		if st.IsSuccess() {
			if k := found.Add(1); k <= int64(want) {
				feasible[k-1] = ni
			}
			return
		}
		mu.Lock()
		statuses[ni.Name()] = st
		mu.Unlock()
	}
	workers := f.parallelism()
	if n < 64 || workers == 1 {
		for i := 0; i < n && found.Load() < int64(want); i++ {
			check(i)
		}
	} else {
		chunk := max(8, min(64, n/(workers*8)))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && found.Load() < int64(want) {
					lo := int(next.Add(int64(chunk))) - chunk
					if lo >= n {
						return
					}
					for i := lo; i < min(lo+chunk, n) && found.Load() < int64(want); i++ {
						check(i)
					}
				}
			}()
		}
		wg.Wait()
	}
	evaluated := int(processed.Load())
	f.nextStart.Store(int64((start + evaluated) % n))
	k := min(int(found.Load()), want)
	return feasible[:k], statuses, evaluated
}

// selectHost scores the feasible nodes and returns the best, ties broken at random.
func (f *Framework) selectHost(state *CycleState, pod *PodInfo, snap *Snapshot, feasible []*NodeInfo) string {
	skip := map[string]bool{}
	for _, p := range f.PreScores {
		if st := p.PreScore(state, pod, snap, feasible); st.CodeOf() == Skip {
			skip[p.Name()] = true
		}
	}
	scorers := make([]WeightedScore, 0, len(f.Scores))
	for _, ws := range f.Scores {
		if !skip[ws.Plugin.Name()] {
			scorers = append(scorers, ws)
		}
	}
	// One pass over the nodes computes every plugin's raw score: raw[k*n+i] is plugin k's
	// score of node i.
	n := len(feasible)
	raw := make([]int64, len(scorers)*n)
	f.parallelize(n, func(i int) {
		for k, ws := range scorers {
			raw[k*n+i] = ws.Plugin.Score(state, pod, feasible[i])
		}
	})
	total := make([]int64, n)
	for k, ws := range scorers {
		scores := raw[k*n : (k+1)*n]
		if nz, ok := ws.Plugin.(ScoreNormalizer); ok {
			nz.NormalizeScores(state, pod, scores)
		}
		for i, s := range scores {
			total[i] += s * ws.Weight
		}
	}
	best, ties := 0, 1
	for i := 1; i < len(total); i++ {
		switch {
		case total[i] > total[best]:
			best, ties = i, 1
		case total[i] == total[best]:
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return feasible[best].Name()
}

// parallelize runs f(0…n-1) over the framework's goroutines in chunks.
func (f *Framework) parallelize(n int, fn func(i int)) {
	workers := f.parallelism()
	if n < 128 || workers == 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < min(lo+chunk, n); i++ {
				fn(i)
			}
		}()
	}
	wg.Wait()
}
