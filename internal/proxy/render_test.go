package proxy

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *rewrite {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (run with -rewrite after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestBuildServicePorts(t *testing.T) {
	tcp := []slicePort{{"http", v1.ProtocolTCP, 8080}}
	for _, tc := range []struct {
		name   string
		svc    *v1.Service
		slices []*discovery.EndpointSlice
		want   string // "ip:port/ready/serving/terminating/local" per endpoint, ";" between ports; "-" for none
	}{
		{"headless is left alone", service("ns", "h", "None", port("http", v1.ProtocolTCP, 80, 8080)),
			[]*discovery.EndpointSlice{slice("ns", "h", "h-1", tcp, ep("10.200.0.5"))}, "-"},
		{"ready and local", service("ns", "s", "10.96.0.1", port("http", v1.ProtocolTCP, 80, 8080)),
			[]*discovery.EndpointSlice{slice("ns", "s", "s-1", tcp, ep("10.200.0.6", onNode("other")), ep("10.200.0.5", onNode("node-a")))},
			"10.200.0.5:8080/r/s/-/L 10.200.0.6:8080/r/s/-/-"},
		{"conditions", service("ns", "s", "10.96.0.1", port("http", v1.ProtocolTCP, 80, 8080)),
			[]*discovery.EndpointSlice{slice("ns", "s", "s-1", tcp, ep("10.200.0.5", notReady), ep("10.200.0.6", terminatingServing))},
			"10.200.0.5:8080/-/-/-/- 10.200.0.6:8080/-/s/t/-"},
		{"duplicate across slices counts once, ready wins", service("ns", "s", "10.96.0.1", port("http", v1.ProtocolTCP, 80, 8080)),
			[]*discovery.EndpointSlice{slice("ns", "s", "s-1", tcp, ep("10.200.0.5")), slice("ns", "s", "s-2", tcp, ep("10.200.0.5", notReady))},
			"10.200.0.5:8080/r/s/-/-"},
		{"named targetPort the pods lack: endpoints skipped", service("ns", "s", "10.96.0.1", port("http", v1.ProtocolTCP, 80, 8080)),
			[]*discovery.EndpointSlice{slice("ns", "s", "s-1", []slicePort{{"http", v1.ProtocolTCP, 0}}, ep("10.200.0.5"))}, ""},
		{"two ports, udp and tcp", service("ns", "dns", "10.96.0.10", port("dns", v1.ProtocolUDP, 53, 5353), port("dns-tcp", v1.ProtocolTCP, 53, 5353)),
			[]*discovery.EndpointSlice{slice("ns", "dns", "dns-1", []slicePort{{"dns", v1.ProtocolUDP, 5353}, {"dns-tcp", v1.ProtocolTCP, 5354}}, ep("10.200.0.5"))},
			"10.200.0.5:5353/r/s/-/-;10.200.0.5:5354/r/s/-/-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ports, _ := buildServicePorts(tc.svc, tc.slices, "node-a")
			got := "-"
			if ports != nil {
				var parts []string
				for _, sp := range ports {
					var eps []string
					for _, e := range sp.Endpoints {
						eps = append(eps, e.hostPort()+"/"+flag1(e.Ready, "r")+"/"+flag1(e.Serving, "s")+"/"+flag1(e.Terminating, "t")+"/"+flag1(e.Local, "L"))
					}
					parts = append(parts, strings.Join(eps, " "))
				}
				got = strings.Join(parts, ";")
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func flag1(b bool, s string) string {
	if b {
		return s
	}
	return "-"
}

func TestUsableEndpoints(t *testing.T) {
	eps := []endpoint{
		{IP: "10.0.0.1", Port: 1, Ready: true, Serving: true},
		{IP: "10.0.0.2", Port: 1, Serving: true, Terminating: true, Local: true},
		{IP: "10.0.0.3", Port: 1},
	}
	if got := usableEndpoints(eps, false); len(got) != 1 || got[0].IP != "10.0.0.1" {
		t.Errorf("cluster: got %v, want only the ready one", got)
	}
	if got := usableEndpoints(eps, true); len(got) != 1 || got[0].IP != "10.0.0.2" {
		t.Errorf("local: got %v, want the terminating local one (no ready local)", got)
	}
	if got := usableEndpoints(eps[2:], false); len(got) != 0 {
		t.Errorf("not serving: got %v, want none", got)
	}
}

// cluster is the set of objects the golden tests start from.
func cluster() []any {
	tcp := []slicePort{{"http", v1.ProtocolTCP, 8080}}
	return []any{
		service("ns1", "web", "10.96.0.10", port("http", v1.ProtocolTCP, 80, 8080), nodePort(30080)),
		slice("ns1", "web", "web-1", tcp, ep("10.200.0.5", onNode("node-a")), ep("10.200.1.5", onNode("node-b"))),
		service("ns1", "sticky", "10.96.0.11", port("http", v1.ProtocolTCP, 80, 8080), affinity(60)),
		slice("ns1", "sticky", "sticky-1", tcp, ep("10.200.0.6")),
		service("ns1", "empty", "10.96.0.12", port("http", v1.ProtocolTCP, 80, 8080)),
		service("ns1", "headless", "None", port("http", v1.ProtocolTCP, 80, 8080)),
		slice("ns1", "headless", "headless-1", tcp, ep("10.200.0.7")),
		service("ns1", "dns", "10.96.0.53", port("dns", v1.ProtocolUDP, 53, 53), port("dns-tcp", v1.ProtocolTCP, 53, 53)),
		slice("ns1", "dns", "dns-1", []slicePort{{"dns", v1.ProtocolUDP, 53}, {"dns-tcp", v1.ProtocolTCP, 53}}, ep("10.200.0.8")),
		service("ns1", "local", "10.96.0.13", port("http", v1.ProtocolTCP, 80, 8080), internalLocal),
		slice("ns1", "local", "local-1", tcp, ep("10.200.0.9", onNode("node-a")), ep("10.200.1.9", onNode("node-b"))),
		service("ns1", "draining", "10.96.0.14", port("http", v1.ProtocolTCP, 80, 8080)),
		slice("ns1", "draining", "draining-1", tcp, ep("10.200.0.10", notReady), ep("10.200.0.11", terminatingServing)),
		service("ns1", "manual", "10.96.0.15", port("", v1.ProtocolTCP, 443, 6443), noSelector),
		slice("ns1", "manual", "manual-1", []slicePort{{"", v1.ProtocolTCP, 6443}}, ep("192.0.2.50")),
		service("ns1", "etp-local", "10.96.0.16", port("http", v1.ProtocolTCP, 80, 8080), nodePort(30081), externalLocal),
		slice("ns1", "etp-local", "etp-local-1", tcp, ep("10.200.1.12", onNode("node-b"))),
		service("ns1", "sctp", "10.96.0.17", port("s", v1.ProtocolSCTP, 9999, 9999)),
		slice("ns1", "sctp", "sctp-1", []slicePort{{"s", v1.ProtocolSCTP, 9999}}, ep("10.200.0.13")),
	}
}

func TestFullSyncGolden(t *testing.T) {
	w := newWorld()
	w.put(t, cluster()...)
	p, nft, _ := newTestProxier(testConfig(), w)
	if err := p.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	golden(t, "full", nft.Dump())
	select {
	case <-p.Ready():
	default:
		t.Error("Ready not closed after the first full sync")
	}
}

// sortedLines sorts a dump's lines: the fake lists map elements in the order they were added.
func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// fullDump is the table a fresh full sync writes for w.
func fullDump(t *testing.T, w *world) string {
	t.Helper()
	p, nft, _ := newTestProxier(testConfig(), w)
	if err := p.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return nft.Dump()
}

// TestIncrementalSync applies changes one by one; each must produce a small transaction (a
// golden file holds it) and leave the table exactly as a full rewrite would.
func TestIncrementalSync(t *testing.T) {
	tcp := []slicePort{{"http", v1.ProtocolTCP, 8080}}
	w := newWorld()
	w.put(t, cluster()...)
	p, nft, _ := newTestProxier(testConfig(), w)
	ctx := context.Background()
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		change func()
		key    string
	}{
		{"add-endpoint", func() {
			w.put(t, slice("ns1", "web", "web-1", tcp, ep("10.200.0.5", onNode("node-a")), ep("10.200.1.5", onNode("node-b")), ep("10.200.2.5", onNode("node-c"))))
		}, "ns1/web"},
		{"endpoint-not-ready", func() {
			w.put(t, slice("ns1", "web", "web-1", tcp, ep("10.200.0.5", onNode("node-a")), ep("10.200.1.5", onNode("node-b"), notReady), ep("10.200.2.5", onNode("node-c"))))
		}, "ns1/web"},
		{"last-endpoint-gone", func() {
			w.put(t, slice("ns1", "sticky", "sticky-1", tcp))
		}, "ns1/sticky"},
		{"endpoints-back", func() {
			w.put(t, slice("ns1", "empty", "empty-1", tcp, ep("10.200.0.20")))
		}, "ns1/empty"},
		{"affinity-timeout-changed", func() {
			w.put(t, service("ns1", "sticky", "10.96.0.11", port("http", v1.ProtocolTCP, 80, 8080), affinity(30)),
				slice("ns1", "sticky", "sticky-1", tcp, ep("10.200.0.6")))
		}, "ns1/sticky"},
		{"service-deleted", func() {
			w.remove(t, service("ns1", "dns", "10.96.0.53"))
		}, "ns1/dns"},
		{"service-added", func() {
			w.put(t, service("ns2", "new", "10.96.1.1", port("http", v1.ProtocolTCP, 80, 8080), nodePort(30090)),
				slice("ns2", "new", "new-1", tcp, ep("10.200.0.30")))
		}, "ns2/new"},
		{"nothing-changed", func() {}, "ns1/web"},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			before := len(nft.ran)
			step.change()
			p.markDirty(step.key)
			if err := p.sync(ctx); err != nil {
				t.Fatal(err)
			}
			tx := ""
			if len(nft.ran) > before {
				tx = nft.last()
			}
			for _, forbidden := range []string{"flush table", "flush map", "delete table", "add table"} {
				if strings.Contains(tx, forbidden) {
					t.Errorf("incremental transaction has %q:\n%s", forbidden, tx)
				}
			}
			golden(t, "incremental-"+step.name, tx)

			// Stale chains are deleted a second later; do it now to compare.
			for c := range p.shards[0].staleChains {
				p.shards[0].staleChains[c] = time.Time{}
			}
			p.shards[0].deleteStaleChains(ctx, p.log)
			if got, want := sortedLines(nft.Dump()), sortedLines(fullDump(t, w)); got != want {
				t.Errorf("after incremental sync the table differs from a full rewrite:\n--- incremental\n%s\n--- full\n%s", got, want)
			}
		})
	}
}

// TestResyncKeepsTable checks that the periodic full rewrite neither deletes the table (that
// would drop affinity state) nor leaves stale chains of Services deleted behind its back.
func TestResyncKeepsTable(t *testing.T) {
	w := newWorld()
	w.put(t, cluster()...)
	p, nft, _ := newTestProxier(testConfig(), w)
	ctx := context.Background()
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A Service vanishes without an event (as if an update was missed).
	w.remove(t, service("ns1", "web", "10.96.0.10"))
	p.needFull = true
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	tx := nft.last()
	if strings.Contains(tx, "delete table") {
		t.Errorf("resync deleted the table:\n%s", tx)
	}
	if len(p.shards[0].staleChains) == 0 {
		t.Error("resync found no stale chains of the vanished Service")
	}
	for c := range p.shards[0].staleChains {
		p.shards[0].staleChains[c] = time.Time{}
	}
	p.shards[0].deleteStaleChains(ctx, p.log)
	if got, want := sortedLines(nft.Dump()), sortedLines(fullDump(t, w)); got != want {
		t.Errorf("after resync the table differs from a fresh full rewrite:\n--- resync\n%s\n--- fresh\n%s", got, want)
	}
}

// TestFailedTransaction checks that a Service nftables rejects is reported and left out while
// the others are programmed, and that an incremental failure leads to a full rewrite.
func TestFailedTransaction(t *testing.T) {
	tcp := []slicePort{{"http", v1.ProtocolTCP, 8080}}
	w := newWorld()
	w.put(t, cluster()...)
	w.put(t, service("ns1", "bad", "10.96.0.66", port("http", v1.ProtocolTCP, 80, 8080)), slice("ns1", "bad", "bad-1", tcp, ep("10.200.0.66")))
	p, nft, rec := newTestProxier(testConfig(), w)
	nft.failOn = "10.96.0.66"
	ctx := context.Background()
	if err := p.sync(ctx); err != nil {
		t.Fatalf("full sync with one bad Service: %v", err)
	}
	if got := p.quarantined; len(got) != 1 || got[0] != "ns1/bad" {
		t.Errorf("quarantined = %v, want [ns1/bad]", got)
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, "FailedToProgramService") {
			t.Errorf("event %q, want FailedToProgramService", e)
		}
	default:
		t.Error("no event recorded for the bad Service")
	}
	m, ok := nft.Table.Maps[serviceIPsMap]
	if !ok || m.FindElement("10.96.0.10", "tcp", "80") == nil {
		t.Error("the good Services were not programmed")
	}

	// An incremental transaction that fails switches to a full rewrite.
	p.markDirty("ns1/bad")
	if err := p.sync(ctx); err == nil {
		t.Fatal("incremental sync of the bad Service succeeded")
	}
	if !p.needFull {
		t.Error("failed incremental sync did not ask for a full rewrite")
	}
	nft.failOn = ""
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if p.needFull || len(p.quarantined) != 0 {
		t.Errorf("after recovery needFull=%v quarantined=%v", p.needFull, p.quarantined)
	}
	if m := nft.Table.Maps[serviceIPsMap]; m.FindElement("10.96.0.66", "tcp", "80") == nil {
		t.Error("the bad Service was not programmed after recovery")
	}
}

// TestSystemicFailureResetsTable checks that when even the fixed part fails, the next full
// sync starts from a deleted table.
func TestSystemicFailureResetsTable(t *testing.T) {
	w := newWorld()
	w.put(t, cluster()...)
	p, nft, _ := newTestProxier(testConfig(), w)
	nft.failOn = "add table"
	ctx := context.Background()
	if err := p.sync(ctx); err == nil {
		t.Fatal("sync succeeded")
	}
	if !p.shards[0].resetTable || !p.needFull {
		t.Errorf("resetTable=%v needFull=%v, want both", p.shards[0].resetTable, p.needFull)
	}
	nft.failOn = ""
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nft.last(), "delete table") {
		t.Error("the full sync after a systemic failure did not reset the table")
	}
}

func TestSyntheticServices(t *testing.T) {
	svcs, sl := SyntheticServices(300, 3)
	w := newWorld()
	for _, s := range svcs {
		w.put(t, s)
	}
	for _, s := range sl {
		w.put(t, s)
	}
	p, nft, _ := newTestProxier(testConfig(), w)
	if err := p.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(nft.Table.Maps[serviceIPsMap].Elements); got != 300 {
		t.Errorf("service-ips has %d elements, want 300", got)
	}
	// One chain per Service port, besides the table's 11 fixed chains: without affinity,
	// endpoints need no chain of their own.
	if got, want := len(nft.Table.Chains), 300+11; got != want {
		t.Errorf("%d chains, want %d", got, want)
	}
	if got := len(nft.Table.Sets[hairpinSet].Elements); got != 900 {
		t.Errorf("%s has %d elements, want one per endpoint (900)", hairpinSet, got)
	}
}

// TestFullSyncFlushesOnlyExistingChains checks that a full sync into an empty table adds
// per-service chains without flushing them, and that a resync flushes the ones it finds.
func TestFullSyncFlushesOnlyExistingChains(t *testing.T) {
	w := newWorld()
	w.put(t, cluster()...)
	p, nft, _ := newTestProxier(testConfig(), w)
	ctx := context.Background()
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	first := nft.last()
	if strings.Contains(first, "flush chain ip nanokube-proxy service-") || strings.Contains(first, "flush chain ip nanokube-proxy endpoint-") {
		t.Errorf("full sync into an empty table flushed per-service chains:\n%s", first)
	}
	p.needFull = true
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nft.last(), "flush chain ip nanokube-proxy service-DK7ABAZC-ns1/web/tcp/http\n") {
		t.Errorf("resync did not flush an existing service chain:\n%s", nft.last())
	}
}

