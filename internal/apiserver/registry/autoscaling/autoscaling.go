// Package autoscaling describes autoscaling/v2 horizontalpodautoscalers, also served as
// autoscaling/v1 (see v1.go), and the autoscaling/v1 Scale kind of the scale subresources.
package autoscaling

import (
	"fmt"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// Resources returns the autoscaling resources, v2 (the preferred version) first.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{GroupVersion: autoscalingv2.SchemeGroupVersion, Resource: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler",
			ListKind: "HorizontalPodAutoscalerList", SingularName: "horizontalpodautoscaler", ShortNames: []string{"hpa"},
			Categories: []string{"all"}, Namespaced: true, Subresources: []string{"status"}, Strategy: HPAStrategy},
		v1Resource(),
	}
}

// HPAStrategy is the strategy of horizontalpodautoscalers.
var HPAStrategy = registry.Strategy{
	Default: func(obj runtime.Object) { defaultHPA(obj.(*autoscalingv2.HorizontalPodAutoscaler)) },
	PrepareForCreate: func(obj runtime.Object) {
		obj.(*autoscalingv2.HorizontalPodAutoscaler).Status = autoscalingv2.HorizontalPodAutoscalerStatus{}
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		return validateHPA(obj.(*autoscalingv2.HorizontalPodAutoscaler))
	},
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList {
		return validateHPA(obj.(*autoscalingv2.HorizontalPodAutoscaler))
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Reference", Type: "string", Description: "scaleTargetRef points to the target resource to scale."},
		{Name: "Targets", Type: "string", Description: "metrics contains the specifications for which to use to calculate the desired replica count."},
		{Name: "MinPods", Type: "string", Description: "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."},
		{Name: "MaxPods", Type: "string", Description: "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."},
		{Name: "Replicas", Type: "string", Description: "currentReplicas is current number of replicas of pods managed by this autoscaler."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		h := obj.(*autoscalingv2.HorizontalPodAutoscaler)
		minPods := "<unset>"
		if h.Spec.MinReplicas != nil {
			minPods = fmt.Sprintf("%d", *h.Spec.MinReplicas)
		}
		return []interface{}{h.Name, h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name,
			hpaTargets(h.Spec.Metrics, h.Status.CurrentMetrics), minPods, int64(h.Spec.MaxReplicas),
			int64(h.Status.CurrentReplicas), registry.Age(h.CreationTimestamp)}
	},
}

func defaultHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	if h.Spec.MinReplicas == nil {
		h.Spec.MinReplicas = ptr.To(int32(1))
	}
	if len(h.Spec.Metrics) == 0 {
		h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: "cpu", Target: autoscalingv2.MetricTarget{
				Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(int32(80))}}}}
	}
	if b := h.Spec.Behavior; b != nil {
		b.ScaleUp = defaultRules(b.ScaleUp, 0, []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}})
		b.ScaleDown = defaultRules(b.ScaleDown, 300, []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}})
	}
}

func defaultRules(r *autoscalingv2.HPAScalingRules, window int32, policies []autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
	if r == nil {
		r = &autoscalingv2.HPAScalingRules{}
	}
	if r.StabilizationWindowSeconds == nil {
		r.StabilizationWindowSeconds = ptr.To(window)
	}
	if r.SelectPolicy == nil {
		r.SelectPolicy = ptr.To(autoscalingv2.MaxChangePolicySelect)
	}
	if r.Policies == nil {
		r.Policies = policies
	}
	return r
}

func validateHPA(h *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	ref := sp.Child("scaleTargetRef")
	if h.Spec.ScaleTargetRef.Kind == "" {
		errs = append(errs, field.Required(ref.Child("kind"), ""))
	}
	if h.Spec.ScaleTargetRef.Name == "" {
		errs = append(errs, field.Required(ref.Child("name"), ""))
	}
	minReplicas := ptr.Deref(h.Spec.MinReplicas, 1)
	if minReplicas < 1 { // scale to zero is an alpha feature
		errs = append(errs, field.Invalid(sp.Child("minReplicas"), minReplicas, "must be greater than or equal to 1"))
	}
	if h.Spec.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), h.Spec.MaxReplicas, "must be greater than 0"))
	}
	if h.Spec.MaxReplicas < minReplicas {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), h.Spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	types := []autoscalingv2.MetricSourceType{autoscalingv2.ContainerResourceMetricSourceType, autoscalingv2.ExternalMetricSourceType,
		autoscalingv2.ObjectMetricSourceType, autoscalingv2.PodsMetricSourceType, autoscalingv2.ResourceMetricSourceType}
	for i, m := range h.Spec.Metrics {
		mp := sp.Child("metrics").Index(i)
		switch m.Type {
		case autoscalingv2.ResourceMetricSourceType:
			if m.Resource == nil {
				errs = append(errs, field.Required(mp.Child("resource"), "must populate information for the given metric source"))
			}
		case autoscalingv2.PodsMetricSourceType:
			if m.Pods == nil {
				errs = append(errs, field.Required(mp.Child("pods"), "must populate information for the given metric source"))
			}
		case autoscalingv2.ObjectMetricSourceType:
			if m.Object == nil {
				errs = append(errs, field.Required(mp.Child("object"), "must populate information for the given metric source"))
			}
		case autoscalingv2.ExternalMetricSourceType:
			if m.External == nil {
				errs = append(errs, field.Required(mp.Child("external"), "must populate information for the given metric source"))
			}
		case autoscalingv2.ContainerResourceMetricSourceType:
			if m.ContainerResource == nil {
				errs = append(errs, field.Required(mp.Child("containerResource"), "must populate information for the given metric source"))
			}
		case "":
			errs = append(errs, field.Required(mp.Child("type"), "must specify a metric source type"))
		default:
			errs = append(errs, field.NotSupported(mp.Child("type"), m.Type, types))
		}
	}
	return errs
}

