package podautoscaler

import (
	"context"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

// fixture is a controller over fake clients: a Deployment "web" whose scale the test sets,
// its pods, and the pod metrics the fake metrics API returns.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	metrics  *metricsfake.Clientset
	recorder *record.FakeRecorder
	ctrl     *Controller
	scale    *autoscalingv1.Scale // nil: the target does not exist
	usage    []metricsv1beta1.PodMetrics
	scaledTo []int32
}

func newHPA() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Generation: 1},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)}}}},
		},
	}
}

func newFixture(t *testing.T, hpa *autoscalingv2.HorizontalPodAutoscaler, replicas int32, cpuUsage ...string) *fixture {
	f := &fixture{t: t, recorder: record.NewFakeRecorder(100)}
	objs := []runtime.Object{hpa}
	var specs []podSpec
	for range cpuUsage {
		specs = append(specs, running("100m"))
	}
	for i, p := range makePods(corev1.ResourceCPU, specs...) {
		objs = append(objs, p)
		f.usage = append(f.usage, metricsv1beta1.PodMetrics{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: "ns", Labels: p.Labels},
			Timestamp: metav1.NewTime(testNow.Add(-5 * time.Second)), Window: metav1.Duration{Duration: 15 * time.Second},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "c0", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuUsage[i])}}}})
	}
	f.scale = &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", ResourceVersion: "7"},
		Spec: autoscalingv1.ScaleSpec{Replicas: replicas}, Status: autoscalingv1.ScaleStatus{Replicas: replicas, Selector: "app=web"}}
	f.client = fake.NewClientset(objs...)
	f.client.PrependReactor("get", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		if f.scale == nil {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, "web")
		}
		return true, f.scale.DeepCopy(), nil
	})
	f.client.PrependReactor("update", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		sc := a.(clienttesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		if sc.ResourceVersion != f.scale.ResourceVersion {
			t.Errorf("scale update without the read resourceVersion: %q", sc.ResourceVersion)
		}
		f.scaledTo = append(f.scaledTo, sc.Spec.Replicas)
		return true, sc, nil
	})
	f.metrics = metricsfake.NewSimpleClientset()
	f.metrics.PrependReactor("list", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		sel := a.(clienttesting.ListAction).GetListRestrictions().Labels
		list := &metricsv1beta1.PodMetricsList{}
		for _, m := range f.usage {
			if m.Namespace == a.GetNamespace() && sel.Matches(labels.Set(m.Labels)) {
				list.Items = append(list.Items, m)
			}
		}
		return true, list, nil
	})
	factory := informers.NewSharedInformerFactory(f.client, 0)
	ctrl, err := New(Config{Client: f.client, Metrics: f.metrics, Informers: factory, Recorder: f.recorder, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	f.ctrl = ctrl
	controllertest.StartInformers(t, f.client, factory)
	return f
}

// sync runs one evaluation and returns the HPA's status as written (nil: not written).
func (f *fixture) sync() (*autoscalingv2.HorizontalPodAutoscalerStatus, error) {
	f.client.ClearActions()
	err := f.ctrl.sync(context.Background(), "ns/web")
	var status *autoscalingv2.HorizontalPodAutoscalerStatus
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "update" && a.GetResource().Resource == "horizontalpodautoscalers" && a.GetSubresource() == "status" {
			status = &a.(clienttesting.UpdateAction).GetObject().(*autoscalingv2.HorizontalPodAutoscaler).Status
		}
	}
	return status, err
}

func (f *fixture) events() string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return strings.Join(out, "\n")
		}
	}
}

func condition(st *autoscalingv2.HorizontalPodAutoscalerStatus, t autoscalingv2.HorizontalPodAutoscalerConditionType) string {
	for _, c := range st.Conditions {
		if c.Type == t {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return "none"
}

func TestScaleUpOnCPU(t *testing.T) {
	// Two pods at 200% of a 100m request against a 50% target want 8 replicas; without
	// behavior one sync may at most go to max(2×2, 4) = 4.
	f := newFixture(t, newHPA(), 2, "200m", "200m")
	st, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.scaledTo) != 1 || f.scaledTo[0] != 4 {
		t.Fatalf("scaled to %v, want [4]", f.scaledTo)
	}
	if st == nil || st.CurrentReplicas != 2 || st.DesiredReplicas != 4 || st.LastScaleTime == nil || !st.LastScaleTime.Time.Equal(testNow) {
		t.Fatalf("status = %+v", st)
	}
	if len(st.CurrentMetrics) != 1 || st.CurrentMetrics[0].Resource == nil || *st.CurrentMetrics[0].Resource.Current.AverageUtilization != 200 ||
		st.CurrentMetrics[0].Resource.Current.AverageValue.MilliValue() != 200 {
		t.Fatalf("currentMetrics = %+v", st.CurrentMetrics)
	}
	for typ, want := range map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.AbleToScale: "True/SucceededRescale", autoscalingv2.ScalingActive: "True/ValidMetricFound",
		autoscalingv2.ScalingLimited: "True/ScaleUpLimit",
	} {
		if got := condition(st, typ); got != want {
			t.Errorf("%s = %s, want %s", typ, got, want)
		}
	}
	if ev := f.events(); !strings.Contains(ev, "Normal SuccessfulRescale New size: 4; reason: cpu resource utilization (percentage of request) above target") {
		t.Errorf("events:\n%s", ev)
	}
}

