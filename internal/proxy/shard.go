package proxy

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// maxTables bounds the number of tables: every table hooks its own base chains, which each
// new connection passes through.
const maxTables = 64

// shard is one of the proxy's tables and what the proxy wrote into it. Each table is
// complete on its own — base chains, maps, the Services' chains — and holds the Services
// whose key hashes to it. Tables exist because the kernel validates the whole table on
// every commit that adds a jump, goto or nat rule (see doc.go): spreading the Services keeps
// each commit's cost to one table's share.
type shard struct {
	table       string
	nft         backend
	applied     map[string]*fragment // what the table holds, per Service key
	endpoints   map[string]int       // endpoint address → Services in applied that DNAT to it
	staleChains map[string]time.Time // flushed chains awaiting deletion, since when
	resetTable  bool                 // the next full sync deletes the table first
}

// tableName is the name of table i: the configured name, then name-1, name-2, ...
func (p *Proxier) tableName(i int) string {
	if i == 0 {
		return p.cfg.TableName
	}
	return fmt.Sprintf("%s-%d", p.cfg.TableName, i)
}

// shardCount is the number of tables for n Services: the smallest power of two that keeps
// them within ServicesPerTable each, at most maxTables. It shrinks only once a quarter of
// the capacity of the current count is left, so that a count near a boundary does not move
// Services back and forth.
func (p *Proxier) shardCount(n int) int {
	want := 1
	for want < maxTables && want*p.cfg.ServicesPerTable < n {
		want *= 2
	}
	if cur := len(p.shards); want < cur && 4*n > cur*p.cfg.ServicesPerTable {
		return cur
	}
	return want
}

// shardIndex is the table of the Service key.
func (p *Proxier) shardIndex(key string) int {
	if len(p.shards) == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(p.shards)))
}

// resize makes n shards, keeping the state of those that stay.
func (p *Proxier) resize(n int) {
	if n == len(p.shards) {
		return
	}
	if n < len(p.shards) {
		p.shards = p.shards[:n]
		return
	}
	for i := len(p.shards); i < n; i++ {
		name := p.tableName(i)
		p.shards = append(p.shards, &shard{table: name, nft: p.nft.table(name), applied: map[string]*fragment{},
			endpoints: map[string]int{}, staleChains: map[string]time.Time{}})
	}
}

// appliedServices counts the Services the tables hold.
func (p *Proxier) appliedServices() int {
	n := 0
	for _, sh := range p.shards {
		n += len(sh.applied)
	}
	return n
}

// tableIndex is the number of one of the proxy's tables from its name (see tableName).
func (p *Proxier) tableIndex(name string) (int, bool) {
	if name == p.cfg.TableName {
		return 0, true
	}
	rest, ok := strings.CutPrefix(name, p.cfg.TableName+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 1 || strconv.Itoa(i) != rest {
		return 0, false
	}
	return i, true
}

// listTables lists the chains and sets of the proxy's tables, those of any layout. ok is
// false if they could not be listed: the error is logged, leftovers then survive until a
// later full sync, and the caller must assume any chain may exist.
func (p *Proxier) listTables(ctx context.Context) (map[string]tableObjects, bool) {
	existing, err := p.nft.list(ctx, func(name string) bool { _, ok := p.tableIndex(name); return ok })
	if err != nil {
		p.log.Warn("listing nftables chains and sets failed; stale ones stay until a later resync", "err", err)
		return nil, false
	}
	return existing, true
}

// deleteTablesFrom deletes the proxy's tables numbered from first on, left by a layout with
// more tables: those in existing or, if it could not be listed, those up to known (the
// count this process used last).
func (p *Proxier) deleteTablesFrom(ctx context.Context, first, known int, existing map[string]tableObjects, listed bool) error {
	var doomed []int
	for name := range existing {
		if i, _ := p.tableIndex(name); i >= first {
			doomed = append(doomed, i)
		}
	}
	if !listed {
		for i := first; i < known; i++ {
			doomed = append(doomed, i)
		}
	}
	var errs []error
	for _, i := range doomed {
		name := p.tableName(i)
		tx := &transaction{}
		tx.addTable() // deleting a missing table would fail
		tx.deleteTable()
		if err := p.nft.table(name).Run(ctx, tx); err != nil {
			errs = append(errs, fmt.Errorf("deleting table %s: %w", name, err))
			continue
		}
		p.log.Info("deleted a table left from a layout with more tables", "table", name)
	}
	return errors.Join(errs...)
}

// commit records what a successful incremental transaction wrote.
func (sh *shard) commit(frags map[string]*fragment, pl *plan) {
	for key, f := range frags {
		if f.empty() {
			delete(sh.applied, key)
		} else {
			sh.applied[key] = f
		}
	}
	pl.commitRefs(sh.endpoints)
	for _, c := range pl.addChains {
		delete(sh.staleChains, c)
	}
	now := time.Now()
	for _, c := range pl.stale {
		sh.staleChains[c] = now
	}
}

// deleteStaleChains deletes the chains flushed at least staleChainDelay ago. A failure only
// costs a leftover empty chain, which the next full sync finds again.
func (sh *shard) deleteStaleChains(ctx context.Context, log *slog.Logger) {
	cutoff := time.Now().Add(-staleChainDelay)
	tx := &transaction{}
	var names []string
	for name, since := range sh.staleChains {
		if since.Before(cutoff) {
			tx.deleteChain(name)
			names = append(names, name)
			delete(sh.staleChains, name)
		}
	}
	if len(names) == 0 {
		return
	}
	if err := sh.nft.Run(ctx, tx); err != nil {
		log.Warn("deleting stale nftables chains failed", "table", sh.table, "chains", len(names), "err", err)
		return
	}
	log.Debug("deleted stale nftables chains", "table", sh.table, "chains", len(names))
}
