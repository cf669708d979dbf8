package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

type readResult struct {
	pods                       int
	get, listCache, listQuorum [2]time.Duration // p50, p99
	listBytes                  int
	typedCacheP50              time.Duration // list from the cache including client-side decoding
	gets, lists                int
}

// benchRead measures GET of one pod and LIST of all pods (from the watch cache with
// resourceVersion=0, and consistent with resourceVersion=""), protobuf, one request at a time.
func benchRead(ctx context.Context, cs *kubernetes.Clientset, pods, gets, lists int) (readResult, error) {
	r := readResult{pods: pods, gets: gets, lists: lists}
	pc := cs.CoreV1().Pods(benchNamespace)
	lat := make([]time.Duration, 0, gets)
	for range gets {
		name := fmt.Sprintf("pod-%06d", 1+rand.IntN(pods))
		t := time.Now()
		if _, err := pc.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return r, fmt.Errorf("get %s: %w", name, err)
		}
		lat = append(lat, time.Since(t))
	}
	r.get = [2]time.Duration{percentile(lat, 0.5), percentile(lat, 0.99)}

	// The latency of a list is the time until its whole protobuf body has arrived; decoding
	// 10,000 pods in the client is the client's cost and is reported apart.
	list := func(rv string) ([2]time.Duration, error) {
		lat := make([]time.Duration, 0, lists)
		for i := range lists + 2 {
			t := time.Now()
			body, err := cs.CoreV1().RESTClient().Get().Resource("pods").
				VersionedParams(&metav1.ListOptions{ResourceVersion: rv}, scheme.ParameterCodec).DoRaw(ctx)
			if err != nil {
				return [2]time.Duration{}, fmt.Errorf("list pods (resourceVersion=%q): %w", rv, err)
			}
			if i >= 2 { // the first two warm up
				lat = append(lat, time.Since(t))
			}
			r.listBytes = len(body)
		}
		return [2]time.Duration{percentile(lat, 0.5), percentile(lat, 0.99)}, nil
	}
	var err error
	if r.listCache, err = list("0"); err != nil {
		return r, err
	}
	if r.listQuorum, err = list(""); err != nil {
		return r, err
	}
	var typed []time.Duration
	for range 5 {
		t := time.Now()
		l, err := cs.CoreV1().Pods(corev1.NamespaceAll).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return r, err
		}
		typed = append(typed, time.Since(t))
		if len(l.Items) != pods {
			return r, fmt.Errorf("list returned %d pods, want %d", len(l.Items), pods)
		}
	}
	r.typedCacheP50 = percentile(typed, 0.5)
	return r, nil
}
