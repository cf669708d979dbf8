// Command proxy measures the service proxy (internal/proxy) against real nftables tables in a
// network namespace made here: the time of one full sync of -services Services × 10
// endpoints (1,000 and 10,000 by default) as the proxy reports it, the time from an
// EndpointSlice update reaching the Proxier through a fake clientset to the changed rule
// being committed in the kernel (p50, p99 over -changes updates, reported by the proxy once
// the kernel accepted the transaction), and, as a baseline, `nft -f` of the same Services
// rendered the way the proxy did before (one anonymous `numgen random mod N vmap` per
// Service, every chain flushed as it is added).
//
// The Proxier runs in this process and programs the namespace over netlink
// (Config.NetworkNamespace), with its default of 1,000 Services per table; the baseline runs
// `nft` in it through nsenter. The namespace is deleted at the end, also on failure.
//
//	go run ./bench/proxy [-services 1000,10000] [-changes 200] [-baseline 1000] [-write]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nanokube/nanokube/bench/internal/perfdoc"
	"github.com/nanokube/nanokube/internal/proxy"
)

const (
	table     = "bench"
	endpoints = 10
)

func main() {
	sizes := flag.String("services", "1000,10000", "comma-separated Service counts to sync")
	changes := flag.Int("changes", 200, "endpoint changes timed on the largest table")
	baseline := flag.Int("baseline", 1000, "Services in the baseline `nft -f` (0: none; 10,000 takes minutes)")
	write := flag.Bool("write", false, "record the figures in -doc")
	doc := flag.String("doc", "docs/performance.md", "file -write updates")
	flag.Parse()
	log.SetFlags(0)
	if os.Getuid() != 0 {
		log.Fatal("bench/proxy needs root (network namespaces, nftables)")
	}
	var counts []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("bad -services %q", *sizes)
		}
		counts = append(counts, n)
	}
	res, err := run(counts, *changes, *baseline)
	if err != nil {
		log.Fatal(err)
	}
	table := res.render()
	fmt.Print("\n" + table)
	if *write {
		host, _ := os.Hostname()
		body := fmt.Sprintf("Measured %s on %s (%d CPUs, kernel %s) by `go run ./bench/proxy`.\n\n%s",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), kernel(), table)
		if err := perfdoc.WriteSection(*doc, "Service proxy", body); err != nil {
			log.Fatal(err)
		}
	}
}

type fullSync struct {
	services int
	sync     time.Duration // the proxy's own full sync: caches synced to the last table committed
	elapsed  time.Duration // Run to Ready: the fake clientset's list and the informers included
	cpu      time.Duration // CPU time of this process over elapsed (user + system, the kernel's work included)
}

type result struct {
	full      []fullSync
	baseline  fullSync // services 0: not measured
	latencies []time.Duration
	latencyOn int // Services in the table the changes were made on
}

func (r result) pct(p float64) time.Duration {
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	if len(l) == 0 {
		return 0
	}
	return l[int(float64(len(l)-1)*p)]
}

func (r result) render() string {
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Full sync: Services × %d ready endpoints written into empty tables, timed by the proxy from its caches being synced "+
		"to its last table committed (kube-proxy's sync_full_proxy_rules_duration); in brackets, Run to Ready, which adds the informers' "+
		"list from a fake clientset, and the process's CPU time over it. "+
		"Endpoint change: one EndpointSlice updated through a fake clientset to the new rule committed, reported by the proxy once the kernel accepted the transaction.\n\n", endpoints)
	fmt.Fprintf(&b, "| measure | result | goal |\n| --- | --- | --- |\n")
	for _, f := range r.full {
		goal := "-"
		if f.services == 10000 {
			goal = "<= 2 s: " + verdict(f.sync <= 2*time.Second)
		}
		fmt.Fprintf(&b, "| full sync, %d Services | %s (Run to Ready %s, CPU %s) | %s |\n", f.services, sec(f.sync), sec(f.elapsed), sec(f.cpu), goal)
	}
	if r.baseline.services > 0 {
		fmt.Fprintf(&b, "| baseline: `nft -f` of %d Services with one anonymous vmap each | %s | - |\n", r.baseline.services, sec(r.baseline.elapsed))
	}
	if len(r.latencies) > 0 {
		p50, p99 := r.pct(0.5), r.pct(0.99)
		fmt.Fprintf(&b, "| endpoint change to live p50, %d changes, %d Services | %s | - |\n", len(r.latencies), r.latencyOn, ms(p50))
		fmt.Fprintf(&b, "| endpoint change to live p99 | %s | <= 50 ms: %s |\n", ms(p99), verdict(p99 <= 50*time.Millisecond))
	}
	return b.String()
}

