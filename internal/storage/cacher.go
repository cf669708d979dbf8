package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Event is one change seen by a Cacher. Object and PrevObject are shared: never modify them.
type Event struct {
	Type       watch.EventType // Added, Modified, Deleted, Bookmark
	Key        string
	Object     runtime.Object // the new state; for Deleted the last state, at the deletion revision
	PrevObject runtime.Object // the state before a Modified or Deleted event
	Revision   int64
	// InitialEventsEnd marks the bookmark that ends the initial events of a watch that asked
	// for them (sendInitialEvents).
	InitialEventsEnd bool
	// Encoded, set on events of the live stream (not on synthetic ones), lets every watcher
	// of the event share one encoding of it per wire format instead of encoding it again.
	Encoded *EncodingCache
}

// EncodingCache holds encodings of one event, by a key the caller chooses (the media type
// and event type). It is safe for concurrent use.
type EncodingCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Get returns the encoding under key, calling encode (once per key) to make it.
func (e *EncodingCache) Get(key string, encode func() ([]byte, error)) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.m[key]; ok {
		return b, nil
	}
	b, err := encode()
	if err != nil {
		return nil, err
	}
	if e.m == nil {
		e.m = map[string][]byte{}
	}
	e.m[key] = b
	return b, nil
}

// DefaultEventCapacity is how many recent events a Cacher keeps for watches that resume.
const DefaultEventCapacity = 2048

const (
	watcherBuffer = 512
	freshTimeout  = 3 * time.Second
)

// Cacher is the watch cache of one key prefix. Create it with NewCacher and start Run.
type Cacher struct {
	store    *Store
	prefix   string
	capacity int
	log      *slog.Logger

	mu       sync.RWMutex
	items    map[string]runtime.Object
	rev      int64 // every event up to rev has been applied
	oldest   int64 // every event after oldest is in the ring
	ring     []Event
	head     int // index of the oldest event in ring
	count    int
	revCh    chan struct{} // closed and replaced whenever rev advances
	watchers map[*Watcher]struct{}
	ready    chan struct{}
	progress func(context.Context) error
}

// NewCacher returns a cache of the keys under prefix ("/registry/pods/").
func NewCacher(store *Store, prefix string, capacity int, log *slog.Logger) *Cacher {
	if capacity <= 0 {
		capacity = DefaultEventCapacity
	}
	return &Cacher{
		store: store, prefix: prefix, capacity: capacity, log: log.With("cache", prefix),
		items: map[string]runtime.Object{}, ring: make([]Event, capacity),
		revCh: make(chan struct{}), watchers: map[*Watcher]struct{}{}, ready: make(chan struct{}),
	}
}

// Ready is closed once the cache has loaded its first list.
func (c *Cacher) Ready() <-chan struct{} { return c.ready }

// Revision returns the revision the cache is current to.
func (c *Cacher) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// Run keeps the cache current until ctx is done, relisting after watch failures such as an
// etcd compaction that overtook it.
func (c *Cacher) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.listAndWatch(ctx)
		if ctx.Err() != nil {
			break
		}
		c.log.Warn("watch cache restarting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	c.mu.Lock()
	for w := range c.watchers {
		w.terminate()
	}
	c.mu.Unlock()
}

func (c *Cacher) listAndWatch(ctx context.Context) error {
	items := map[string]runtime.Object{}
	var rev int64
	start := ""
	for {
		page, err := c.store.List(ctx, c.prefix, ListOptions{Revision: rev, StartKey: start, Limit: 10000})
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		rev = page.Revision
		for i, k := range page.Keys {
			items[k] = page.Items[i]
		}
		if !page.More {
			break
		}
		start = page.Keys[len(page.Keys)-1] + "\x00"
	}

	c.mu.Lock()
	c.items, c.rev, c.oldest, c.head, c.count = items, rev, rev, 0, 0
	clear(c.ring)
	for w := range c.watchers { // they may have missed events: make them resume
		w.terminate()
		delete(c.watchers, w)
	}
	c.advance()
	c.mu.Unlock()
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// The client's own watcher: an embedded member's in-process client has no connection to
	// make another from. RequestProgress asks for a progress notification on every stream.
	// Progress requests go to the watch stream of the same context metadata (require-leader).
	c.mu.Lock()
	c.progress = func(ctx context.Context) error {
		return c.store.client.RequestProgress(clientv3.WithRequireLeader(ctx))
	}
	c.mu.Unlock()
	wch := c.store.client.Watch(wctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-wch:
		case <-ctx.Done():
			// Not waiting for the channel to close: with an embedded member's in-process
			// client, cancelling many watches while events flow can deadlock its channel
			// stream (the client blocks sending the cancels, the server sending events),
			// until the client is closed, which happens only after this returns.
			return fmt.Errorf("watch closed: %w", ctx.Err())
		}
		if !ok {
			return fmt.Errorf("watch closed: %w", ctx.Err())
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		if resp.IsProgressNotify() {
			c.mu.Lock()
			if resp.Header.Revision > c.rev {
				c.rev = resp.Header.Revision
				c.advance()
			}
			c.mu.Unlock()
			continue
		}
		c.apply(resp.Events)
	}
}

