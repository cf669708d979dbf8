package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

const (
	// byServiceIndex indexes EndpointSlices by the "namespace/name" of their Service.
	byServiceIndex = "service"
	// staleChainDelay is how long a chain stays flushed before it is deleted: kernels before
	// 6.2 notice late that a chain lost its last map reference.
	staleChainDelay = time.Second
	// initialBackoff is the first retry delay after a failed transaction; it doubles up to
	// the SyncPeriod.
	initialBackoff = 500 * time.Millisecond
)

// Proxier keeps nftables tables in step with the Services and EndpointSlices of a cluster.
type Proxier struct {
	cfg      Config
	log      *slog.Logger
	client   kubernetes.Interface
	recorder record.EventRecorder
	nft      tables
	renderer renderer
	// conntrack deletes the conntrack entries of UDP flows that lost their endpoint; nil
	// where there is no kernel to ask (tests over knftables' fake).
	conntrack func([]udpFlow) error

	services corelisters.ServiceLister
	slices   cache.Indexer

	mu    sync.Mutex
	dirty map[string]bool // Service keys changed since their last sync
	kick  chan struct{}

	problemsMu sync.Mutex        // renders run in the sync loop and in its table preparer
	problems   map[string]string // Service key → why endpoints were left out, as last reported

	// Owned by the sync loop.
	shards      []*shard // the tables, Services spread over them by shardIndex
	needFull    bool
	quarantined []string // Service keys nftables rejected, retried after a backoff
	backoff     time.Duration

	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a Proxier for cfg. It checks that nftables is usable over netlink (by listing
// the table) but changes nothing until Run.
func New(cfg Config, client kubernetes.Interface, recorder record.EventRecorder) (*Proxier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	nft := netlinkTables{netns: cfg.NetworkNamespace}
	if _, err := nft.list(context.Background(), func(string) bool { return false }); err != nil {
		return nil, fmt.Errorf("proxy: nftables: %w", err)
	}
	p := newProxier(cfg, client, recorder, nft)
	p.conntrack = func(flows []udpFlow) error { return deleteConntrack(cfg.NetworkNamespace, flows) }
	return p, nil
}

// newProxier builds a Proxier on any backend (tests pass knftables' fake); cfg must already
// carry its defaults.
func newProxier(cfg Config, client kubernetes.Interface, recorder record.EventRecorder, nft tables) *Proxier {
	p := &Proxier{
		cfg:      cfg,
		log:      cfg.Log,
		client:   client,
		recorder: recorder,
		nft:      nft,
		renderer: renderer{clusterCIDR: cfg.ClusterCIDR},
		dirty:    map[string]bool{},
		problems: map[string]string{},
		kick:     make(chan struct{}, 1),
		needFull: true,
		ready:    make(chan struct{}),
	}
	p.resize(1)
	return p
}

// Ready is closed once the informers have synced and the first full sync has been applied.
func (p *Proxier) Ready() <-chan struct{} { return p.ready }

// Run watches Services and EndpointSlices and programs nftables until ctx ends. It returns
// nil when ctx ends, an error only if the caches never synced for another reason.
func (p *Proxier) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(p.client, 0)
	svcInformer := factory.Core().V1().Services()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	if err := sliceInformer.Informer().AddIndexers(cache.Indexers{byServiceIndex: sliceServiceKeys}); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	p.services = svcInformer.Lister()
	p.slices = sliceInformer.Informer().GetIndexer()

	// The handlers' registrations, not the informers, say when the initial notifications
	// have all been delivered: a full sync that began earlier would be followed by an
	// incremental one of every Service notified late.
	svcHandler, err := svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { p.serviceChanged(obj) },
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*v1.Service)
			c, ok2 := cur.(*v1.Service)
			if ok1 && ok2 && equality.Semantic.DeepEqual(o.Spec, c.Spec) {
				return // status and metadata do not change the rules
			}
			p.serviceChanged(cur)
		},
		DeleteFunc: func(obj any) { p.serviceChanged(obj) },
	})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	sliceHandler, err := sliceInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.sliceChanged(obj) },
		UpdateFunc: func(_, cur any) { p.sliceChanged(cur) },
		DeleteFunc: func(obj any) { p.sliceChanged(obj) },
	})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}

	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcHandler.HasSynced, sliceHandler.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("proxy: informer caches did not sync")
	}
	p.log.Info("caches synced; programming nftables", "table", p.cfg.TableName, "servicesPerTable", p.cfg.ServicesPerTable)
	p.loop(ctx)
	return nil
}

