package expectations

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

const owner = "default/web"

// step acts on the expectations of owner; advance moves the clock.
type step func(e *Expectations, advance func(time.Duration))

func creations(n int) step {
	return func(e *Expectations, _ func(time.Duration)) { e.ExpectCreations(owner, n) }
}

func deletions(pods ...string) step {
	return func(e *Expectations, _ func(time.Duration)) { e.ExpectDeletions(owner, pods) }
}

func created() step {
	return func(e *Expectations, _ func(time.Duration)) { e.CreationObserved(owner) }
}

func deleted(pod string) step {
	return func(e *Expectations, _ func(time.Duration)) { e.DeletionObserved(owner, pod) }
}

func forget() step { return func(e *Expectations, _ func(time.Duration)) { e.Delete(owner) } }

func after(d time.Duration) step {
	return func(_ *Expectations, advance func(time.Duration)) { advance(d) }
}

func TestSatisfied(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		want  bool
	}{
		{"nothing expected", nil, true},
		{"nothing raised", []step{creations(0), deletions()}, true},
		{"creations pending", []step{creations(2), created()}, false},
		{"creations observed", []step{creations(2), created(), created()}, true},
		{"more observed than expected", []step{creations(1), created(), created(), creations(1)}, false},
		{"observed before expected", []step{created(), creations(1)}, false},
		{"deletions pending", []step{deletions("default/a", "default/b"), deleted("default/a")}, false},
		{"deletions observed", []step{deletions("default/a", "default/b"), deleted("default/b"), deleted("default/a")}, true},
		{"a deletion observed twice counts once", []step{deletions("default/a", "default/b"), deleted("default/a"), deleted("default/a")}, false},
		{"another pod's deletion", []step{deletions("default/a"), deleted("default/x")}, false},
		{"creations and deletions", []step{creations(1), deletions("default/a"), created()}, false},
		{"creations and deletions observed", []step{creations(1), deletions("default/a"), deleted("default/a"), created()}, true},
		{"pending adds up", []step{deletions("default/a"), deletions("default/b"), deleted("default/a")}, false},
		{"expired", []step{creations(3), after(Timeout + time.Second)}, true},
		{"not yet expired", []step{creations(3), after(Timeout)}, false},
		{"observations do not renew", []step{creations(3), after(Timeout - time.Second), created(), after(2 * time.Second)}, true},
		{"a fresh record after expiry", []step{creations(3), after(Timeout + time.Second), creations(1)}, false},
		{"an expired record is replaced, not added to", []step{creations(3), after(Timeout + time.Second), creations(1), created()}, true},
		{"a satisfied record is replaced", []step{deletions("default/a"), deleted("default/a"), after(Timeout - time.Second), creations(1), after(2 * time.Second)}, false},
		{"a pending record keeps its age", []step{deletions("default/a"), after(Timeout - time.Second), creations(1), after(2 * time.Second)}, true},
		{"deleted owner", []step{creations(3), forget()}, true},
		{"raised after delete", []step{creations(3), forget(), deletions("default/a")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			e := New(func() time.Time { return now })
			for _, s := range tc.steps {
				s(e, func(d time.Duration) { now = now.Add(d) })
			}
			if got := e.Satisfied(owner); got != tc.want {
				t.Errorf("Satisfied = %v, want %v", got, tc.want)
			}
			if !e.Satisfied("default/other") {
				t.Error("another key is not satisfied")
			}
		})
	}
}

func TestNilClockIsTheRealOne(t *testing.T) {
	e := New(nil)
	e.ExpectCreations(owner, 1)
	if e.Satisfied(owner) {
		t.Fatal("satisfied with a creation pending")
	}
}

// Handlers observe while a sync raises; run with -race.
func TestConcurrentObservers(t *testing.T) {
	e := New(nil)
	const n = 100
	pods := make([]string, n)
	for i := range pods {
		pods[i] = fmt.Sprintf("default/p%d", i)
	}
	e.ExpectCreations(owner, n)
	e.ExpectDeletions(owner, pods)
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() { e.CreationObserved(owner) })
		wg.Go(func() { e.DeletionObserved(owner, p) })
		wg.Go(func() { e.Satisfied(owner) })
	}
	wg.Wait()
	if !e.Satisfied(owner) {
		t.Fatal("not satisfied after every expectation was observed")
	}
}