func (c *Cacher) apply(events []*clientv3.Event) {
	decoded := make([]Event, 0, len(events))
	for _, e := range events {
		key := string(e.Kv.Key)
		ev := Event{Key: key, Revision: e.Kv.ModRevision, Encoded: &EncodingCache{}}
		if e.Type == clientv3.EventTypeDelete {
			ev.Type = watch.Deleted
		} else {
			obj, _, err := c.store.decode(key, e.Kv.Value, e.Kv.ModRevision)
			if err != nil {
				c.log.Error("undecodable value in etcd, skipped", "key", key, "err", err)
				continue
			}
			ev.Object = obj
			ev.Type = watch.Modified
			if e.IsCreate() {
				ev.Type = watch.Added
			}
		}
		decoded = append(decoded, ev)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range decoded {
		prev := c.items[ev.Key]
		switch ev.Type {
		case watch.Deleted:
			if prev == nil {
				continue
			}
			last := prev.DeepCopyObject()
			_ = setRevision(last, ev.Revision)
			ev.Object, ev.PrevObject = last, prev
			delete(c.items, ev.Key)
		default:
			if prev != nil {
				ev.Type = watch.Modified
			} else {
				ev.Type = watch.Added
			}
			ev.PrevObject = prev
			c.items[ev.Key] = ev.Object
		}
		c.push(ev)
		for w := range c.watchers {
			if keyMatches(ev.Key, w.keyPrefix) && !w.send(ev) {
				delete(c.watchers, w)
			}
		}
		if ev.Revision > c.rev {
			c.rev = ev.Revision
		}
	}
	c.advance()
}

// push appends to the ring, forgetting the oldest event when full. Caller holds mu.
func (c *Cacher) push(ev Event) {
	if c.count == c.capacity {
		c.oldest = c.ring[c.head].Revision
		c.ring[c.head] = ev
		c.head = (c.head + 1) % c.capacity
		return
	}
	c.ring[(c.head+c.count)%c.capacity] = ev
	c.count++
}

// advance wakes everyone waiting for a newer revision. Caller holds mu.
func (c *Cacher) advance() {
	close(c.revCh)
	c.revCh = make(chan struct{})
}

// waitFresh waits until the cache has applied every event up to rev.
func (c *Cacher) waitFresh(ctx context.Context, rev int64) error {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	deadline := time.NewTimer(freshTimeout)
	defer deadline.Stop()
	asked := false
	for {
		c.mu.RLock()
		cur, ch, progress := c.rev, c.revCh, c.progress
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		if !asked && progress != nil {
			// Nothing may change under our prefix: ask etcd to confirm its revision.
			asked = true
			_ = progress(ctx)
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
			asked = false
		case <-deadline.C:
			return fmt.Errorf("%w: %d (cache is at %d)", ErrTimeout, rev, cur)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Get returns the cached object at key, waiting until the cache is at least at minRev.
func (c *Cacher) Get(ctx context.Context, key string, minRev int64) (runtime.Object, int64, error) {
	if err := c.waitFresh(ctx, minRev); err != nil {
		return nil, 0, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	obj, ok := c.items[key]
	if !ok {
		return nil, c.rev, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return obj, c.rev, nil
}

// List returns the cached objects under keyPrefix accepted by filter (nil: all), sorted by
// key, after waiting until the cache is at least at minRev. It returns the cache's revision.
func (c *Cacher) List(ctx context.Context, keyPrefix string, minRev int64, filter func(runtime.Object) bool) ([]runtime.Object, int64, error) {
	if err := c.waitFresh(ctx, minRev); err != nil {
		return nil, 0, err
	}
	c.mu.RLock()
	type kv struct {
		k string
		o runtime.Object
	}
	sel := make([]kv, 0, len(c.items))
	for k, o := range c.items {
		if keyMatches(k, keyPrefix) && (filter == nil || filter(o)) {
			sel = append(sel, kv{k, o})
		}
	}
	rev := c.rev
	c.mu.RUnlock()
	sort.Slice(sel, func(i, j int) bool { return sel[i].k < sel[j].k })
	out := make([]runtime.Object, len(sel))
	for i := range sel {
		out[i] = sel[i].o
	}
	return out, rev, nil
}

// Count returns how many objects the cache holds.
func (c *Cacher) Count() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}

// WatchOptions select what a watch sends.
type WatchOptions struct {
	// Revision: with SendInitialEvents false, send the changes after it (0: the current state
	// as Added events first). With SendInitialEvents, the state at or after it, then changes.
	Revision          int64
	SendInitialEvents bool
	// KeyPrefix narrows the watch to a namespace ("/registry/pods/ns/") or, without a
	// trailing "/", to one key.
	KeyPrefix string
	// Filter, when set, limits events to objects it accepts; an object that stops (starts)
	// matching is sent as Deleted (Added), as Kubernetes does.
	Filter func(runtime.Object) bool
	// BookmarkInterval, when positive, sends Bookmark events that carry the revision.
	BookmarkInterval time.Duration
}

// Watch starts a watch. ErrExpired if opts.Revision is older than the cache's history.
func (c *Cacher) Watch(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = c.prefix
	}
	if opts.Revision > 0 || opts.SendInitialEvents {
		if err := c.waitFresh(ctx, opts.Revision); err != nil {
			return nil, err
		}
	} else if err := c.waitFresh(ctx, 0); err != nil {
		return nil, err
	}
	w := &Watcher{keyPrefix: opts.KeyPrefix, filter: opts.Filter, in: make(chan Event, watcherBuffer),
		out: make(chan Event), done: make(chan struct{}), cacher: c}

	c.mu.Lock()
	var initial []Event
	switch {
	case opts.Revision == 0 || opts.SendInitialEvents:
		keys := make([]string, 0, len(c.items))
		for k := range c.items {
			if keyMatches(k, opts.KeyPrefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		initial = make([]Event, 0, len(keys)+1)
		for _, k := range keys {
			obj := c.items[k]
			initial = append(initial, Event{Type: watch.Added, Key: k, Object: obj, Revision: c.rev})
		}
		if opts.SendInitialEvents {
			initial = append(initial, Event{Type: watch.Bookmark, Revision: c.rev, InitialEventsEnd: true})
		}
	case opts.Revision < c.oldest:
		oldest := c.oldest
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: too old resource version: %d (%d)", ErrExpired, opts.Revision, oldest)
	default:
		for i := 0; i < c.count; i++ {
			ev := c.ring[(c.head+i)%c.capacity]
			if ev.Revision > opts.Revision && keyMatches(ev.Key, opts.KeyPrefix) {
				initial = append(initial, ev)
			}
		}
	}
	c.watchers[w] = struct{}{}
	startRev := c.rev
	c.mu.Unlock()

	go w.run(ctx, initial, startRev, opts.BookmarkInterval)
	return w, nil
}

// Watcher is one watch on a Cacher.
type Watcher struct {
	keyPrefix string
	filter    func(runtime.Object) bool
	in        chan Event // from the cacher, under its lock
	out       chan Event
	done      chan struct{}
	once      sync.Once
	cacher    *Cacher
	full      bool
}

// ResultChan delivers the events; it is closed when the watch ends (ctx done, Stop, or the
// watcher fell too far behind and must resume from its last revision).
func (w *Watcher) ResultChan() <-chan Event { return w.out }

// Stop ends the watch.
func (w *Watcher) Stop() {
	w.cacher.mu.Lock()
	delete(w.cacher.watchers, w)
	w.cacher.mu.Unlock()
	w.terminate()
}

func (w *Watcher) terminate() { w.once.Do(func() { close(w.done) }) }

// send is called with the cacher's lock held; false means the watcher was dropped.
func (w *Watcher) send(ev Event) bool {
	select {
	case w.in <- ev:
		return true
	default:
		w.terminate()
		return false
	}
}

func (w *Watcher) run(ctx context.Context, initial []Event, rev int64, bookmarks time.Duration) {
	defer close(w.out)
	defer w.Stop()
	emit := func(ev Event) bool {
		if ev.Type != watch.Bookmark {
			var ok bool
			if ev, ok = w.filtered(ev); !ok {
				return true
			}
		}
		select {
		case w.out <- ev:
			if ev.Revision > rev {
				rev = ev.Revision
			}
			return true
		case <-ctx.Done():
		case <-w.done:
		}
		return false
	}
	for _, ev := range initial {
		if !emit(ev) {
			return
		}
	}
	var tick <-chan time.Time
	if bookmarks > 0 {
		t := time.NewTicker(bookmarks)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case ev := <-w.in:
			if !emit(ev) {
				return
			}
		case <-tick:
			cur := w.cacher.Revision()
			if len(w.in) == 0 && cur > rev {
				rev = cur
			}
			if !emit(Event{Type: watch.Bookmark, Revision: rev}) {
				return
			}
		case <-w.done:
			// Drain what was queued before the end so nothing already delivered to us is lost.
			for {
				select {
				case ev := <-w.in:
					if !emit(ev) {
						return
					}
				default:
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// filtered applies the watcher's filter, turning membership changes into Added/Deleted.
func (w *Watcher) filtered(ev Event) (Event, bool) {
	if w.filter == nil {
		return ev, true
	}
	switch ev.Type {
	case watch.Added:
		return ev, w.filter(ev.Object)
	case watch.Deleted:
		return ev, w.filter(ev.PrevObject)
	}
	cur := w.filter(ev.Object)
	was := ev.PrevObject != nil && w.filter(ev.PrevObject)
	switch {
	case cur && was:
		return ev, true
	case cur:
		ev.Type = watch.Added
		return ev, true
	case was:
		ev.Type = watch.Deleted
		return ev, true
	}
	return ev, false
}

func formatRV(rev int64) string { return strconv.FormatInt(rev, 10) }

// keyMatches reports whether key is under prefix; a prefix that does not end in "/" is one
// exact key.
func keyMatches(key, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(key, prefix)
	}
	return key == prefix
}
