package policy

import (
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPDB(t *testing.T) {
	one, half := intstr.FromInt32(1), intstr.FromString("50%")
	p := &policyv1.PodDisruptionBudget{Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one}, Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 2}}
	if row := PDBStrategy.Row(p); row[1] != "1" || row[2] != "N/A" || row[3] != int64(2) {
		t.Errorf("row %v", row)
	}
	if errs := PDBStrategy.Validate(p); len(errs) != 0 {
		t.Errorf("valid pdb: %v", errs)
	}
	p.Spec.MaxUnavailable = &half
	if errs := PDBStrategy.Validate(p); len(errs) != 1 || errs[0].Field != "spec" {
		t.Errorf("both set: %v", errs)
	}
	bad := intstr.FromString("150%")
	p.Spec = policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &bad}
	if errs := PDBStrategy.Validate(p); len(errs) != 1 || errs[0].Field != "spec.maxUnavailable" {
		t.Errorf("150%%: %v", errs)
	}
}
