package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// cpuSample is CPU time used so far, in clock ticks (USER_HZ = 100): this process's, and
// the whole machine's busy time.
type cpuSample struct {
	at          time.Time
	self, total float64 // seconds
}

type usage struct {
	wall        time.Duration
	self, other float64 // cores
}

func readCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		var ut, st float64
		fmt.Sscan(f[11], &ut)
		fmt.Sscan(f[12], &st)
		s.self = (ut + st) / 100
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)[1:]
		var busy float64
		for i, v := range f {
			var x float64
			fmt.Sscan(v, &x)
			if i != 3 && i != 4 { // idle, iowait
				busy += x
			}
		}
		s.total = busy / 100
	}
	return s
}

func (s cpuSample) since(b cpuSample) usage {
	wall := s.at.Sub(b.at)
	u := usage{wall: wall, self: (s.self - b.self) / wall.Seconds()}
	u.other = max((s.total-b.total)/wall.Seconds()-u.self, 0)
	return u
}

func (s cpuSample) others(b cpuSample) float64 { return s.since(b).other }

func describeMachine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			}
		}
		mem = fmt.Sprintf(", %.1f GiB memory", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d CPUs (%s)%s, GOMAXPROCS %d, %s", runtime.NumCPU(), model, mem, runtime.GOMAXPROCS(0), runtime.Version())
}

func describeCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " with uncommitted changes"
	}
	return c
}

func (r *results) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Figures of `go run ./bench/scheduler` (one run; control plane, %d hollow nodes, scheduler and watcher in one process).\n\n", r.nodes)
	fmt.Fprintf(&b, "- Date: %s\n- Machine: %s\n- Commit: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), r.machine, r.commit)
	fmt.Fprintf(&b, "- Other processes on the machine used %.2f cores on average during the run (it is shared).\n\n", r.otherCores)
	fmt.Fprintf(&b, "| figure | value | goal | |\n|---|---|---|---|\n")
	for i, run := range r.runs {
		rate := float64(run.pods) / run.total.Seconds()
		verdict := "MISSED"
		if rate >= 2000 {
			verdict = "ok"
		}
		fmt.Fprintf(&b, "| run %d: %d pending pods, %d nodes (%d pods already bound) | %.0f pods/s (all seen bound in %v) | ≥ 2,000 pods/s | %s |\n",
			i+1, run.pods, r.nodes, run.existing, rate, run.total.Round(time.Millisecond), verdict)
		if d := run.lastBind.Sub(run.start); run.binds > 0 && d > 0 {
			fmt.Fprintf(&b, "| run %d, by the scheduler's own binding calls | %.0f pods/s (%d bindings answered 201 by %v) | ≥ 2,000 pods/s | |\n",
				i+1, float64(run.binds)/d.Seconds(), run.binds, d.Round(time.Millisecond))
		}
	}
	if l := r.latency; l != nil {
		fmt.Fprintf(&b, "| create → bound at %.0f pods/s, p50 / p99 | %v / %v | — | — |\n", l.rate, pct(l.lat, 50), pct(l.lat, 99))
	}
	if o := r.owner; o != nil {
		fmt.Fprintf(&b, "| Deployment of %d replicas: created → every pod bound | %v | — | — |\n", o.pods, o.total.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n")
	fmt.Fprintf(&b, "- Nodes: %d hollow nodes (32 CPUs, 256 GiB, 110 pods each) registered in %v; Leases %s; pod status updates %s.\n",
		r.nodes, r.register.Round(time.Millisecond), onOff(r.leases, "renewed every 10 s", "off"),
		onOff(r.podStatus, "on (bound pods are marked Running)", "off (bound pods stay Pending: the figure is the scheduler's alone)"))
	for i, run := range r.runs {
		fmt.Fprintf(&b, "- Run %d: %d pods written straight into etcd before the scheduler started (at %.0f/s); time from scheduler start to the watch seeing the last pod bound, including %v of informer sync. "+
			"Bound after start: p50 %v, p99 %v. CPU: %.2f cores for this process (API server, etcd, scheduler, hollow nodes, watcher), %.2f cores others.\n",
			i+1, run.pods, run.putRate, run.sync.Round(time.Millisecond), pct(run.latencies, 50), pct(run.latencies, 99), run.cpu.self, run.cpu.other)
	}
	fmt.Fprintf(&b, "- Reading the runs: \"seen bound\" is timed by a pod watch in the benchmark, the binding line by the scheduler's own POST pods/binding answers. "+
		"When the watch's p50 is close to its total, the watch delivered most bindings in a burst at the end: it lagged behind the API server's writes "+
		"(see the API server's watch-delivery figure above), and the binding line is the scheduler's rate.\n")
	if l := r.latency; l != nil {
		fmt.Fprintf(&b, "- Latency: %d pods created through the API at a steady %.0f pods/s while the scheduler ran; per pod, from just before its create request to the watch seeing it bound (so it includes the create itself). p90 %v, max %v. CPU %.2f cores (this process), %.2f others.\n",
			l.pods, l.rate, pct(l.lat, 90), pct(l.lat, 100), l.cpu.self, l.cpu.other)
	}
	if o := r.owner; o != nil {
		fmt.Fprintf(&b, "- Deployment: the ReplicaSet and Deployment controllers of internal/controller run in the same process for this figure only; it includes their work (the ReplicaSet's slow-start create batches) as well as scheduling.\n")
	}
	return b.String()
}

func onOff(on bool, yes, no string) string {
	if on {
		return yes
	}
	return no
}
