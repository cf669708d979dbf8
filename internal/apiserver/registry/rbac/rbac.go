// Package rbac describes rbac.authorization.k8s.io/v1 Roles, ClusterRoles, RoleBindings and
// ClusterRoleBindings: defaults, validation with Kubernetes' messages and kubectl's table
// columns. Authorization itself (rule matching, escalation checks, the default policy) is in
// apiserver/authz; the API server applies the escalation checks to writes of these kinds.
package rbac

import (
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	corevalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// Resources returns the rbac.authorization.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	gv := rbacv1.SchemeGroupVersion
	return []*registry.Resource{
		{GroupVersion: gv, Resource: "clusterrolebindings", Kind: "ClusterRoleBinding", ListKind: "ClusterRoleBindingList",
			SingularName: "clusterrolebinding", Strategy: ClusterRoleBindingStrategy},
		{GroupVersion: gv, Resource: "clusterroles", Kind: "ClusterRole", ListKind: "ClusterRoleList",
			SingularName: "clusterrole", Strategy: ClusterRoleStrategy},
		{GroupVersion: gv, Resource: "rolebindings", Kind: "RoleBinding", ListKind: "RoleBindingList",
			SingularName: "rolebinding", Namespaced: true, Strategy: RoleBindingStrategy},
		{GroupVersion: gv, Resource: "roles", Kind: "Role", ListKind: "RoleList",
			SingularName: "role", Namespaced: true, Strategy: RoleStrategy},
	}
}

// ValidateName is Kubernetes' ValidateRBACName: RBAC names are path segments
// ("system:node"), not DNS names.
func ValidateName(name string, _ bool) []string { return path.IsValidPathSegmentName(name) }

var roleColumns = []metav1.TableColumnDefinition{
	registry.NameColumn,
	{Name: "Created At", Type: "date", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."},
}

func createdAt(t metav1.Time) string { return t.UTC().Format(time.RFC3339) }

var bindingColumns = []metav1.TableColumnDefinition{
	registry.NameColumn,
	{Name: "Role", Type: "string", Description: "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."},
	registry.AgeColumn,
	{Name: "Users", Type: "string", Priority: 1, Description: "Users in the binding"},
	{Name: "Groups", Type: "string", Priority: 1, Description: "Groups in the binding"},
	{Name: "ServiceAccounts", Type: "string", Priority: 1, Description: "ServiceAccounts in the binding"},
}

func bindingRow(name string, ref rbacv1.RoleRef, subjects []rbacv1.Subject, created metav1.Time) []interface{} {
	var users, groups, sas []string
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		case rbacv1.ServiceAccountKind:
			sas = append(sas, s.Namespace+":"+s.Name)
		}
	}
	return []interface{}{name, ref.Kind + "/" + ref.Name, registry.Age(created),
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}
}

// RoleStrategy is the strategy of roles.
var RoleStrategy = registry.Strategy{
	Validate: func(obj runtime.Object) field.ErrorList { return validateRules(obj.(*rbacv1.Role).Rules, true) },
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList {
		return validateRules(obj.(*rbacv1.Role).Rules, true)
	},
	Columns: roleColumns,
	Row: func(obj runtime.Object) []interface{} {
		r := obj.(*rbacv1.Role)
		return []interface{}{r.Name, createdAt(r.CreationTimestamp)}
	},
}

// ClusterRoleStrategy is the strategy of cluster roles.
var ClusterRoleStrategy = registry.Strategy{
	Validate:       func(obj runtime.Object) field.ErrorList { return validateClusterRole(obj.(*rbacv1.ClusterRole)) },
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateClusterRole(obj.(*rbacv1.ClusterRole)) },
	Columns:        roleColumns,
	Row: func(obj runtime.Object) []interface{} {
		r := obj.(*rbacv1.ClusterRole)
		return []interface{}{r.Name, createdAt(r.CreationTimestamp)}
	},
}

// RoleBindingStrategy is the strategy of role bindings.
var RoleBindingStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		b := obj.(*rbacv1.RoleBinding)
		defaultBinding(&b.RoleRef, b.Subjects)
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		b := obj.(*rbacv1.RoleBinding)
		return validateBinding(b.RoleRef, b.Subjects, true)
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		b, o := obj.(*rbacv1.RoleBinding), old.(*rbacv1.RoleBinding)
		return append(validateBinding(b.RoleRef, b.Subjects, true), validateRoleRefUpdate(b.RoleRef, o.RoleRef)...)
	},
	Columns: bindingColumns,
	Row: func(obj runtime.Object) []interface{} {
		b := obj.(*rbacv1.RoleBinding)
		return bindingRow(b.Name, b.RoleRef, b.Subjects, b.CreationTimestamp)
	},
}

