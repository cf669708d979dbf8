package kubelet

import (
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"
)

// Kubernetes' back-off for restarting crashed containers and for pulling images: 10s
// doubling to 5 minutes, forgotten after 10 minutes without a failure.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
)

type backoffs struct {
	crash *backoff
	pull  *backoff
}

func newBackoffs() *backoffs {
	return &backoffs{crash: newBackoff(), pull: newBackoff()}
}

// retryAfter is when to try starting c again after a failed attempt: at the end of its
// image pull back-off if one holds, else soon.
func (b *backoffs) retryAfter(uid types.UID, c *v1.Container) time.Duration {
	for _, key := range []string{backoffKey(uid, c.Image), backoffKey(uid, "start/"+c.Name)} {
		if left := b.pull.leftSinceUpdate(key); left > 0 {
			return left
		}
	}
	return 2 * time.Second
}

// forget drops a gone pod's entries.
func (b *backoffs) forget(uid types.UID) {
	b.crash.forget(uid)
	b.pull.forget(uid)
}

func (b *backoffs) gc() {
	b.crash.b.GC()
	b.pull.b.GC()
}

func backoffKey(uid types.UID, what string) string { return string(uid) + "/" + what }

// backoff is client-go's flowcontrol.Backoff, which the kubelet uses too, plus the keys of
// each pod so they can be dropped with it.
type backoff struct {
	b    *flowcontrol.Backoff
	mu   sync.Mutex
	keys map[types.UID]map[string]bool
	// updated is when each key last failed.
	updated map[string]time.Time
}

func newBackoff() *backoff {
	return &backoff{b: flowcontrol.NewBackOff(backoffInitial, backoffMax), keys: map[types.UID]map[string]bool{},
		updated: map[string]time.Time{}}
}

// left is how long the back-off still holds after an event at t, or 0.
func (b *backoff) left(key string, t time.Time) time.Duration {
	if !b.b.IsInBackOffSince(key, t) {
		return 0
	}
	return max(time.Until(t.Add(b.b.Get(key))), time.Millisecond)
}

// leftSinceUpdate is how long the back-off holds since its last failure, or 0.
func (b *backoff) leftSinceUpdate(key string) time.Duration {
	if !b.b.IsInBackOffSinceUpdate(key, time.Now()) {
		return 0
	}
	b.mu.Lock()
	last := b.updated[key]
	b.mu.Unlock()
	return max(time.Until(last.Add(b.b.Get(key))), time.Millisecond)
}

func (b *backoff) get(key string) time.Duration { return b.b.Get(key) }

// next records a failure at t, doubling the back-off.
func (b *backoff) next(key string, t time.Time) {
	b.b.Next(key, t)
	b.mu.Lock()
	b.updated[key] = t
	uid := types.UID(key[:max(0, strings.IndexByte(key, '/'))])
	if b.keys[uid] == nil {
		b.keys[uid] = map[string]bool{}
	}
	b.keys[uid][key] = true
	b.mu.Unlock()
}

func (b *backoff) forget(uid types.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for key := range b.keys[uid] {
		b.b.DeleteEntry(key)
		delete(b.updated, key)
	}
	delete(b.keys, uid)
}

// reasonCache remembers why each container of a pod is waiting, and which events were
// recorded last, by pod UID.
type reasonCache struct {
	mu sync.Mutex
	m  map[types.UID]map[string]waitReason
}

type waitReason struct{ reason, message string }

func newReasonCache() *reasonCache { return &reasonCache{m: map[types.UID]map[string]waitReason{}} }

// set records why container name waits; it reports whether that changed.
func (r *reasonCache) set(uid types.UID, name, reason, message string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[uid] == nil {
		r.m[uid] = map[string]waitReason{}
	}
	w := waitReason{reason, message}
	changed := r.m[uid][name] != w
	r.m[uid][name] = w
	return changed
}

// note is set for event de-duplication keys.
func (r *reasonCache) note(uid types.UID, key, message string) bool {
	return r.set(uid, key, "", message)
}

func (r *reasonCache) get(uid types.UID, name string) (waitReason, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.m[uid][name]
	return w, ok
}

func (r *reasonCache) clear(uid types.UID, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m[uid], name)
}

func (r *reasonCache) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, uid)
}
