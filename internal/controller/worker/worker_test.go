package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

func newQueue() workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, 10*time.Millisecond))
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stopped checks that Run, which closes done when it returns, returned and shut queue down.
func stopped(t *testing.T, done <-chan struct{}, queue workqueue.TypedRateLimitingInterface[string]) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx was done")
	}
	if !queue.ShuttingDown() {
		t.Error("queue not shut down")
	}
}

func TestRunRetriesFailedKeysAndStopsWithContext(t *testing.T) {
	queue := newQueue()
	var mu sync.Mutex
	synced := map[string]int{}
	failures := map[string]int{"flaky": 2}
	pool := Pool{
		Queue:  queue,
		Synced: []cache.InformerSynced{func() bool { return true }},
		Name:   "thing",
		Sync: func(_ context.Context, key string) error {
			mu.Lock()
			defer mu.Unlock()
			synced[key]++
			if failures[key] > 0 {
				failures[key]--
				return errors.New("not yet")
			}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { pool.Run(ctx, 2); close(done) }()
	queue.Add("steady")
	queue.Add("flaky")
	eventually(t, "every key synced", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return synced["steady"] == 1 && synced["flaky"] == 3
	})
	eventually(t, "the retries forgotten", func() bool { return queue.NumRequeues("flaky") == 0 })
	cancel()
	stopped(t, done, queue)
}

func TestRunReturnsIfCachesNeverSync(t *testing.T) {
	queue := newQueue()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Pool{Queue: queue, Synced: []cache.InformerSynced{func() bool { return false }},
			Sync: func(context.Context, string) error { t.Error("synced before the caches"); return nil }}.Run(ctx, 1)
		close(done)
	}()
	queue.Add("k")
	cancel()
	stopped(t, done, queue)
}