// hpaTargets is the TARGETS cell: "cpu: 40%/80%", at most two metrics then "+ N more...".
func hpaTargets(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	var list []string
	for i, spec := range specs {
		var st *autoscalingv2.MetricStatus
		if i < len(statuses) {
			st = &statuses[i]
		}
		current := "<unknown>"
		switch spec.Type {
		case autoscalingv2.ExternalMetricSourceType:
			if spec.External == nil {
				continue
			}
			list = append(list, valueTarget(spec.External.Target, st != nil && st.External != nil, func() autoscalingv2.MetricValueStatus { return st.External.Current }))
		case autoscalingv2.PodsMetricSourceType:
			if spec.Pods == nil {
				continue
			}
			if st != nil && st.Pods != nil && st.Pods.Current.AverageValue != nil {
				current = st.Pods.Current.AverageValue.String()
			}
			list = append(list, fmt.Sprintf("%s/%s", current, quantityString(spec.Pods.Target.AverageValue)))
		case autoscalingv2.ObjectMetricSourceType:
			if spec.Object == nil {
				continue
			}
			list = append(list, valueTarget(spec.Object.Target, st != nil && st.Object != nil, func() autoscalingv2.MetricValueStatus { return st.Object.Current }))
		case autoscalingv2.ResourceMetricSourceType:
			if spec.Resource == nil {
				continue
			}
			var cur *autoscalingv2.MetricValueStatus
			if st != nil && st.Resource != nil {
				cur = &st.Resource.Current
			}
			list = append(list, resourceTarget(string(spec.Resource.Name), spec.Resource.Target, cur))
		case autoscalingv2.ContainerResourceMetricSourceType:
			if spec.ContainerResource == nil {
				continue
			}
			var cur *autoscalingv2.MetricValueStatus
			if st != nil && st.ContainerResource != nil {
				cur = &st.ContainerResource.Current
			}
			list = append(list, resourceTarget(string(spec.ContainerResource.Name), spec.ContainerResource.Target, cur))
		default:
			list = append(list, "<unknown type>")
		}
	}
	const max = 2
	if len(list) > max {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:max], ", "), len(list)-max)
	}
	return strings.Join(list, ", ")
}

func valueTarget(t autoscalingv2.MetricTarget, hasStatus bool, cur func() autoscalingv2.MetricValueStatus) string {
	current := "<unknown>"
	if t.AverageValue != nil {
		if hasStatus && cur().AverageValue != nil {
			current = cur().AverageValue.String()
		}
		return fmt.Sprintf("%s/%s (avg)", current, t.AverageValue.String())
	}
	if hasStatus && cur().Value != nil {
		current = cur().Value.String()
	}
	return fmt.Sprintf("%s/%s", current, quantityString(t.Value))
}

func resourceTarget(name string, t autoscalingv2.MetricTarget, cur *autoscalingv2.MetricValueStatus) string {
	current := "<unknown>"
	if t.AverageValue != nil {
		if cur != nil && cur.AverageValue != nil {
			current = cur.AverageValue.String()
		}
		return fmt.Sprintf("%s: %s/%s", name, current, t.AverageValue.String())
	}
	if cur != nil && cur.AverageUtilization != nil {
		current = fmt.Sprintf("%d%%", *cur.AverageUtilization)
	}
	target := "<auto>"
	if t.AverageUtilization != nil {
		target = fmt.Sprintf("%d%%", *t.AverageUtilization)
	}
	return fmt.Sprintf("%s: %s/%s", name, current, target)
}

func quantityString(q *resource.Quantity) string {
	if q == nil {
		return "<unset>"
	}
	return q.String()
}
