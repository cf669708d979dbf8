package readiness

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Condition returns p's Ready condition, or nil if it has none. It points into p: the caller
// must not change it.
func Condition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// Ready reports whether p's Ready condition is True.
func Ready(p *corev1.Pod) bool {
	c := Condition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// Available reports whether p has been ready for more than minReadySeconds at now.
func Available(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := Condition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	d := time.Duration(minReadySeconds) * time.Second
	return !c.LastTransitionTime.IsZero() && c.LastTransitionTime.Add(d).Before(now)
}
