package deployment

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	recorder *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	client := fake.NewSimpleClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	c := New(client, f.Apps().V1().Deployments(), f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), recorder,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.now = func() time.Time { return testNow }
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			_ = f.Apps().V1().Deployments().Informer().GetIndexer().Add(o)
		case *appsv1.ReplicaSet:
			_ = f.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			_ = f.Core().V1().Pods().Informer().GetIndexer().Add(o)
		}
	}
	client.ClearActions()
	return &fixture{t: t, client: client, c: c, recorder: recorder}
}

func (f *fixture) run(key string) []core.Action {
	f.t.Helper()
	if err := f.c.sync(context.Background(), key); err != nil {
		f.t.Fatal(err)
	}
	var out []core.Action
	for _, a := range f.client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			out = append(out, a)
		}
	}
	return out
}

func verbResource(a core.Action) string {
	s := a.GetVerb() + " " + a.GetResource().Resource
	if a.GetSubresource() != "" {
		s += "/" + a.GetSubresource()
	}
	return s
}

func expectVerbs(t *testing.T, got []core.Action, want ...string) {
	t.Helper()
	var names []string
	for _, a := range got {
		names = append(names, verbResource(a))
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("actions = %v, want %v", names, want)
	}
}

func newDeployment(name string, replicas int32, image string) *appsv1.Deployment {
	deadline := int32(600)
	limit := int32(10)
	surge, unavail := intstr.FromString("25%"), intstr.FromString("25%")
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail}},
			ProgressDeadlineSeconds: &deadline,
			RevisionHistoryLimit:    &limit,
		},
	}
}

// rsFor is the ReplicaSet the controller would have made for d with image, sized n with
// available pods, at revision.
func rsFor(d *appsv1.Deployment, image string, n, available int32, revision string, age time.Duration) *appsv1.ReplicaSet {
	tmpl := d.Spec.Template.DeepCopy()
	tmpl.Spec.Containers[0].Image = image
	hash := ComputeHash(tmpl, nil)
	tmpl.Labels = map[string]string{"app": d.Name, DefaultDeploymentUniqueLabelKey: hash}
	t := true
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-" + hash, Namespace: d.Namespace, UID: types.UID(hash), Labels: tmpl.Labels,
			CreationTimestamp: metav1.NewTime(testNow.Add(-age)), Generation: 1,
			Annotations: map[string]string{RevisionAnnotation: revision, DesiredReplicasAnnotation: "3", MaxReplicasAnnotation: "4"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID,
				Controller: &t, BlockOwnerDeletion: &t}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: *tmpl},
		Status: appsv1.ReplicaSetStatus{Replicas: n, ReadyReplicas: available, AvailableReplicas: available,
			FullyLabeledReplicas: n, ObservedGeneration: 1},
	}
}

