package authz

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AutoUpdate reports whether the default policy may change an existing object: only the
// annotation rbac.authorization.kubernetes.io/autoupdate=false opts out, as in Kubernetes.
func AutoUpdate(m metav1.Object) bool {
	return m.GetAnnotations()[AutoUpdateAnnotation] != "false"
}

// ReconcileClusterRole returns existing updated to hold what desired holds (labels,
// annotations, rules, aggregation selectors), and whether anything changed. Nothing is
// removed, so administrators' additions survive restarts. The rules of an aggregated role
// are the aggregation controller's, and are left alone.
func ReconcileClusterRole(existing, desired *rbacv1.ClusterRole) (*rbacv1.ClusterRole, bool) {
	out := existing.DeepCopy()
	out.Labels = mergeMissing(out.Labels, desired.Labels)
	out.Annotations = mergeMissing(out.Annotations, desired.Annotations)
	if desired.AggregationRule != nil {
		if out.AggregationRule == nil {
			out.AggregationRule = &rbacv1.AggregationRule{}
		}
		for _, sel := range desired.AggregationRule.ClusterRoleSelectors {
			if !slices.ContainsFunc(out.AggregationRule.ClusterRoleSelectors, func(s metav1.LabelSelector) bool {
				return apiequality.Semantic.DeepEqual(s, sel)
			}) {
				out.AggregationRule.ClusterRoleSelectors = append(out.AggregationRule.ClusterRoleSelectors, *sel.DeepCopy())
			}
		}
	} else {
		for _, r := range desired.Rules {
			if ok, _ := Covers(out.Rules, []rbacv1.PolicyRule{r}); !ok {
				out.Rules = append(out.Rules, *r.DeepCopy())
			}
		}
	}
	return out, !apiequality.Semantic.DeepEqual(out, existing)
}

// ReconcileClusterRoleBinding returns existing updated to hold desired's subjects, labels
// and annotations. recreate is true when the role reference differs: it is immutable, so
// the binding must be deleted and created again.
func ReconcileClusterRoleBinding(existing, desired *rbacv1.ClusterRoleBinding) (out *rbacv1.ClusterRoleBinding, changed, recreate bool) {
	if existing.RoleRef != desired.RoleRef {
		return desired.DeepCopy(), true, true
	}
	out = existing.DeepCopy()
	out.Labels = mergeMissing(out.Labels, desired.Labels)
	out.Annotations = mergeMissing(out.Annotations, desired.Annotations)
	for _, s := range desired.Subjects {
		if !slices.Contains(out.Subjects, s) {
			out.Subjects = append(out.Subjects, s)
		}
	}
	return out, !apiequality.Semantic.DeepEqual(out, existing), false
}

func mergeMissing(dst, src map[string]string) map[string]string {
	for k, v := range src {
		if _, ok := dst[k]; ok {
			continue
		}
		if dst == nil {
			dst = map[string]string{}
		}
		dst[k] = v
	}
	return dst
}
