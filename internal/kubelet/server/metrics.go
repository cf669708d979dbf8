package server

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// newRegistry returns the registry /metrics serves: the Go runtime's and the process's
// collectors and the kubelet's pod and container counts, read from CRI at each scrape.
func (s *Server) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&runtimeCollector{s: s},
	)
	return reg
}

var (
	runningPodsDesc = prometheus.NewDesc("kubelet_running_pods",
		"Number of pods that have a running pod sandbox", nil, nil)
	runningContainersDesc = prometheus.NewDesc("kubelet_running_containers",
		"Number of containers currently running", []string{"container_state"}, nil)
)

// runtimeCollector counts ready sandboxes and containers by state, as the kubelet's gauges do.
type runtimeCollector struct{ s *Server }

func (c *runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningPodsDesc
	ch <- runningContainersDesc
}

func (c *runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt := c.s.host.Runtime()
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(runningPodsDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(runningPodsDesc, prometheus.GaugeValue, float64(len(sbs)))
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(runningContainersDesc, err)
		return
	}
	counts := map[string]int{"created": 0, "running": 0, "exited": 0, "unknown": 0}
	for _, ctr := range cs {
		// CONTAINER_RUNNING → "running"
		counts[strings.ToLower(strings.TrimPrefix(ctr.State.String(), "CONTAINER_"))]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(runningContainersDesc, prometheus.GaugeValue, float64(n), state)
	}
}
