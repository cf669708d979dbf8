package expectations

import (
	"sync"
	"time"
)

// Timeout is how long a record is trusted: past it the key counts as satisfied and the next
// expectation raised replaces the record.
const Timeout = 5 * time.Minute

// Expectations holds one record per controller key. The zero value is not usable; call New.
type Expectations struct {
	mu    sync.Mutex
	items map[string]*record
	now   func() time.Time
}

type record struct {
	creations int
	deletions map[string]bool
	at        time.Time // when the record started
}

func (r *record) pending() bool { return r.creations > 0 || len(r.deletions) > 0 }

// New returns empty expectations that read the time from now (nil: time.Now).
func New(now func() time.Time) *Expectations {
	if now == nil {
		now = time.Now
	}
	return &Expectations{items: map[string]*record{}, now: now}
}

// Satisfied reports whether key has nothing pending, or its record is older than Timeout.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.items[key]
	return !ok || !r.pending() || e.expired(r)
}

func (e *Expectations) expired(r *record) bool { return e.now().Sub(r.at) > Timeout }

// raise returns the record an expectation for key adds to: the current one while it is
// pending and fresh, else a new one that replaces it. e.mu must be held.
func (e *Expectations) raise(key string) *record {
	r, ok := e.items[key]
	if !ok || !r.pending() || e.expired(r) {
		r = &record{deletions: map[string]bool{}, at: e.now()}
		e.items[key] = r
	}
	return r
}

// ExpectCreations records that the controller of key is about to create n objects.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.raise(key).creations += n
}

// ExpectDeletions records that the controller of key is about to delete objs (their keys).
func (e *Expectations) ExpectDeletions(key string, objs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.raise(key)
	for _, o := range objs {
		r.deletions[o] = true
	}
}

// CreationObserved lowers the creations still expected for key by one, if any are.
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.items[key]; ok && r.creations > 0 {
		r.creations--
	}
}

// DeletionObserved records that obj, if key expected its deletion, is gone or going.
func (e *Expectations) DeletionObserved(key, obj string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.items[key]; ok {
		delete(r.deletions, obj)
	}
}

// Delete forgets key's record: its owner is gone.
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.items, key)
}