func TestNewDeploymentCreatesReplicaSet(t *testing.T) {
	d := newDeployment("web", 3, "nginx:1")
	f := newFixture(t, d)
	got := f.run("default/web")
	expectVerbs(t, got, "create replicasets", "patch deployments", "update deployments/status", "update deployments/status")

	rs := got[0].(core.CreateAction).GetObject().(*appsv1.ReplicaSet)
	hash := ComputeHash(&d.Spec.Template, nil)
	if rs.Name != "web-"+hash || rs.Labels[DefaultDeploymentUniqueLabelKey] != hash ||
		rs.Spec.Selector.MatchLabels[DefaultDeploymentUniqueLabelKey] != hash || rs.Spec.Selector.MatchLabels["app"] != "web" ||
		rs.Spec.Template.Labels[DefaultDeploymentUniqueLabelKey] != hash || *rs.Spec.Replicas != 3 {
		t.Fatalf("replica set %+v", rs)
	}
	if a := rs.Annotations; a[RevisionAnnotation] != "1" || a[DesiredReplicasAnnotation] != "3" || a[MaxReplicasAnnotation] != "4" {
		t.Fatalf("annotations %v", a)
	}
	if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID || !*ref.BlockOwnerDeletion {
		t.Fatalf("owner %+v", ref)
	}
	if p := string(got[1].(core.PatchAction).GetPatch()); p != `{"metadata":{"annotations":{"deployment.kubernetes.io/revision":"1"},"uid":"web-uid"}}` {
		t.Fatalf("revision patch %s", p)
	}
	st := got[2].(core.UpdateAction).GetObject().(*appsv1.Deployment).Status
	if c := getCondition(st, appsv1.DeploymentProgressing); c == nil || c.Reason != NewReplicaSetReason || c.Message != `Created new replica set "web-`+hash+`"` {
		t.Fatalf("Progressing %+v", c)
	}
	st = got[3].(core.UpdateAction).GetObject().(*appsv1.Deployment).Status
	if st.ObservedGeneration != 1 || st.Replicas != 0 || st.UpdatedReplicas != 0 || st.UnavailableReplicas != 3 {
		t.Fatalf("status %+v", st)
	}
	if c := getCondition(st, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionFalse || c.Reason != MinimumReplicasUnavail {
		t.Fatalf("Available %+v", c)
	}
	if ev := <-f.recorder.Events; ev != "Normal ScalingReplicaSet Scaled up replica set web-"+hash+" from 0 to 3" {
		t.Fatalf("event %q", ev)
	}
}

func TestRollingUpdateSurgesThenScalesDown(t *testing.T) {
	d := newDeployment("web", 3, "nginx:2")
	d.Annotations = map[string]string{RevisionAnnotation: "1"}
	old := rsFor(d, "nginx:1", 3, 3, "1", time.Hour)
	f := newFixture(t, d, old)
	got := f.run("default/web")
	// maxSurge 25% of 3 rounds up to 1: the new ReplicaSet starts at 1; maxUnavailable rounds
	// down to 0, so nothing old goes yet.
	expectVerbs(t, got, "create replicasets", "patch deployments", "update deployments/status", "update deployments/status")
	newRS := got[0].(core.CreateAction).GetObject().(*appsv1.ReplicaSet)
	if *newRS.Spec.Replicas != 1 || newRS.Annotations[RevisionAnnotation] != "2" {
		t.Fatalf("new replica set: %d replicas, annotations %v", *newRS.Spec.Replicas, newRS.Annotations)
	}

	// Once the new pod is available, one old replica goes.
	d.Annotations[RevisionAnnotation] = "2"
	d.Status.Conditions = []appsv1.DeploymentCondition{newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReplicaSetUpdatedReason, "", testNow)}
	cur := rsFor(d, "nginx:2", 1, 1, "2", time.Minute)
	f = newFixture(t, d, old, cur)
	got = f.run("default/web")
	expectVerbs(t, got, "update replicasets", "update deployments/status")
	scaled := got[0].(core.UpdateAction).GetObject().(*appsv1.ReplicaSet)
	if scaled.Name != old.Name || *scaled.Spec.Replicas != 2 {
		t.Fatalf("scaled %s to %d", scaled.Name, *scaled.Spec.Replicas)
	}
	if ev := <-f.recorder.Events; ev != "Normal ScalingReplicaSet Scaled down replica set "+old.Name+" from 3 to 2" {
		t.Fatalf("event %q", ev)
	}
}

func TestRecreateScalesOldDownFirst(t *testing.T) {
	d := newDeployment("web", 3, "nginx:2")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	old := rsFor(d, "nginx:1", 3, 3, "1", time.Hour)
	f := newFixture(t, d, old)
	got := f.run("default/web")
	expectVerbs(t, got, "update replicasets", "update deployments/status")
	if rs := got[0].(core.UpdateAction).GetObject().(*appsv1.ReplicaSet); *rs.Spec.Replicas != 0 {
		t.Fatalf("old scaled to %d", *rs.Spec.Replicas)
	}
}

func TestProportionalScaling(t *testing.T) {
	d := newDeployment("web", 20, "nginx:2")
	d.Status.Replicas = 13
	old := rsFor(d, "nginx:1", 8, 8, "1", time.Hour)
	cur := rsFor(d, "nginx:2", 5, 0, "2", time.Minute)
	for _, rs := range []*appsv1.ReplicaSet{old, cur} {
		rs.Annotations[DesiredReplicasAnnotation] = "10"
		rs.Annotations[MaxReplicasAnnotation] = "13"
	}
	d.Annotations = map[string]string{RevisionAnnotation: "2"}
	d.Status.Conditions = []appsv1.DeploymentCondition{newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReplicaSetUpdatedReason, "", testNow)}
	f := newFixture(t, d, old, cur)
	got := f.run("default/web")
	expectVerbs(t, got, "update replicasets", "update replicasets", "update deployments/status")
	sizes := map[string]int32{}
	for _, a := range got[:2] {
		rs := a.(core.UpdateAction).GetObject().(*appsv1.ReplicaSet)
		sizes[rs.Name] = *rs.Spec.Replicas
		if rs.Annotations[DesiredReplicasAnnotation] != "20" || rs.Annotations[MaxReplicasAnnotation] != "25" {
			t.Fatalf("annotations %v", rs.Annotations)
		}
	}
	// 13 → 25 pods (20 + 5 surge), shared 8:5.
	if sizes[old.Name] != 15 || sizes[cur.Name] != 10 {
		t.Fatalf("sizes %v", sizes)
	}
}

