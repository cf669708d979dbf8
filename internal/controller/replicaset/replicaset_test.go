package replicaset

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

// fixture is a controller on a fake clientset whose informer caches the test fills directly.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	recorder *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	client := fake.NewSimpleClientset(objs...)
	// The fake clientset does not implement generateName.
	var n atomic.Int32
	client.PrependReactor("create", "pods", func(a core.Action) (bool, runtime.Object, error) {
		pod := a.(core.CreateAction).GetObject().(*corev1.Pod)
		if pod.Name == "" {
			pod.Name = fmt.Sprintf("%s%d", pod.GenerateName, n.Add(1))
		}
		return false, nil, nil
	})
	f := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	c, err := New(client, f.Core().V1().Pods(), f.Apps().V1().ReplicaSets(), recorder, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return testNow }
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.ReplicaSet:
			_ = f.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			_ = f.Core().V1().Pods().Informer().GetIndexer().Add(o)
		}
	}
	client.ClearActions()
	return &fixture{t: t, client: client, c: c, recorder: recorder}
}

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// actions returns the client's actions without the informers' lists and watches.
func (f *fixture) actions() []core.Action {
	var out []core.Action
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		out = append(out, a)
	}
	return out
}

func (f *fixture) sync(key string) error {
	f.t.Helper()
	return f.c.sync(context.Background(), key)
}

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
			},
		},
	}
}

type podOpt func(*corev1.Pod)

func onNode(n string) podOpt          { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
func ready(since time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(since)}}
	}
}
func created(t time.Time) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}
func orphan() podOpt { return func(p *corev1.Pod) { p.OwnerReferences = nil } }
func labelled(l map[string]string) podOpt {
	return func(p *corev1.Pod) { p.Labels = l }
}

func newPodFor(rs *appsv1.ReplicaSet, name string, opts ...podOpt) *corev1.Pod {
	ref := ownerRef(rs)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: rs.Namespace, UID: types.UID(name + "-uid"),
			Labels: map[string]string{"app": rs.Name}, OwnerReferences: []metav1.OwnerReference{ref}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	for _, o := range opts {
		o(p)
	}
	return p
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
	if len(got) != len(want) {
		var names []string
		for _, a := range got {
			names = append(names, verbResource(a))
		}
		t.Fatalf("actions = %v, want %v", names, want)
	}
	for i := range want {
		if verbResource(got[i]) != want[i] {
			t.Fatalf("action %d = %s, want %s", i, verbResource(got[i]), want[i])
		}
	}
}

func TestSyncCreatesMissingPods(t *testing.T) {
	rs := newRS("web", 3)
	f := newFixture(t, rs)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	got := f.actions()
	expectVerbs(t, got, "create pods", "create pods", "create pods", "update replicasets/status")
	for _, a := range got[:3] {
		pod := a.(core.CreateAction).GetObject().(*corev1.Pod)
		ref := metav1.GetControllerOf(pod)
		if pod.GenerateName != "web-" || pod.Labels["app"] != "web" || ref == nil || ref.UID != rs.UID ||
			ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion || pod.Spec.Containers[0].Image != "nginx" {
			t.Fatalf("created pod %+v", pod)
		}
	}
	st := got[3].(core.UpdateAction).GetObject().(*appsv1.ReplicaSet).Status
	if st.Replicas != 0 || st.ObservedGeneration != 1 {
		t.Fatalf("status %+v", st)
	}
	for range 3 {
		if ev := <-f.recorder.Events; ev[:len("Normal SuccessfulCreate Created pod: web-")] != "Normal SuccessfulCreate Created pod: web-" {
			t.Fatalf("event %q", ev)
		}
	}

	// Until the informer shows the new pods, another sync creates nothing (the status is
	// written again: the cache still holds the old one).
	f.client.ClearActions()
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	expectVerbs(t, f.actions(), "update replicasets/status")
}

func TestSyncDeletesCheapestPods(t *testing.T) {
	rs := newRS("web", 1)
	old := testNow.Add(-time.Hour)
	pods := []runtime.Object{
		newPodFor(rs, "running-ready", onNode("n1"), phase(corev1.PodRunning), ready(old), created(old)),
		newPodFor(rs, "running-not-ready", onNode("n1"), phase(corev1.PodRunning), created(old)),
		newPodFor(rs, "unscheduled", created(old)),
	}
	f := newFixture(t, append(pods, rs)...)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	got := f.actions()
	expectVerbs(t, got, "delete pods", "delete pods", "update replicasets/status")
	deleted := map[string]bool{}
	for _, a := range got[:2] {
		deleted[a.(core.DeleteAction).GetName()] = true
	}
	if !deleted["unscheduled"] || !deleted["running-not-ready"] {
		t.Fatalf("deleted %v, want the unscheduled and the not-ready pods", deleted)
	}
	st := got[2].(core.UpdateAction).GetObject().(*appsv1.ReplicaSet).Status
	if st.Replicas != 3 || st.ReadyReplicas != 1 || st.AvailableReplicas != 1 || st.FullyLabeledReplicas != 3 {
		t.Fatalf("status %+v", st)
	}
}

