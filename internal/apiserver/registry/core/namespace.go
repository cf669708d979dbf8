package core

import (
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// NamespaceStrategy is the strategy of namespaces. The API server's finalize subresource is the
// only way to change spec.finalizers once the namespace exists.
var NamespaceStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		ns := obj.(*corev1.Namespace)
		if ns.Status.Phase == "" {
			ns.Status.Phase = corev1.NamespaceActive
		}
		if ns.Name != "" {
			if ns.Labels == nil {
				ns.Labels = map[string]string{}
			}
			ns.Labels[corev1.LabelMetadataName] = ns.Name
		}
	},
	PrepareForCreate: func(obj runtime.Object) {
		ns := obj.(*corev1.Namespace)
		ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		for _, f := range ns.Spec.Finalizers {
			if f == corev1.FinalizerKubernetes {
				return
			}
		}
		ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	},
	Validate:       func(obj runtime.Object) field.ErrorList { return validateNamespace(obj.(*corev1.Namespace)) },
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateNamespace(obj.(*corev1.Namespace)) },
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Status", Type: "string", Description: "The status of the namespace"},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		ns := obj.(*corev1.Namespace)
		return []interface{}{ns.Name, string(ns.Status.Phase), registry.Age(ns.CreationTimestamp)}
	},
	Fields: func(obj runtime.Object) fields.Set {
		return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
	},
}

func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	var errs field.ErrorList
	// The name (a DNS-1123 label) is checked with the rest of the metadata by the API server.
	for i, f := range ns.Spec.Finalizers {
		errs = append(errs, apivalidation.ValidateFinalizerName(string(f), field.NewPath("spec", "finalizers").Index(i))...)
	}
	phases := []corev1.NamespacePhase{corev1.NamespaceActive, corev1.NamespaceTerminating}
	if ns.Status.Phase != "" && !supported(ns.Status.Phase, phases) {
		errs = append(errs, field.NotSupported(field.NewPath("status", "phase"), ns.Status.Phase, phases))
	}
	return errs
}
