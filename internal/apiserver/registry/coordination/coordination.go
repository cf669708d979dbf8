// Package coordination describes coordination.k8s.io/v1 leases.
package coordination

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// Resources returns the coordination.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{GroupVersion: coordinationv1.SchemeGroupVersion, Resource: "leases", Kind: "Lease", ListKind: "LeaseList",
			SingularName: "lease", Namespaced: true, Strategy: LeaseStrategy},
	}
}

// LeaseStrategy is the strategy of leases.
var LeaseStrategy = registry.Strategy{
	Validate:       func(obj runtime.Object) field.ErrorList { return validateLease(obj.(*coordinationv1.Lease)) },
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateLease(obj.(*coordinationv1.Lease)) },
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Holder", Type: "string", Description: "holderIdentity contains the identity of the holder of a current lease."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		l := obj.(*coordinationv1.Lease)
		return []interface{}{l.Name, ptr.Deref(l.Spec.HolderIdentity, ""), registry.Age(l.CreationTimestamp)}
	},
}

func validateLease(l *coordinationv1.Lease) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if v := l.Spec.LeaseDurationSeconds; v != nil && *v <= 0 {
		errs = append(errs, field.Invalid(sp.Child("leaseDurationSeconds"), *v, "must be greater than 0"))
	}
	if v := l.Spec.LeaseTransitions; v != nil && *v < 0 {
		errs = append(errs, field.Invalid(sp.Child("leaseTransitions"), *v, "must be greater than or equal to 0"))
	}
	return errs
}
