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

// Proxier keeps one nftables table in step with the Services and EndpointSlices of a cluster.
type Proxier struct {
	cfg      Config
	log      *slog.Logger
	client   kubernetes.Interface
	recorder record.EventRecorder
	nft      backend
	renderer renderer
	// conntrack deletes the conntrack entries of UDP flows that lost their endpoint; nil
	// where there is no kernel to ask (tests over knftables' fake).
	conntrack func([]udpFlow) error

	services corelisters.ServiceLister
	slices   cache.Indexer

	mu    sync.Mutex
	dirty map[string]bool // Service keys changed since their last sync
	kick  chan struct{}

	// Owned by the sync loop.
	applied     map[string]*fragment // what the table holds, per Service key
	endpoints   map[string]int       // endpoint address → Services in applied that DNAT to it
	staleChains map[string]time.Time // flushed chains awaiting deletion, since when
	needFull    bool
	resetTable  bool     // the next full sync deletes the table first
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
	nft := newNetlinkBackend(cfg.TableName, cfg.NetworkNamespace)
	if _, _, err := nft.List(context.Background()); err != nil {
		return nil, fmt.Errorf("proxy: nftables: %w", err)
	}
	p := newProxier(cfg, client, recorder, nft)
	p.conntrack = func(flows []udpFlow) error { return deleteConntrack(cfg.NetworkNamespace, flows) }
	return p, nil
}

// newProxier builds a Proxier on any backend (tests pass knftables' fake); cfg must already
// carry its defaults.
func newProxier(cfg Config, client kubernetes.Interface, recorder record.EventRecorder, nft backend) *Proxier {
	return &Proxier{
		cfg:         cfg,
		log:         cfg.Log,
		client:      client,
		recorder:    recorder,
		nft:         nft,
		renderer:    renderer{clusterCIDR: cfg.ClusterCIDR},
		dirty:       map[string]bool{},
		kick:        make(chan struct{}, 1),
		applied:     map[string]*fragment{},
		endpoints:   map[string]int{},
		staleChains: map[string]time.Time{},
		needFull:    true,
		ready:       make(chan struct{}),
	}
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

	if _, err := svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
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
	}); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if _, err := sliceInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.sliceChanged(obj) },
		UpdateFunc: func(_, cur any) { p.sliceChanged(cur) },
		DeleteFunc: func(obj any) { p.sliceChanged(obj) },
	}); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}

	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcInformer.Informer().HasSynced, sliceInformer.Informer().HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("proxy: informer caches did not sync")
	}
	p.log.Info("caches synced; programming nftables", "table", p.cfg.TableName)
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
		if len(p.staleChains) > 0 && stale == nil {
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
	p.deleteStaleChains(ctx)
	if p.needFull {
		return p.fullSync(ctx)
	}
	return p.incrementalSync(ctx)
}

// deleteStaleChains deletes the chains flushed at least staleChainDelay ago. A failure only
// costs a leftover empty chain, which the next full sync finds again.
func (p *Proxier) deleteStaleChains(ctx context.Context) {
	cutoff := time.Now().Add(-staleChainDelay)
	tx := &transaction{}
	var names []string
	for name, since := range p.staleChains {
		if since.Before(cutoff) {
			tx.deleteChain(name)
			names = append(names, name)
			delete(p.staleChains, name)
		}
	}
	if len(names) == 0 {
		return
	}
	if err := p.nft.Run(ctx, tx); err != nil {
		p.log.Warn("deleting stale nftables chains failed", "chains", len(names), "err", err)
		return
	}
	p.log.Debug("deleted stale nftables chains", "chains", len(names))
}

// renderKey returns the fragment of the Service key names, from the informer caches; nil
// for a Service that does not exist or that the proxy leaves alone.
func (p *Proxier) renderKey(key string) *fragment {
	ns, name, _ := strings.Cut(key, "/")
	svc, err := p.services.Services(ns).Get(name)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			p.log.Warn("reading Service from cache failed", "service", key, "err", err)
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
	ports := buildServicePorts(svc, sl, p.cfg.NodeName, p.log)
	if len(ports) == 0 {
		return nil
	}
	return p.renderer.render(ports)
}

// incrementalSync sends one transaction with the difference between what the table holds
// for each changed Service and what it should hold.
func (p *Proxier) incrementalSync(ctx context.Context) error {
	keys := p.takeDirty()
	if len(keys) == 0 {
		return nil
	}
	start := time.Now()
	frags := make(map[string]*fragment, len(keys))
	pl := &plan{}
	for _, key := range keys {
		f := p.renderKey(key)
		frags[key] = f
		pl.diff(p.applied[key], f)
	}
	pl.hairpin(p.endpoints)
	if pl.size() == 0 {
		return nil
	}
	tx := &transaction{}
	pl.apply(tx)
	if err := p.nft.Run(ctx, tx); err != nil {
		p.needFull = true
		p.markDirty(keys...)
		return fmt.Errorf("incremental transaction for %d services: %w", len(keys), err)
	}
	var stale []udpFlow
	for key, f := range frags {
		stale = append(stale, staleUDP(p.applied[key], f)...)
	}
	p.commit(frags, pl)
	p.deleteStaleUDP(stale)
	if p.cfg.Programmed != nil {
		p.cfg.Programmed(keys)
	}
	p.log.Debug("nftables synced", "mode", "incremental", "services", len(keys), "operations", tx.numOperations(), "elapsed", time.Since(start))
	return nil
}

