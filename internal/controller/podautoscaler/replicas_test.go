package podautoscaler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// podSpec describes a test pod: its phase, readiness and the request of each container.
type podSpec struct {
	phase      corev1.PodPhase
	ready      corev1.ConditionStatus // "" = no Ready condition
	started    time.Duration          // how long ago it started
	readySince time.Duration          // how long ago Ready last changed
	request    string                 // per container; "" = none
	containers int
	deleted    bool
}

func running(request string) podSpec {
	return podSpec{phase: corev1.PodRunning, ready: corev1.ConditionTrue, started: 10 * time.Minute, readySince: 9 * time.Minute, request: request, containers: 1}
}

func makePods(res corev1.ResourceName, specs ...podSpec) []*corev1.Pod {
	var pods []*corev1.Pod
	for i, s := range specs {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "ns", Labels: map[string]string{"app": "web"}},
			Status: corev1.PodStatus{Phase: s.phase}}
		if s.deleted {
			p.DeletionTimestamp = &metav1.Time{Time: testNow}
		}
		if s.started > 0 {
			p.Status.StartTime = &metav1.Time{Time: testNow.Add(-s.started)}
		}
		if s.ready != "" {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: s.ready, LastTransitionTime: metav1.NewTime(testNow.Add(-s.readySince))}}
		}
		n := max(s.containers, 1)
		for c := 0; c < n; c++ {
			ctr := corev1.Container{Name: fmt.Sprintf("c%d", c)}
			if s.request != "" {
				ctr.Resources.Requests = corev1.ResourceList{res: resource.MustParse(s.request)}
			}
			p.Spec.Containers = append(p.Spec.Containers, ctr)
		}
		pods = append(pods, p)
	}
	return pods
}

// usage maps pod index to a usage quantity; pods absent have no metric.
func makeMetrics(res corev1.ResourceName, usage map[int]string) podMetrics {
	var items []metricsv1beta1.PodMetrics
	for i, u := range usage {
		items = append(items, metricsv1beta1.PodMetrics{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "ns"},
			Timestamp: metav1.NewTime(testNow.Add(-5 * time.Second)), Window: metav1.Duration{Duration: 15 * time.Second},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "c0", Usage: corev1.ResourceList{res: resource.MustParse(u)}}}})
	}
	return podMetricsFor(items, res)
}

func testCalculator() *calculator {
	return &calculator{tolerance: DefaultTolerance, cpuInitializationPeriod: DefaultCPUInitializationPeriod,
		delayOfInitialReadinessStatus: DefaultInitialReadinessDelay, now: func() time.Time { return testNow }}
}

