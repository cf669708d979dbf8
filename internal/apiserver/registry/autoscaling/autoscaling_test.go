package autoscaling

import (
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

func TestHPA(t *testing.T) {
	h := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5,
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
		Behavior:       &autoscalingv2.HorizontalPodAutoscalerBehavior{}}}
	HPAStrategy.Default(h)
	if *h.Spec.MinReplicas != 1 || len(h.Spec.Metrics) != 1 || *h.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("defaults: %+v", h.Spec)
	}
	if b := h.Spec.Behavior; *b.ScaleDown.StabilizationWindowSeconds != 300 || len(b.ScaleUp.Policies) != 2 || *b.ScaleUp.SelectPolicy != autoscalingv2.MaxChangePolicySelect {
		t.Errorf("behavior defaults: %+v", b)
	}
	if errs := HPAStrategy.Validate(h); len(errs) != 0 {
		t.Errorf("valid hpa: %v", errs)
	}
	row := HPAStrategy.Row(h)
	if row[1] != "Deployment/web" || row[2] != "cpu: <unknown>/80%" || row[3] != "1" || row[4] != int64(5) {
		t.Errorf("row %v", row)
	}
	h.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricStatus{Name: "cpu", Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To(int32(40))}}}}
	q := resource.MustParse("100")
	h.Spec.Metrics = append(h.Spec.Metrics,
		autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Target: autoscalingv2.MetricTarget{AverageValue: &q}}},
		autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Target: autoscalingv2.MetricTarget{AverageValue: &q}}})
	if got := HPAStrategy.Row(h)[2]; got != "cpu: 40%/80%, <unknown>/100 + 1 more..." {
		t.Errorf("targets %q", got)
	}
	h.Spec.MinReplicas = ptr.To(int32(6))
	if errs := HPAStrategy.Validate(h); len(errs) != 1 || errs[0].Field != "spec.maxReplicas" {
		t.Errorf("min > max: %v", errs)
	}
}
