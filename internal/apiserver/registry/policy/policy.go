// Package policy describes policy/v1 poddisruptionbudgets.
package policy

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// Resources returns the policy/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{GroupVersion: policyv1.SchemeGroupVersion, Resource: "poddisruptionbudgets", Kind: "PodDisruptionBudget",
			ListKind: "PodDisruptionBudgetList", SingularName: "poddisruptionbudget", ShortNames: []string{"pdb"},
			Namespaced: true, Subresources: []string{"status"}, Strategy: PDBStrategy},
	}
}

// PDBStrategy is the strategy of poddisruptionbudgets.
var PDBStrategy = registry.Strategy{
	PrepareForCreate: func(obj runtime.Object) {
		obj.(*policyv1.PodDisruptionBudget).Status = policyv1.PodDisruptionBudgetStatus{}
	},
	Validate:       func(obj runtime.Object) field.ErrorList { return validatePDB(obj.(*policyv1.PodDisruptionBudget)) },
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validatePDB(obj.(*policyv1.PodDisruptionBudget)) },
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Min Available", Type: "string", Description: "The minimum number of pods that must be available."},
		{Name: "Max Unavailable", Type: "string", Description: "The maximum number of pods that may be unavailable."},
		{Name: "Allowed Disruptions", Type: "integer", Description: "Calculated number of pods that may be disrupted at this time."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		p := obj.(*policyv1.PodDisruptionBudget)
		return []interface{}{p.Name, intOrNA(p.Spec.MinAvailable), intOrNA(p.Spec.MaxUnavailable),
			int64(p.Status.DisruptionsAllowed), registry.Age(p.CreationTimestamp)}
	},
}

func intOrNA(v *intstr.IntOrString) string {
	if v == nil {
		return "N/A"
	}
	return v.String()
}

func validatePDB(p *policyv1.PodDisruptionBudget) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(sp, p.Spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	errs = append(errs, validatePositiveIntOrPercent(p.Spec.MinAvailable, sp.Child("minAvailable"))...)
	errs = append(errs, validatePositiveIntOrPercent(p.Spec.MaxUnavailable, sp.Child("maxUnavailable"))...)
	if p.Spec.Selector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(p.Spec.Selector, metav1validation.LabelSelectorValidationOptions{}, sp.Child("selector"))...)
	}
	if pol := p.Spec.UnhealthyPodEvictionPolicy; pol != nil {
		policies := []policyv1.UnhealthyPodEvictionPolicyType{policyv1.IfHealthyBudget, policyv1.AlwaysAllow}
		if *pol != policyv1.IfHealthyBudget && *pol != policyv1.AlwaysAllow {
			errs = append(errs, field.NotSupported(sp.Child("unhealthyPodEvictionPolicy"), *pol, policies))
		}
	}
	return errs
}

func validatePositiveIntOrPercent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			return field.ErrorList{field.Invalid(p, v.IntVal, "must be greater than or equal to 0")}
		}
		return nil
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, 100, false)
	if err != nil || len(v.StrVal) < 2 || v.StrVal[len(v.StrVal)-1] != '%' {
		return field.ErrorList{field.Invalid(p, v, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")}
	}
	if n < 0 || n > 100 {
		return field.ErrorList{field.Invalid(p, v, "must not be greater than 100%")}
	}
	return nil
}