func (p *Proxier) serviceChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if svc, ok := obj.(*v1.Service); ok {
		p.markDirty(serviceKey(svc.Namespace, svc.Name))
	}
}

func (p *Proxier) sliceChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if slice, ok := obj.(*discovery.EndpointSlice); ok {
		if name := slice.Labels[discovery.LabelServiceName]; name != "" {
			p.markDirty(serviceKey(slice.Namespace, name))
		}
	}
}

func (p *Proxier) markDirty(keys ...string) {
	p.mu.Lock()
	for _, k := range keys {
		p.dirty[k] = true
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Proxier) takeDirty() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, len(p.dirty))
	for k := range p.dirty {
		keys = append(keys, k)
	}
	p.dirty = map[string]bool{}
	slices.Sort(keys)
	return keys
}

func sliceServiceKeys(obj any) ([]string, error) {
	slice, ok := obj.(*discovery.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := slice.Labels[discovery.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{serviceKey(slice.Namespace, name)}, nil
}

// loop runs syncs: at once when something changed (but no closer together than
// MinSyncInterval), a full one every SyncPeriod, and after a failure only when its backoff
// has passed.
func (p *Proxier) loop(ctx context.Context) {
	resync := time.NewTicker(p.cfg.SyncPeriod)
	defer resync.Stop()
	var retry, quarantine, stale <-chan time.Time
	for {
		err := p.sync(ctx)
		if ctx.Err() != nil {
			return
		}
		retry, quarantine = nil, nil
		switch {
		case err != nil:
			p.backoff = p.nextBackoff()
			p.log.Error("nftables sync failed; retrying", "err", err, "after", p.backoff)
			retry = time.After(p.backoff)
		case len(p.quarantined) > 0:
			p.backoff = p.nextBackoff()
			quarantine = time.After(p.backoff)
		default:
			p.backoff = 0
		}
		if p.hasStaleChains() && stale == nil {
			stale = time.After(staleChainDelay + 10*time.Millisecond)
		}

		select {
		case <-ctx.Done():
			return
		case <-time.After(p.cfg.MinSyncInterval):
		}
		if retry != nil {
			// After a failure nothing but the retry (or the resync) runs a sync: a broken
			// nftables must not be hammered by every change.
			select {
			case <-ctx.Done():
				return
			case <-retry:
			case <-resync.C:
			}
			p.needFull = true
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-resync.C:
			p.needFull = true
		case <-quarantine:
			p.markDirty(p.quarantined...)
			p.quarantined = nil
		case <-stale:
			stale = nil
		}
	}
}

func (p *Proxier) nextBackoff() time.Duration {
	if p.backoff == 0 {
		return initialBackoff
	}
	return min(2*p.backoff, p.cfg.SyncPeriod)
}

// sync runs one full or incremental sync, as needFull says.
func (p *Proxier) sync(ctx context.Context) error {
	for _, sh := range p.shards {
		sh.deleteStaleChains(ctx, p.log)
	}
	if p.needFull {
		return p.fullSync(ctx)
	}
	return p.incrementalSync(ctx)
}

func (p *Proxier) hasStaleChains() bool {
	return slices.ContainsFunc(p.shards, func(sh *shard) bool { return len(sh.staleChains) > 0 })
}

// renderKey returns the fragment of the Service key names, from the informer caches; nil
// for a Service that does not exist or that the proxy leaves alone.
func (p *Proxier) renderKey(key string) *fragment {
	ns, name, _ := strings.Cut(key, "/")
	svc, err := p.services.Services(ns).Get(name)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			p.log.Warn("reading Service from cache failed", "service", key, "err", err)
		} else {
			p.reportProblems(key, nil, nil)
		}
		return nil
	}
	objs, err := p.slices.ByIndex(byServiceIndex, key)
	if err != nil {
		p.log.Warn("reading EndpointSlices from cache failed", "service", key, "err", err)
	}
	sl := make([]*discovery.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*discovery.EndpointSlice); ok {
			sl = append(sl, s)
		}
	}
	ports, problems := buildServicePorts(svc, sl, p.cfg.NodeName)
	p.reportProblems(key, svc, problems)
	if len(ports) == 0 {
		return nil
	}
	return p.renderer.render(ports)
}

