// Package scheduling describes scheduling.k8s.io/v1 priorityclasses.
package scheduling

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// HighestUserDefinablePriority is the largest value a priority class not named system-* may have.
const HighestUserDefinablePriority = int32(1000000000)

// Resources returns the scheduling.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{GroupVersion: schedulingv1.SchemeGroupVersion, Resource: "priorityclasses", Kind: "PriorityClass",
			ListKind: "PriorityClassList", SingularName: "priorityclass", ShortNames: []string{"pc"}, Strategy: PriorityClassStrategy},
	}
}

// PriorityClassStrategy is the strategy of priorityclasses.
var PriorityClassStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		if pc := obj.(*schedulingv1.PriorityClass); pc.PreemptionPolicy == nil {
			pc.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
		}
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		return validatePriorityClass(obj.(*schedulingv1.PriorityClass))
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		pc, o := obj.(*schedulingv1.PriorityClass), old.(*schedulingv1.PriorityClass)
		errs := validatePriorityClass(pc)
		if pc.Value != o.Value {
			errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
		}
		if !ptr.Equal(pc.PreemptionPolicy, o.PreemptionPolicy) {
			errs = append(errs, field.Invalid(field.NewPath("preemptionPolicy"), pc.PreemptionPolicy, "field is immutable"))
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Value", Type: "integer", Description: "value represents the integer value of this priority class."},
		{Name: "Global-Default", Type: "boolean", Description: "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."},
		registry.AgeColumn,
		{Name: "PreemptionPolicy", Type: "string", Description: "preemptionPolicy is the Policy for preempting pods with lower priority."},
	},
	Row: func(obj runtime.Object) []interface{} {
		pc := obj.(*schedulingv1.PriorityClass)
		policy := "<unset>"
		if pc.PreemptionPolicy != nil {
			policy = string(*pc.PreemptionPolicy)
		}
		return []interface{}{pc.Name, int64(pc.Value), pc.GlobalDefault, registry.Age(pc.CreationTimestamp), policy}
	},
}

func validatePriorityClass(pc *schedulingv1.PriorityClass) field.ErrorList {
	var errs field.ErrorList
	if strings.HasPrefix(pc.Name, "system-") {
		if pc.Name != "system-cluster-critical" && pc.Name != "system-node-critical" {
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "name"), "priority class names with 'system-' prefix are reserved for system use only"))
		}
	} else if pc.Value > HighestUserDefinablePriority {
		errs = append(errs, field.Forbidden(field.NewPath("value"), "maximum allowed value of a user defined priority is 1000000000"))
	}
	if p := pc.PreemptionPolicy; p != nil && *p != corev1.PreemptLowerPriority && *p != corev1.PreemptNever {
		errs = append(errs, field.NotSupported(field.NewPath("preemptionPolicy"), *p, []corev1.PreemptionPolicy{corev1.PreemptLowerPriority, corev1.PreemptNever}))
	}
	return errs
}
