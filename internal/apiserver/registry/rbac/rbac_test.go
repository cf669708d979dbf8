package rbac

import (
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestValidation(t *testing.T) {
	okRule := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "r"}
	tests := []struct {
		name string
		errs func() string
		want string // "" means valid
	}{
		{"valid role", func() string {
			return RoleStrategy.Validate(&rbacv1.Role{Rules: []rbacv1.PolicyRule{okRule}}).ToAggregate().Error()
		}, ""},
		{"no verbs", func() string {
			return RoleStrategy.Validate(&rbacv1.Role{Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}}}}).ToAggregate().Error()
		}, "rules[0].verbs: Required value: verbs must contain at least one value"},
		{"no groups", func() string {
			return RoleStrategy.Validate(&rbacv1.Role{Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, Resources: []string{"pods"}}}}).ToAggregate().Error()
		}, "rules[0].apiGroups: Required value: resource rules must supply at least one api group"},
		{"namespaced url", func() string {
			return RoleStrategy.Validate(&rbacv1.Role{Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/x"}}}}).ToAggregate().Error()
		}, "namespaced rules cannot apply to non-resource URLs"},
		{"mixed rule", func() string {
			return ClusterRoleStrategy.Validate(&rbacv1.ClusterRole{Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, NonResourceURLs: []string{"/x"}}}}).ToAggregate().Error()
		}, "rules cannot apply to both regular resources and non-resource URLs"},
		{"empty aggregation", func() string {
			return ClusterRoleStrategy.Validate(&rbacv1.ClusterRole{AggregationRule: &rbacv1.AggregationRule{}}).ToAggregate().Error()
		}, "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"},
		{"cluster binding to a Role", func() string {
			return ClusterRoleBindingStrategy.Validate(&rbacv1.ClusterRoleBinding{RoleRef: ref}).ToAggregate().Error()
		}, `roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"`},
		{"bad subject kind", func() string {
			return RoleBindingStrategy.Validate(&rbacv1.RoleBinding{RoleRef: ref, Subjects: []rbacv1.Subject{{Kind: "Robot", Name: "x"}}}).ToAggregate().Error()
		}, `subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"`},
		{"cluster binding sa without namespace", func() string {
			b := &rbacv1.ClusterRoleBinding{RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "x"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sa"}}}
			return ClusterRoleBindingStrategy.Validate(b).ToAggregate().Error()
		}, "subjects[0].namespace: Required value"},
		{"roleRef immutable", func() string {
			old := &rbacv1.RoleBinding{RoleRef: ref}
			nw := &rbacv1.RoleBinding{RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "other"}}
			return RoleBindingStrategy.ValidateUpdate(nw, old).ToAggregate().Error()
		}, "roleRef: Invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			func() {
				defer func() {
					if recover() != nil { // ToAggregate of no errors is nil
						got = ""
					}
				}()
				got = tt.errs()
			}()
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if msgs := ValidateName("system:node", false); len(msgs) != 0 {
		t.Errorf("system:node rejected: %v", msgs)
	}
	if msgs := ValidateName("a/b", false); len(msgs) == 0 {
		t.Errorf("a/b accepted")
	}
}

func TestDefaultsAndRows(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	b := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rb", CreationTimestamp: created},
		RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob"}, {Kind: "User", Name: "eve"}, {Kind: "Group", Name: "devs"},
			{Kind: "ServiceAccount", Name: "app", Namespace: "ns1"}}}
	RoleBindingStrategy.Default(b)
	if b.RoleRef.APIGroup != rbacv1.GroupName || b.Subjects[0].APIGroup != rbacv1.GroupName || b.Subjects[3].APIGroup != "" {
		t.Errorf("defaults: %+v", b)
	}
	if errs := RoleBindingStrategy.Validate(b); len(errs) != 0 {
		t.Errorf("defaulted binding invalid: %v", errs)
	}
	row := RoleBindingStrategy.Row(b)
	want := []interface{}{"rb", "ClusterRole/view", row[2], "bob, eve", "devs", "ns1:app"}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("cell %d (%s) = %v, want %v", i, RoleBindingStrategy.Columns[i].Name, row[i], want[i])
		}
	}
	var obj runtime.Object = &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cr", CreationTimestamp: created}}
	if got := ClusterRoleStrategy.Row(obj); got[1] != "2026-01-02T03:04:05Z" || ClusterRoleStrategy.Columns[1].Name != "Created At" {
		t.Errorf("clusterrole row %v", got)
	}
}
