package main

import (
	"fmt"
	"strings"
	"time"
)

type machine struct {
	cpus                                int
	cpuModel, memory, commit, goVersion string
}

type report struct {
	create      []createResult
	encodedSize int
	read        *readResult
	watch       *watchResult
	memory      *memResult
	startup     *startupResult
	machine     machine
	total       time.Duration
	quick       bool
	load        map[string]*figureLoad
}

// figureLoad is other processes' CPU use (cores) just before and during a figure.
type figureLoad struct{ before, during float64 }

// quiet waits (up to 30s) for other processes to leave the CPUs alone before a figure.
func (r *report) quiet(fig string, progress func(string, ...any)) loadSample {
	before := waitQuiet(30 * time.Second)
	if before >= 0.25 {
		progress("other processes use %.2f cores: figure %s is measured on a busy machine", before, fig)
	}
	if r.load == nil {
		r.load = map[string]*figureLoad{}
	}
	r.load[fig] = &figureLoad{before: before}
	return sampleLoad()
}

func (r *report) loaded(fig string, since loadSample) { r.load[fig].during = since.othersSince() }

type row struct {
	figure, value, goal string
	met                 *bool // nil: no goal
}

func verdict(ok bool) *bool { return &ok }

func (r *report) rows() []row {
	var rows []row
	for _, c := range r.create {
		ratio := c.api / c.raw
		rows = append(rows, row{
			figure: fmt.Sprintf("pod create, concurrency %d", c.conc),
			value:  fmt.Sprintf("%.0f pods/s = %.2f × raw etcd put (%.0f/s)", c.api, ratio, c.raw),
			goal:   "≥ 0.7 × raw put", met: verdict(ratio >= 0.7),
		})
	}
	if rd := r.read; rd != nil {
		rows = append(rows,
			row{figure: fmt.Sprintf("get one pod (%d stored) p50 / p99", rd.pods), value: fmt.Sprintf("%s / %s", ms(rd.get[0]), ms(rd.get[1])), goal: "—"},
			row{figure: fmt.Sprintf("list %d pods, rv=0 (cache) p50 / p99", rd.pods), value: fmt.Sprintf("%s / %s", ms(rd.listCache[0]), ms(rd.listCache[1])),
				goal: "p99 ≤ 200 ms", met: verdict(rd.listCache[1] <= 200*time.Millisecond)},
			row{figure: fmt.Sprintf("list %d pods, consistent p50 / p99", rd.pods), value: fmt.Sprintf("%s / %s", ms(rd.listQuorum[0]), ms(rd.listQuorum[1])), goal: "—"},
		)
	}
	if w := r.watch; w != nil {
		v := fmt.Sprintf("p99 %s (p50 %s, max %s)", ms(w.p99), ms(w.p50), ms(w.max))
		ok := w.p99 <= 10*time.Millisecond
		if w.delivered < w.expected {
			v += fmt.Sprintf(", %.2f%% delivered", 100*float64(w.delivered)/float64(w.expected))
			ok = false
		}
		if w.rate < 0.95*float64(w.target) {
			v += fmt.Sprintf(", writes reached only %.0f/s", w.rate)
			ok = false
		}
		rows = append(rows, row{figure: fmt.Sprintf("watch delivery, %d watchers, %d writes/s", w.watchers, w.target), value: v, goal: "p99 ≤ 10 ms", met: verdict(ok)})
	}
	if m := r.memory; m != nil {
		for _, p := range m.points {
			per := float64(p.mem.rss-m.base.mem.rss) / float64(p.pods-m.base.pods)
			ratio := per / float64(m.encodedSize)
			rows = append(rows, row{
				figure: fmt.Sprintf("RSS per pod, %d pods", p.pods),
				value:  fmt.Sprintf("%.0f B = %.1f × encoded (%d B)", per, ratio, m.encodedSize),
				goal:   "≤ 3 × encoded", met: verdict(ratio <= 3),
			})
		}
	}
	if s := r.startup; s != nil {
		rows = append(rows, row{figure: "start to /readyz 200, fresh data dir", value: fmt.Sprintf("%s median of %d", ms(s.median()), len(s.runs)),
			goal: "≤ 1 s", met: verdict(s.median() <= time.Second)})
	}
	return rows
}