// commit records what a successful transaction wrote.
func (p *Proxier) commit(frags map[string]*fragment, pl *plan) {
	for key, f := range frags {
		if f.empty() {
			delete(p.applied, key)
		} else {
			p.applied[key] = f
		}
	}
	pl.commitRefs(p.endpoints)
	for _, c := range pl.addChains {
		delete(p.staleChains, c)
	}
	now := time.Now()
	for _, c := range pl.stale {
		p.staleChains[c] = now
	}
}

// fullSync rewrites the whole table from the caches. If nftables rejects it, the Services at
// fault are found by bisection with `nft --check`, reported, and left out until a retry; the
// others are programmed.
func (p *Proxier) fullSync(ctx context.Context) error {
	start := time.Now()
	p.takeDirty() // everything is rendered below
	p.quarantined = nil
	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing Services from cache: %w", err)
	}
	frags := make(map[string]*fragment, len(svcs))
	keys := make([]string, 0, len(svcs))
	objects := make(map[string]*v1.Service, len(svcs))
	for _, svc := range svcs {
		key := serviceKey(svc.Namespace, svc.Name)
		if f := p.renderKey(key); f != nil {
			frags[key] = f
			keys = append(keys, key)
			objects[key] = svc
		}
	}
	slices.Sort(keys)

	// A reset table starts empty, so its listing is known without asking.
	var chains, sets []string
	listed := true
	if !p.resetTable {
		chains, sets, listed = p.listExisting(ctx)
	}
	build := func(keys []string) (*transaction, *plan) {
		sub := make(map[string]*fragment, len(keys))
		for _, k := range keys {
			sub[k] = frags[k]
		}
		pl := fullPlan(sub, chains, sets, listed)
		tx := &transaction{ops: make([]txOp, 0, 128+len(p.cfg.NodeIPs)+pl.size())}
		writeBase(tx, p.cfg.NodeIPs, p.cfg.ClusterCIDR, p.resetTable)
		pl.apply(tx)
		return tx, pl
	}

	tx, pl := build(keys)
	runErr := p.nft.Run(ctx, tx)
	if runErr == nil {
		p.finishFull(frags, keys, pl)
		p.log.Info("nftables synced", "mode", "full", "services", len(keys), "operations", tx.numOperations(), "elapsed", time.Since(start))
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	p.log.Error("full nftables transaction failed; looking for the Services at fault", "err", runErr)

	check := func(keys []string) bool {
		tx, _ := build(keys)
		return p.nft.Check(ctx, tx) == nil
	}
	if !check(nil) {
		p.resetTable = true // the fixed part itself fails: start from an empty table next time
		return fmt.Errorf("full transaction: %w", runErr)
	}
	bad := bisect(keys, check)
	if len(bad) == 0 {
		p.resetTable = true
		return fmt.Errorf("full transaction (no single Service at fault): %w", runErr)
	}
	good := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return slices.Contains(bad, k) })
	tx, pl = build(good)
	if err := p.nft.Run(ctx, tx); err != nil {
		p.resetTable = true
		return fmt.Errorf("full transaction without the Services at fault: %w", err)
	}
	p.finishFull(frags, good, pl)
	p.quarantined = bad
	for _, key := range bad {
		p.log.Error("nftables rejected the rules of a Service; it is left out until a retry", "service", key, "err", runErr)
		if p.recorder != nil && objects[key] != nil {
			p.recorder.Eventf(objects[key], v1.EventTypeWarning, "FailedToProgramService",
				"nanokube proxy: nftables rejected the rules of this Service: %v", runErr)
		}
	}
	p.log.Info("nftables synced", "mode", "full", "services", len(good), "leftOut", len(bad), "elapsed", time.Since(start))
	return nil
}

func (p *Proxier) finishFull(frags map[string]*fragment, keys []string, pl *plan) {
	var stale []udpFlow
	for key, old := range p.applied {
		stale = append(stale, staleUDP(old, frags[key])...)
	}
	defer p.deleteStaleUDP(stale)
	p.applied = make(map[string]*fragment, len(keys))
	for _, k := range keys {
		p.applied[k] = frags[k]
	}
	p.endpoints = map[string]int{}
	pl.commitRefs(p.endpoints)
	for _, c := range slices.Concat(pl.addChains, pl.newChains) {
		delete(p.staleChains, c)
	}
	now := time.Now()
	for _, c := range pl.stale {
		p.staleChains[c] = now
	}
	p.needFull = false
	p.resetTable = false
	p.readyOnce.Do(func() { close(p.ready) })
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

// listExisting returns the chains and sets in the table; a missing table has none. ok is
// false if either could not be listed: the error is logged, leftovers then survive until a
// later full sync, and the caller must assume any chain may exist.
func (p *Proxier) listExisting(ctx context.Context) (chains, sets []string, ok bool) {
	chains, sets, err := p.nft.List(ctx)
	if err != nil {
		p.log.Warn("listing nftables chains and sets failed; stale ones stay until a later resync", "err", err)
		return nil, nil, false
	}
	return chains, sets, true
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
