package authz

import (
	"context"
	"fmt"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nanokube/nanokube/internal/pki"
)

func res(verb, group, resource, sub, ns, name string) Attributes {
	return Attributes{User: pki.UserInfo{Name: "bob"}, Verb: verb, ResourceRequest: true, APIGroup: group,
		Resource: resource, Subresource: sub, Namespace: ns, Name: name}
}

func nonRes(verb, path string) Attributes {
	return Attributes{User: pki.UserInfo{Name: "bob"}, Verb: verb, Path: path}
}

func TestRuleAllows(t *testing.T) {
	r := func(verbs, groups, resources, names []string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
	}
	s := func(v ...string) []string { return v }
	tests := []struct {
		name string
		rule rbacv1.PolicyRule
		a    Attributes
		want bool
	}{
		{"exact", r(s("get"), s(""), s("pods"), nil), res("get", "", "pods", "", "default", "x"), true},
		{"other verb", r(s("get"), s(""), s("pods"), nil), res("list", "", "pods", "", "default", ""), false},
		{"verb star", r(s("*"), s(""), s("pods"), nil), res("deletecollection", "", "pods", "", "default", ""), true},
		{"other group", r(s("get"), s(""), s("deployments"), nil), res("get", "apps", "deployments", "", "default", "x"), false},
		{"group star", r(s("get"), s("*"), s("deployments"), nil), res("get", "apps", "deployments", "", "default", "x"), true},
		{"resource star", r(s("get"), s("apps"), s("*"), nil), res("get", "apps", "deployments", "scale", "default", "x"), true},
		{"resource does not grant subresource", r(s("get"), s(""), s("pods"), nil), res("get", "", "pods", "log", "default", "x"), false},
		{"pods/log", r(s("get"), s(""), s("pods/log"), nil), res("get", "", "pods", "log", "default", "x"), true},
		{"pods/log is not pods", r(s("get"), s(""), s("pods/log"), nil), res("get", "", "pods", "", "default", "x"), false},
		{"*/scale", r(s("get"), s("apps"), s("*/scale"), nil), res("get", "apps", "deployments", "scale", "default", "x"), true},
		{"*/scale is not the resource", r(s("get"), s("apps"), s("*/scale"), nil), res("get", "apps", "deployments", "", "default", "x"), false},
		{"*/scale is not status", r(s("get"), s("apps"), s("*/scale"), nil), res("get", "apps", "deployments", "status", "default", "x"), false},
		{"resourceNames match", r(s("get"), s(""), s("configmaps"), s("a", "b")), res("get", "", "configmaps", "", "default", "b"), true},
		{"resourceNames miss", r(s("get"), s(""), s("configmaps"), s("a")), res("get", "", "configmaps", "", "default", "c"), false},
		{"resourceNames deny unnamed list", r(s("list"), s(""), s("configmaps"), s("a")), res("list", "", "configmaps", "", "default", ""), false},
		{"non-resource exact", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/healthz")}, nonRes("get", "/healthz"), true},
		{"non-resource prefix star", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/apis/*")}, nonRes("get", "/apis/apps/v1"), true},
		{"non-resource prefix star excludes root", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/apis/*")}, nonRes("get", "/apis"), false},
		{"non-resource verb", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/healthz")}, nonRes("post", "/healthz"), false},
		{"resource rule never matches paths", r(s("*"), s("*"), s("*"), nil), nonRes("get", "/metrics"), false},
		{"url rule never matches resources", rbacv1.PolicyRule{Verbs: s("*"), NonResourceURLs: s("*")}, res("get", "", "pods", "", "", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RuleAllows(tt.a, &tt.rule); got != tt.want {
				t.Errorf("RuleAllows = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestForbiddenMessages(t *testing.T) {
	tests := []struct {
		a      Attributes
		reason string
		want   string
	}{
		{res("get", "", "pods", "", "default", "x"), "",
			`pods "x" is forbidden: User "bob" cannot get resource "pods" in API group "" in the namespace "default"`},
		{res("list", "", "pods", "", "default", ""), "",
			`pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default"`},
		{res("list", "", "nodes", "", "", ""), "",
			`nodes is forbidden: User "bob" cannot list resource "nodes" in API group "" at the cluster scope`},
		{res("get", "apps", "deployments", "scale", "ns1", "web"), "",
			`deployments.apps "web" is forbidden: User "bob" cannot get resource "deployments/scale" in API group "apps" in the namespace "ns1"`},
		{nonRes("get", "/metrics"), "", `forbidden: User "bob" cannot get path "/metrics"`},
		{res("get", "", "pods", "", "default", "x"), `RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found`,
			`pods "x" is forbidden: User "bob" cannot get resource "pods" in API group "" in the namespace "default": RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found`},
	}
	for _, tt := range tests {
		err := Forbidden(tt.a, tt.reason)
		if err.Error() != tt.want {
			t.Errorf("got  %s\nwant %s", err.Error(), tt.want)
		}
		if err.ErrStatus.Code != 403 || err.ErrStatus.Reason != metav1.StatusReasonForbidden {
			t.Errorf("status %d %s", err.ErrStatus.Code, err.ErrStatus.Reason)
		}
	}
}

// staticSource is a Source over fixed objects; bump changes its version.
type staticSource struct {
	objs    Objects
	version int64
	loads   int
}

func (s *staticSource) Version() int64 { return s.version }
func (s *staticSource) Load(context.Context) (Objects, error) {
	s.loads++
	return s.objs, nil
}

func clusterRoleObj(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
}

func TestRBACAuthorize(t *testing.T) {
	podReader := rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	src := &staticSource{version: 1, objs: Objects{
		Roles: []*rbacv1.Role{{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: "ns1"}, Rules: []rbacv1.PolicyRule{podReader}}},
		ClusterRoles: []*rbacv1.ClusterRole{
			clusterRoleObj("nodes", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}),
			clusterRoleObj("secrets", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}}),
		},
		RoleBindings: []*rbacv1.RoleBinding{
			{ObjectMeta: metav1.ObjectMeta{Name: "rb", Namespace: "ns1"}, RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "reader"},
				Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob"}, {Kind: "ServiceAccount", Name: "app"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "secrets", Namespace: "ns1"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "secrets"},
				Subjects: []rbacv1.Subject{{Kind: "Group", Name: "devs"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: "ns1"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "gone"},
				Subjects: []rbacv1.Subject{{Kind: "User", Name: "carol"}}},
		},
		ClusterRoleBindings: []*rbacv1.ClusterRoleBinding{
			{ObjectMeta: metav1.ObjectMeta{Name: "crb"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "nodes"},
				Subjects: []rbacv1.Subject{{Kind: "Group", Name: "devs"}}},
		},
	}}
	az := Privileged{Next: NewRBAC(src)}
	user := func(name string, groups ...string) pki.UserInfo { return pki.UserInfo{Name: name, Groups: groups} }
	tests := []struct {
		name       string
		a          Attributes
		want       Decision
		wantReason string
	}{
		{"role binding grants in its namespace", Attributes{User: user("bob"), Verb: "get", ResourceRequest: true, Resource: "pods", Namespace: "ns1", Name: "x"},
			Allow, `RBAC: allowed by RoleBinding "rb/ns1" of Role "reader" to User "bob"`},
		{"not in another namespace", Attributes{User: user("bob"), Verb: "get", ResourceRequest: true, Resource: "pods", Namespace: "ns2", Name: "x"}, NoOpinion, ""},
		{"not another verb", Attributes{User: user("bob"), Verb: "delete", ResourceRequest: true, Resource: "pods", Namespace: "ns1", Name: "x"}, NoOpinion, ""},
		{"service account subject defaults to the binding namespace",
			Attributes{User: user("system:serviceaccount:ns1:app"), Verb: "list", ResourceRequest: true, Resource: "pods", Namespace: "ns1"},
			Allow, `RBAC: allowed by RoleBinding "rb/ns1" of Role "reader" to ServiceAccount "app/ns1"`},
		{"group cluster binding", Attributes{User: user("dave", "devs"), Verb: "get", ResourceRequest: true, Resource: "nodes", Name: "n1"},
			Allow, `RBAC: allowed by ClusterRoleBinding "crb" of ClusterRole "nodes" to Group "devs"`},
		{"group role binding to a cluster role", Attributes{User: user("dave", "devs"), Verb: "get", ResourceRequest: true, Resource: "secrets", Namespace: "ns1", Name: "s"}, Allow,
			`RBAC: allowed by RoleBinding "secrets/ns1" of ClusterRole "secrets" to Group "devs"`},
		{"cluster role bound in a namespace is not cluster-wide", Attributes{User: user("dave", "devs"), Verb: "get", ResourceRequest: true, Resource: "secrets", Name: "s"}, NoOpinion, ""},
		{"missing role is a reason", Attributes{User: user("carol"), Verb: "get", ResourceRequest: true, Resource: "pods", Namespace: "ns1"},
			NoOpinion, `RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found`},
		{"masters", Attributes{User: user("root", MastersGroup), Verb: "delete", ResourceRequest: true, Resource: "nodes"}, Allow, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, reason, err := az.Authorize(context.Background(), tt.a)
			if err != nil || d != tt.want || reason != tt.wantReason {
				t.Errorf("got %v %q %v, want %v %q", d, reason, err, tt.want, tt.wantReason)
			}
		})
	}
	loads := src.loads
	az.Authorize(context.Background(), tests[0].a)
	if src.loads != loads {
		t.Errorf("an unchanged source was loaded again")
	}
	src.version++
	src.objs.RoleBindings = nil
	if d, _, _ := az.Authorize(context.Background(), tests[0].a); d != NoOpinion {
		t.Errorf("a removed binding still allows")
	}
	rules, incomplete, err := NewRBAC(&staticSource{objs: Objects{ClusterRoles: src.objs.ClusterRoles, ClusterRoleBindings: src.objs.ClusterRoleBindings}}).
		RulesFor(context.Background(), user("dave", "devs"), "ns1")
	if err != nil || incomplete || len(rules) != 1 || rules[0].Resources[0] != "nodes" {
		t.Errorf("RulesFor = %v %v %v", rules, incomplete, err)
	}
}

func TestCoversAndEscalationMessage(t *testing.T) {
	owner := []rbacv1.PolicyRule{
		{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods", "*/scale"}},
		{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a"}},
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/logs/*"}},
	}
	tests := []struct {
		name    string
		servant []rbacv1.PolicyRule
		covered bool
	}{
		{"subset", []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}, true},
		{"star scale covers deployments/scale", []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"deployments/scale"}}}, true},
		{"named subset", []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a"}}}, true},
		{"unnamed is more than named", []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}}, false},
		{"url prefix", []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/logs/x"}}}, true},
		{"extra verb", []rbacv1.PolicyRule{{Verbs: []string{"get", "delete"}, APIGroups: []string{""}, Resources: []string{"pods"}}}, false},
	}
	for _, tt := range tests {
		if got, _ := Covers(owner, tt.servant); got != tt.covered {
			t.Errorf("%s: Covers = %v", tt.name, got)
		}
	}
	_, missing := Covers(owner, []rbacv1.PolicyRule{
		{Verbs: []string{"get", "list", "delete"}, APIGroups: []string{""}, Resources: []string{"secrets", "pods"}},
		{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}},
	})
	got := EscalationError("alice", []string{"system:authenticated"}, missing, nil).Error()
	want := "user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n" +
		"{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}\n" +
		"{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\" \"delete\"]}\n" +
		"{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestReconcile(t *testing.T) {
	want := DefaultClusterRoles()[0] // cluster-admin
	cur := want.DeepCopy()
	cur.Rules = cur.Rules[:1]
	cur.Labels["mine"] = "x"
	out, changed := ReconcileClusterRole(cur, want)
	if !changed || len(out.Rules) != 2 || out.Labels["mine"] != "x" {
		t.Errorf("reconcile did not restore rules or lost labels: %+v", out)
	}
	if _, changed := ReconcileClusterRole(out, want); changed {
		t.Errorf("a reconciled role changes again")
	}
	cur.Annotations[AutoUpdateAnnotation] = "false"
	if AutoUpdate(cur) {
		t.Errorf("autoupdate=false not honoured")
	}
	b := DefaultClusterRoleBindings()[0]
	nb := b.DeepCopy()
	nb.Subjects = nil
	if out, changed, recreate := ReconcileClusterRoleBinding(nb, b); !changed || recreate || len(out.Subjects) != 1 {
		t.Errorf("binding subjects not restored: %+v", out)
	}
	nb.RoleRef.Name = "other"
	if _, _, recreate := ReconcileClusterRoleBinding(nb, b); !recreate {
		t.Errorf("a changed roleRef must recreate")
	}
}

// TestDefaultPolicyShape checks the facts other components rely on.
func TestDefaultPolicyShape(t *testing.T) {
	roles := map[string]*rbacv1.ClusterRole{}
	for _, r := range DefaultClusterRoles() {
		roles[r.Name] = r
	}
	for _, b := range DefaultClusterRoleBindings() {
		if roles[b.RoleRef.Name] == nil {
			t.Errorf("binding %s refers to missing role %s", b.Name, b.RoleRef.Name)
		}
	}
	if roles["view"].AggregationRule == nil || roles["edit"].Labels[AggregateToAdmin] != "true" {
		t.Errorf("aggregation labels/rules missing")
	}
	basic := Attributes{User: pki.UserInfo{Name: "u"}, Verb: "create", ResourceRequest: true, APIGroup: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}
	if !RuleAllows(basic, &roles["system:basic-user"].Rules[0]) {
		t.Errorf("basic-user cannot create SelfSubjectAccessReviews")
	}
	for _, p := range []string{"/api", "/apis/apps/v1", "/openapi/v3", "/version"} {
		if !RuleAllows(nonRes("get", p), &roles["system:discovery"].Rules[0]) {
			t.Errorf("system:discovery lacks %s", p)
		}
	}
	if n := len(fmt.Sprint(roles["system:node"].Rules)); n == 0 || !strings.Contains(fmt.Sprint(roles["system:node"].Rules), "nodes/status") {
		t.Errorf("system:node lacks nodes/status")
	}
}

// BenchmarkRBACAuthorize is one decision over 1,000 Roles and 1,000 RoleBindings in 100
// namespaces plus the default policy, for a user bound in the request's namespace.
func BenchmarkRBACAuthorize(b *testing.B) {
	objs := Objects{ClusterRoles: DefaultClusterRoles(), ClusterRoleBindings: DefaultClusterRoleBindings()}
	for i := range 1000 {
		ns := fmt.Sprintf("ns-%d", i%100)
		objs.Roles = append(objs.Roles, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("r%d", i), Namespace: ns},
			Rules: []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"configmaps", "pods"}}}})
		objs.RoleBindings = append(objs.RoleBindings, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("b%d", i), Namespace: ns},
			RoleRef: rbacv1.RoleRef{Kind: "Role", Name: fmt.Sprintf("r%d", i)}, Subjects: []rbacv1.Subject{{Kind: "User", Name: fmt.Sprintf("user-%d", i)}}})
	}
	az := Privileged{Next: NewRBAC(&staticSource{objs: objs, version: 1})}
	a := Attributes{User: pki.UserInfo{Name: "user-0", Groups: []string{AuthenticatedGroup}}, Verb: "get", ResourceRequest: true,
		Resource: "configmaps", Namespace: "ns-0", Name: "c"}
	if d, _, _ := az.Authorize(context.Background(), a); d != Allow {
		b.Fatal("not allowed")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		az.Authorize(context.Background(), a)
	}
}