// reportProblems logs why endpoints of the Service key were left out and reports it as an
// event on svc, once for each new set of reasons (renders repeat on every resync).
func (p *Proxier) reportProblems(key string, svc *v1.Service, problems []string) {
	text := strings.Join(problems, "; ")
	p.problemsMu.Lock()
	same := p.problems[key] == text
	if text == "" {
		delete(p.problems, key)
	} else {
		p.problems[key] = text
	}
	p.problemsMu.Unlock()
	if same || text == "" {
		return
	}
	p.log.Warn("endpoints left out of a Service", "service", key, "reason", text)
	if p.recorder != nil && svc != nil {
		p.recorder.Eventf(svc, v1.EventTypeWarning, "EndpointsWithoutPort", "nanokube proxy: %s", text)
	}
}

// incrementalSync sends, to each table that holds a changed Service, one transaction with
// the difference between what the table holds for those Services and what it should hold.
func (p *Proxier) incrementalSync(ctx context.Context) error {
	keys := p.takeDirty()
	if len(keys) == 0 {
		return nil
	}
	byShard := make([][]string, len(p.shards))
	for _, key := range keys {
		i := p.shardIndex(key)
		byShard[i] = append(byShard[i], key)
	}
	var errs []error
	for i, keys := range byShard {
		if len(keys) == 0 {
			continue
		}
		if err := p.incrementalSyncShard(ctx, p.shards[i], keys); err != nil {
			p.needFull = true
			p.markDirty(keys...)
			errs = append(errs, err)
		}
	}
	if n := p.appliedServices(); p.shardCount(n) != len(p.shards) {
		p.log.Info("services outgrew the tables; spreading them anew at the next sync", "services", n, "tables", len(p.shards))
		p.needFull = true
	}
	return errors.Join(errs...)
}

func (p *Proxier) incrementalSyncShard(ctx context.Context, sh *shard, keys []string) error {
	start := time.Now()
	frags := make(map[string]*fragment, len(keys))
	pl := &plan{}
	for _, key := range keys {
		f := p.renderKey(key)
		frags[key] = f
		pl.diff(sh.applied[key], f)
	}
	pl.hairpin(sh.endpoints)
	if pl.size() == 0 {
		return nil
	}
	tx := &transaction{}
	pl.apply(tx)
	if err := sh.nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("incremental transaction for %d services in table %s: %w", len(keys), sh.table, err)
	}
	var stale []udpFlow
	for key, f := range frags {
		stale = append(stale, staleUDP(sh.applied[key], f)...)
	}
	sh.commit(frags, pl)
	p.deleteStaleUDP(stale)
	if p.cfg.Programmed != nil {
		p.cfg.Programmed(keys)
	}
	if p.cfg.Synced != nil {
		p.cfg.Synced(false, time.Since(start))
	}
	p.log.Debug("nftables synced", "mode", "incremental", "table", sh.table, "services", len(keys), "operations", tx.numOperations(), "elapsed", time.Since(start))
	return nil
}

