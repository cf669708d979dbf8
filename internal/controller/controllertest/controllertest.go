// Package controllertest starts shared informers over a fake clientset without the fake's
// race: the fake delivers to a watch only what happens after the watch exists, so a change
// made between an informer's list and its watch is lost. StartInformers returns once every
// informer has both listed and started watching.
package controllertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// StartInformers starts factory (built on client) until the test ends and waits for the
// informers' caches and watches. Call it after every informer the test needs was requested.
func StartInformers(t testing.TB, client *fake.Clientset, factory informers.SharedInformerFactory) {
	t.Helper()
	var mu sync.Mutex
	watching := map[schema.GroupVersionResource]bool{}
	client.PrependWatchReactor("*", func(action clienttesting.Action) (bool, watch.Interface, error) {
		gvr, ns := action.GetResource(), action.GetNamespace()
		w, err := client.Tracker().Watch(gvr, ns)
		if err != nil {
			return false, nil, err
		}
		mu.Lock()
		watching[gvr] = true
		mu.Unlock()
		return true, w, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	synced := factory.WaitForCacheSync(ctx.Done())
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(watching)
		mu.Unlock()
		if n >= len(synced) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("informers did not start watching: %d of %d", n, len(synced))
		}
		time.Sleep(time.Millisecond)
	}
}
