package queue

import (
	"container/heap"
	"context"
	"maps"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
)

// QueuedPod is a pod waiting in the queue.
type QueuedPod struct {
	Pod      *v1.Pod
	Priority int32
	// Timestamp is when the pod entered the queue (the active heap's tie-breaker), Attempts
	// how many times it was popped.
	Timestamp time.Time
	Attempts  int
	// UnschedulablePlugins names the plugins that rejected the pod in its last attempt; a
	// cluster change only wakes pods that one of its plugins may now accept.
	UnschedulablePlugins map[string]bool

	backoffUntil time.Time
	index        int      // in its heap
	heap         *podHeap // the heap it is in, if any
	cycle        int64
	deleted      bool // deleted while in flight
}

// Config tunes a queue.
type Config struct {
	InitialBackoff           time.Duration // default 1s
	MaxBackoff               time.Duration // default 10s
	MaxUnschedulableDuration time.Duration // default 5m
	Now                      func() time.Time
}

// Queue is a scheduling queue.
type Queue struct {
	cfg  Config
	mu   sync.Mutex
	cond *sync.Cond

	active        podHeap
	backoff       podHeap
	unschedulable map[types.UID]*QueuedPod
	where         map[types.UID]*QueuedPod // pods in the active or backoff heap
	inFlight      map[types.UID]*QueuedPod

	cycle            int64 // incremented by every Pop
	moveRequestCycle int64 // the cycle of the last cluster change
	closed           bool
}

// New returns an empty queue.
func New(cfg Config) *Queue {
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.MaxUnschedulableDuration <= 0 {
		cfg.MaxUnschedulableDuration = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	q := &Queue{cfg: cfg, unschedulable: map[types.UID]*QueuedPod{}, where: map[types.UID]*QueuedPod{},
		inFlight: map[types.UID]*QueuedPod{}, moveRequestCycle: -1}
	q.active.less = func(a, b *QueuedPod) bool {
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Timestamp.Before(b.Timestamp)
	}
	q.backoff.less = func(a, b *QueuedPod) bool { return a.backoffUntil.Before(b.backoffUntil) }
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Run moves pods whose backoff expired to the active heap and flushes pods unschedulable for
// too long, until ctx is done; then it closes the queue.
func (q *Queue) Run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last := q.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			q.Close()
			return
		case <-t.C:
		}
		q.FlushBackoff()
		if now := q.cfg.Now(); now.Sub(last) > 30*time.Second {
			q.FlushUnschedulable()
			last = now
		}
	}
}

// Close wakes Pop callers, which then return false.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// Add queues a new pending pod.
func (q *Queue) Add(pod *v1.Pod, priority int32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.has(pod.UID) {
		return
	}
	q.pushActive(&QueuedPod{Pod: pod, Priority: priority, Timestamp: q.cfg.Now()})
}

func (q *Queue) has(uid types.UID) bool {
	_, a := q.where[uid]
	_, u := q.unschedulable[uid]
	_, f := q.inFlight[uid]
	return a || u || f
}

func (q *Queue) pushActive(qp *QueuedPod) {
	qp.heap = &q.active
	heap.Push(&q.active, qp)
	q.where[qp.Pod.UID] = qp
	q.cond.Signal()
}

func (q *Queue) pushBackoff(qp *QueuedPod) {
	qp.heap = &q.backoff
	heap.Push(&q.backoff, qp)
	q.where[qp.Pod.UID] = qp
}

// Update replaces a queued pod's object. An unschedulable pod whose spec, labels or
// annotations changed gets another chance; status-only changes (such as the scheduler's own
// condition) leave it where it is.
func (q *Queue) Update(old, pod *v1.Pod, priority int32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	uid := pod.UID
	if qp, ok := q.inFlight[uid]; ok {
		qp.Pod, qp.Priority = pod, priority
		return
	}
	if qp, ok := q.where[uid]; ok {
		qp.Pod, qp.Priority = pod, priority
		heap.Fix(qp.heap, qp.index)
		return
	}
	if qp, ok := q.unschedulable[uid]; ok {
		qp.Pod, qp.Priority = pod, priority
		if old != nil && !changedForScheduling(old, pod) {
			return
		}
		delete(q.unschedulable, uid)
		q.requeue(qp)
		return
	}
	q.pushActive(&QueuedPod{Pod: pod, Priority: priority, Timestamp: q.cfg.Now()})
}

func changedForScheduling(old, pod *v1.Pod) bool {
	return !equality.Semantic.DeepEqual(old.Spec, pod.Spec) || !maps.Equal(old.Labels, pod.Labels) ||
		!maps.Equal(old.Annotations, pod.Annotations)
}

