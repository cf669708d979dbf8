package apiserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
)

// TestDefaultStorageClassAdmission: a claim without storageClassName gets the default class
// (the newest if several are default); an explicit class, even "", is kept; with no default
// class the field stays unset. The storage class validation speaks kube-apiserver's words.
func TestDefaultStorageClassAdmission(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	claim := func(name string, class *string) *corev1.PersistentVolumeClaim {
		pvc, err := c.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: class, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return pvc
	}
	if pvc := claim("none", nil); pvc.Spec.StorageClassName != nil {
		t.Fatalf("no default class, got %q", *pvc.Spec.StorageClassName)
	}
	for _, name := range []string{"older", "newer"} {
		_, err := c.Client.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
			Provisioner: "example.com/" + name,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // creation timestamps have a one-second resolution
	}
	// Admission reads the watch cache: wait until it has both classes.
	probes := 0
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		probes++
		pvc := claim(fmt.Sprintf("probe-%d", probes), nil)
		return pvc.Spec.StorageClassName != nil && *pvc.Spec.StorageClassName == "newer", nil
	})
	if err != nil {
		t.Fatalf("the newest default class was not chosen: %v", err)
	}
	if pvc := claim("explicit", ptr.To("older")); *pvc.Spec.StorageClassName != "older" {
		t.Fatalf("explicit class replaced by %q", *pvc.Spec.StorageClassName)
	}
	if pvc := claim("no-class", ptr.To("")); *pvc.Spec.StorageClassName != "" {
		t.Fatalf(`explicit "" replaced by %q`, *pvc.Spec.StorageClassName)
	}
	sc, err := c.Client.StorageV1().StorageClasses().Get(ctx, "older", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || *sc.VolumeBindingMode != storagev1.VolumeBindingImmediate {
		t.Fatalf("defaults: %v %v", *sc.ReclaimPolicy, *sc.VolumeBindingMode)
	}
	sc.Provisioner = "example.com/other"
	if _, err := c.Client.StorageV1().StorageClasses().Update(ctx, sc, metav1.UpdateOptions{}); err == nil ||
		err.Error() != `StorageClass.storage.k8s.io "older" is invalid: provisioner: Forbidden: updates to provisioner are forbidden.` {
		t.Fatalf("provisioner update: %v", err)
	}
}