func TestSyncAdoptsOrphanAndReleasesMismatch(t *testing.T) {
	rs := newRS("web", 1)
	f := newFixture(t, rs,
		newPodFor(rs, "orphan", orphan()),
		newPodFor(rs, "relabelled", labelled(map[string]string{"app": "other"})))
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	got := f.actions()
	// The owned pod that no longer matches is released; the orphan is adopted after a live
	// check that the ReplicaSet is still there; it makes up the one replica.
	var verbs []string
	for _, a := range got {
		verbs = append(verbs, verbResource(a))
	}
	want := map[string]string{}
	for _, a := range got {
		if p, ok := a.(core.PatchAction); ok {
			want[p.GetName()] = string(p.GetPatch())
		}
	}
	if len(got) != 4 || verbResource(got[3]) != "update replicasets/status" || len(want) != 2 {
		t.Fatalf("actions %v", verbs)
	}
	if w := `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"web-uid"}],"uid":"relabelled-uid"}}`; want["relabelled"] != w {
		t.Fatalf("release patch %s, want %s", want["relabelled"], w)
	}
	if w := `{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"web-uid","controller":true,"blockOwnerDeletion":true}],"uid":"orphan-uid"}}`; want["orphan"] != w {
		t.Fatalf("adopt patch %s, want %s", want["orphan"], w)
	}
	if st := got[3].(core.UpdateAction).GetObject().(*appsv1.ReplicaSet).Status; st.Replicas != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestSyncMinReadySeconds(t *testing.T) {
	rs := newRS("web", 2)
	rs.Spec.MinReadySeconds = 30
	f := newFixture(t, rs,
		newPodFor(rs, "long-ready", onNode("n"), phase(corev1.PodRunning), ready(testNow.Add(-time.Minute))),
		newPodFor(rs, "just-ready", onNode("n"), phase(corev1.PodRunning), ready(testNow.Add(-time.Second))))
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	got := f.actions()
	expectVerbs(t, got, "update replicasets/status")
	st := got[0].(core.UpdateAction).GetObject().(*appsv1.ReplicaSet).Status
	if st.ReadyReplicas != 2 || st.AvailableReplicas != 1 {
		t.Fatalf("status %+v", st)
	}
	// The sync asked to be woken when the second pod becomes available.
	if f.c.queue.Len() != 0 {
		t.Fatal("requeued at once")
	}
}

func TestSyncIgnoresOtherControllersPods(t *testing.T) {
	rs, other := newRS("web", 1), newRS("other", 1)
	pod := newPodFor(other, "theirs", labelled(map[string]string{"app": "web"}))
	f := newFixture(t, rs, other, pod)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	expectVerbs(t, f.actions(), "create pods", "update replicasets/status")
}

func TestSyncDeletedReplicaSetForgetsExpectations(t *testing.T) {
	f := newFixture(t)
	f.c.expectations.ExpectCreations("default/gone", 3)
	if err := f.sync("default/gone"); err != nil {
		t.Fatal(err)
	}
	if !f.c.expectations.Satisfied("default/gone") {
		t.Fatal("expectations kept for a deleted ReplicaSet")
	}
	expectVerbs(t, f.actions())
}

func TestSlowStartBatch(t *testing.T) {
	var calls atomic.Int32
	done, err := slowStartBatch(10, 1, func() error {
		if calls.Add(1) > 4 {
			return fmt.Errorf("quota")
		}
		return nil
	})
	// Batches of 1, 2, 4: the third batch has failures, so no fourth batch.
	if err == nil || calls.Load() != 7 || done != 4 {
		t.Fatalf("calls %d, done %d, err %v", calls.Load(), done, err)
	}
}

func TestPodsToDeleteOrder(t *testing.T) {
	rs := newRS("web", 0)
	old, older := testNow.Add(-time.Minute), testNow.Add(-time.Hour)
	pods := []*corev1.Pod{
		newPodFor(rs, "ready-old", onNode("a"), phase(corev1.PodRunning), ready(older), created(older)),
		newPodFor(rs, "ready-new", onNode("b"), phase(corev1.PodRunning), ready(old), created(old)),
		newPodFor(rs, "running-not-ready", onNode("c"), phase(corev1.PodRunning), created(older)),
		newPodFor(rs, "pending", onNode("d"), created(older)),
		newPodFor(rs, "unscheduled", created(older)),
	}
	cheap := newPodFor(rs, "cheap", onNode("e"), phase(corev1.PodRunning), ready(older), created(older))
	cheap.Annotations = map[string]string{podDeletionCost: "-10"}
	pods = append(pods, cheap)
	want := []string{"unscheduled", "pending", "running-not-ready", "cheap", "ready-new", "ready-old"}
	got := podsToDelete(pods, len(pods)-1)
	for i, p := range got {
		if p.Name != want[i] {
			t.Fatalf("position %d: %s, want %s (order %v)", i, p.Name, want[i], names(got))
		}
	}
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}
