package autoscaling

import (
	"encoding/json"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// autoscaling/v1 horizontalpodautoscalers are the v2 objects seen through v1, as in
// Kubernetes (kubectl autoscale creates v1 objects). v1 has room for one CPU utilization
// target only; what it cannot hold travels in these annotations so that a read-modify-write
// through v1 keeps it. Their contents are the v2 types as JSON.
const (
	annotationMetrics        = "autoscaling.alpha.kubernetes.io/metrics"
	annotationBehavior       = "autoscaling.alpha.kubernetes.io/behavior"
	annotationConditions     = "autoscaling.alpha.kubernetes.io/conditions"
	annotationCurrentMetrics = "autoscaling.alpha.kubernetes.io/current-metrics"
)

func v1Resource() *registry.Resource {
	return &registry.Resource{GroupVersion: autoscalingv1.SchemeGroupVersion, Resource: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler",
		ListKind: "HorizontalPodAutoscalerList", SingularName: "horizontalpodautoscaler", ShortNames: []string{"hpa"},
		Categories: []string{"all"}, Namespaced: true, Subresources: []string{"status"}, Strategy: HPAV1Strategy,
		SharedStorage: &registry.SharedStorage{
			Resource: autoscalingv2.SchemeGroupVersion.WithResource("horizontalpodautoscalers"),
			ToStorage: func(obj runtime.Object) runtime.Object {
				h := ToV2(obj.(*autoscalingv1.HorizontalPodAutoscaler))
				defaultHPA(h) // v2's defaults, which v1 writes skip
				return h
			},
			FromStorage: func(obj runtime.Object) runtime.Object { return FromV2(obj.(*autoscalingv2.HorizontalPodAutoscaler)) },
		}}
}

// HPAV1Strategy is the strategy of autoscaling/v1 horizontalpodautoscalers: v2's, through
// the conversion.
var HPAV1Strategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		h := obj.(*autoscalingv1.HorizontalPodAutoscaler)
		if h.Spec.MinReplicas == nil {
			h.Spec.MinReplicas = ptr.To[int32](1)
		}
	},
	PrepareForCreate: func(obj runtime.Object) {
		h := obj.(*autoscalingv1.HorizontalPodAutoscaler)
		h.Status = autoscalingv1.HorizontalPodAutoscalerStatus{}
		delete(h.Annotations, annotationConditions)
		delete(h.Annotations, annotationCurrentMetrics)
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		return validateHPAV1(obj.(*autoscalingv1.HorizontalPodAutoscaler))
	},
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList {
		return validateHPAV1(obj.(*autoscalingv1.HorizontalPodAutoscaler))
	},
	Columns: HPAStrategy.Columns,
	Row: func(obj runtime.Object) []interface{} {
		return HPAStrategy.Row(ToV2(obj.(*autoscalingv1.HorizontalPodAutoscaler)))
	},
}

func validateHPAV1(h *autoscalingv1.HorizontalPodAutoscaler) field.ErrorList {
	errs := validateHPA(ToV2(h))
	if p := h.Spec.TargetCPUUtilizationPercentage; p != nil && *p < 1 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "targetCPUUtilizationPercentage"), *p, "must be greater than 0"))
	}
	return errs
}

func isCPUUtilization(m autoscalingv2.MetricSpec) bool {
	return m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
		m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil
}

