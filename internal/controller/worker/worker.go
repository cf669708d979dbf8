package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Pool is what the workers of one controller are made of.
type Pool struct {
	Queue  workqueue.TypedRateLimitingInterface[string]
	Synced []cache.InformerSynced // the informer caches to wait for
	Sync   func(ctx context.Context, key string) error
	Log    *slog.Logger // nil: discard
	// Name is the log attribute a failed key is logged under: "replicaset", "job".
	Name string
}

// Run waits for the caches, runs workers workers until ctx is done, shuts the queue down and
// waits for the workers to return.
func (p Pool) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer p.Queue.ShutDown()
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	if !cache.WaitForCacheSync(ctx.Done(), p.Synced...) {
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for p.processNext(ctx) {
				}
			}, time.Second)
		})
	}
	<-ctx.Done()
	p.Queue.ShutDown()
	wg.Wait()
}

// processNext syncs the next key; it reports false once the queue is shut down.
func (p Pool) processNext(ctx context.Context) bool {
	key, quit := p.Queue.Get()
	if quit {
		return false
	}
	defer p.Queue.Done(key)
	if err := p.Sync(ctx, key); err != nil {
		p.Log.Info("sync failed, retrying", p.Name, key, "err", err)
		p.Queue.AddRateLimited(key)
		return true
	}
	p.Queue.Forget(key)
	return true
}
