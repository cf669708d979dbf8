package kubelet

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// TestStatusWritesOnePerPod holds the status manager to one write per pod in flight: two
// patches in flight can land out of order, and the older one then stays in the API, since
// a status already written is not written again. The first patch is held until the pod's
// next status has been set and dispatched.
func TestStatusWritesOnePerPod(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}}
	client := fake.NewClientset()
	var (
		mu      sync.Mutex
		landed  []v1.PodPhase // the phases patched, in the order the patches completed
		started = make(chan struct{}, 2)
		release = make(chan struct{})
		first   = true
	)
	client.PrependReactor("patch", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		var body struct{ Status v1.PodStatus }
		if err := json.Unmarshal(a.(clienttesting.PatchAction).GetPatch(), &body); err != nil {
			t.Errorf("patch body: %v", err)
		}
		mu.Lock()
		hold := first
		first = false
		mu.Unlock()
		started <- struct{}{}
		if hold {
			<-release
		}
		mu.Lock()
		landed = append(landed, body.Status.Phase)
		mu.Unlock()
		return true, pod, nil
	})
	m := newStatusManager(client, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup

	m.set(pod, v1.PodStatus{Phase: v1.PodPending})
	if n := m.dispatch(ctx, sem, &wg); n != 1 {
		t.Fatalf("first dispatch started %d writes, want 1", n)
	}
	<-started
	m.set(pod, v1.PodStatus{Phase: v1.PodRunning})
	if n := m.dispatch(ctx, sem, &wg); n != 0 {
		t.Errorf("dispatch started %d writes while the pod's first was in flight, want 0", n)
	}
	close(release)
	wg.Wait()
	if n := m.dispatch(ctx, sem, &wg); n != 1 {
		t.Errorf("dispatch after the first write started %d writes, want 1", n)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(landed) != 2 || landed[1] != v1.PodRunning {
		t.Fatalf("patches landed in the order %v, want [Pending Running]", landed)
	}
}

// TestStatusReassertedOverOthers holds the status manager to writing an unchanged status
// again when the API's copy of the pod says otherwise (the node lifecycle controller marked
// it unready, or an older write's echo), and to writing nothing for its own echo or for a
// copy that already holds the status.
func TestStatusReassertedOverOthers(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", ResourceVersion: "1"}}
	client := fake.NewClientset()
	rv := 1
	client.PrependReactor("patch", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
		rv++
		out := pod.DeepCopy()
		out.ResourceVersion = strconv.Itoa(rv)
		return true, out, nil
	})
	m := newStatusManager(client, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	writes := func() int {
		t.Helper()
		n := m.dispatch(ctx, sem, &wg)
		wg.Wait()
		return n
	}
	ready := v1.PodStatus{Phase: v1.PodRunning, StartTime: &metav1.Time{Time: time.Unix(100, 0)},
		Conditions: []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.Unix(100, 0)}},
		ContainerStatuses: []v1.ContainerStatus{{Name: "c", Ready: true, State: v1.ContainerState{
			Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(100, 5e8))}}}}}
	at := func(rv string, st v1.PodStatus) *v1.Pod {
		p := pod.DeepCopy()
		p.ResourceVersion, p.Status = rv, st
		return p
	}

	m.set(pod, ready)
	if n := writes(); n != 1 {
		t.Fatalf("first status: %d writes, want 1", n)
	}
	// The echo of that write, at the version the patch returned.
	m.set(at("2", ready), ready)
	if n := writes(); n != 0 {
		t.Errorf("own echo: %d writes, want 0", n)
	}
	// A later version holding the same status as the API keeps it (times in seconds), with a
	// condition and a field of someone else's.
	kept := *ready.DeepCopy()
	kept.ContainerStatuses[0].State.Running.StartedAt = metav1.Unix(100, 0)
	kept.Conditions = append(kept.Conditions, v1.PodCondition{Type: "example.com/gate", Status: v1.ConditionTrue})
	kept.NominatedNodeName = "n"
	m.set(at("3", kept), ready)
	if n := writes(); n != 0 {
		t.Errorf("a copy that holds the status: %d writes, want 0", n)
	}
	// Someone else marks the pod unready: the same status is written again.
	unready := *ready.DeepCopy()
	unready.Conditions[0].Status = v1.ConditionFalse
	m.set(at("4", unready), ready)
	if n := writes(); n != 1 {
		t.Errorf("after another writer changed the status: %d writes, want 1", n)
	}
}