// fullSync rewrites every table from the caches, spreading the Services over as many tables
// as their number asks for (see shardCount). Tables are written from the last to the first,
// then tables beyond the new count are deleted: with counts that are powers of two, a
// Service that moves always moves to a table written before the one it leaves, so it is
// never missing, only briefly in two tables (the first that matches DNATs).
//
// One goroutine renders and encodes the next table's transaction while this one waits for
// the kernel to commit the last: the two take about as long.
func (p *Proxier) fullSync(ctx context.Context) error {
	start := time.Now()
	p.takeDirty() // everything is rendered below
	p.quarantined = nil
	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing Services from cache: %w", err)
	}
	previous := len(p.shards)
	p.resize(p.shardCount(len(svcs)))
	existing, listed := p.listTables(ctx)
	byShard := make([][]*v1.Service, len(p.shards))
	for _, svc := range svcs {
		i := p.shardIndex(serviceKey(svc.Namespace, svc.Name))
		byShard[i] = append(byShard[i], svc)
	}

	prepared := make(chan *tableSync, 1)
	prepCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(prepared)
		for i := len(p.shards) - 1; i >= 0; i-- {
			ts := p.prepareTable(p.shards[i], byShard[i], existing[p.shards[i].table], listed)
			select {
			case prepared <- ts:
			case <-prepCtx.Done():
				return
			}
		}
	}()
	var errs []error
	programmed := 0
	for ts := range prepared {
		n, err := p.applyTable(ctx, ts)
		programmed += n
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err)
		}
	}
	if err := p.deleteTablesFrom(ctx, len(p.shards), previous, existing, listed); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p.needFull = false
	p.readyOnce.Do(func() { close(p.ready) })
	elapsed := time.Since(start)
	if p.cfg.Synced != nil {
		p.cfg.Synced(true, elapsed)
	}
	p.log.Info("nftables synced", "mode", "full", "services", programmed, "tables", len(p.shards), "leftOut", len(p.quarantined), "elapsed", elapsed)
	return nil
}

// tableSync is the full rewrite of one table, prepared by prepareTable for applyTable.
type tableSync struct {
	sh      *shard
	keys    []string // the Services with rules, sorted
	frags   map[string]*fragment
	objects map[string]*v1.Service
	// build returns the transaction and plan that write the table with the given Services.
	build func(keys []string) (*transaction, *plan)
	tx    *transaction // build(keys), prepared for the backend
	pl    *plan
}

// prepareTable renders the Services of one table and builds its transaction. It reads only
// the caches and what the table held (existing, unknown with listed false), so that it can
// run while another table is being applied.
func (p *Proxier) prepareTable(sh *shard, svcs []*v1.Service, existing tableObjects, listed bool) *tableSync {
	ts := &tableSync{sh: sh, frags: make(map[string]*fragment, len(svcs)), objects: make(map[string]*v1.Service, len(svcs))}
	for _, svc := range svcs {
		key := serviceKey(svc.Namespace, svc.Name)
		if f := p.renderKey(key); f != nil {
			ts.frags[key] = f
			ts.objects[key] = svc
			ts.keys = append(ts.keys, key)
		}
	}
	slices.Sort(ts.keys)
	chains, sets := existing.chains, existing.sets
	reset := sh.resetTable
	if reset {
		// A reset table starts empty, so its listing is known without asking.
		chains, sets, listed = nil, nil, true
	}
	ts.build = func(keys []string) (*transaction, *plan) {
		sub := make(map[string]*fragment, len(keys))
		for _, k := range keys {
			sub[k] = ts.frags[k]
		}
		pl := fullPlan(sub, chains, sets, listed)
		tx := &transaction{ops: make([]txOp, 0, 128+len(p.cfg.NodeIPs)+pl.size())}
		writeBase(tx, p.cfg.NodeIPs, p.cfg.ClusterCIDR, reset)
		pl.apply(tx)
		return tx, pl
	}
	ts.tx, ts.pl = ts.build(ts.keys)
	sh.nft.Prepare(ts.tx)
	return ts
}

