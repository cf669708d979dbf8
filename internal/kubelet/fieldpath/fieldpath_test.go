package fieldpath

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestField(t *testing.T) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1",
			Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"note": `say "hi"`}},
		Spec:   v1.PodSpec{NodeName: "n1", ServiceAccountName: "sa"},
		Status: v1.PodStatus{PodIP: "10.0.0.5", PodIPs: []v1.PodIP{{IP: "10.0.0.5"}, {IP: "fd00::5"}}, HostIP: "192.0.2.1"},
	}
	for path, want := range map[string]string{
		"metadata.name": "web", "metadata.namespace": "shop", "metadata.uid": "u1",
		"metadata.labels['app']": "web", "metadata.labels['none']": "",
		"metadata.labels":      "app=\"web\"\ntier=\"front\"",
		"metadata.annotations": `note="say \"hi\""`,
		"spec.nodeName":        "n1", "spec.serviceAccountName": "sa",
		"status.podIP": "10.0.0.5", "status.podIPs": "10.0.0.5,fd00::5", "status.hostIP": "192.0.2.1",
	} {
		got, err := Field(pod, path)
		if err != nil || got != want {
			t.Errorf("Field(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := Field(pod, "spec.containers"); err == nil {
		t.Error("an unsupported path was accepted")
	}
}

func TestResource(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("128Mi")},
	}}}}}
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")}
	for _, tc := range []struct {
		res, divisor, want string
	}{
		{"requests.cpu", "", "1"}, // rounded up to whole cores
		{"requests.cpu", "1m", "250"},
		{"limits.cpu", "", "2"}, // no limit: the node's allocatable
		{"requests.memory", "1Mi", "64"},
		{"limits.memory", "", "134217728"},
	} {
		sel := &v1.ResourceFieldSelector{Resource: tc.res}
		if tc.divisor != "" {
			sel.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := Resource(pod, "app", sel, alloc)
		if err != nil || got != tc.want {
			t.Errorf("%s/%s = %q, %v; want %q", tc.res, tc.divisor, got, err, tc.want)
		}
	}
	if _, err := Resource(pod, "nope", &v1.ResourceFieldSelector{Resource: "limits.cpu"}, nil); err == nil {
		t.Error("an unknown container was accepted")
	}
}
