package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nanokube/nanokube/bench/internal/procstat"
)

const benchNamespace = "bench"

// runFor runs op with conc workers until max operations were started or d has passed, and
// returns how many completed and how long that took.
func runFor(ctx context.Context, conc, maxOps int, d time.Duration, op func(ctx context.Context, i int) error) (int, time.Duration, error) {
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Since(start) < d {
				i := int(next.Add(1) - 1)
				if i >= maxOps {
					return
				}
				if err := op(ctx, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(done.Load()), time.Since(start), firstErr
}

// podCreator creates bench pods through the API with names that never repeat.
type podCreator struct {
	cs    []kubernetes.Interface // requests are spread over these round-robin
	count atomic.Int64
}

func (p *podCreator) create(ctx context.Context, _ int) error {
	n := p.count.Add(1)
	name := fmt.Sprintf("pod-%06d", n)
	_, err := p.cs[int(n)%len(p.cs)].CoreV1().Pods(benchNamespace).Create(ctx, benchPod(benchNamespace, name), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod %s: %w", name, err)
	}
	return nil
}

type createResult struct {
	conc            int
	api, raw        float64 // operations per second
	apiN, rawN      int
	storedValueSize int
	// CPU time per operation of the server process and of this program (the client).
	apiServerCPU, apiClientCPU, rawServerCPU, rawClientCPU time.Duration
}

// measured runs f and returns the CPU time per operation it cost the server and this program.
func measured(s *server, f func() (int, time.Duration, error)) (n int, el, srv, cli time.Duration, err error) {
	s0, c0 := procstat.CPUTime(s.pid()), selfCPU()
	n, el, err = f()
	if n > 0 {
		srv, cli = (procstat.CPUTime(s.pid())-s0)/time.Duration(n), (selfCPU()-c0)/time.Duration(n)
	}
	return n, el, srv, cli, err
}

// benchCreate measures pod creates through the API server against raw etcd puts of the
// stored value, at each concurrency, on the same embedded etcd (fsync on).
func benchCreate(ctx context.Context, s *server, pc *podCreator, etcd *clientv3.Client, concs []int, d time.Duration, caps []int) ([]createResult, int, error) {
	// Warm up the connections and learn the stored size of the pod.
	if _, _, err := runFor(ctx, 8, 64, time.Minute, pc.create); err != nil {
		return nil, 0, err
	}
	key := fmt.Sprintf("/registry/pods/%s/pod-%06d", benchNamespace, pc.count.Load())
	resp, err := etcd.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("read %s from etcd: %v (%d keys)", key, err, len(resp.Kvs))
	}
	value := string(resp.Kvs[0].Value)
	// The raw keys are as long as the API server's: /registry/pods/bench/pod-000001.
	var rawSeq atomic.Int64
	put := func(ctx context.Context, _ int) error {
		_, err := etcd.Put(ctx, fmt.Sprintf("/rawbench/pods/%s/pod-%06d", benchNamespace, rawSeq.Add(1)), value)
		return err
	}
	if _, _, err := runFor(ctx, 8, 64, time.Minute, put); err != nil {
		return nil, 0, fmt.Errorf("raw put: %w", err)
	}

	var out []createResult
	for i, c := range concs {
		r := createResult{conc: c, storedValueSize: len(value)}
		n, el, srv, cli, err := measured(s, func() (int, time.Duration, error) { return runFor(ctx, c, caps[i], d, pc.create) })
		if err != nil {
			return nil, 0, err
		}
		r.apiN, r.api, r.apiServerCPU, r.apiClientCPU = n, float64(n)/el.Seconds(), srv, cli
		n, el, srv, cli, err = measured(s, func() (int, time.Duration, error) { return runFor(ctx, c, caps[i]*4, d, put) })
		r.rawServerCPU, r.rawClientCPU = srv, cli
		if err != nil {
			return nil, 0, fmt.Errorf("raw put: %w", err)
		}
		r.rawN, r.raw = n, float64(n)/el.Seconds()
		out = append(out, r)
	}
	if _, err := etcd.Delete(ctx, "/rawbench/", clientv3.WithPrefix()); err != nil {
		return nil, 0, err
	}
	return out, len(value), nil
}
