package storage

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestStorageClassValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*storagev1.StorageClass)
		field  string // "" means valid
		detail string
	}{
		{name: "valid", mutate: func(*storagev1.StorageClass) {}},
		{name: "no provisioner", mutate: func(sc *storagev1.StorageClass) { sc.Provisioner = "" }, field: "provisioner"},
		{name: "bad provisioner", mutate: func(sc *storagev1.StorageClass) { sc.Provisioner = "a/b/c" }, field: "provisioner", detail: "with an optional DNS subdomain prefix"},
		{name: "bad reclaim", mutate: func(sc *storagev1.StorageClass) { sc.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimRecycle) },
			field: "reclaimPolicy", detail: `supported values: "Delete", "Retain"`},
		{name: "bad binding", mutate: func(sc *storagev1.StorageClass) { sc.VolumeBindingMode = ptr.To(storagev1.VolumeBindingMode("Later")) },
			field: "volumeBindingMode"},
		{name: "empty parameter key", mutate: func(sc *storagev1.StorageClass) { sc.Parameters = map[string]string{"": "x"} },
			field: "parameters", detail: "field can not be empty."},
		{name: "empty topology", mutate: func(sc *storagev1.StorageClass) { sc.AllowedTopologies = []corev1.TopologySelectorTerm{{}} },
			field: "allowedTopologies[0].matchLabelExpressions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: "nanokube.io/local-path"}
			StorageClassStrategy.Default(sc)
			tc.mutate(sc)
			errs := StorageClassStrategy.Validate(sc)
			if tc.field == "" {
				if len(errs) != 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != tc.field || !strings.Contains(errs.ToAggregate().Error(), tc.detail) {
				t.Fatalf("errors %v, want one on %s mentioning %q", errs, tc.field, tc.detail)
			}
		})
	}
}

func TestStorageClassDefaultsUpdateAndRow(t *testing.T) {
	old := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-path",
		Annotations: map[string]string{DefaultClassAnnotation: "true"}}, Provisioner: "nanokube.io/local-path"}
	StorageClassStrategy.Default(old)
	if *old.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || *old.VolumeBindingMode != storagev1.VolumeBindingImmediate {
		t.Fatalf("defaults: %v %v", *old.ReclaimPolicy, *old.VolumeBindingMode)
	}
	row := StorageClassStrategy.Row(old)
	if row[0] != "local-path (default)" || row[1] != "nanokube.io/local-path" || row[2] != "Delete" || row[3] != "Immediate" || row[4] != false {
		t.Fatalf("row %v", row)
	}
	changed := old.DeepCopy()
	changed.Provisioner = "other.io/x"
	changed.VolumeBindingMode = ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)
	changed.Parameters = map[string]string{"a": "b"}
	errs := StorageClassStrategy.ValidateUpdate(changed, old)
	got := map[string]string{}
	for _, e := range errs {
		got[e.Field] = e.Detail
	}
	want := map[string]string{"provisioner": "updates to provisioner are forbidden.", "volumeBindingMode": "field is immutable",
		"parameters": "updates to parameters are forbidden."}
	for f, d := range want {
		if got[f] != d {
			t.Errorf("%s: %q, want %q (all: %v)", f, got[f], d, errs)
		}
	}
	// Only annotations change: allowed, so an admin can switch the default class.
	relabelled := old.DeepCopy()
	relabelled.Annotations = nil
	if errs := StorageClassStrategy.ValidateUpdate(relabelled, old); len(errs) != 0 {
		t.Fatalf("annotation change: %v", errs)
	}
}