// Delete forgets a pod.
func (q *Queue) Delete(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	uid := pod.UID
	if qp, ok := q.inFlight[uid]; ok {
		qp.deleted = true
	}
	if qp, ok := q.where[uid]; ok {
		heap.Remove(qp.heap, qp.index)
		delete(q.where, uid)
	}
	delete(q.unschedulable, uid)
}

// Pop blocks until a pod is active and returns it, marked in flight; it returns false once
// the queue is closed.
func (q *Queue) Pop() (*QueuedPod, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	qp := heap.Pop(&q.active).(*QueuedPod)
	delete(q.where, qp.Pod.UID)
	q.cycle++
	qp.cycle = q.cycle
	qp.Attempts++
	q.inFlight[qp.Pod.UID] = qp
	return qp, true
}

// Done ends a pod's time in flight after it was scheduled (or dropped).
func (q *Queue) Done(uid types.UID) {
	q.mu.Lock()
	delete(q.inFlight, uid)
	q.mu.Unlock()
}

// AddUnschedulable returns a pod that fits nowhere: it waits for a cluster change, unless one
// happened while it was in flight, in which case it only backs off.
func (q *Queue) AddUnschedulable(qp *QueuedPod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, qp.Pod.UID)
	if qp.deleted || q.has(qp.Pod.UID) {
		return
	}
	qp.backoffUntil = q.cfg.Now().Add(q.backoffDuration(qp))
	if q.moveRequestCycle >= qp.cycle {
		q.pushBackoff(qp)
		return
	}
	qp.Timestamp = q.cfg.Now()
	q.unschedulable[qp.Pod.UID] = qp
}

// AddBackoff returns a pod whose scheduling or binding failed for another reason (an API
// error, a conflict): it is retried after its backoff.
func (q *Queue) AddBackoff(qp *QueuedPod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, qp.Pod.UID)
	if qp.deleted || q.has(qp.Pod.UID) {
		return
	}
	qp.backoffUntil = q.cfg.Now().Add(q.backoffDuration(qp))
	q.pushBackoff(qp)
}

func (q *Queue) backoffDuration(qp *QueuedPod) time.Duration {
	d := q.cfg.InitialBackoff
	for i := 1; i < qp.Attempts && d < q.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, q.cfg.MaxBackoff)
}

// requeue puts a pod back into backoff or, if its backoff is over, the active heap.
func (q *Queue) requeue(qp *QueuedPod) {
	if q.cfg.Now().Before(qp.backoffUntil) {
		q.pushBackoff(qp)
		return
	}
	q.pushActive(qp)
}

// MoveAllToActiveOrBackoff is called on a cluster change that may make unschedulable pods
// fit (a node added or changed, a pod deleted). With plugins, only pods rejected by one of
// them move (a pod with no recorded plugin always moves).
func (q *Queue) MoveAllToActiveOrBackoff(plugins ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for uid, qp := range q.unschedulable {
		if len(plugins) > 0 && len(qp.UnschedulablePlugins) > 0 && !anyOf(qp.UnschedulablePlugins, plugins) {
			continue
		}
		delete(q.unschedulable, uid)
		q.requeue(qp)
	}
	q.moveRequestCycle = q.cycle
}

func anyOf(set map[string]bool, names []string) bool {
	for _, n := range names {
		if set[n] {
			return true
		}
	}
	return false
}

// FlushBackoff moves pods whose backoff is over to the active heap.
func (q *Queue) FlushBackoff() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Now()
	for q.backoff.Len() > 0 && !now.Before(q.backoff.items[0].backoffUntil) {
		qp := heap.Pop(&q.backoff).(*QueuedPod)
		delete(q.where, qp.Pod.UID)
		q.pushActive(qp)
	}
}

// FlushUnschedulable retries pods that have waited longer than MaxUnschedulableDuration.
func (q *Queue) FlushUnschedulable() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Now()
	for uid, qp := range q.unschedulable {
		if now.Sub(qp.Timestamp) >= q.cfg.MaxUnschedulableDuration {
			delete(q.unschedulable, uid)
			q.requeue(qp)
		}
	}
}

// Len returns the number of pods in the active heap, in backoff and unschedulable.
func (q *Queue) Len() (active, backoff, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len(), len(q.unschedulable)
}

// podHeap is a binary heap of pods ordered by less.
type podHeap struct {
	items []*QueuedPod
	less  func(a, b *QueuedPod) bool
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}
func (h *podHeap) Push(x any) {
	qp := x.(*QueuedPod)
	qp.index = len(h.items)
	h.items = append(h.items, qp)
}
func (h *podHeap) Pop() any {
	n := len(h.items)
	qp := h.items[n-1]
	h.items[n-1] = nil
	h.items = h.items[:n-1]
	return qp
}
