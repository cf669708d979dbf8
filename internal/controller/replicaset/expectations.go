package replicaset

import (
	"sync"
	"time"
)

// expectationsTimeout is how long a controller trusts its expectations before it syncs anyway:
// a watch event that never comes (a create that the API server refused after a timeout) must
// not block a ReplicaSet forever.
const expectationsTimeout = 5 * time.Minute

// expectations counts, per controller key, the pod creations and deletions that this controller
// has asked for and not yet seen in its informer. Deletions are tracked by pod key so that an
// update with a deletionTimestamp and the final delete event are counted once.
type expectations struct {
	mu    sync.Mutex
	items map[string]*expectation
	now   func() time.Time
}

type expectation struct {
	adds      int64
	deletions map[string]bool
	at        time.Time
}

func newExpectations() *expectations {
	return &expectations{items: map[string]*expectation{}, now: time.Now}
}

// satisfied reports whether key has no outstanding expectations (or they expired).
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.items[key]
	if !ok {
		return true
	}
	if x.adds <= 0 && len(x.deletions) == 0 {
		return true
	}
	return e.now().Sub(x.at) > expectationsTimeout
}

func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.items[key] = &expectation{adds: int64(n), deletions: map[string]bool{}, at: e.now()}
}

func (e *expectations) expectDeletions(key string, pods []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := make(map[string]bool, len(pods))
	for _, p := range pods {
		d[p] = true
	}
	e.items[key] = &expectation{deletions: d, at: e.now()}
}

// creationObserved lowers the creations still expected for key by one.
func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok && x.adds > 0 {
		x.adds--
	}
}

// deletionObserved records that pod (namespace/name) is gone or going.
func (e *expectations) deletionObserved(key, pod string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok {
		delete(x.deletions, pod)
	}
}

func (e *expectations) delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.items, key)
}
