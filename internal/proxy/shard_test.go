package proxy

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// tableLines is the set of lines of every table the Proxier holds, with the table name taken
// out so that lines of different tables compare.
func tableLines(p *Proxier) map[string]bool {
	lines := map[string]bool{}
	for _, sh := range p.shards {
		dump := strings.ReplaceAll(fakeTable(p, sh.table).Dump(), " "+sh.table+" ", " T ")
		for _, l := range strings.Split(dump, "\n") {
			if l != "" {
				lines[l] = true
			}
		}
	}
	return lines
}

// TestServicesSpreadOverTables checks that with more Services than a table holds, each
// Service lands in exactly one table, that together the tables hold what one table would,
// that a change touches only its Service's table, and that tables left over when the
// Services shrink are deleted.
func TestServicesSpreadOverTables(t *testing.T) {
	tcp := []slicePort{{"http", v1.ProtocolTCP, 8080}}
	w := newWorld()
	w.put(t, cluster()...)
	ctx := context.Background()
	one, _, _ := newTestProxier(testConfig(), w)
	if err := one.sync(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.ServicesPerTable = 2
	p, _, _ := newTestProxier(cfg, w)
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	// cluster() has 10 Services with rules (the headless one has none): 8 tables of 2.
	if len(p.shards) != 8 {
		t.Fatalf("%d tables, want 8", len(p.shards))
	}
	if got, want := tableLines(p), tableLines(one); !maps.Equal(got, want) {
		t.Errorf("the tables together differ from one table:\n--- spread\n%s\n--- one\n%s", sortedSet(got), sortedSet(want))
	}
	used := 0
	for _, sh := range p.shards {
		if len(sh.applied) > 0 {
			used++
		}
	}
	if used < 4 {
		t.Errorf("10 Services landed in %d of 8 tables", used)
	}
	for i, sh := range p.shards {
		if !strings.Contains(fakeTable(p, sh.table).Dump(), "add chain ip "+sh.table+" nat-prerouting") {
			t.Errorf("table %d (%s) has no base chains", i, sh.table)
		}
		for key := range sh.applied {
			if p.shardIndex(key) != i {
				t.Errorf("%s is in table %d, its hash says %d", key, i, p.shardIndex(key))
			}
		}
	}

	// A change is one transaction, in its Service's table only.
	before := map[string]int{}
	for _, sh := range p.shards {
		before[sh.table] = len(fakeTable(p, sh.table).ran)
	}
	w.put(t, slice("ns1", "web", "web-1", tcp, ep("10.200.0.5", onNode("node-a"))))
	p.markDirty("ns1/web")
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	home := p.shards[p.shardIndex("ns1/web")].table
	for _, sh := range p.shards {
		want := before[sh.table]
		if sh.table == home {
			want++
		}
		if got := len(fakeTable(p, sh.table).ran); got != want {
			t.Errorf("table %s ran %d transactions after the change, want %d", sh.table, got-before[sh.table], want-before[sh.table])
		}
	}

	// Down to one Service: the next full sync keeps one table and deletes the others.
	for _, o := range cluster() {
		if s, ok := o.(*v1.Service); ok && s.Name != "web" {
			w.remove(t, s)
		}
	}
	p.needFull = true
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(p.shards) != 1 {
		t.Fatalf("%d tables after the Services shrank to one, want 1", len(p.shards))
	}
	for i := 1; i < 8; i++ {
		name := p.tableName(i)
		if dump := fakeTable(p, name).Dump(); dump != "" {
			t.Errorf("table %s left behind:\n%s", name, dump)
		}
	}
	if dump := fakeTable(p, cfg.TableName).Dump(); !strings.Contains(dump, "10.96.0.10 . tcp . 80") {
		t.Errorf("the remaining Service is not in the first table:\n%s", dump)
	}

	// Growing past the capacity through incremental changes asks for a spreading full sync.
	w.put(t, cluster()...)
	p.markDirty("ns1/sticky", "ns1/empty", "ns1/dns")
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !p.needFull {
		t.Error("4 Services in a table of 2 did not ask for a full sync")
	}
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(p.shards) != 8 {
		t.Errorf("%d tables after growing back, want 8", len(p.shards))
	}
}

func sortedSet(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n")
}

func TestShardCount(t *testing.T) {
	p := &Proxier{cfg: Config{ServicesPerTable: 1000}}
	for _, tc := range []struct{ current, services, want int }{
		{1, 0, 1}, {1, 1000, 1}, {1, 1001, 2}, {1, 10000, 16}, {1, 1_000_000, maxTables},
		{16, 9000, 16}, {16, 4001, 16}, {16, 4000, 4}, {2, 600, 2}, {2, 500, 1},
	} {
		p.shards = make([]*shard, tc.current)
		if got := p.shardCount(tc.services); got != tc.want {
			t.Errorf("%d tables, %d Services: %d tables, want %d", tc.current, tc.services, got, tc.want)
		}
	}
}