// FromV2 shows a stored v2 autoscaler as v1.
func FromV2(in *autoscalingv2.HorizontalPodAutoscaler) *autoscalingv1.HorizontalPodAutoscaler {
	out := &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: *in.ObjectMeta.DeepCopy()}
	out.APIVersion, out.Kind = autoscalingv1.SchemeGroupVersion.String(), "HorizontalPodAutoscaler"
	out.Spec = autoscalingv1.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: in.Spec.ScaleTargetRef.Kind, Name: in.Spec.ScaleTargetRef.Name,
			APIVersion: in.Spec.ScaleTargetRef.APIVersion},
		MinReplicas: in.Spec.MinReplicas, MaxReplicas: in.Spec.MaxReplicas,
	}
	var others []autoscalingv2.MetricSpec
	for _, m := range in.Spec.Metrics {
		if out.Spec.TargetCPUUtilizationPercentage == nil && isCPUUtilization(m) {
			out.Spec.TargetCPUUtilizationPercentage = ptr.To(*m.Resource.Target.AverageUtilization)
			continue
		}
		others = append(others, m)
	}
	out.Status = autoscalingv1.HorizontalPodAutoscalerStatus{ObservedGeneration: in.Status.ObservedGeneration, LastScaleTime: in.Status.LastScaleTime,
		CurrentReplicas: in.Status.CurrentReplicas, DesiredReplicas: in.Status.DesiredReplicas}
	for _, m := range in.Status.CurrentMetrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Current.AverageUtilization != nil {
			out.Status.CurrentCPUUtilizationPercentage = ptr.To(*m.Resource.Current.AverageUtilization)
			break
		}
	}
	setJSONAnnotation(&out.ObjectMeta.Annotations, annotationMetrics, others, len(others) > 0)
	setJSONAnnotation(&out.ObjectMeta.Annotations, annotationBehavior, in.Spec.Behavior, in.Spec.Behavior != nil)
	setJSONAnnotation(&out.ObjectMeta.Annotations, annotationConditions, in.Status.Conditions, len(in.Status.Conditions) > 0)
	setJSONAnnotation(&out.ObjectMeta.Annotations, annotationCurrentMetrics, in.Status.CurrentMetrics, len(in.Status.CurrentMetrics) > 0)
	return out
}

// ToV2 turns a v1 autoscaler into the stored v2 form; the annotations FromV2 adds are
// taken back.
func ToV2(in *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: *in.ObjectMeta.DeepCopy()}
	out.APIVersion, out.Kind = autoscalingv2.SchemeGroupVersion.String(), "HorizontalPodAutoscaler"
	out.Spec = autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: in.Spec.ScaleTargetRef.Kind, Name: in.Spec.ScaleTargetRef.Name,
			APIVersion: in.Spec.ScaleTargetRef.APIVersion},
		MinReplicas: in.Spec.MinReplicas, MaxReplicas: in.Spec.MaxReplicas,
	}
	if p := in.Spec.TargetCPUUtilizationPercentage; p != nil {
		out.Spec.Metrics = append(out.Spec.Metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(*p)}}})
	}
	var others []autoscalingv2.MetricSpec
	takeJSONAnnotation(out.Annotations, annotationMetrics, &others)
	out.Spec.Metrics = append(out.Spec.Metrics, others...)
	takeJSONAnnotation(out.Annotations, annotationBehavior, &out.Spec.Behavior)
	out.Status = autoscalingv2.HorizontalPodAutoscalerStatus{ObservedGeneration: in.Status.ObservedGeneration, LastScaleTime: in.Status.LastScaleTime,
		CurrentReplicas: in.Status.CurrentReplicas, DesiredReplicas: in.Status.DesiredReplicas}
	takeJSONAnnotation(out.Annotations, annotationConditions, &out.Status.Conditions)
	if !takeJSONAnnotation(out.Annotations, annotationCurrentMetrics, &out.Status.CurrentMetrics) && in.Status.CurrentCPUUtilizationPercentage != nil {
		out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
			Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To(*in.Status.CurrentCPUUtilizationPercentage)}}}}
	}
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	return out
}

func setJSONAnnotation(annotations *map[string]string, key string, v any, set bool) {
	if !set {
		delete(*annotations, key)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return // plain API types always marshal
	}
	if *annotations == nil {
		*annotations = map[string]string{}
	}
	(*annotations)[key] = string(b)
}

// takeJSONAnnotation decodes and removes an annotation; a malformed one is dropped, as
// Kubernetes' conversion does.
func takeJSONAnnotation(annotations map[string]string, key string, into any) bool {
	s, ok := annotations[key]
	if !ok {
		return false
	}
	delete(annotations, key)
	return json.Unmarshal([]byte(s), into) == nil
}