func TestScaleDownIsStabilised(t *testing.T) {
	// Idle pods want 1 replica, but the first recommendation is the current size, which
	// holds for the 5-minute window.
	f := newFixture(t, newHPA(), 3, "10m", "10m", "10m")
	st, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.scaledTo) != 0 || st.DesiredReplicas != 3 || condition(st, autoscalingv2.AbleToScale) != "True/ScaleDownStabilized" {
		t.Fatalf("scaled to %v, status %+v", f.scaledTo, st)
	}
	f.ctrl.now = func() time.Time { return testNow.Add(6 * time.Minute) }
	f.ctrl.calc.now = f.ctrl.now
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if len(f.scaledTo) != 1 || f.scaledTo[0] != 1 {
		t.Fatalf("after the window scaled to %v, want [1]", f.scaledTo)
	}
}

func TestMissingTarget(t *testing.T) {
	f := newFixture(t, newHPA(), 2, "200m")
	f.scale = nil
	st, err := f.sync()
	if err == nil {
		t.Fatal("a missing target must be an error (retried next period)")
	}
	if st == nil || condition(st, autoscalingv2.AbleToScale) != "False/FailedGetScale" {
		t.Fatalf("status = %+v", st)
	}
	if ev := f.events(); !strings.Contains(ev, `Warning FailedGetScale deployments.apps "web" not found`) {
		t.Errorf("events:\n%s", ev)
	}
	if len(f.scaledTo) != 0 {
		t.Errorf("scaled to %v", f.scaledTo)
	}
}

func TestNoMetrics(t *testing.T) {
	f := newFixture(t, newHPA(), 2, "200m", "200m")
	f.usage = nil
	st, err := f.sync()
	if err == nil {
		t.Fatal("no metrics must be an error")
	}
	if st == nil || condition(st, autoscalingv2.ScalingActive) != "False/FailedGetResourceMetric" ||
		condition(st, autoscalingv2.AbleToScale) != "True/SucceededGetScale" || st.CurrentReplicas != 2 {
		t.Fatalf("status = %+v", st)
	}
	ev := f.events()
	if !strings.Contains(ev, "Warning FailedGetResourceMetric") || !strings.Contains(ev, "no metrics returned from resource metrics API") ||
		!strings.Contains(ev, "Warning FailedComputeMetricsReplicas") {
		t.Errorf("events:\n%s", ev)
	}
	if len(f.scaledTo) != 0 {
		t.Errorf("scaled to %v", f.scaledTo)
	}
}

func TestBoundsAndDisabledScaling(t *testing.T) {
	f := newFixture(t, newHPA(), 12, "50m")
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if len(f.scaledTo) != 1 || f.scaledTo[0] != 10 {
		t.Fatalf("above max: scaled to %v, want [10]", f.scaledTo)
	}
	f2 := newFixture(t, newHPA(), 0, "500m")
	st, err := f2.sync()
	if err != nil {
		t.Fatal(err)
	}
	if len(f2.scaledTo) != 0 || condition(st, autoscalingv2.ScalingActive) != "False/ScalingDisabled" {
		t.Fatalf("zero replicas: scaled to %v, status %+v", f2.scaledTo, st)
	}
}

func TestUnsupportedMetricKeepsOthers(t *testing.T) {
	// A failing metric next to a working one still lets the working one scale up.
	hpa := newHPA()
	hpa.Spec.Metrics = append(hpa.Spec.Metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType,
		Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "qps"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("1"))}}})
	f := newFixture(t, hpa, 2, "100m", "100m")
	_, err := f.sync()
	if err == nil || !strings.Contains(err.Error(), "invalid metrics (1 invalid out of 2)") {
		t.Fatalf("err = %v", err)
	}
	if len(f.scaledTo) != 1 || f.scaledTo[0] != 4 {
		t.Fatalf("scaled to %v, want [4]", f.scaledTo)
	}
}

func TestDeletedAutoscalerForgetsHistory(t *testing.T) {
	f := newFixture(t, newHPA(), 2, "50m", "50m")
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.client.AutoscalingV2().HorizontalPodAutoscalers("ns").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := f.ctrl.hpaLister.HorizontalPodAutoscalers("ns").Get("web"); apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the informer did not see the deletion")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if len(f.ctrl.history) != 0 {
		t.Fatalf("history kept: %v", f.ctrl.history)
	}
}