func TestCleanupKeepsRevisionHistoryLimit(t *testing.T) {
	d := newDeployment("web", 1, "nginx:4")
	limit := int32(1)
	d.Spec.RevisionHistoryLimit = &limit
	d.Annotations = map[string]string{RevisionAnnotation: "4"}
	cur := rsFor(d, "nginx:4", 1, 1, "4", time.Minute)
	cur.Annotations[DesiredReplicasAnnotation], cur.Annotations[MaxReplicasAnnotation] = "1", "2"
	objs := []runtime.Object{d, cur}
	for i, img := range []string{"nginx:1", "nginx:2", "nginx:3"} {
		objs = append(objs, rsFor(d, img, 0, 0, string(rune('1'+i)), time.Duration(4-i)*time.Hour))
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{
			newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, MinimumReplicasAvailable, "Deployment has minimum availability.", testNow),
			newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, NewRSAvailableReason, "", testNow)}}
	f := newFixture(t, objs...)
	got := f.run("default/web")
	expectVerbs(t, got, "delete replicasets", "delete replicasets")
	deleted := map[string]bool{}
	for _, a := range got {
		deleted[a.(core.DeleteAction).GetName()] = true
	}
	tmpl := d.Spec.Template.DeepCopy()
	for _, img := range []string{"nginx:1", "nginx:2"} {
		tmpl.Spec.Containers[0].Image = img
		if !deleted["web-"+ComputeHash(tmpl, nil)] {
			t.Fatalf("deleted %v, want revisions 1 and 2", deleted)
		}
	}
}

func TestPausedDeploymentOnlyRecordsPause(t *testing.T) {
	d := newDeployment("web", 3, "nginx:2")
	d.Spec.Paused = true
	d.Annotations = map[string]string{RevisionAnnotation: "1"}
	old := rsFor(d, "nginx:1", 3, 3, "1", time.Hour)
	f := newFixture(t, d, old)
	got := f.run("default/web")
	expectVerbs(t, got, "update deployments/status", "update deployments/status")
	st := got[0].(core.UpdateAction).GetObject().(*appsv1.Deployment).Status
	if c := getCondition(st, appsv1.DeploymentProgressing); c == nil || c.Reason != PausedDeployReason || c.Status != corev1.ConditionUnknown {
		t.Fatalf("Progressing %+v", c)
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	d := newDeployment("web", 1, "nginx:1")
	deadline := int32(10)
	d.Spec.ProgressDeadlineSeconds = &deadline
	d.Annotations = map[string]string{RevisionAnnotation: "1"}
	rs := rsFor(d, "nginx:1", 1, 0, "1", time.Hour)
	rs.Annotations[DesiredReplicasAnnotation], rs.Annotations[MaxReplicasAnnotation] = "1", "2"
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, UnavailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{
			newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, MinimumReplicasUnavail, "Deployment does not have minimum availability.", testNow),
			newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReplicaSetUpdatedReason, "", testNow.Add(-time.Minute))}}
	f := newFixture(t, d, rs)
	got := f.run("default/web")
	expectVerbs(t, got, "update deployments/status")
	st := got[0].(core.UpdateAction).GetObject().(*appsv1.Deployment).Status
	if c := getCondition(st, appsv1.DeploymentProgressing); c == nil || c.Status != corev1.ConditionFalse || c.Reason != TimedOutReason ||
		c.Message != `ReplicaSet "`+rs.Name+`" has timed out progressing.` {
		t.Fatalf("Progressing %+v", c)
	}
}

func TestComputeHash(t *testing.T) {
	d := newDeployment("web", 1, "nginx:1")
	h := ComputeHash(&d.Spec.Template, nil)
	if h != ComputeHash(d.Spec.Template.DeepCopy(), nil) {
		t.Fatal("hash not deterministic")
	}
	one := int32(1)
	if h == ComputeHash(&d.Spec.Template, &one) {
		t.Fatal("collisionCount does not change the hash")
	}
	for _, r := range h {
		if strings.ContainsRune("aeiou013", r) {
			t.Fatalf("hash %q has characters SafeEncodeString never emits", h)
		}
	}
}

func TestMaxSurgeMaxUnavailable(t *testing.T) {
	for _, tc := range []struct {
		replicas            int32
		surge, unavail      intstr.IntOrString
		wantSurge, wantUnav int32
	}{
		{10, intstr.FromString("25%"), intstr.FromString("25%"), 3, 2},
		{3, intstr.FromString("25%"), intstr.FromString("25%"), 1, 0},
		{3, intstr.FromInt32(0), intstr.FromInt32(0), 0, 1},
		{5, intstr.FromInt32(2), intstr.FromString("100%"), 2, 5},
	} {
		d := newDeployment("x", tc.replicas, "i")
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavail}
		if s, u := MaxSurge(d), MaxUnavailable(d); s != tc.wantSurge || u != tc.wantUnav {
			t.Errorf("%d replicas, surge %s, unavailable %s: got %d/%d, want %d/%d", tc.replicas, tc.surge.String(), tc.unavail.String(), s, u, tc.wantSurge, tc.wantUnav)
		}
	}
}
