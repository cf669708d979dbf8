package readiness

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReadyAndAvailable(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	pod := func(conds ...corev1.PodCondition) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Conditions: conds}}
	}
	readySince := func(status corev1.ConditionStatus, ago time.Duration) corev1.PodCondition {
		c := corev1.PodCondition{Type: corev1.PodReady, Status: status}
		if ago >= 0 {
			c.LastTransitionTime = metav1.NewTime(now.Add(-ago))
		}
		return c
	}
	scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}
	for _, tc := range []struct {
		name            string
		pod             *corev1.Pod
		minReadySeconds int32
		ready, avail    bool
	}{
		{"no conditions", pod(), 0, false, false},
		{"no Ready condition", pod(scheduled), 0, false, false},
		{"not ready", pod(scheduled, readySince(corev1.ConditionFalse, time.Hour)), 0, false, false},
		{"unknown", pod(readySince(corev1.ConditionUnknown, time.Hour)), 0, false, false},
		{"ready, no minReadySeconds", pod(scheduled, readySince(corev1.ConditionTrue, 0)), 0, true, true},
		{"ready long enough", pod(readySince(corev1.ConditionTrue, 11*time.Second)), 10, true, true},
		{"ready exactly minReadySeconds", pod(readySince(corev1.ConditionTrue, 10*time.Second)), 10, true, false},
		{"ready too briefly", pod(readySince(corev1.ConditionTrue, 5*time.Second)), 10, true, false},
		{"ready since an unknown time", pod(readySince(corev1.ConditionTrue, -1)), 10, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Ready(tc.pod); got != tc.ready {
				t.Errorf("Ready = %v, want %v", got, tc.ready)
			}
			if got := Available(tc.pod, tc.minReadySeconds, now); got != tc.avail {
				t.Errorf("Available = %v, want %v", got, tc.avail)
			}
		})
	}
}
