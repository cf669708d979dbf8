package job

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// expectationsTimeout is how long a controller trusts its expectations before it syncs anyway:
// a watch event that never comes must not block a Job forever.
const expectationsTimeout = 5 * time.Minute

// expectations counts, per Job key, what this controller asked the API server for and has not
// yet seen in its pod informer: pod creations, pod deletions (by pod key) and removals of the
// tracking finalizer (by pod UID). A Job is synced only once all of them were observed, so
// that a sync never counts a pod twice or creates pods on a stale cache. Every expectation is
// raised before its request is sent, so that an event arriving first is not lost.
type expectations struct {
	mu    sync.Mutex
	items map[string]*expectation
	now   func() time.Time
}

type expectation struct {
	adds       int
	deletions  map[string]bool
	finalizers map[types.UID]bool
	at         time.Time
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{items: map[string]*expectation{}, now: now}
}

func (e *expectations) get(key string) *expectation {
	x, ok := e.items[key]
	if !ok {
		x = &expectation{deletions: map[string]bool{}, finalizers: map[types.UID]bool{}}
		e.items[key] = x
	}
	x.at = e.now()
	return x
}

// satisfied reports whether key has no outstanding expectations (or they expired).
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.items[key]
	if !ok || (x.adds <= 0 && len(x.deletions) == 0 && len(x.finalizers) == 0) {
		return true
	}
	return e.now().Sub(x.at) > expectationsTimeout
}

func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.get(key).adds += n
}

// creationObserved lowers the creations still expected for key by one.
func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok && x.adds > 0 {
		x.adds--
	}
}

func (e *expectations) expectDeletion(key, pod string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.get(key).deletions[pod] = true
}

// deletionObserved records that pod (namespace/name) is gone or going.
func (e *expectations) deletionObserved(key, pod string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok {
		delete(x.deletions, pod)
	}
}

func (e *expectations) expectFinalizerRemoval(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.get(key).finalizers[uid] = true
}

// finalizerRemovalObserved records that the pod uid lost its tracking finalizer (or is gone).
func (e *expectations) finalizerRemovalObserved(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok {
		delete(x.finalizers, uid)
	}
}

func (e *expectations) delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.items, key)
}
