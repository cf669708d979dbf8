package apiserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestLimitConstraints(t *testing.T) {
	q := resource.MustParse
	list := func(pairs ...string) corev1.ResourceList {
		out := corev1.ResourceList{}
		for i := 0; i < len(pairs); i += 2 {
			out[corev1.ResourceName(pairs[i])] = q(pairs[i+1])
		}
		return out
	}
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	for _, tc := range []struct {
		name string
		got  error
		want string
	}{
		{"min ok", minConstraint("Container", "cpu", q("100m"), list("cpu", "100m"), list("cpu", "1")), ""},
		{"min no request", minConstraint("Container", "cpu", q("100m"), nil, nil), "minimum cpu usage per Container is 100m.  No request is specified"},
		{"min request", minConstraint("Container", "cpu", q("100m"), list("cpu", "50m"), nil), "minimum cpu usage per Container is 100m, but request is 50m"},
		{"min limit", minConstraint("Pod", "memory", q("1Gi"), list("memory", "2Gi"), list("memory", "512Mi")), "minimum memory usage per Pod is 1Gi, but limit is 512Mi"},
		{"max ok", maxConstraint("Container", "cpu", q("1"), list("cpu", "1"), list("cpu", "1")), ""},
		{"max no limit", maxConstraint("Container", "cpu", q("500m"), list("cpu", "100m"), nil), "maximum cpu usage per Container is 500m.  No limit is specified"},
		{"max limit", maxConstraint("Container", "cpu", q("500m"), nil, list("cpu", "1")), "maximum cpu usage per Container is 500m, but limit is 1"},
		{"ratio ok", ratioConstraint("Container", "cpu", q("2"), list("cpu", "500m"), list("cpu", "1")), ""},
		{"ratio over", ratioConstraint("Container", "cpu", q("2"), list("cpu", "100m"), list("cpu", "1")), "cpu max limit to request ratio per Container is 2, but provided ratio is 10.000000"},
		{"ratio no request", ratioConstraint("Container", "cpu", q("2"), nil, list("cpu", "1")), "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"},
		{"ratio no limit", ratioConstraint("Container", "cpu", q("2"), list("cpu", "1"), nil), "cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0"},
	} {
		if got := errText(tc.got); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMergeContainerDefaults(t *testing.T) {
	c := corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": resource.MustParse("1")}}}
	item := corev1.LimitRangeItem{Type: corev1.LimitTypeContainer,
		Default:        corev1.ResourceList{"cpu": resource.MustParse("200m"), "memory": resource.MustParse("64Mi")},
		DefaultRequest: corev1.ResourceList{"cpu": resource.MustParse("100m")}}
	set := mergeContainerDefaults(&c, item, "container", nil)
	if c.Resources.Limits.Cpu().String() != "1" || c.Resources.Limits.Memory().String() != "64Mi" || c.Resources.Requests.Cpu().String() != "100m" {
		t.Fatalf("resources %+v", c.Resources)
	}
	if len(set) != 2 || set[0] != "cpu request for container c" || set[1] != "memory limit for container c" {
		t.Fatalf("recorded %q", set)
	}
}