// cpuTime is the CPU time the process has used. On a shared machine it shows what the
// wall-clock figures cost without the time spent waiting for a CPU.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/proxy: "+format+"\n", args...)
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// netns is the namespace the table lives in.
type netns struct {
	name, path string
}

func newNetns() (*netns, error) {
	n := &netns{name: fmt.Sprintf("nkbench-proxy-%d", os.Getpid())}
	n.path = "/run/netns/" + n.name
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	return n, nil
}

func (n *netns) remove() {
	_ = exec.Command("ip", "netns", "del", n.name).Run()
}

func (n *netns) nft(ctx context.Context, stdin io.Reader, args ...string) error {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.path, "nft"}, args...)...)
	cmd.Stdin = stdin
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft %s: %v: %.2000s", strings.Join(args, " "), err, out)
	}
	return nil
}

func run(counts []int, changes, baselineServices int) (res result, err error) {
	n, err := newNetns()
	if err != nil {
		return res, err
	}
	defer n.remove()
	ctx := context.Background()

	if baselineServices > 0 {
		progress("baseline: nft -f of %d Services rendered with anonymous vmaps", baselineServices)
		text := baselineText(baselineServices)
		start := time.Now()
		if err := n.nft(ctx, strings.NewReader(text), "-f", "-"); err != nil {
			return res, fmt.Errorf("baseline: %w", err)
		}
		res.baseline = fullSync{services: baselineServices, elapsed: time.Since(start)}
		if err := n.nft(ctx, nil, "delete", "table", "ip", table); err != nil {
			return res, err
		}
	}

	for i, count := range counts {
		last := i == len(counts)-1
		progress("full sync of %d Services", count)
		timed := 0
		if last {
			timed = changes
		}
		f, lat, err := measure(ctx, n, count, timed)
		if err != nil {
			return res, err
		}
		res.full = append(res.full, f)
		if last {
			res.latencies, res.latencyOn = lat, count
		}
	}
	return res, nil
}

// measure runs a Proxier over count synthetic Services into an empty table, then times
// changes endpoint updates, and deletes the table.
func measure(ctx context.Context, n *netns, count, changes int) (fullSync, []time.Duration, error) {
	svcs, sl := proxy.SyntheticServices(count, endpoints)
	objs := make([]k8sruntime.Object, 0, 2*count)
	for _, s := range svcs {
		objs = append(objs, s)
	}
	for _, s := range sl {
		objs = append(objs, s)
	}
	client := fake.NewClientset(objs...)
	// Every transaction's Services, in order; the full sync's tables too, drained below.
	programmed := make(chan []string, 1024)
	fullSyncs := make(chan time.Duration, 1)
	p, err := proxy.New(proxy.Config{NodeName: "node-0", ClusterCIDR: "10.128.0.0/10", TableName: table, NetworkNamespace: n.path,
		SyncPeriod: time.Hour, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Programmed: func(keys []string) { programmed <- keys },
		Synced: func(full bool, d time.Duration) {
			if full {
				select {
				case fullSyncs <- d:
				default:
				}
			}
		}}, client, nil)
	if err != nil {
		return fullSync{}, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start, cpu0 := time.Now(), cpuTime()
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
		deleteTables(ctx, n)
	}()
	select {
	case <-p.Ready():
	case err := <-done:
		return fullSync{}, nil, fmt.Errorf("proxy ended before Ready: %v", err)
	case <-time.After(30 * time.Minute):
		return fullSync{}, nil, fmt.Errorf("proxy not Ready after 30 minutes")
	}
	full := fullSync{services: count, sync: <-fullSyncs, elapsed: time.Since(start), cpu: cpuTime() - cpu0}
	if changes == 0 {
		return full, nil, nil
	}

	// Nothing may be in flight when timing starts, or a transaction begun before an update
	// could be taken for the one that applied it.
	for quiet := false; !quiet; {
		select {
		case <-programmed:
		case <-time.After(200 * time.Millisecond):
			quiet = true
		}
	}
	progress("timing %d endpoint changes on %d Services", changes, count)
	var lat []time.Duration
	for i := range changes {
		k := (i * 7919) % len(sl) // spread over the table, deterministically
		s := sl[k].DeepCopy()
		s.Endpoints[0].Addresses = []string{fmt.Sprintf("10.%d.%d.%d", 192+(i>>16)&63, (i>>8)&255, i&255)}
		key := s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
		t0 := time.Now()
		if _, err := client.DiscoveryV1().EndpointSlices(s.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return full, nil, err
		}
		if err := waitProgrammed(programmed, key, 10*time.Second); err != nil {
			return full, nil, fmt.Errorf("change %d: %w", i, err)
		}
		lat = append(lat, time.Since(t0))
		sl[k] = s
	}
	return full, lat, nil
}