// applyTable writes one prepared table. If nftables rejects it, the Services at fault are
// found by bisection with checks (transactions the kernel validates and discards),
// reported, and left out until a retry; the others are programmed. It returns how many
// Services it programmed.
func (p *Proxier) applyTable(ctx context.Context, ts *tableSync) (int, error) {
	sh := ts.sh
	runErr := sh.nft.Run(ctx, ts.tx)
	if runErr == nil {
		p.finishFull(sh, ts.frags, ts.keys, ts.pl)
		p.log.Debug("nftables table synced", "table", sh.table, "services", len(ts.keys), "operations", ts.tx.numOperations())
		return len(ts.keys), nil
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	p.log.Error("full nftables transaction failed; looking for the Services at fault", "table", sh.table, "err", runErr)

	check := func(keys []string) bool {
		tx, _ := ts.build(keys)
		return sh.nft.Check(ctx, tx) == nil
	}
	if !check(nil) {
		sh.resetTable = true // the fixed part itself fails: start from an empty table next time
		return 0, fmt.Errorf("full transaction for table %s: %w", sh.table, runErr)
	}
	bad := bisect(ts.keys, check)
	if len(bad) == 0 {
		sh.resetTable = true
		return 0, fmt.Errorf("full transaction for table %s (no single Service at fault): %w", sh.table, runErr)
	}
	good := slices.DeleteFunc(slices.Clone(ts.keys), func(k string) bool { return slices.Contains(bad, k) })
	tx, pl := ts.build(good)
	if err := sh.nft.Run(ctx, tx); err != nil {
		sh.resetTable = true
		return 0, fmt.Errorf("full transaction for table %s without the Services at fault: %w", sh.table, err)
	}
	p.finishFull(sh, ts.frags, good, pl)
	p.quarantined = append(p.quarantined, bad...)
	for _, key := range bad {
		p.log.Error("nftables rejected the rules of a Service; it is left out until a retry", "service", key, "err", runErr)
		if p.recorder != nil && ts.objects[key] != nil {
			p.recorder.Eventf(ts.objects[key], v1.EventTypeWarning, "FailedToProgramService",
				"nanokube proxy: nftables rejected the rules of this Service: %v", runErr)
		}
	}
	return len(good), nil
}

// finishFull records what a successful full transaction of sh wrote.
func (p *Proxier) finishFull(sh *shard, frags map[string]*fragment, keys []string, pl *plan) {
	var stale []udpFlow
	for key, old := range sh.applied {
		stale = append(stale, staleUDP(old, frags[key])...)
	}
	defer p.deleteStaleUDP(stale)
	sh.applied = make(map[string]*fragment, len(keys))
	for _, k := range keys {
		sh.applied[k] = frags[k]
	}
	sh.endpoints = map[string]int{}
	pl.commitRefs(sh.endpoints)
	for _, c := range slices.Concat(pl.addChains, pl.newChains) {
		delete(sh.staleChains, c)
	}
	now := time.Now()
	for _, c := range pl.stale {
		sh.staleChains[c] = now
	}
	sh.resetTable = false
	if p.cfg.Programmed != nil {
		p.cfg.Programmed(keys)
	}
}

// deleteStaleUDP deletes the conntrack entries of UDP flows whose endpoint the table no
// longer DNATs to. A failure is logged only: the entries then time out on their own.
func (p *Proxier) deleteStaleUDP(flows []udpFlow) {
	if len(flows) == 0 || p.conntrack == nil {
		return
	}
	if err := p.conntrack(flows); err != nil {
		p.log.Warn("deleting conntrack entries of removed UDP endpoints failed", "flows", len(flows), "err", err)
	}
}

// bisect returns the keys that make ok fail on their own, assuming ok(nil) holds.
func bisect(keys []string, ok func([]string) bool) []string {
	if len(keys) == 0 || ok(keys) {
		return nil
	}
	if len(keys) == 1 {
		return keys
	}
	mid := len(keys) / 2
	return append(bisect(keys[:mid], ok), bisect(keys[mid:], ok)...)
}
