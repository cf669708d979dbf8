package autoscaling

import (
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestV1RoundTrip(t *testing.T) {
	mem := resource.MustParse("100Mi")
	v2 := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", ResourceVersion: "5", Annotations: map[string]string{"keep": "me"}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 7,
			Metrics: []autoscalingv2.MetricSpec{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](60)}}},
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &mem}}},
			},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 3, DesiredReplicas: 4,
			CurrentMetrics: []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
				Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To[int32](90)}}}},
			Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "SucceededRescale"}}},
	}
	v1 := FromV2(v2)
	if *v1.Spec.TargetCPUUtilizationPercentage != 60 || *v1.Status.CurrentCPUUtilizationPercentage != 90 || v1.Status.DesiredReplicas != 4 ||
		v1.Annotations[annotationMetrics] == "" || v1.Annotations[annotationBehavior] == "" || v1.ResourceVersion != "5" {
		t.Fatalf("v1 = %+v", v1)
	}
	back := ToV2(v1)
	back.TypeMeta = v2.TypeMeta
	if !apiequality.Semantic.DeepEqual(back, v2) {
		t.Fatalf("round trip changed the object:\n%+v\n%+v", back.Spec, v2.Spec)
	}

	// What kubectl autoscale sends: v1 with a CPU target only.
	sent := &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas: ptr.To[int32](1), MaxReplicas: 5, TargetCPUUtilizationPercentage: ptr.To[int32](50)}}
	HPAV1Strategy.Default(sent)
	if errs := HPAV1Strategy.Validate(sent); len(errs) != 0 {
		t.Fatalf("kubectl autoscale's object is invalid: %v", errs)
	}
	stored := v1Resource().SharedStorage.ToStorage(sent).(*autoscalingv2.HorizontalPodAutoscaler)
	if len(stored.Spec.Metrics) != 1 || *stored.Spec.Metrics[0].Resource.Target.AverageUtilization != 50 || stored.Annotations != nil {
		t.Fatalf("stored = %+v", stored)
	}
	// Without a target, v2's default (80% CPU) applies.
	sent.Spec.TargetCPUUtilizationPercentage = nil
	stored = v1Resource().SharedStorage.ToStorage(sent).(*autoscalingv2.HorizontalPodAutoscaler)
	if len(stored.Spec.Metrics) != 1 || *stored.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Fatalf("stored without a target = %+v", stored.Spec.Metrics)
	}
	sent.Spec.TargetCPUUtilizationPercentage = ptr.To[int32](0)
	if errs := HPAV1Strategy.Validate(sent); len(errs) != 1 {
		t.Fatalf("a zero target: %v", errs)
	}
}
