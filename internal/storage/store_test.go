package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	goruntime "runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/nanokube/nanokube/internal/etcd"
	"github.com/nanokube/nanokube/internal/storage"
)

func newStore(t *testing.T) *storage.Store {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e, err := etcd.Start(ctx, etcd.Config{DataDir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	return storage.New(e.Client, protobuf.NewSerializer(s, s), serializer.NewCodecFactory(s).UniversalDeserializer())
}

func cm(name, v string) *corev1.ConfigMap {
	return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Data: map[string]string{"v": v}}
}

const prefix = "/registry/configmaps/"

func TestStoreOptimisticConcurrency(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	obj := cm("a", "1")
	if err := s.Create(ctx, prefix+"ns/a", obj); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, prefix+"ns/a", cm("a", "2")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	rev, _ := strconv.ParseInt(obj.ResourceVersion, 10, 64)
	if err := s.Update(ctx, prefix+"ns/a", cm("a", "2"), rev); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, prefix+"ns/a", cm("a", "3"), rev); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if err := s.Update(ctx, prefix+"ns/missing", cm("missing", "3"), rev); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("update of a missing key: %v", err)
	}
	got, err := s.Get(ctx, prefix+"ns/a", 0)
	if err != nil || got.(*corev1.ConfigMap).Data["v"] != "2" {
		t.Fatalf("get: %v %v", err, got)
	}
	if _, err := s.Delete(ctx, prefix+"ns/a", rev); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	del, err := s.Delete(ctx, prefix+"ns/a", 0)
	if err != nil || del.(*corev1.ConfigMap).Data["v"] != "2" {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Get(ctx, prefix+"ns/a", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestStoreListPages(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i := 0; i < 7; i++ {
		if err := s.Create(ctx, prefix+"ns/c"+strconv.Itoa(i), cm("c"+strconv.Itoa(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	start := ""
	var rev int64
	for {
		page, err := s.List(ctx, prefix, storage.ListOptions{StartKey: start, Limit: 3, Revision: rev})
		if err != nil {
			t.Fatal(err)
		}
		rev = page.Revision
		all = append(all, page.Keys...)
		if !page.More {
			break
		}
		start = page.Keys[len(page.Keys)-1] + "\x00"
	}
	if len(all) != 7 {
		t.Fatalf("pages returned %d keys: %v", len(all), all)
	}
}

func TestCacherWatchAndHistory(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := storage.NewCacher(s, prefix, 4, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go c.Run(ctx)
	<-c.Ready()
	first := cm("a", "1")
	if err := s.Create(ctx, prefix+"ns/a", first); err != nil {
		t.Fatal(err)
	}
	rev, _ := strconv.ParseInt(first.ResourceVersion, 10, 64)
	// RV 0 starts with the current state.
	w, err := c.Watch(ctx, storage.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Added, "a")
	if err := s.Update(ctx, prefix+"ns/a", cm("a", "2"), rev); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Modified, "a")
	w.Stop()

	// A filter turns membership changes into Added/Deleted.
	onlyTwo := func(o runtime.Object) bool { return o.(*corev1.ConfigMap).Data["v"] == "3" }
	fw, err := c.Watch(ctx, storage.WatchOptions{Revision: rev, Filter: onlyTwo})
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := s.Get(ctx, prefix+"ns/a", 0)
	r2, _ := strconv.ParseInt(cur.(*corev1.ConfigMap).ResourceVersion, 10, 64)
	if err := s.Update(ctx, prefix+"ns/a", cm("a", "3"), r2); err != nil {
		t.Fatal(err)
	}
	expect(t, fw, watch.Added, "a")
	fw.Stop()

	// History holds 4 events: older revisions are expired.
	for i := 0; i < 6; i++ {
		if err := s.Create(ctx, prefix+"ns/f"+strconv.Itoa(i), cm("f"+strconv.Itoa(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Count() != 7 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Watch(ctx, storage.WatchOptions{Revision: rev}); !errors.Is(err, storage.ErrExpired) {
		t.Fatalf("watch from an old revision: %v", err)
	}
	// Consistent lists wait for the cache to reach a revision.
	cur, _ = s.Get(ctx, prefix+"ns/f5", 0)
	want, _ := strconv.ParseInt(cur.(*corev1.ConfigMap).ResourceVersion, 10, 64)
	items, got, err := c.List(ctx, prefix, want, nil)
	if err != nil || got < want || len(items) != 7 {
		t.Fatalf("list at %d: %v rev %d items %d", want, err, got, len(items))
	}
}

func expect(t *testing.T, w *storage.Watcher, typ watch.EventType, name string) {
	t.Helper()
	select {
	case ev := <-w.ResultChan():
		if ev.Type != typ || ev.Object.(*corev1.ConfigMap).Name != name {
			t.Fatalf("got %s %s, want %s %s", ev.Type, ev.Object.(*corev1.ConfigMap).Name, typ, name)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s event for %s", typ, name)
	}
}

// TestCachersStopWhileEventsFlow holds the watch caches to stopping when their context ends
// while events still flow, however many share the embedded member's in-process client: its
// channel stream can deadlock when many watches are cancelled at once, and a cache that
// waited for its watch channel to close then waited until the client was closed, which
// comes only after every cache has stopped (15 s, then a forced stop, in the server).
func TestCachersStopWhileEventsFlow(t *testing.T) {
	s := newStore(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for round := range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := range 24 {
			c := storage.NewCacher(s, fmt.Sprintf("/registry/r%d-%d/", round, i), 16, log)
			wg.Go(func() { c.Run(ctx) })
			<-c.Ready()
		}
		// Writers keep every cache's watch busy while the caches are stopped.
		wctx, stopWriters := context.WithCancel(context.Background())
		var writers sync.WaitGroup
		var written atomic.Int64
		for i := range 24 {
			writers.Go(func() {
				for n := 0; wctx.Err() == nil; n++ {
					if s.Create(wctx, fmt.Sprintf("/registry/r%d-%d/ns/c%d", round, i, n), cm(fmt.Sprintf("c%d", n), "1")) == nil {
						written.Add(1)
					}
				}
			})
		}
		for written.Load() < 100 { // events flowing to every cache
			goruntime.Gosched()
		}
		cancel()
		stopped := make(chan struct{})
		go func() { wg.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the caches did not stop within 10s of their context ending", round)
		}
		stopWriters()
		writers.Wait()
	}
}