// ClusterRoleBindingStrategy is the strategy of cluster role bindings.
var ClusterRoleBindingStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		b := obj.(*rbacv1.ClusterRoleBinding)
		defaultBinding(&b.RoleRef, b.Subjects)
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		b := obj.(*rbacv1.ClusterRoleBinding)
		return validateBinding(b.RoleRef, b.Subjects, false)
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		b, o := obj.(*rbacv1.ClusterRoleBinding), old.(*rbacv1.ClusterRoleBinding)
		return append(validateBinding(b.RoleRef, b.Subjects, false), validateRoleRefUpdate(b.RoleRef, o.RoleRef)...)
	},
	Columns: bindingColumns,
	Row: func(obj runtime.Object) []interface{} {
		b := obj.(*rbacv1.ClusterRoleBinding)
		return bindingRow(b.Name, b.RoleRef, b.Subjects, b.CreationTimestamp)
	},
}

// defaultBinding applies rbac/v1's defaults: the role reference and user and group subjects
// are in the rbac.authorization.k8s.io group.
func defaultBinding(ref *rbacv1.RoleRef, subjects []rbacv1.Subject) {
	if ref.APIGroup == "" {
		ref.APIGroup = rbacv1.GroupName
	}
	for i := range subjects {
		if subjects[i].APIGroup == "" && (subjects[i].Kind == rbacv1.UserKind || subjects[i].Kind == rbacv1.GroupKind) {
			subjects[i].APIGroup = rbacv1.GroupName
		}
	}
}

func validateClusterRole(r *rbacv1.ClusterRole) field.ErrorList {
	errs := validateRules(r.Rules, false)
	if r.AggregationRule != nil {
		p := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(r.AggregationRule.ClusterRoleSelectors) == 0 {
			errs = append(errs, field.Required(p, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range r.AggregationRule.ClusterRoleSelectors {
			sel := &r.AggregationRule.ClusterRoleSelectors[i]
			errs = append(errs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p.Index(i))...)
			if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
				errs = append(errs, field.Invalid(p.Index(i), sel, "invalid label selector."))
			}
		}
	}
	return errs
}

// validateRules is Kubernetes' ValidatePolicyRule over a role's rules.
func validateRules(rules []rbacv1.PolicyRule, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	for i, r := range rules {
		p := field.NewPath("rules").Index(i)
		if len(r.Verbs) == 0 {
			errs = append(errs, field.Required(p.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(r.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), r.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(r.APIGroups) > 0 || len(r.Resources) > 0 {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), r.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(r.APIGroups) == 0 {
			errs = append(errs, field.Required(p.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(r.Resources) == 0 {
			errs = append(errs, field.Required(p.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

func validateBinding(ref rbacv1.RoleRef, subjects []rbacv1.Subject, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	rp := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(rp.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kinds := []string{"ClusterRole"}
	if namespaced {
		kinds = []string{"Role", "ClusterRole"}
	}
	if ref.Kind != "ClusterRole" && (!namespaced || ref.Kind != "Role") {
		errs = append(errs, field.NotSupported(rp.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(rp.Child("name"), ""))
	} else {
		for _, msg := range ValidateName(ref.Name, false) {
			errs = append(errs, field.Invalid(rp.Child("name"), ref.Name, msg))
		}
	}
	for i, s := range subjects {
		errs = append(errs, validateSubject(s, namespaced, field.NewPath("subjects").Index(i))...)
	}
	return errs
}

func validateSubject(s rbacv1.Subject, namespaced bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		if s.Name != "" {
			for _, msg := range corevalidation.NameIsDNSSubdomain(s.Name, false) {
				errs = append(errs, field.Invalid(p.Child("name"), s.Name, msg))
			}
		}
		if s.APIGroup != "" {
			errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{""}))
		}
		if !namespaced && s.Namespace == "" {
			errs = append(errs, field.Required(p.Child("namespace"), ""))
		}
	case rbacv1.UserKind, rbacv1.GroupKind:
		if s.APIGroup != rbacv1.GroupName {
			errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
	}
	return errs
}

func validateRoleRefUpdate(ref, old rbacv1.RoleRef) field.ErrorList {
	if ref != old {
		return field.ErrorList{field.Invalid(field.NewPath("roleRef"), ref, "cannot change roleRef")}
	}
	return nil
}