// render is the table and the notes that explain it, as Markdown (which reads well on a
// terminal too).
func (r *report) render() string {
	var b strings.Builder
	b.WriteString("| figure | value | goal | |\n|---|---|---|---|\n")
	for _, row := range r.rows() {
		v := "—"
		if row.met != nil {
			v = "ok"
			if !*row.met {
				v = "MISSED"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.figure, row.value, row.goal, v)
	}
	b.WriteString("\n")
	note := func(format string, args ...any) { fmt.Fprintf(&b, "- "+format+"\n", args...) }
	if len(r.create) > 0 {
		note("Creates: typed client-go clientset, protobuf, one HTTP/2 connection, no client rate limit; server with fsync on (etcd's default). "+
			"Baseline: clientv3 Put of the API server's stored value (%d B, read back from etcd) under keys of the same length, over the embedded etcd's unix socket, same concurrency. "+
			"Each run is time-boxed (%s) or capped.", r.encodedSize, "5 s")
		for _, c := range r.create {
			note("Concurrency %d: %d creates, %d raw puts. CPU per create: server %d µs, client %d µs; per raw put: server %d µs, client %d µs.",
				c.conc, c.apiN, c.rawN, c.apiServerCPU.Microseconds(), c.apiClientCPU.Microseconds(), c.rawServerCPU.Microseconds(), c.rawClientCPU.Microseconds())
		}
	}
	if rd := r.read; rd != nil {
		note("Reads: one request at a time; get = typed Get (read from etcd); list latency = time until the whole protobuf body (%s) arrived; "+
			"the typed List, which also decodes the 10,000 pods in the client, takes %s (p50). %d gets, %d lists of each kind.",
			mib(int64(rd.listBytes)), ms(rd.typedCacheP50), rd.gets, rd.lists)
	}
	if w := r.watch; w != nil {
		note("Watch: %d watches of configmaps in one namespace from the current resourceVersion, spread over %d client HTTP/2 connections (%d streams each); "+
			"%d unconditional updates of 200 configmaps at %.0f/s, each carrying its send time; latency = receive time in the watcher - send time, so it includes the write itself "+
			"(update latency p50 %s, p99 %s, fsync on). %d of %d events delivered, %d watches closed early; p99.9 %s. Set-up of the watches took %s. "+
			"CPU during the writes: server %.2f cores (%.0f µs per delivered event), benchmark client %.2f cores (of %d).",
			w.watchers, w.connections, (w.watchers+w.connections-1)/w.connections, w.writes, w.rate, ms(w.writeP50), ms(w.writeP99),
			w.delivered, w.expected, w.closedEarly, ms(w.p999), ms(w.setup), w.serverCPU, perEvent(w), w.benchCPU, r.machine.cpus)
	}
	if m := r.memory; m != nil {
		note("Memory: VmRSS of the nanokube process (API server and embedded etcd), fresh start with caches loaded, after it settled; per pod = (RSS with N pods - RSS with 1 pod) / (N - 1). "+
			"Pods written into etcd directly (%.0f/s, one put each) as copies of one pod created through the API, re-encoded with client-go's scheme (identical bytes: %v).",
			m.writeRate, m.reencodeOK)
		note("1 pod: VmRSS %s (anon %s, file %s), Go heap in use %s, started in %s.", mib(m.base.mem.rss), mib(m.base.mem.anon), mib(m.base.mem.file), mib(m.base.heapInuse), ms(m.base.restart))
		for _, p := range m.points {
			n := float64(p.pods - m.base.pods)
			note("%d pods: VmRSS %s (anon %s, file %s), Go heap in use %s, started in %s. Per pod: anonymous %.0f B (Go heap of API server and etcd), "+
				"file-backed %.0f B (mostly etcd's mmapped bbolt pages), Go heap in use %.0f B.",
				p.pods, mib(p.mem.rss), mib(p.mem.anon), mib(p.mem.file), mib(p.heapInuse), ms(p.restart),
				float64(p.mem.anon-m.base.mem.anon)/n, float64(p.mem.file-m.base.mem.file)/n, float64(p.heapInuse-m.base.heapInuse)/n)
		}
	}
	if s := r.startup; s != nil {
		runs := make([]string, len(s.runs))
		for i, d := range s.runs {
			runs[i] = ms(d)
		}
		note("Start-up: exec of `nanokube server` on a new data dir (certificates generated, new etcd member, fsync on) until /readyz answered 200, polled every 2 ms: %s.", strings.Join(runs, ", "))
	}
	if len(r.load) > 0 {
		var parts []string
		busy := false
		for _, f := range []string{"1", "2", "3", "4", "5"} {
			if l := r.load[f]; l != nil {
				parts = append(parts, fmt.Sprintf("figure %s %.2f", f, l.during))
				busy = busy || l.during >= 0.25
			}
		}
		msg := "Other processes on the machine used, on average, in cores: " + strings.Join(parts, ", ") + "."
		if busy {
			msg += " Figures measured while others used a quarter of a core or more are disturbed by them."
		}
		note("%s", msg)
	}
	note("Benchmark run time %s.", r.total.Round(time.Second))
	return b.String()
}

func (r *report) document(table string) string {
	m := r.machine
	return fmt.Sprintf(`The latest figures of `+"`go run ./bench/apiserver -write`"+` (part of `+"`make bench`"+`), measured in one run.

- Date: %s
- Machine: %d CPUs (%s), %s memory
- Commit: %s, %s

%s`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), m.cpus, m.cpuModel, m.memory, m.commit, m.goVersion, table)
}

// perEvent is the server's CPU time per delivered watch event, in µs.
func perEvent(w *watchResult) float64 {
	if w.delivered == 0 || w.rate == 0 {
		return 0
	}
	return w.serverCPU * (float64(w.writes) / w.rate) * 1e6 / float64(w.delivered)
}
