package job

import (
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// backoffRecord is what the replacement of failed pods waits on: the failures since the
// last success and when the latest of them happened.
type backoffRecord struct {
	failuresAfterLastSuccess int
	lastFailure              time.Time
}

// next folds the pods that finished since the record was made into it, as Kubernetes does: a
// success resets the count, and only failures after the last success count.
func (r backoffRecord) next(succeeded, failed []*corev1.Pod, now time.Time) backoffRecord {
	if len(succeeded) == 0 && len(failed) == 0 {
		return r
	}
	failTimes := make([]time.Time, len(failed))
	for i, p := range failed {
		failTimes[i] = finishTime(p, now)
	}
	sort.Slice(failTimes, func(i, j int) bool { return failTimes[i].Before(failTimes[j]) })
	if len(succeeded) == 0 {
		r.failuresAfterLastSuccess += len(failed)
		r.lastFailure = failTimes[len(failTimes)-1]
		return r
	}
	var lastSuccess time.Time
	for _, p := range succeeded {
		if t := finishTime(p, now); t.After(lastSuccess) {
			lastSuccess = t
		}
	}
	r = backoffRecord{}
	for i := len(failTimes) - 1; i >= 0 && failTimes[i].After(lastSuccess); i-- {
		if r.lastFailure.IsZero() {
			r.lastFailure = failTimes[i]
		}
		r.failuresAfterLastSuccess++
	}
	return r
}

// remaining is how long the creation of a replacement pod still has to wait at now: base
// after the first failure, doubling with each further one, capped at maxDelay.
func (r backoffRecord) remaining(now time.Time, base, maxDelay time.Duration) time.Duration {
	if r.failuresAfterLastSuccess == 0 {
		return 0
	}
	d := base
	for i := 1; i < r.failuresAfterLastSuccess && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	if elapsed := now.Sub(r.lastFailure); elapsed < d {
		return d - elapsed
	}
	return 0
}

// finishTime is when a finished pod finished: its last container's exit, else the moment it
// stopped being ready, else its deletion, else now (its finish was just observed).
func finishTime(p *corev1.Pod, now time.Time) time.Time {
	var last time.Time
	all := true
	for _, s := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if s.State.Terminated == nil {
			all = false
			continue
		}
		if t := s.State.Terminated.FinishedAt.Time; t.After(last) {
			last = t
		}
	}
	if all && !last.IsZero() {
		return last
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	if p.DeletionTimestamp != nil {
		return p.DeletionTimestamp.Time
	}
	return now
}

// backoffStore keeps a backoffRecord per Job key; it lives as long as the controller does.
type backoffStore struct {
	mu      sync.Mutex
	records map[string]backoffRecord
}

func newBackoffStore() *backoffStore { return &backoffStore{records: map[string]backoffRecord{}} }

func (s *backoffStore) get(key string) backoffRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records[key]
}

func (s *backoffStore) set(key string, r backoffRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r == (backoffRecord{}) {
		delete(s.records, key)
		return
	}
	s.records[key] = r
}

func (s *backoffStore) delete(key string) { s.set(key, backoffRecord{}) }
