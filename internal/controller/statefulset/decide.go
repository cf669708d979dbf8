package statefulset

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nanokube/nanokube/internal/controller/readiness"
)

// op is what a step does to the pod of one ordinal.
type op int

const (
	opCreate op = iota // create the pod (and its claims) from revision
	opDelete           // delete the pod
)

// step is one action of a sync.
type step struct {
	op       op
	ordinal  int
	revision string // opCreate: the ControllerRevision the pod is made from
	why      string // for logs and tests
}

func (s step) String() string {
	if s.op == opCreate {
		return fmt.Sprintf("create %d@%s (%s)", s.ordinal, s.revision, s.why)
	}
	return fmt.Sprintf("delete %d (%s)", s.ordinal, s.why)
}

// decision is the input of decide: everything a sync knows, read-only.
type decision struct {
	set                             *appsv1.StatefulSet
	pods                            map[int]*corev1.Pod // the set's pods by ordinal
	currentRevision, updateRevision string
	now                             time.Time
}

// decide returns the steps of one sync, in the order they must run. It does no I/O, so the
// whole ordering policy can be tested from tables. With OrderedReady it returns at most one
// step and none while a pod it would wait for is not healthy.
func decide(d decision) []step {
	set := d.set
	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	start, replicas := startOrdinal(set), int(replicasOf(set))
	var steps []step

	// Replicas, lowest ordinal first.
	for ord := start; ord < start+replicas; ord++ {
		p := d.pods[ord]
		switch {
		case p == nil:
			rev := d.updateRevision
			if usesCurrentRevision(set, ord-start) {
				rev = d.currentRevision
			}
			steps = append(steps, step{op: opCreate, ordinal: ord, revision: rev, why: "missing"})
		case finished(p) && p.DeletionTimestamp == nil:
			steps = append(steps, step{op: opDelete, ordinal: ord, why: "pod " + string(p.Status.Phase)})
		case p.DeletionTimestamp != nil:
			if monotonic {
				return steps // wait until it is gone, then recreate it
			}
			continue
		case !d.healthy(p):
			if monotonic {
				return steps
			}
			continue
		default:
			continue
		}
		if monotonic {
			return steps
		}
	}

	// Condemned pods (beyond the replicas), highest ordinal first.
	var condemned []int
	for ord := range d.pods {
		if ord < start || ord >= start+replicas {
			condemned = append(condemned, ord)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(condemned)))
	for _, ord := range condemned {
		if d.pods[ord].DeletionTimestamp != nil {
			if monotonic {
				return steps
			}
			continue
		}
		steps = append(steps, step{op: opDelete, ordinal: ord, why: "scale down"})
		if monotonic {
			return steps
		}
	}

	// Rolling update: highest ordinal first, one pod at a time, down to the partition.
	if set.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || len(steps) > 0 && monotonic {
		return steps
	}
	for ord := start + replicas - 1; ord >= start+int(partitionOf(set)); ord-- {
		p := d.pods[ord]
		if p == nil || p.DeletionTimestamp != nil {
			return steps // being (re)created: wait for it
		}
		if revisionOf(p) != d.updateRevision {
			return append(steps, step{op: opDelete, ordinal: ord, why: "update to " + d.updateRevision})
		}
		if !d.healthy(p) {
			return steps // the replacement must be ready before the next one goes
		}
	}
	return steps
}

// healthy is the condition OrderedReady waits for: Running, Ready, and ready for
// minReadySeconds.
func (d decision) healthy(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil &&
		readiness.Available(p, d.set.Spec.MinReadySeconds, d.now)
}

// usesCurrentRevision reports whether the replica of index i (ordinal minus start) is made
// from the current revision: below the partition of a rolling update.
func usesCurrentRevision(set *appsv1.StatefulSet, i int) bool {
	return set.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && i < int(partitionOf(set))
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

func replicasOf(set *appsv1.StatefulSet) int32 {
	if set.Spec.Replicas == nil {
		return 1
	}
	return *set.Spec.Replicas
}

func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

func partitionOf(set *appsv1.StatefulSet) int32 {
	if u := set.Spec.UpdateStrategy.RollingUpdate; u != nil && u.Partition != nil {
		return *u.Partition
	}
	return 0
}

func revisionOf(p *corev1.Pod) string { return p.Labels[appsv1.ControllerRevisionHashLabelKey] }

// podName is the stable name of the pod of ordinal.
func podName(set *appsv1.StatefulSet, ordinal int) string {
	return set.Name + "-" + strconv.Itoa(ordinal)
}

// claimName is the stable name of the claim of template for the pod of ordinal.
func claimName(set *appsv1.StatefulSet, template string, ordinal int) string {
	return template + "-" + podName(set, ordinal)
}

// ordinalOf returns the ordinal of a pod of set, or false if the pod's name is not
// <set>-<ordinal>.
func ordinalOf(set *appsv1.StatefulSet, p *corev1.Pod) (int, bool) {
	rest, ok := strings.CutPrefix(p.Name, set.Name+"-")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
