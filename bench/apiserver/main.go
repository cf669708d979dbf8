// Command apiserver benchmarks the nanokube API server and prints its figures against the
// goals of the API server issue: pod create throughput against raw etcd puts, get and list
// latency with 10,000 pods, watch delivery latency with 1,000 watchers, resident memory per
// stored pod, and start-up time. It starts `nanokube server` processes itself (the binary
// named by $NANOKUBE_BIN or -bin) on loopback and temporary data directories, and stops and
// removes them before it exits. With -write it also records the table in docs/performance.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/nanokube/nanokube/bench/internal/perfdoc"
)

type config struct {
	bin         string
	write       bool
	doc         string
	quick       bool
	only        map[string]bool
	pods        int // stored pods for figure 2
	memSizes    []int
	watchers    int
	conns       int
	rate        int
	watchFor    time.Duration
	createFor   time.Duration
	createConns int
	commit      string
}

func main() {
	var cfg config
	var only string
	flag.StringVar(&cfg.bin, "bin", os.Getenv("NANOKUBE_BIN"), "nanokube binary (default $NANOKUBE_BIN, else bin/nanokube)")
	flag.BoolVar(&cfg.write, "write", false, "write the table to -doc")
	flag.StringVar(&cfg.doc, "doc", "docs/performance.md", "file -write writes")
	flag.BoolVar(&cfg.quick, "quick", false, "small sizes, for trying the benchmark out (figures are not comparable to the goals)")
	flag.StringVar(&only, "only", "1,2,3,4,5", "figures to measure (1 create, 2 read, 3 watch, 4 memory, 5 start-up)")
	watchers := flag.Int("watchers", 0, "override the number of watchers (figure 3)")
	rate := flag.Int("rate", 0, "override the write rate (figure 3)")
	flag.StringVar(&cfg.commit, "commit", "", "the commit the binary was built from (default: the checkout's HEAD)")
	flag.IntVar(&cfg.createConns, "create-conns", 1, "client connections the creates are spread over")
	flag.Parse()
	if cfg.bin == "" {
		cfg.bin = "bin/nanokube"
	}
	cfg.only = map[string]bool{}
	for _, f := range strings.Split(only, ",") {
		cfg.only[strings.TrimSpace(f)] = true
	}
	cfg.pods, cfg.memSizes, cfg.watchers, cfg.conns, cfg.rate = 10000, []int{10000, 100000}, 1000, 8, 200
	cfg.watchFor, cfg.createFor = 10*time.Second, 5*time.Second
	if cfg.quick {
		cfg.pods, cfg.memSizes, cfg.watchers = 2000, []int{2000, 10000}, 200
		cfg.watchFor, cfg.createFor = 3*time.Second, 2*time.Second
	}

	if *watchers > 0 {
		cfg.watchers = *watchers
	}
	if *rate > 0 {
		cfg.rate = *rate
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	runCleanups()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	if _, err := os.Stat(cfg.bin); err != nil {
		return fmt.Errorf("nanokube binary: %w (build it with `make build`)", err)
	}
	start := time.Now()
	// The commit is read before the run: the checkout may move while the benchmark runs.
	rep := report{machine: describeMachine()}
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	if cfg.only["1"] || cfg.only["2"] || cfg.only["3"] {
		if err := runAPIFigures(ctx, cfg, &rep, progress); err != nil {
			return err
		}
	}
	if cfg.only["4"] {
		l := rep.quiet("4", progress)
		progress("figure 4: memory with %v pods written straight into etcd", cfg.memSizes)
		m, err := benchMemory(ctx, cfg.bin, cfg.memSizes)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		rep.memory = &m
		rep.loaded("4", l)
	}
	if cfg.only["5"] {
		l := rep.quiet("5", progress)
		progress("figure 5: start-up time, 5 runs")
		s, err := benchStartup(ctx, cfg.bin, 5)
		if err != nil {
			return fmt.Errorf("start-up: %w", err)
		}
		rep.startup = &s
		rep.loaded("5", l)
	}
	rep.total = time.Since(start)
	rep.quick = cfg.quick
	if cfg.commit != "" {
		rep.machine.commit = cfg.commit
	}
	table := rep.render()
	fmt.Print(table)
	if cfg.write {
		if cfg.quick {
			return fmt.Errorf("-quick figures are not written to %s", cfg.doc)
		}
		if err := perfdoc.WriteSection(cfg.doc, "API server", rep.document(table)); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", cfg.doc)
	}
	return nil
}

// runAPIFigures runs figures 1-3 on one server with fsync on, as etcd runs by default.
func runAPIFigures(ctx context.Context, cfg config, rep *report, progress func(string, ...any)) error {
	dir, err := tempDir("api")
	if err != nil {
		return err
	}
	s, err := startServer(ctx, cfg.bin, dir+"/data", serverOptions{fsync: true})
	if err != nil {
		return err
	}
	defer s.stop()
	cs, err := s.clientset(false)
	if err != nil {
		return err
	}
	if err := createNamespace(ctx, cs, benchNamespace); err != nil {
		return err
	}
	etcd, err := s.etcdClient()
	if err != nil {
		return err
	}
	defer etcd.Close()
	pc := &podCreator{}
	for range cfg.createConns {
		c, err := s.clientset(true)
		if err != nil {
			return err
		}
		pc.cs = append(pc.cs, c)
	}

	if cfg.only["1"] {
		l := rep.quiet("1", progress)
		progress("figure 1: pod creates vs raw etcd puts, concurrency 1 and 64, fsync on")
		caps := []int{2000, cfg.pods * 65 / 100}
		res, size, err := benchCreate(ctx, s, pc, etcd, []int{1, 64}, cfg.createFor, caps)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		rep.create, rep.encodedSize = res, size
		rep.loaded("1", l)
	}
	if cfg.only["2"] {
		if n := cfg.pods - int(pc.count.Load()); n > 0 {
			progress("creating %d more pods (to %d)", n, cfg.pods)
			if _, _, err := runFor(ctx, 64, n, time.Hour, pc.create); err != nil {
				return err
			}
		}
		l := rep.quiet("2", progress)
		progress("figure 2: get and list with %d pods", pc.count.Load())
		r, err := benchRead(ctx, cs, int(pc.count.Load()), 2000, 30)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		rep.read = &r
		rep.loaded("2", l)
	}
	if cfg.only["3"] {
		l := rep.quiet("3", progress)
		progress("figure 3: %d watchers on %d connections, %d writes/s for %s", cfg.watchers, cfg.conns, cfg.rate, cfg.watchFor)
		w, err := benchWatch(ctx, s, cfg.watchers, cfg.conns, cfg.rate, cfg.watchFor)
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		rep.watch = &w
		rep.loaded("3", l)
	}
	return nil
}

// describeMachine is nproc, the CPU model, the memory and the commit measured.
func describeMachine() machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.commit += " (with uncommitted changes)"
		}
	}
	return m
}