func TestUtilizationReplicas(t *testing.T) {
	starting := func(ready corev1.ConditionStatus, readySince time.Duration) podSpec {
		return podSpec{phase: corev1.PodRunning, ready: ready, started: time.Minute, readySince: readySince, request: "1", containers: 1}
	}
	for _, tc := range []struct {
		name            string
		current, target int32
		pods            []podSpec
		usage           map[int]string
		want            int32
		wantUtilization int32
		wantErr         string
	}{
		{name: "scale up", current: 3, target: 30, pods: []podSpec{running("1"), running("1"), running("1")},
			usage: map[int]string{0: "300m", 1: "500m", 2: "700m"}, want: 5, wantUtilization: 50},
		{name: "scale down", current: 5, target: 50, pods: []podSpec{running("1"), running("1"), running("1"), running("1"), running("1")},
			usage: map[int]string{0: "100m", 1: "300m", 2: "500m", 3: "250m", 4: "250m"}, want: 3, wantUtilization: 28},
		{name: "within tolerance", current: 3, target: 100, pods: []podSpec{running("1"), running("1"), running("1")},
			usage: map[int]string{0: "1010m", 1: "1030m", 2: "1020m"}, want: 3, wantUtilization: 102},
		{name: "missing metrics count as 100% on a scale-down", current: 4, target: 50,
			pods: []podSpec{running("1"), running("1"), running("1"), running("1")}, usage: map[int]string{0: "100m", 1: "100m", 2: "100m"},
			want: 3, wantUtilization: 10},
		{name: "missing metrics count as 0% on a scale-up", current: 4, target: 50,
			pods: []podSpec{running("1"), running("1"), running("1"), running("1")}, usage: map[int]string{0: "1", 1: "1", 2: "1"},
			want: 6, wantUtilization: 100},
		{name: "missing metrics that would flip the direction keep the size", current: 2, target: 90,
			pods: []podSpec{running("1"), running("1")}, usage: map[int]string{0: "1500m"}, want: 2, wantUtilization: 150},
		{name: "pending pods count as 0% on a scale-up", current: 3, target: 50,
			pods: []podSpec{running("1"), running("1"), {phase: corev1.PodPending, request: "1"}}, usage: map[int]string{0: "1", 1: "1"},
			want: 4, wantUtilization: 100},
		{name: "pending pods are left out of a scale-down", current: 3, target: 50,
			pods: []podSpec{running("1"), running("1"), {phase: corev1.PodPending, request: "1"}}, usage: map[int]string{0: "100m", 1: "100m"},
			want: 1, wantUtilization: 10},
		{name: "an unready starting pod is left out", current: 2, target: 50,
			pods: []podSpec{running("1"), starting(corev1.ConditionFalse, 30*time.Second)}, usage: map[int]string{0: "500m", 1: "2"},
			want: 2, wantUtilization: 50},
		{name: "a starting pod ready for less than a window is left out", current: 2, target: 50,
			pods: []podSpec{running("1"), starting(corev1.ConditionTrue, 5*time.Second)}, usage: map[int]string{0: "500m", 1: "2"},
			want: 2, wantUtilization: 50},
		{name: "a starting pod ready for a full window counts", current: 2, target: 50,
			pods: []podSpec{running("1"), starting(corev1.ConditionTrue, 40*time.Second)}, usage: map[int]string{0: "500m", 1: "2"},
			want: 5, wantUtilization: 125},
		{name: "deleted and failed pods are ignored", current: 3, target: 50,
			pods:  []podSpec{running("1"), {phase: corev1.PodFailed, request: "1"}, func() podSpec { p := running("1"); p.deleted = true; return p }()},
			usage: map[int]string{0: "1", 2: "3"}, want: 2, wantUtilization: 100},
		{name: "a container without a request", current: 1, target: 50, pods: []podSpec{running("")}, usage: map[int]string{0: "1"},
			wantErr: "missing request for cpu"},
		{name: "no metrics", current: 1, target: 50, pods: []podSpec{running("1")}, usage: map[int]string{}, wantErr: "did not receive metrics"},
		{name: "no pods", current: 1, target: 50, usage: map[int]string{0: "1"}, wantErr: "no pods returned by selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, util, _, err := testCalculator().utilizationReplicas(tc.current, tc.target, corev1.ResourceCPU,
				makePods(corev1.ResourceCPU, tc.pods...), makeMetrics(corev1.ResourceCPU, tc.usage))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || util != tc.wantUtilization {
				t.Errorf("replicas, utilization = %d, %d; want %d, %d", got, util, tc.want, tc.wantUtilization)
			}
		})
	}
}

func TestAverageValueReplicas(t *testing.T) {
	for _, tc := range []struct {
		name      string
		current   int32
		target    string
		pods      []podSpec
		usage     map[int]string
		want      int32
		wantUsage string
	}{
		{name: "memory above target", current: 2, target: "100Mi", pods: []podSpec{running(""), running("")},
			usage: map[int]string{0: "200Mi", 1: "400Mi"}, want: 6, wantUsage: "300Mi"},
		{name: "memory below target", current: 4, target: "100Mi", pods: []podSpec{running(""), running(""), running(""), running("")},
			usage: map[int]string{0: "10Mi", 1: "30Mi", 2: "20Mi", 3: "20Mi"}, want: 1, wantUsage: "20Mi"},
		{name: "missing pod counts as the target on a scale-down", current: 2, target: "100Mi", pods: []podSpec{running(""), running("")},
			usage: map[int]string{0: "20Mi"}, want: 2, wantUsage: "20Mi"},
		{name: "within tolerance", current: 2, target: "100Mi", pods: []podSpec{running(""), running("")},
			usage: map[int]string{0: "105Mi", 1: "95Mi"}, want: 2, wantUsage: "100Mi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := resource.MustParse(tc.target)
			got, usage, err := testCalculator().averageValueReplicas(tc.current, target.MilliValue(), corev1.ResourceMemory,
				makePods(corev1.ResourceMemory, tc.pods...), makeMetrics(corev1.ResourceMemory, tc.usage))
			if err != nil {
				t.Fatal(err)
			}
			want := resource.MustParse(tc.wantUsage)
			if got != tc.want || usage != want.MilliValue() {
				t.Errorf("replicas, usage = %d, %d; want %d, %d", got, usage, tc.want, want.MilliValue())
			}
		})
	}
}

func TestPodMetricsForNeedsEveryContainer(t *testing.T) {
	items := []metricsv1beta1.PodMetrics{
		{ObjectMeta: metav1.ObjectMeta{Name: "full"}, Containers: []metricsv1beta1.ContainerMetrics{
			{Name: "a", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
			{Name: "b", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "partial"}, Containers: []metricsv1beta1.ContainerMetrics{
			{Name: "a", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
			{Name: "b", Usage: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "empty"}},
	}
	got := podMetricsFor(items, corev1.ResourceCPU)
	if len(got) != 1 || got["full"].value != 350 {
		t.Fatalf("podMetricsFor = %+v, want only full at 350m", got)
	}
}
