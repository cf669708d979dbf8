package job

import (
	"fmt"
	"slices"
	"sort"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/controller/readiness"
)

const (
	// CompletionIndexEnv is the variable through which an Indexed Job's containers learn
	// their index (a downward API reference to the completion-index annotation).
	CompletionIndexEnv = "JOB_COMPLETION_INDEX"
	// maxGeneratedNameLength is the longest generateName prefix the API server keeps whole.
	maxGeneratedNameLength = 63 - 5
)

func isActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

func isTerminating(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func hasFinalizer(p *corev1.Pod) bool {
	return slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer)
}

// onlyReplaceFailed is podReplacementPolicy Failed: a terminating pod is neither replaced nor
// counted until it reaches phase Failed.
func onlyReplaceFailed(job *batchv1.Job) bool {
	return ptr.Deref(job.Spec.PodReplacementPolicy, "") == batchv1.Failed || job.Spec.PodFailurePolicy != nil
}

// isFailed reports whether p counts as failed: phase Failed or, unless the Job waits for
// terminating pods, deleted before it succeeded.
func isFailed(p *corev1.Pod, job *batchv1.Job) bool {
	if p.Status.Phase == corev1.PodFailed {
		return true
	}
	if onlyReplaceFailed(job) {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

func isIndexed(job *batchv1.Job) bool {
	return ptr.Deref(job.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
}

// completionIndex is the index of an Indexed Job's pod (from its annotation, or its label),
// if it is a valid index below completions.
func completionIndex(p *corev1.Pod, completions int) (int, bool) {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		v, ok = p.Labels[batchv1.JobCompletionIndexAnnotation]
	}
	if !ok {
		return 0, false
	}
	ix, err := strconv.Atoi(v)
	if err != nil || ix < 0 || ix >= completions {
		return 0, false
	}
	return ix, true
}

// podFromTemplate is the pod job asks for; index < 0 for NonIndexed jobs.
func podFromTemplate(job *batchv1.Job, index int) *corev1.Pod {
	t := job.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    job.Name + "-",
			Namespace:       job.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, controllerKind)},
		},
		Spec: t.Spec,
	}
	if !slices.Contains(pod.Finalizers, batchv1.JobTrackingFinalizer) {
		pod.Finalizers = append(pod.Finalizers, batchv1.JobTrackingFinalizer)
	}
	if index < 0 {
		return pod
	}
	ix := strconv.Itoa(index)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[batchv1.JobCompletionIndexAnnotation] = ix
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[batchv1.JobCompletionIndexAnnotation] = ix
	pod.Spec.Hostname = job.Name + "-" + ix
	suffix := "-" + ix + "-"
	pod.GenerateName = job.Name + suffix
	if len(pod.GenerateName) > maxGeneratedNameLength {
		pod.GenerateName = job.Name[:maxGeneratedNameLength-len(suffix)] + suffix
	}
	env := corev1.EnvVar{Name: CompletionIndexEnv, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
		FieldPath: fmt.Sprintf("metadata.annotations['%s']", batchv1.JobCompletionIndexAnnotation)}}}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if !slices.ContainsFunc(cs[i].Env, func(e corev1.EnvVar) bool { return e.Name == CompletionIndexEnv }) {
				cs[i].Env = append(cs[i].Env, env)
			}
		}
	}
	return pod
}

// pendingIndexes returns up to n of the lowest indexes below completions that have neither
// succeeded nor a pod that holds them.
func pendingIndexes(n, completions int, succeeded indexSet, held []*corev1.Pod) []int {
	taken := indexSet{}
	for _, p := range held {
		if ix, ok := completionIndex(p, completions); ok {
			taken.add(ix)
		}
	}
	var out []int
	for ix := 0; ix < completions && len(out) < n; ix++ {
		if !succeeded.has(ix) && !taken.has(ix) {
			out = append(out, ix)
		}
	}
	return out
}

