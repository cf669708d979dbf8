package controllerref

import (
	"errors"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

var rsKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

func controllerRef(kind, apiVersion, name string, uid types.UID) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: new(true)}
}

func TestResolve(t *testing.T) {
	cached := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-1"}}
	get := func(name string) (*appsv1.ReplicaSet, error) {
		if name != cached.Name {
			return nil, errors.New("not found")
		}
		return cached, nil
	}
	for _, tc := range []struct {
		name string
		ref  *metav1.OwnerReference
		want *appsv1.ReplicaSet
	}{
		{"same object", controllerRef("ReplicaSet", "apps/v1", "web", "uid-1"), cached},
		{"replaced by a namesake", controllerRef("ReplicaSet", "apps/v1", "web", "uid-0"), nil},
		{"not cached", controllerRef("ReplicaSet", "apps/v1", "api", "uid-1"), nil},
		{"another kind", controllerRef("DaemonSet", "apps/v1", "web", "uid-1"), nil},
		{"another API version", controllerRef("ReplicaSet", "extensions/v1beta1", "web", "uid-1"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Resolve(tc.ref, rsKind, get); got != tc.want {
				t.Errorf("Resolve = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	pod := func(refs ...metav1.OwnerReference) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", OwnerReferences: refs}}
	}
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "uid-cm"}
	for _, tc := range []struct {
		name string
		obj  any
		want []string
	}{
		{"controlled", pod(owner, *controllerRef("ReplicaSet", "apps/v1", "web", "uid-1")), []string{"uid-1"}},
		{"controlled by another kind", pod(*controllerRef("Job", "batch/v1", "x", "uid-2")), []string{"uid-2"}},
		{"owned, not controlled", pod(owner), []string{"orphan/default"}},
		{"orphan", pod(), []string{"orphan/default"}},
		{"not an object", "default/p", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Index(tc.obj)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Index = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestAdopters(t *testing.T) {
	rs := func(name string, sel *metav1.LabelSelector) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: appsv1.ReplicaSetSpec{Selector: sel}}
	}
	owners := []*appsv1.ReplicaSet{
		rs("web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
		rs("web-canary", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "track": "canary"}}),
		rs("everything", &metav1.LabelSelector{}),
		rs("nil-selector", nil),
		rs("invalid", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}),
	}
	list := func(labels.Selector) ([]*appsv1.ReplicaSet, error) { return owners, nil }
	selector := func(rs *appsv1.ReplicaSet) *metav1.LabelSelector { return rs.Spec.Selector }
	for _, tc := range []struct {
		name   string
		list   func(labels.Selector) ([]*appsv1.ReplicaSet, error)
		labels map[string]string
		want   []string
	}{
		{"one match", list, map[string]string{"app": "web"}, []string{"web"}},
		{"two matches", list, map[string]string{"app": "web", "track": "canary"}, []string{"web", "web-canary"}},
		{"no match", list, map[string]string{"app": "api"}, nil},
		{"no labels", list, nil, nil},
		{"list fails", func(labels.Selector) ([]*appsv1.ReplicaSet, error) { return owners, errors.New("down") },
			map[string]string{"app": "web"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range Adopters(tc.list, selector, tc.labels) {
				got = append(got, o.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Adopters = %v, want %v", got, tc.want)
			}
		})
	}
}
