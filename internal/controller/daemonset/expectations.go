package daemonset

import (
	"sync"
	"time"
)

// expectationsTimeout is how long the controller trusts its expectations before it syncs
// anyway: a watch event that never comes (a create the API server refused after a timeout)
// must not block a DaemonSet forever.
const expectationsTimeout = 5 * time.Minute

// expectations counts, per DaemonSet key, the pod creations and deletions this controller has
// asked for and not yet seen in its informer. Deletions are tracked by pod key so that an
// update with a deletionTimestamp and the final delete event are counted once.
type expectations struct {
	mu    sync.Mutex
	items map[string]*expectation
	now   func() time.Time
}

type expectation struct {
	adds      int
	deletions map[string]bool
	at        time.Time
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{items: map[string]*expectation{}, now: now}
}

// satisfied reports whether key has no outstanding expectations (or they expired).
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.items[key]
	if !ok || (x.adds <= 0 && len(x.deletions) == 0) {
		return true
	}
	return e.now().Sub(x.at) > expectationsTimeout
}

// expect replaces key's expectations with adds creations and the deletion of pods (their
// namespace/name keys).
func (e *expectations) expect(key string, adds int, pods []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := make(map[string]bool, len(pods))
	for _, p := range pods {
		d[p] = true
	}
	e.items[key] = &expectation{adds: adds, deletions: d, at: e.now()}
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
