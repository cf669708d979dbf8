package kubelet

import (
	"log/slog"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodStatusStableAgainstEchoes holds the status computed for an unchanged pod to what
// was computed last, whatever older version of the pod the informer hands back: statuses
// that follow the echo of each write change with every write and are written for ever.
func TestPodStatusStableAgainstEchoes(t *testing.T) {
	k := &Kubelet{cfg: Config{NodeIP: "10.0.0.1"}, status: newStatusManager(nil, slog.New(slog.DiscardHandler)), reasons: newReasonCache()}
	scheduled := v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: metav1.Unix(100, 0)}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "img"}}},
		Status:     v1.PodStatus{Phase: v1.PodPending, Conditions: []v1.PodCondition{scheduled}},
	}
	rt := &podRuntime{
		sandbox:    &runtimeapi.PodSandboxStatus{State: runtimeapi.PodSandboxState_SANDBOX_READY, Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.244.0.5"}},
		containers: map[string][]*runtimeapi.ContainerStatus{},
	}
	first := k.podStatus(pod, rt)
	for _, c := range first.Conditions {
		if !c.LastTransitionTime.Equal(ptr(c.LastTransitionTime.Rfc3339Copy())) {
			t.Errorf("condition %s has a transition time finer than the API keeps: %v", c.Type, c.LastTransitionTime)
		}
	}
	if first.StartTime == nil || !first.StartTime.Equal(ptr(first.StartTime.Rfc3339Copy())) {
		t.Errorf("start time %v is finer than the API keeps", first.StartTime)
	}
	k.status.set(pod, first)

	// Echoes: the pod as it was before the write (no conditions of ours), and as a write
	// in flight left it, with other transition times.
	echoes := []v1.PodStatus{pod.Status, *first.DeepCopy()}
	for i := range echoes[1].Conditions {
		if echoes[1].Conditions[i].Type != v1.PodScheduled {
			echoes[1].Conditions[i].LastTransitionTime = metav1.NewTime(first.Conditions[i].LastTransitionTime.Add(-time.Second))
		}
	}
	for i, echo := range echoes {
		seen := pod.DeepCopy()
		seen.Status = echo
		if got := k.podStatus(seen, rt); !apiequality.Semantic.DeepEqual(got, first) {
			t.Errorf("echo %d: status changed:\n got %+v\nwant %+v", i, got.Conditions, first.Conditions)
		}
	}
}

func ptr[T any](v T) *T { return &v }
