package localpath

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

func claim(name string, mutate ...func(*corev1.PersistentVolumeClaim)) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(ClassName),
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
	for _, m := range mutate {
		m(pvc)
	}
	return pvc
}

func onNode(node string) func(*corev1.PersistentVolumeClaim) {
	return func(pvc *corev1.PersistentVolumeClaim) {
		pvc.Annotations = map[string]string{annSelectedNode: node}
	}
}

func TestNewVolume(t *testing.T) {
	sc := DefaultClass()
	for _, tc := range []struct {
		name    string
		pvc     *corev1.PersistentVolumeClaim
		wantErr string
	}{
		{name: "ok", pvc: claim("a")},
		{name: "no size", pvc: claim("b", func(p *corev1.PersistentVolumeClaim) { p.Spec.Resources.Requests = nil }),
			wantErr: "the claim requests no storage size"},
		{name: "block", pvc: claim("c", func(p *corev1.PersistentVolumeClaim) { p.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock) }),
			wantErr: "volumeMode Block is not supported, only Filesystem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv, err := newVolume(tc.pvc, sc, "/srv/storage", "host-1")
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pv.Name != "pvc-uid-a" || pv.Spec.HostPath.Path != "/srv/storage/pvc-uid-a" ||
				pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
				pv.Spec.ClaimRef.UID != "uid-a" || pv.Spec.StorageClassName != ClassName ||
				pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "host-1" ||
				pv.Spec.Capacity.Storage().String() != "1Gi" {
				t.Fatalf("volume %+v", pv)
			}
		})
	}
	if err := (&Config{Client: fake.NewSimpleClientset(), Informers: informers.NewSharedInformerFactory(fake.NewSimpleClientset(), 0),
		BaseDir: "relative"}).Validate(); err == nil {
		t.Fatal("relative base dir accepted")
	}
}

func newTestController(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewSimpleClientset(append(objs, DefaultClass())...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: factory, BaseDir: "/srv/storage"})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.StartInformers(t, client, factory)
	return c, client
}

// waitCached waits until the controller's caches hold what the test wrote through client.
func waitCached(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		waitTick()
	}
	t.Fatal("the cache did not catch up")
}

func TestProvisionAndBindWhenNodeSelected(t *testing.T) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelHostname: "n1-host"}}}
	c, client := newTestController(t, node, claim("waiting"), claim("placed", onNode("n1")))

	// No node selected yet: nothing happens.
	if err := c.syncClaim(ctx, "default", "waiting"); err != nil {
		t.Fatal(err)
	}
	if pvs, _ := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{}); len(pvs.Items) != 0 {
		t.Fatalf("provisioned without a node: %v", pvs.Items)
	}

	if err := c.syncClaim(ctx, "default", "placed"); err != nil {
		t.Fatal(err)
	}
	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-placed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Status.Phase != corev1.VolumeBound || pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "n1-host" {
		t.Fatalf("volume %+v", pv)
	}
	pvc, _ := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "placed", metav1.GetOptions{})
	if pvc.Spec.VolumeName != pv.Name || pvc.Status.Phase != corev1.ClaimBound || pvc.Status.Capacity.Storage().String() != "1Gi" {
		t.Fatalf("claim %+v", pvc)
	}

	// The claim goes: its Delete volume goes too.
	if err := client.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "placed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCached(t, func() bool { _, err := c.pvLister.Get(pv.Name); return err == nil })
	if err := c.syncVolume(ctx, pv.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("volume of a deleted claim kept")
	}
}

func TestRetainVolumeIsReleased(t *testing.T) {
	ctx := context.Background()
	retain := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "keep"}, Provisioner: Provisioner,
		ReclaimPolicy: ptr.To(corev1.PersistentVolumeReclaimRetain), VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
	pvc := claim("kept", onNode("n1"), func(p *corev1.PersistentVolumeClaim) { p.Spec.StorageClassName = ptr.To("keep") })
	c, client := newTestController(t, retain, pvc)
	if err := c.syncClaim(ctx, "default", "kept"); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "kept", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCached(t, func() bool { _, err := c.pvLister.Get("pvc-uid-kept"); return err == nil })
	if err := c.syncVolume(ctx, "pvc-uid-kept"); err != nil {
		t.Fatal(err)
	}
	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-kept", metav1.GetOptions{})
	if err != nil || pv.Status.Phase != corev1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Fatalf("retained volume: %v %+v", err, pv)
	}
}

func TestImmediateClassIsRefused(t *testing.T) {
	now := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "now"}, Provisioner: Provisioner,
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate)}
	c, client := newTestController(t, now, claim("x", func(p *corev1.PersistentVolumeClaim) { p.Spec.StorageClassName = ptr.To("now") }))
	if err := c.syncClaim(context.Background(), "default", "x"); err != nil {
		t.Fatal(err)
	}
	if pvs, _ := client.CoreV1().PersistentVolumes().List(context.Background(), metav1.ListOptions{}); len(pvs.Items) != 0 {
		t.Fatalf("provisioned for an Immediate class: %v", pvs.Items)
	}
}

func waitTick() { time.Sleep(5 * time.Millisecond) }
