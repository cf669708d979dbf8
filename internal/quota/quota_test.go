package quota

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func rl(pairs ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		out[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return out
}

func container(name string, requests, limits corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}
}

var podsGR = schema.GroupResource{Resource: "pods"}

func TestUsage(t *testing.T) {
	now := time.Now()
	past := metav1.NewTime(now.Add(-time.Minute))
	for _, tc := range []struct {
		name string
		gr   schema.GroupResource
		obj  runtime.Object
		want string
	}{
		{"best-effort pod", podsGR, &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{container("c", nil, nil)}}},
			"count/pods=1,pods=1"},
		{"pod sums containers, init containers take the max", podsGR, &corev1.Pod{Spec: corev1.PodSpec{
			Containers:     []corev1.Container{container("a", rl("cpu", "100m"), rl("cpu", "200m")), container("b", rl("cpu", "100m", "memory", "1Gi"), nil)},
			InitContainers: []corev1.Container{container("i", rl("cpu", "500m"), rl("memory", "2Gi"))}}},
			"count/pods=1,cpu=500m,limits.cpu=200m,limits.memory=2Gi,memory=1Gi,pods=1,requests.cpu=500m,requests.memory=1Gi"},
		{"finished pod", podsGR, &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, ""},
		{"pod past its grace period", podsGR, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &past, DeletionGracePeriodSeconds: ptr.To[int64](30)}}, ""},
		{"node port service", schema.GroupResource{Resource: "services"}, &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: make([]corev1.ServicePort, 2)}},
			"count/services=1,services=1,services.nodeports=2"},
		{"load balancer", schema.GroupResource{Resource: "services"}, &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: make([]corev1.ServicePort, 1)}},
			"count/services=1,services=1,services.loadbalancers=1,services.nodeports=1"},
		{"claim with a class", schema.GroupResource{Resource: "persistentvolumeclaims"}, &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("fast"), Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "1Gi")}}},
			"count/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/requests.storage=1Gi,persistentvolumeclaims=1,requests.storage=1Gi"},
		{"configmap", schema.GroupResource{Resource: "configmaps"}, &corev1.ConfigMap{}, "configmaps=1,count/configmaps=1"},
		{"another group's kind", schema.GroupResource{Group: "apps", Resource: "deployments"}, &metav1.PartialObjectMetadata{}, "count/deployments.apps=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Format(Usage(tc.gr, tc.obj, now)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestConstraints(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		container("a", rl("cpu", "1"), nil), container("b", nil, rl("memory", "1Gi")),
	}}}
	for _, tc := range []struct {
		names []corev1.ResourceName
		want  string
	}{
		{[]corev1.ResourceName{"pods"}, ""},
		{[]corev1.ResourceName{"requests.cpu"}, "must specify requests.cpu for: b"},
		{[]corev1.ResourceName{"cpu", "limits.memory", "pods"}, "must specify cpu for: b; limits.memory for: a"},
	} {
		err := Constraints(pod, tc.names)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.names, got, tc.want)
		}
	}
}

func TestGovernsAndScopes(t *testing.T) {
	bestEffort := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{container("c", nil, nil)}}}
	burstable := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{container("c", rl("cpu", "1"), nil)}, PriorityClassName: "high",
		ActiveDeadlineSeconds: ptr.To[int64](10)}}
	quota := func(hard corev1.ResourceList, scopes []corev1.ResourceQuotaScope, sel ...corev1.ScopedResourceSelectorRequirement) *corev1.ResourceQuota {
		q := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: hard, Scopes: scopes}, Status: corev1.ResourceQuotaStatus{Hard: hard}}
		if len(sel) > 0 {
			q.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: sel}
		}
		return q
	}
	for _, tc := range []struct {
		name string
		q    *corev1.ResourceQuota
		gr   schema.GroupResource
		obj  runtime.Object
		want int
	}{
		{"unscoped pods", quota(rl("pods", "1", "secrets", "1"), nil), podsGR, bestEffort, 1},
		{"cpu quota governs a pod without cpu", quota(rl("requests.cpu", "1"), nil), podsGR, bestEffort, 1},
		{"nothing tracked", quota(rl("secrets", "1"), nil), podsGR, bestEffort, 0},
		{"BestEffort in", quota(rl("pods", "1"), []corev1.ResourceQuotaScope{"BestEffort"}), podsGR, bestEffort, 1},
		{"BestEffort out", quota(rl("pods", "1"), []corev1.ResourceQuotaScope{"BestEffort"}), podsGR, burstable, 0},
		{"NotBestEffort", quota(rl("pods", "1"), []corev1.ResourceQuotaScope{"NotBestEffort"}), podsGR, burstable, 1},
		{"Terminating", quota(rl("pods", "1"), []corev1.ResourceQuotaScope{"Terminating"}), podsGR, burstable, 1},
		{"NotTerminating", quota(rl("pods", "1"), []corev1.ResourceQuotaScope{"NotTerminating"}), podsGR, burstable, 0},
		{"PriorityClass In", quota(rl("pods", "1"), nil, corev1.ScopedResourceSelectorRequirement{ScopeName: "PriorityClass", Operator: "In", Values: []string{"high"}}), podsGR, burstable, 1},
		{"PriorityClass NotIn", quota(rl("pods", "1"), nil, corev1.ScopedResourceSelectorRequirement{ScopeName: "PriorityClass", Operator: "NotIn", Values: []string{"high"}}), podsGR, burstable, 0},
		{"PriorityClass DoesNotExist", quota(rl("pods", "1"), nil, corev1.ScopedResourceSelectorRequirement{ScopeName: "PriorityClass", Operator: "DoesNotExist"}), podsGR, bestEffort, 1},
		{"scoped quotas skip other kinds", quota(rl("count/secrets", "1"), []corev1.ResourceQuotaScope{"BestEffort"}), schema.GroupResource{Resource: "secrets"}, &corev1.Secret{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(Governs(tc.q, tc.gr, tc.obj)); got != tc.want {
				t.Fatalf("governs %d names, want %d", got, tc.want)
			}
		})
	}
}

func TestArithmetic(t *testing.T) {
	used := rl("pods", "2", "requests.cpu", "500m")
	req := rl("pods", "1", "requests.cpu", "600m")
	sum := Add(used, req)
	if got := Format(sum); got != "pods=3,requests.cpu=1100m" {
		t.Fatalf("Add: %s", got)
	}
	if got := Exceeded(sum, rl("pods", "3", "requests.cpu", "1")); len(got) != 1 || got[0] != "requests.cpu" {
		t.Fatalf("Exceeded: %v", got)
	}
	if got := Format(Subtract(sum, req)); got != "pods=2,requests.cpu=500m" {
		t.Fatalf("Subtract: %s", got)
	}
	if !Equal(used, rl("requests.cpu", "0.5", "pods", "2")) || Equal(used, rl("pods", "2")) {
		t.Fatal("Equal")
	}
	gr, ok := ParseCountName("count/deployments.apps")
	if !ok || gr != (schema.GroupResource{Group: "apps", Resource: "deployments"}) || CountName(gr) != "count/deployments.apps" {
		t.Fatalf("ParseCountName: %v %v", gr, ok)
	}
}
