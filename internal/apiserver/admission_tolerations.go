package apiserver

import (
	corev1 "k8s.io/api/core/v1"
)

// defaultTolerationSeconds is how long a pod stays bound to a node that is not ready or
// unreachable before the node lifecycle controller evicts it, as Kubernetes'
// DefaultTolerationSeconds admission plugin sets it (--default-not-ready-toleration-seconds and
// --default-unreachable-toleration-seconds).
const defaultTolerationSeconds int64 = 300

// defaultTolerations adds, as Kubernetes' DefaultTolerationSeconds admission plugin does on pod
// creation, NoExecute tolerations of 300 s for the node.kubernetes.io/not-ready and
// node.kubernetes.io/unreachable taints unless the pod already tolerates them: a toleration
// counts when its key is the taint's or empty (a wildcard) and its effect NoExecute or empty.
func defaultTolerations(pod *corev1.Pod) {
	notReady, unreachable := false, false
	for _, t := range pod.Spec.Tolerations {
		if t.Effect != corev1.TaintEffectNoExecute && t.Effect != "" {
			continue
		}
		if t.Key == corev1.TaintNodeNotReady || t.Key == "" {
			notReady = true
		}
		if t.Key == corev1.TaintNodeUnreachable || t.Key == "" {
			unreachable = true
		}
	}
	if !notReady {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, defaultToleration(corev1.TaintNodeNotReady))
	}
	if !unreachable {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, defaultToleration(corev1.TaintNodeUnreachable))
	}
}

func defaultToleration(key string) corev1.Toleration {
	seconds := defaultTolerationSeconds
	return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
		TolerationSeconds: &seconds}
}
