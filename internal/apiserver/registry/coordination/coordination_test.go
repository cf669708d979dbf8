package coordination

import (
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
)

func TestLease(t *testing.T) {
	l := &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-1"), LeaseDurationSeconds: ptr.To(int32(40))}}
	if row := LeaseStrategy.Row(l); row[1] != "node-1" {
		t.Errorf("row %v", row)
	}
	if errs := LeaseStrategy.Validate(l); len(errs) != 0 {
		t.Errorf("valid lease: %v", errs)
	}
	l.Spec.LeaseDurationSeconds = ptr.To(int32(0))
	if errs := LeaseStrategy.Validate(l); len(errs) != 1 || errs[0].Field != "spec.leaseDurationSeconds" {
		t.Errorf("zero duration: %v", errs)
	}
}
