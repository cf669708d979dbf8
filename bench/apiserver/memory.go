package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes/scheme"
)

const memNamespace = "mem"

type memPoint struct {
	pods      int
	mem       memory
	heapInuse int64         // the Go runtime's own figure, from /metrics
	restart   time.Duration // process start to ready, caches loaded
}

type memResult struct {
	encodedSize int
	reencodeOK  bool // re-encoding the stored pod unchanged gave the stored bytes
	base        memPoint
	points      []memPoint
	writeRate   float64 // raw pods written per second
}

// benchMemory measures the server's resident memory with an (almost) empty store and with
// each of sizes pods stored. The pods are written straight into etcd: one pod is created
// through the API, its stored bytes decoded with client-go's scheme, and copies with other
// names and uids are encoded and put under the API server's keys. Every measurement is of a
// freshly started process whose caches loaded the pods, after its memory settled.
func benchMemory(ctx context.Context, bin string, sizes []int) (memResult, error) {
	var r memResult
	dir, err := tempDir("memory")
	if err != nil {
		return r, err
	}
	dir += "/data"
	// fsync off: it changes how fast the pods are written, not the memory of the server.
	opts := serverOptions{fsync: false}
	s, err := startServer(ctx, bin, dir, opts)
	if err != nil {
		return r, err
	}
	cs, err := s.clientset(false)
	if err != nil {
		return r, err
	}
	if err := createNamespace(ctx, cs, memNamespace); err != nil {
		return r, err
	}
	if _, err := cs.CoreV1().Pods(memNamespace).Create(ctx, benchPod(memNamespace, podName(0)), metav1.CreateOptions{}); err != nil {
		return r, err
	}
	etcd, err := s.etcdClient()
	if err != nil {
		return r, err
	}
	resp, err := etcd.Get(ctx, podKey(0))
	etcd.Close()
	if err != nil || len(resp.Kvs) == 0 {
		return r, fmt.Errorf("read the stored pod: %v", err)
	}
	stored := resp.Kvs[0].Value
	r.encodedSize = len(stored)
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	obj, _, err := codec.Decode(stored, nil, nil)
	if err != nil {
		return r, fmt.Errorf("decode the stored pod: %w", err)
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return r, fmt.Errorf("stored value decodes to %T", obj)
	}
	pod.APIVersion, pod.Kind = "v1", "Pod"
	var buf bytes.Buffer
	if err := codec.Encode(pod, &buf); err != nil {
		return r, err
	}
	r.reencodeOK = bytes.Equal(buf.Bytes(), stored)
	s.stop()

	measure := func(pods int) (memPoint, error) {
		p := memPoint{pods: pods}
		var err error
		if s, err = startServer(ctx, bin, dir, opts); err != nil {
			return p, err
		}
		p.restart = time.Since(s.started)
		if p.mem, err = settledMemory(s.pid()); err != nil {
			return p, err
		}
		p.heapInuse = heapInuse(ctx, s)
		return p, nil
	}
	if r.base, err = measure(1); err != nil {
		return r, err
	}
	have := 1
	var written int
	var writing time.Duration
	for _, n := range sizes {
		etcd, err := s.etcdClient()
		if err != nil {
			return r, err
		}
		t := time.Now()
		err = putPods(ctx, etcd, pod, have, n)
		writing += time.Since(t)
		written += n - have
		etcd.Close()
		if err != nil {
			return r, err
		}
		have = n
		s.stop()
		p, err := measure(n)
		if err != nil {
			return r, err
		}
		r.points = append(r.points, p)
	}
	s.stop()
	r.writeRate = float64(written) / writing.Seconds()
	return r, nil
}

func podName(i int) string { return fmt.Sprintf("mem-%06d", i) }
func podKey(i int) string  { return "/registry/pods/" + memNamespace + "/" + podName(i) }

// putPods writes pods from..to-1 as copies of template, one put each (as the API server
// writes them: one raft entry per pod, so etcd's in-memory raft log is what it would be),
// 64 at a time.
func putPods(ctx context.Context, etcd *clientv3.Client, template *corev1.Pod, from, to int) error {
	const workers = 64
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	g, ctx := errgroup.WithContext(ctx)
	for w := range workers {
		g.Go(func() error {
			p := template.DeepCopy()
			var buf bytes.Buffer
			for i := from + w; i < to; i += workers {
				p.Name, p.UID = podName(i), types.UID(uuid.NewUUID())
				buf.Reset()
				if err := codec.Encode(p, &buf); err != nil {
					return err
				}
				if err := putWithBackoff(ctx, etcd, podKey(i), buf.String()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// heapInuse reads go_memstats_heap_inuse_bytes from the server's /metrics (0 if absent).
func heapInuse(ctx context.Context, s *server) int64 {
	cs, err := s.clientset(false)
	if err != nil {
		return 0
	}
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").SetHeader("Accept", "text/plain").DoRaw(ctx)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}

// putWithBackoff writes one key, waiting out etcd's overload answers ("too many requests",
// "request timed out"): 64 writers with fsync off can outrun the member's apply loop.
func putWithBackoff(ctx context.Context, etcd *clientv3.Client, key, value string) error {
	delay := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := etcd.Put(ctx, key, value)
		if err == nil || attempt == 30 || !(errors.Is(err, rpctypes.ErrTooManyRequests) || errors.Is(err, rpctypes.ErrTimeout)) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}
