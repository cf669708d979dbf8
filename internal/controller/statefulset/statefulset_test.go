package statefulset

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// fixture is a controller on a fake clientset whose informer caches the test fills directly.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	c        *Controller
	recorder *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewSimpleClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	c, err := New(Config{Client: client, Informers: factory, Recorder: recorder, Clock: testingclock.NewFakeClock(testNow)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, client: client, factory: factory, c: c, recorder: recorder}
	for _, o := range objs {
		f.cache(o)
	}
	return f
}

// cache puts o in the informer caches (not in the fake API server).
func (f *fixture) cache(o runtime.Object) {
	var err error
	switch o := o.(type) {
	case *appsv1.StatefulSet:
		err = f.factory.Apps().V1().StatefulSets().Informer().GetIndexer().Add(o)
	case *appsv1.ControllerRevision:
		err = f.factory.Apps().V1().ControllerRevisions().Informer().GetIndexer().Add(o)
	case *corev1.Pod:
		err = f.factory.Core().V1().Pods().Informer().GetIndexer().Add(o)
	case *corev1.PersistentVolumeClaim:
		err = f.factory.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(o)
	default:
		f.t.Fatalf("cannot cache %T", o)
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

// syncOnce runs one sync, then copies what the sync created into the caches, as the
// informers would, and returns the sync's actions as "verb resource[/sub] name".
func (f *fixture) syncOnce(set *appsv1.StatefulSet) []string {
	f.t.Helper()
	f.client.ClearActions()
	if err := f.c.sync(context.Background(), set.Namespace+"/"+set.Name); err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, a := range f.client.Actions() {
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		switch a := a.(type) {
		case core.CreateAction: // updates too: the informers would see both
			obj := a.GetObject()
			s += " " + obj.(metav1.Object).GetName()
			f.cache(obj)
		case core.DeleteAction:
			s += " " + a.GetName()
		}
		out = append(out, s)
	}
	return out
}

func webSet() *appsv1.StatefulSet {
	set := testSet(2)
	set.Namespace, set.UID, set.Generation = "default", "set-uid", 1
	set.Spec.ServiceName = "web"
	set.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	set.Spec.Template = corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1",
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}}
	set.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}}
	return set
}

func TestSyncCreatesInOrderWithClaims(t *testing.T) {
	set := webSet()
	f := newFixture(t, set)

	got := f.syncOnce(set)
	want := []string{"create controllerrevisions", "create persistentvolumeclaims data-web-0", "create pods web-0",
		"update statefulsets/status web"}
	if len(got) != 4 || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] || got[0][:len(want[0])] != want[0] {
		t.Fatalf("first sync: %v\nwant %v", got, want)
	}
	pod, err := f.client.CoreV1().Pods("default").Get(context.Background(), "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	revs, _ := f.client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if len(revs.Items) != 1 {
		t.Fatalf("revisions %v", revs.Items)
	}
	rev := revs.Items[0].Name
	if pod.Spec.Hostname != "web-0" || pod.Spec.Subdomain != "web" || pod.Labels[appsv1.ControllerRevisionHashLabelKey] != rev ||
		pod.Labels[podNameLabel] != "web-0" || pod.Labels[podIndexLabel] != "0" || !metav1.IsControlledBy(pod, set) {
		t.Fatalf("pod identity: %+v %+v", pod.ObjectMeta, pod.Spec)
	}
	if v := pod.Spec.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != "data-web-0" {
		t.Fatalf("pod volumes %+v", v)
	}
	claim, _ := f.client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data-web-0", metav1.GetOptions{})
	if claim.Labels["app"] != "web" || len(claim.OwnerReferences) != 0 {
		t.Fatalf("claim %+v", claim.ObjectMeta)
	}

	// web-0 is not ready: web-1 must wait.
	got = f.syncOnce(set)
	if slices.ContainsFunc(got, func(s string) bool { return s == "create pods web-1" }) {
		t.Fatalf("web-1 created before web-0 is ready: %v", got)
	}
	ready := pod.DeepCopy()
	ready.Status = testPod(0, rev, "ready").Status
	f.cache(ready)
	got = f.syncOnce(set)
	if !slices.Contains(got, "create pods web-1") || !slices.Contains(got, "create persistentvolumeclaims data-web-1") {
		t.Fatalf("after web-0 is ready: %v", got)
	}
	if e := <-f.recorder.Events; e != "Normal SuccessfulCreate create Claim data-web-0 Pod web-0 in StatefulSet web success" {
		t.Fatalf("event %q", e)
	}
}

func TestSyncRollingUpdateWithPartition(t *testing.T) {
	set := webSet()
	set.Spec.Replicas = ptr.To(int32(3))
	f := newFixture(t, set)
	// Bring up three ready pods of revision 1.
	for range 3 {
		f.syncOnce(set)
		for _, o := range f.factory.Core().V1().Pods().Informer().GetIndexer().List() {
			p := o.(*corev1.Pod).DeepCopy()
			p.Status = testPod(0, "", "ready").Status
			f.cache(p)
		}
	}
	rev1 := revisionOf(f.podOf("web-2"))
	// A new template, partition 1.
	set = set.DeepCopy()
	set.Generation = 2
	set.Spec.Template.Spec.Containers[0].Image = "busybox:2"
	set.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To(int32(1))
	set.Status.CurrentRevision = rev1
	f.cache(set)
	got := f.syncOnce(set)
	if !slices.Contains(got, "delete pods web-2") || slices.Contains(got, "delete pods web-1") {
		t.Fatalf("first update sync: %v", got)
	}
	st, _ := f.client.AppsV1().StatefulSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if st.Status.CurrentRevision != rev1 || st.Status.UpdateRevision == rev1 || st.Status.UpdatedReplicas != 0 || st.Status.ObservedGeneration != 2 {
		t.Fatalf("status %+v", st.Status)
	}
}

func (f *fixture) podOf(name string) *corev1.Pod {
	o, ok, _ := f.factory.Core().V1().Pods().Informer().GetIndexer().GetByKey("default/" + name)
	if !ok {
		f.t.Fatalf("no pod %s", name)
	}
	return o.(*corev1.Pod)
}

func TestRevisionDataRoundTrip(t *testing.T) {
	set := webSet()
	data, err := revisionData(set)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := templateOf(&appsv1.ControllerRevision{Data: runtime.RawExtension{Raw: data}})
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Spec.Containers[0].Image != "busybox:1" || tmpl.Labels["app"] != "web" {
		t.Fatalf("template %+v", tmpl)
	}
	if hashRevision(data, nil) == hashRevision(data, ptr.To(int32(1))) {
		t.Fatal("collision count does not change the hash")
	}
}