// TestEndpointsWithoutPortAreReported checks that endpoints left out because their slice has
// no number for the Service's port are reported as one event per new reason, not one per
// resync.
func TestEndpointsWithoutPortAreReported(t *testing.T) {
	tcp := []slicePort{{"http", v1.ProtocolTCP, 8080}}
	w := newWorld()
	w.put(t, service("ns1", "web", "10.96.0.10", port("http", v1.ProtocolTCP, 80, 8080)),
		slice("ns1", "web", "web-1", []slicePort{{"metrics", v1.ProtocolTCP, 9090}}, ep("10.200.0.5")))
	p, _, rec := newTestProxier(testConfig(), w)
	ctx := context.Background()
	events := func() []string {
		var out []string
		for {
			select {
			case e := <-rec.Events:
				out = append(out, e)
			default:
				return out
			}
		}
	}
	for range 2 { // a resync renders the same reason again
		p.needFull = true
		if err := p.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := events()
	if len(got) != 1 || !strings.Contains(got[0], "EndpointsWithoutPort") || !strings.Contains(got[0], `EndpointSlice web-1 has no port of that name`) {
		t.Fatalf("events %q, want one EndpointsWithoutPort naming the slice", got)
	}
	w.put(t, slice("ns1", "web", "web-1", tcp, ep("10.200.0.5")))
	p.markDirty("ns1/web")
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	w.put(t, slice("ns1", "web", "web-1", []slicePort{{"http", v1.ProtocolTCP, 0}}, ep("10.200.0.5")))
	p.markDirty("ns1/web")
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := events(); len(got) != 1 || !strings.Contains(got[0], "gives the port no number") {
		t.Errorf("after the fix and a new fault: events %q, want one", got)
	}
}
