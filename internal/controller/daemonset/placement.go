package daemonset

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// templateGenerationLabel is extensions/v1beta1's DaemonSetTemplateGenerationKey: pods carry
// the DaemonSet's deprecated.daemonset.template.generation annotation in it, for controllers
// that predate ControllerRevisions.
const templateGenerationLabel = "pod-template-generation"

// nodeShouldRunDaemonPod is Kubernetes' NodeShouldRunDaemonPod. shouldRun: a daemon pod
// belongs on node (the template's nodeName, required node affinity and nodeSelector match,
// and every NoSchedule and NoExecute taint is tolerated). shouldContinueRunning: a daemon pod
// already there may stay (everything matches but a NoSchedule taint).
func nodeShouldRunDaemonPod(node *corev1.Node, ds *appsv1.DaemonSet) (shouldRun, shouldContinueRunning bool) {
	if n := ds.Spec.Template.Spec.NodeName; n != "" && n != node.Name {
		return false, false
	}
	spec := &ds.Spec.Template.Spec
	tolerations := daemonTolerations(spec.Tolerations, spec.HostNetwork)
	// A parse error in the affinity means no match, as in Kubernetes.
	fits, _ := nodeaffinity.NewRequiredNodeAffinity(spec.NodeSelector, spec.Affinity).Match(node)
	if !fits {
		return false, false
	}
	// Our scheduler knows no Lt/Gt tolerations; neither does this.
	const comparisonOperators = false
	_, untolerated := v1helper.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, comparisonOperators)
	if !untolerated {
		return true, true
	}
	_, untoleratedNoExecute := v1helper.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute
	}, comparisonOperators)
	return false, !untoleratedNoExecute
}

// daemonTolerations returns tols plus Kubernetes' default DaemonSet tolerations: node
// conditions must neither evict a node's daemons nor keep them off the node. tols is not
// modified.
func daemonTolerations(tols []corev1.Toleration, hostNetwork bool) []corev1.Toleration {
	out := slices.Clone(tols)
	add := func(key string, effect corev1.TaintEffect) {
		out = addOrUpdateToleration(out, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect})
	}
	add(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)
	if hostNetwork {
		add(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)
	}
	return out
}

// addOrUpdateToleration is Kubernetes' AddOrUpdateTolerationInPodSpec: a toleration with the
// same key, operator, value and effect is replaced (dropping its tolerationSeconds), else t
// is appended.
func addOrUpdateToleration(tols []corev1.Toleration, t corev1.Toleration) []corev1.Toleration {
	for i := range tols {
		if t.MatchToleration(&tols[i]) {
			tols[i] = t
			return tols
		}
	}
	return append(tols, t)
}

// podTemplate is the template of ds's pods at revision hash: the default tolerations, the
// controller-revision-hash label and, when ds has one, the template generation label.
func podTemplate(ds *appsv1.DaemonSet, hash string) *corev1.PodTemplateSpec {
	t := ds.Spec.Template.DeepCopy()
	t.Spec.Tolerations = daemonTolerations(t.Spec.Tolerations, t.Spec.HostNetwork)
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	if g, ok := templateGeneration(ds); ok {
		t.Labels[templateGenerationLabel] = strconv.FormatInt(g, 10)
	}
	if hash != "" {
		t.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] = hash
	}
	return t
}

// templateGeneration reads the deprecated.daemonset.template.generation annotation.
func templateGeneration(ds *appsv1.DaemonSet) (int64, bool) {
	v, ok := ds.Annotations[appsv1.DeprecatedTemplateGeneration]
	if !ok {
		return 0, false
	}
	g, err := strconv.ParseInt(v, 10, 64)
	return g, err == nil
}

// isPodUpdated reports whether pod runs ds's current template: its hash label is hash, or its
// template generation label is ds's template generation.
func isPodUpdated(ds *appsv1.DaemonSet, pod *corev1.Pod, hash string) bool {
	if hash != "" && pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
		return true
	}
	g, ok := templateGeneration(ds)
	return ok && pod.Labels[templateGenerationLabel] == strconv.FormatInt(g, 10)
}

// pinToNode returns affinity with its required node affinity replaced by the single term
// metadata.name In [node], so that the scheduler can only place the pod there (Kubernetes'
// ReplaceDaemonSetPodNodeNameNodeAffinity). The controller has already checked that node
// satisfies the terms it replaces; preferred terms and pod (anti-)affinity are kept.
func pinToNode(affinity *corev1.Affinity, node string) *corev1.Affinity {
	term := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{
		Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
	}}}
	if affinity == nil {
		affinity = &corev1.Affinity{}
	}
	if affinity.NodeAffinity == nil {
		affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{term},
	}
	return affinity
}

// targetNode is the node a daemon pod is for: its nodeName once bound, else the node its
// metadata.name affinity pins it to.
func targetNode(pod *corev1.Pod) (string, error) {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName, nil
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return "", errors.New("no required node affinity")
	}
	for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, r := range t.MatchFields {
			if r.Key != metav1.ObjectNameField || r.Operator != corev1.NodeSelectorOpIn {
				continue
			}
			if len(r.Values) != 1 {
				return "", fmt.Errorf("%d values for %s", len(r.Values), metav1.ObjectNameField)
			}
			return r.Values[0], nil
		}
	}
	return "", errors.New("no metadata.name node affinity")
}
