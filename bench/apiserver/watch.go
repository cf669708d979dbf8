package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/nanokube/nanokube/bench/internal/procstat"
)

const watchNamespace = "watch"

type watchResult struct {
	watchers, connections int
	writes, target        int
	rate                  float64 // writes per second achieved
	expected, delivered   int64
	closedEarly           int64
	p50, p99, p999, max   time.Duration
	writeP50, writeP99    time.Duration
	serverCPU, benchCPU   float64 // cores used during the write phase
	setup                 time.Duration
}

// benchWatch opens watchers on configmaps in one namespace over conns HTTP/2 connections,
// then updates configmaps at rate per second for d. Each update carries the time it was sent
// in its data; the latency of a delivery is its receive time minus that timestamp.
func benchWatch(ctx context.Context, s *server, watchers, conns int, rate int, d time.Duration) (watchResult, error) {
	r := watchResult{watchers: watchers, connections: conns, target: rate}
	admin, err := s.clientset(true)
	if err != nil {
		return r, err
	}
	if err := createNamespace(ctx, admin, watchNamespace); err != nil {
		return r, err
	}
	const objects = 200
	pad := strings.Repeat("x", 256)
	for i := range objects {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i), Labels: map[string]string{"app": "bench"}},
			Data: map[string]string{"ts": "0", "pad": pad}}
		if _, err := admin.CoreV1().ConfigMaps(watchNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return r, err
		}
	}
	list, err := admin.CoreV1().ConfigMaps(watchNamespace).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return r, err
	}
	clients := make([]*kubernetes.Clientset, conns)
	for i := range clients {
		if clients[i], err = s.clientset(true); err != nil {
			return r, err
		}
	}

	wctx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	lats := make([][]time.Duration, watchers)
	var delivered, closedEarly atomic.Int64
	var wg sync.WaitGroup
	setupStart := time.Now()
	// The watches live in wctx: errgroup's own context ends when Wait returns.
	var g errgroup.Group
	g.SetLimit(32)
	for i := range watchers {
		g.Go(func() error {
			w, err := clients[i%conns].CoreV1().ConfigMaps(watchNamespace).Watch(wctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
			if err != nil {
				return fmt.Errorf("watch %d: %w", i, err)
			}
			lats[i] = make([]time.Duration, 0, int(rate)*int(d/time.Second)+16)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer w.Stop()
				for {
					select {
					case ev, ok := <-w.ResultChan():
						if !ok {
							if wctx.Err() == nil {
								closedEarly.Add(1)
							}
							return
						}
						now := time.Now()
						if ev.Type != watch.Modified {
							continue
						}
						cm, ok := ev.Object.(*corev1.ConfigMap)
						if !ok {
							continue
						}
						ts, _ := strconv.ParseInt(cm.Data["ts"], 10, 64)
						if ts > 0 {
							lats[i] = append(lats[i], now.Sub(time.Unix(0, ts)))
							delivered.Add(1)
						}
					case <-wctx.Done():
						return
					}
				}
			}()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		stopWatches()
		wg.Wait()
		return r, err
	}
	r.setup = time.Since(setupStart)

	// The writer: updates (unconditional, as a controller's status writer might) paced at
	// rate per second by a schedule, by a pool of senders so a slow write does not delay the
	// next one.
	total := int(rate) * int(d/time.Second)
	jobs := make(chan int, total)
	writeLat := make([]time.Duration, 0, total)
	var latMu sync.Mutex
	var writeErr atomic.Value
	var senders sync.WaitGroup
	t0 := time.Now()
	// A server that cannot keep up gets 5s of grace; writes not started by then are dropped
	// and the achieved rate says so.
	cutoff := t0.Add(d + 5*time.Second)
	for range 16 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for k := range jobs {
				if time.Now().After(cutoff) {
					continue
				}
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", k%objects), Namespace: watchNamespace, Labels: map[string]string{"app": "bench"}},
					Data: map[string]string{"pad": pad}}
				t := time.Now()
				cm.Data["ts"] = strconv.FormatInt(t.UnixNano(), 10)
				if _, err := admin.CoreV1().ConfigMaps(watchNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
					writeErr.Store(err)
					continue
				}
				latMu.Lock()
				writeLat = append(writeLat, time.Since(t))
				latMu.Unlock()
			}
		}()
	}
	cpu0, self0 := procstat.CPUTime(s.pid()), selfCPU()
	interval := time.Second / time.Duration(rate)
	for k := range total {
		if wait := time.Until(t0.Add(time.Duration(k) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- k
	}
	close(jobs)
	senders.Wait()
	elapsed := time.Since(t0)
	r.serverCPU = (procstat.CPUTime(s.pid()) - cpu0).Seconds() / elapsed.Seconds()
	r.benchCPU = (selfCPU() - self0).Seconds() / elapsed.Seconds()
	if err, _ := writeErr.Load().(error); err != nil {
		return r, fmt.Errorf("update: %w", err)
	}
	total = len(writeLat)
	r.writes, r.rate = total, float64(total)/elapsed.Seconds()
	r.expected = int64(total) * int64(watchers)
	// Let the last events arrive.
	deadline := time.Now().Add(10 * time.Second)
	for delivered.Load()+closedEarly.Load()*int64(total) < r.expected && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stopWatches()
	wg.Wait()
	r.delivered, r.closedEarly = delivered.Load(), closedEarly.Load()

	all := make([]time.Duration, 0, r.delivered)
	for _, l := range lats {
		all = append(all, l...)
	}
	r.p50, r.p99, r.p999 = percentile(all, 0.5), percentile(all, 0.99), percentile(all, 0.999)
	if len(all) > 0 {
		r.max = all[len(all)-1]
	}
	r.writeP50, r.writeP99 = percentile(writeLat, 0.5), percentile(writeLat, 0.99)
	return r, nil
}
