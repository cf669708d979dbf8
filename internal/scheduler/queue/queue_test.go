package queue

import (
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newQueue() (*Queue, *fakeClock) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	return New(Config{Now: clk.Now}), clk
}

func pod(name string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)}}
}

func pop(t *testing.T, q *Queue) *QueuedPod {
	t.Helper()
	if a, _, _ := q.Len(); a == 0 {
		t.Fatal("pop on an empty active queue would block")
	}
	qp, ok := q.Pop()
	if !ok {
		t.Fatal("queue closed")
	}
	return qp
}

func TestPriorityThenArrival(t *testing.T) {
	q, clk := newQueue()
	q.Add(pod("low"), 0)
	clk.Step(time.Millisecond)
	q.Add(pod("high"), 100)
	clk.Step(time.Millisecond)
	q.Add(pod("low2"), 0)
	q.Add(pod("high"), 100) // duplicate add is ignored
	var got []string
	for range 3 {
		got = append(got, pop(t, q).Pod.Name)
	}
	if got[0] != "high" || got[1] != "low" || got[2] != "low2" {
		t.Errorf("order %v", got)
	}
	if a, b, u := q.Len(); a+b+u != 0 {
		t.Errorf("queue not empty: %d %d %d", a, b, u)
	}
}

func TestBackoffDoubles(t *testing.T) {
	q, clk := newQueue()
	q.Add(pod("p"), 0)
	for attempt, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		qp := pop(t, q)
		q.AddBackoff(qp)
		clk.Step(want - time.Millisecond)
		q.FlushBackoff()
		if a, _, _ := q.Len(); a != 0 {
			t.Fatalf("attempt %d: out of backoff before %v", attempt+1, want)
		}
		clk.Step(time.Millisecond)
		q.FlushBackoff()
		if a, _, _ := q.Len(); a != 1 {
			t.Fatalf("attempt %d: still backing off after %v", attempt+1, want)
		}
	}
}

func TestUnschedulableWaitsForClusterChange(t *testing.T) {
	q, clk := newQueue()
	q.Add(pod("p"), 0)
	qp := pop(t, q)
	q.AddUnschedulable(qp)
	clk.Step(time.Minute)
	q.FlushBackoff()
	if a, b, u := q.Len(); a != 0 || b != 0 || u != 1 {
		t.Fatalf("got %d %d %d, want the pod unschedulable", a, b, u)
	}
	// A status-only update does not wake it; a spec change does.
	p2 := qp.Pod.DeepCopy()
	p2.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse}}
	q.Update(qp.Pod, p2, 0)
	if _, _, u := q.Len(); u != 1 {
		t.Fatal("status update moved the pod")
	}
	q.MoveAllToActiveOrBackoff()
	if a, _, _ := q.Len(); a != 1 {
		t.Fatal("cluster change did not move the pod to active")
	}
	if got := pop(t, q); got.Pod.Status.Conditions == nil {
		t.Error("the updated object was not kept")
	}
}

func TestChangeWhileInFlightIsNotLost(t *testing.T) {
	q, _ := newQueue()
	q.Add(pod("p"), 0)
	qp := pop(t, q)
	q.MoveAllToActiveOrBackoff() // a node appears while p is being scheduled
	q.AddUnschedulable(qp)
	if _, b, u := q.Len(); b != 1 || u != 0 {
		t.Errorf("got backoff %d unschedulable %d, want the pod in backoff", b, u)
	}
}

func TestFlushUnschedulableAfterMaxDuration(t *testing.T) {
	q, clk := newQueue()
	q.Add(pod("p"), 0)
	q.AddUnschedulable(pop(t, q))
	clk.Step(5 * time.Minute)
	q.FlushUnschedulable()
	if a, _, _ := q.Len(); a != 1 {
		t.Error("pod not retried after 5 minutes")
	}
}

func TestDeleteAndDeletedInFlight(t *testing.T) {
	q, _ := newQueue()
	q.Add(pod("a"), 0)
	q.Add(pod("b"), 0)
	q.Delete(pod("a"))
	qp := pop(t, q)
	if qp.Pod.Name != "b" {
		t.Fatalf("popped %s", qp.Pod.Name)
	}
	q.Delete(pod("b"))
	q.AddBackoff(qp)
	if a, b, u := q.Len(); a+b+u != 0 {
		t.Errorf("deleted pod came back: %d %d %d", a, b, u)
	}
}

func TestPopBlocksUntilAddOrClose(t *testing.T) {
	q, _ := newQueue()
	got := make(chan string)
	go func() {
		qp, ok := q.Pop()
		if ok {
			got <- qp.Pod.Name
		} else {
			got <- ""
		}
	}()
	q.Add(pod("p"), 0)
	if n := <-got; n != "p" {
		t.Fatalf("got %q", n)
	}
	go func() { _, ok := q.Pop(); got <- map[bool]string{true: "pod", false: ""}[ok] }()
	q.Close()
	if n := <-got; n != "" {
		t.Errorf("Pop after Close returned a pod")
	}
}

func TestMoveOnlyPodsAChangeMayHelp(t *testing.T) {
	q, clk := newQueue()
	q.Add(pod("cpu"), 0)
	q.Add(pod("affinity"), 0)
	a, b := pop(t, q), pop(t, q)
	a.UnschedulablePlugins = map[string]bool{"NodeResourcesFit": true}
	b.UnschedulablePlugins = map[string]bool{"InterPodAffinity": true}
	q.AddUnschedulable(a)
	q.AddUnschedulable(b)
	q.MoveAllToActiveOrBackoff("InterPodAffinity", "PodTopologySpread") // a pod was bound
	clk.Step(time.Minute)
	q.FlushBackoff()
	if active, _, u := q.Len(); active != 1 || u != 1 {
		t.Fatalf("got active %d unschedulable %d, want only the affinity pod moved", active, u)
	}
	if got := pop(t, q); got.Pod.Name != "affinity" {
		t.Errorf("moved %s", got.Pod.Name)
	}
	q.MoveAllToActiveOrBackoff() // a node was added
	clk.Step(time.Minute)
	q.FlushBackoff()
	if active, _, u := q.Len(); active != 1 || u != 0 {
		t.Errorf("got active %d unschedulable %d after a node change", active, u)
	}
}