// podsForRemoval picks the active pods to delete: for Indexed jobs first those without a
// valid index, whose index already succeeded, or that duplicate another pod's index; then
// the cheapest to lose until at least rmAtLeast pods go.
func podsForRemoval(job *batchv1.Job, active []*corev1.Pod, rmAtLeast int, succeeded indexSet) []*corev1.Pod {
	var rm, keep []*corev1.Pod
	if isIndexed(job) {
		completions := int(ptr.Deref(job.Spec.Completions, 0))
		byIndex := map[int][]*corev1.Pod{}
		for _, p := range active {
			ix, ok := completionIndex(p, completions)
			if !ok || succeeded.has(ix) {
				rm = append(rm, p)
				continue
			}
			byIndex[ix] = append(byIndex[ix], p)
		}
		for _, ps := range byIndex {
			// keep the pod that costs most to lose
			sort.SliceStable(ps, func(i, j int) bool { return removeBefore(ps[i], ps[j]) })
			rm = append(rm, ps[:len(ps)-1]...)
			keep = append(keep, ps[len(ps)-1])
		}
	} else {
		keep = append(keep, active...)
	}
	if n := rmAtLeast - len(rm); n > 0 {
		sort.SliceStable(keep, func(i, j int) bool { return removeBefore(keep[i], keep[j]) })
		rm = append(rm, keep[:min(n, len(keep))]...)
	}
	return rm
}

var phaseRank = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// removeBefore orders pods cheapest-to-lose first: unscheduled, then pending, then not
// ready, then the newest.
func removeBefore(a, b *corev1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if phaseRank[a.Status.Phase] != phaseRank[b.Status.Phase] {
		return phaseRank[a.Status.Phase] < phaseRank[b.Status.Phase]
	}
	if readiness.Ready(a) != readiness.Ready(b) {
		return !readiness.Ready(a)
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name > b.Name
}

// matchPodFailurePolicy applies the Job's podFailurePolicy to a failed pod: the first rule
// that matches decides. It returns the FailJob message (nil unless a FailJob rule matched)
// and whether the failure counts towards backoffLimit (false for Ignore).
func matchPodFailurePolicy(policy *batchv1.PodFailurePolicy, p *corev1.Pod) (failJob *string, count bool) {
	if policy == nil {
		return nil, true
	}
	for i, rule := range policy.Rules {
		var what string
		switch {
		case rule.OnExitCodes != nil:
			cs := matchExitCodes(p, rule.OnExitCodes)
			if cs == nil {
				continue
			}
			what = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %v matching %v rule at index %d",
				cs.Name, p.Namespace, p.Name, cs.State.Terminated.ExitCode, rule.Action, i)
		case len(rule.OnPodConditions) > 0:
			cond := matchPodConditions(p, rule.OnPodConditions)
			if cond == nil {
				continue
			}
			what = fmt.Sprintf("Pod %s/%s has condition %v matching %v rule at index %d", p.Namespace, p.Name, cond.Type, rule.Action, i)
		default:
			continue
		}
		switch rule.Action {
		case batchv1.PodFailurePolicyActionIgnore:
			return nil, false
		case batchv1.PodFailurePolicyActionFailJob:
			return &what, true
		default: // Count, and FailIndex (which needs backoffLimitPerIndex) counts as well
			return nil, true
		}
	}
	return nil, true
}

func matchExitCodes(p *corev1.Pod, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			cs := &list[i]
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 || (req.ContainerName != nil && *req.ContainerName != cs.Name) {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn) == in {
				return cs
			}
		}
	}
	return nil
}

func matchPodConditions(p *corev1.Pod, patterns []batchv1.PodFailurePolicyOnPodConditionsPattern) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		for _, pat := range patterns {
			status := pat.Status
			if status == "" {
				status = corev1.ConditionTrue
			}
			if c.Type == pat.Type && c.Status == status {
				return c
			}
		}
	}
	return nil
}

// pastBackoffLimitOnFailure reports whether the container restarts of a restartPolicy
// OnFailure Job's running pods, which count towards backoffLimit as pod failures do, reached it.
func pastBackoffLimitOnFailure(job *batchv1.Job, active []*corev1.Pod) bool {
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range active {
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, s := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			restarts += s.RestartCount
		}
	}
	limit := ptr.Deref(job.Spec.BackoffLimit, 6)
	if limit == 0 {
		return restarts > 0
	}
	return restarts >= limit
}
