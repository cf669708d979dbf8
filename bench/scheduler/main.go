// Command scheduler benchmarks the nanokube scheduler: pods bound per second with 5,000
// hollow nodes for 10,000 and then 50,000 more pending pods, the per-pod latency from create
// to bound at a steady create rate, and the time for a Deployment of 1,000 replicas to have every pod bound.
//
// Everything runs in this process: the control plane (embedded etcd without fsync and the
// API server, through internal/server), the hollow nodes, the scheduler and the watcher that
// timestamps bindings. The pending pods of the throughput runs are written straight into etcd
// before the scheduler starts, so the figure measures scheduling alone: from the scheduler's
// start (informer sync included) until the watch has seen every pod bound.
//
// With -write, a "## Scheduler" section is appended to (or replaced in) docs/performance.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	nodes       int
	sizes       []int
	latencyPods int
	latencyRate int
	ownerPods   int
	podStatus   bool
	leases      bool
	write       bool
	doc         string
	verbose     bool
}

func main() {
	var cfg config
	var sizes string
	flag.IntVar(&cfg.nodes, "nodes", 5000, "hollow nodes")
	flag.StringVar(&sizes, "pods", "10000,50000", "pending pods of each throughput run (comma-separated; runs are cumulative)")
	flag.IntVar(&cfg.latencyPods, "latency-pods", 5000, "pods created at a steady rate for the latency figure (0: skip)")
	flag.IntVar(&cfg.latencyRate, "latency-rate", 500, "create rate of the latency run, pods/s")
	flag.IntVar(&cfg.ownerPods, "deployment-replicas", 1000, "replicas of the Deployment figure (0: skip)")
	flag.BoolVar(&cfg.podStatus, "pod-status", false, "hollow nodes mark bound pods Running (more API load)")
	flag.BoolVar(&cfg.leases, "leases", false, "hollow nodes renew Leases every 10s (more API load)")
	flag.BoolVar(&cfg.write, "write", false, "record the figures in -doc")
	flag.StringVar(&cfg.doc, "doc", "docs/performance.md", "file -write appends the Scheduler section to")
	flag.BoolVar(&cfg.verbose, "v", false, "log the control plane and scheduler")
	quick := flag.Bool("quick", false, "small sizes for trying the benchmark out")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060)")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: bad -pods %q\n", sizes)
			os.Exit(2)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if *quick {
		cfg.nodes, cfg.sizes, cfg.latencyPods, cfg.ownerPods = 500, []int{2000}, 500, 200
	}
	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, http.ListenAndServe(*pprofAddr, nil)) }()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, log)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var started = time.Now()

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}
