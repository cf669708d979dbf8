package clusterroleaggregation

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

func role(name string, labels map[string]string, selector map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	r := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Rules: rules}
	if selector != nil {
		r.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: selector}}}
	}
	return r
}

var (
	getPods  = rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	listJobs = rbacv1.PolicyRule{Verbs: []string{"list"}, APIGroups: []string{"batch"}, Resources: []string{"jobs"}}
	view     = map[string]string{"rbac.authorization.k8s.io/aggregate-to-view": "true"}
)

func TestAggregate(t *testing.T) {
	agg := role("view", nil, view)
	tests := []struct {
		name string
		all  []*rbacv1.ClusterRole
		want []rbacv1.PolicyRule
	}{
		{"none match", []*rbacv1.ClusterRole{agg, role("x", nil, nil, getPods)}, nil},
		{"name order, no duplicates", []*rbacv1.ClusterRole{agg, role("b", view, nil, listJobs, getPods), role("a", view, nil, getPods)},
			[]rbacv1.PolicyRule{getPods, listJobs}},
		{"itself excluded", []*rbacv1.ClusterRole{role("view", view, view, listJobs)}, nil},
	}
	for _, tt := range tests {
		got, err := Aggregate(agg, tt.all)
		if err != nil || len(got) != len(tt.want) {
			t.Fatalf("%s: got %v %v, want %v", tt.name, got, err, tt.want)
		}
		for i := range got {
			if got[i].Resources[0] != tt.want[i].Resources[0] {
				t.Errorf("%s: rule %d = %v, want %v", tt.name, i, got[i], tt.want[i])
			}
		}
	}
}

func TestSync(t *testing.T) {
	objs := []runtime.Object{role("view", nil, view), role("pods", view, nil, getPods), role("other", nil, nil, listJobs)}
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.StartInformers(t, client, factory)
	client.ClearActions()
	if err := c.sync(context.Background(), "view"); err != nil {
		t.Fatal(err)
	}
	got, err := client.RbacV1().ClusterRoles().Get(context.Background(), "view", metav1.GetOptions{})
	if err != nil || len(got.Rules) != 1 || got.Rules[0].Resources[0] != "pods" {
		t.Fatalf("view after sync: %+v %v", got, err)
	}
	// An aggregated role already current is not written; a plain role is never written.
	if err := factory.Rbac().V1().ClusterRoles().Informer().GetIndexer().Update(got); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	for _, key := range []string{"view", "other", "missing"} {
		if err := c.sync(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(client.Actions()); n != 0 {
		t.Errorf("unexpected writes: %v", client.Actions())
	}
}
