package scheduling

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPriorityClass(t *testing.T) {
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}
	PriorityClassStrategy.Default(pc)
	if *pc.PreemptionPolicy != corev1.PreemptLowerPriority {
		t.Errorf("preemptionPolicy %v", *pc.PreemptionPolicy)
	}
	if row := PriorityClassStrategy.Row(pc); row[1] != int64(1000) || row[2] != false || row[4] != "PreemptLowerPriority" {
		t.Errorf("row %v", row)
	}
	pc.Value = 2000000000
	if errs := PriorityClassStrategy.Validate(pc); len(errs) != 1 || errs[0].Field != "value" {
		t.Errorf("too high: %v", errs)
	}
	sys := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "system-node-critical"}, Value: 2000001000}
	if errs := PriorityClassStrategy.Validate(sys); len(errs) != 0 {
		t.Errorf("system class: %v", errs)
	}
	old := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}
	PriorityClassStrategy.Default(old)
	changed := old.DeepCopy()
	changed.Value = 1001
	if errs := PriorityClassStrategy.ValidateUpdate(changed, old); len(errs) != 1 || errs[0].Field != "value" {
		t.Errorf("value change: %v", errs)
	}
}