// deleteTables deletes the proxy's tables: the first is named table, the others table-N.
func deleteTables(ctx context.Context, n *netns) {
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+n.path, "nft", "list", "tables", "ip").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "table ip ")
		if ok && (name == table || strings.HasPrefix(name, table+"-")) {
			_ = n.nft(ctx, nil, "delete", "table", "ip", name)
		}
	}
}

// baselineText renders n synthetic Services the way the proxy did before it spread traffic
// with rule ladders: every chain added and flushed, one anonymous verdict map per Service.
// waitProgrammed waits until a transaction wrote the Service key.
func waitProgrammed(programmed <-chan []string, key string, d time.Duration) error {
	timeout := time.After(d)
	for {
		select {
		case keys := <-programmed:
			if slices.Contains(keys, key) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("service %s not programmed within %s", key, d)
		}
	}
}

func baselineText(n int) string {
	var b strings.Builder
	t := "ip " + table
	fmt.Fprintf(&b, "add table %s\nadd chain %s services\nflush chain %s services\n", t, t, t)
	fmt.Fprintf(&b, "add chain %s mark-for-masquerade\nflush chain %s mark-for-masquerade\n", t, t)
	fmt.Fprintf(&b, "add rule %s mark-for-masquerade mark set mark or 0x00004000\n", t)
	fmt.Fprintf(&b, "add map %s service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n", t)
	fmt.Fprintf(&b, "add chain %s nat-prerouting { type nat hook prerouting priority -100 ; }\n", t)
	fmt.Fprintf(&b, "add rule %s nat-prerouting jump services\n", t)
	fmt.Fprintf(&b, "add rule %s services ip daddr . meta l4proto . th dport vmap @service-ips\n", t)
	svcs, sl := proxy.SyntheticServices(n, endpoints)
	for i, svc := range svcs {
		chain := fmt.Sprintf("service-XXXXXXXX-%s/%s/tcp/http", svc.Namespace, svc.Name)
		fmt.Fprintf(&b, "add chain %s %s\nflush chain %s %s\n", t, chain, t, chain)
		var vmap []string
		for j, ep := range sl[i].Endpoints {
			ip := ep.Addresses[0]
			epChain := fmt.Sprintf("endpoint-XXXXXXXX-%s/%s/tcp/http__%s/8080", svc.Namespace, svc.Name, ip)
			fmt.Fprintf(&b, "add chain %s %s\nflush chain %s %s\n", t, epChain, t, epChain)
			fmt.Fprintf(&b, "add rule %s %s ip saddr %s jump mark-for-masquerade\n", t, epChain, ip)
			fmt.Fprintf(&b, "add rule %s %s meta l4proto tcp dnat to %s:8080\n", t, epChain, ip)
			vmap = append(vmap, fmt.Sprintf("%d : goto %s", j, epChain))
		}
		fmt.Fprintf(&b, "add rule %s %s ip daddr %s tcp dport 80 ip saddr != 10.128.0.0/10 jump mark-for-masquerade\n", t, chain, svc.Spec.ClusterIP)
		fmt.Fprintf(&b, "add rule %s %s numgen random mod %d vmap { %s }\n", t, chain, len(vmap), strings.Join(vmap, " , "))
		fmt.Fprintf(&b, "add element %s service-ips { %s . tcp . 80 : goto %s }\n", t, svc.Spec.ClusterIP, chain)
	}
	return b.String()
}
