package daemonset

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fixture is a controller on a fake clientset whose informer caches the test fills directly.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	c        *Controller
	clock    *testingclock.FakeClock
	recorder *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
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
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	c, err := New(Config{Client: client, Informers: factory, Recorder: recorder})
	if err != nil {
		t.Fatal(err)
	}
	clk := testingclock.NewFakeClock(testNow)
	c.setClock(clk)
	f := &fixture{t: t, client: client, factory: factory, c: c, clock: clk, recorder: recorder}
	for _, o := range objs {
		f.add(o)
	}
	client.ClearActions()
	return f
}

// add puts o in the informer caches (not in the fake API server).
func (f *fixture) add(o runtime.Object) {
	var err error
	switch o := o.(type) {
	case *appsv1.DaemonSet:
		err = f.factory.Apps().V1().DaemonSets().Informer().GetIndexer().Add(o)
	case *appsv1.ControllerRevision:
		err = f.factory.Apps().V1().ControllerRevisions().Informer().GetIndexer().Add(o)
	case *corev1.Pod:
		err = f.factory.Core().V1().Pods().Informer().GetIndexer().Add(o)
	case *corev1.Node:
		err = f.factory.Core().V1().Nodes().Informer().GetIndexer().Add(o)
	default:
		f.t.Fatalf("cannot cache %T", o)
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) sync(ds *appsv1.DaemonSet) {
	f.t.Helper()
	if err := f.c.sync(context.Background(), key(ds)); err != nil {
		f.t.Fatal(err)
	}
}

// actions returns the client's actions without the informers' lists and watches.
func (f *fixture) actions() []core.Action {
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

// expectVerbs checks the actions' verbs and resources, in order.
func (f *fixture) expectVerbs(want ...string) []core.Action {
	f.t.Helper()
	got := f.actions()
	var names []string
	for _, a := range got {
		names = append(names, verbResource(a))
	}
	if !slices.Equal(names, want) {
		f.t.Fatalf("actions = %v, want %v", names, want)
	}
	return got
}

// events drains the recorded events.
func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// createdPods returns the pods created by actions, by the node they are pinned to.
func createdPods(t *testing.T, actions []core.Action) map[string]*corev1.Pod {
	t.Helper()
	out := map[string]*corev1.Pod{}
	for _, a := range actions {
		if a.GetVerb() != "create" || a.GetResource().Resource != "pods" {
			continue
		}
		pod := a.(core.CreateAction).GetObject().(*corev1.Pod)
		node, err := targetNode(pod)
		if err != nil {
			t.Fatalf("created pod %s: %v", pod.Name, err)
		}
		if out[node] != nil {
			t.Fatalf("two pods created for node %s", node)
		}
		out[node] = pod
	}
	return out
}

func deletedPods(actions []core.Action) []string {
	var out []string
	for _, a := range actions {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			out = append(out, a.(core.DeleteAction).GetName())
		}
	}
	sort.Strings(out)
	return out
}

func statusOf(t *testing.T, actions []core.Action) appsv1.DaemonSetStatus {
	t.Helper()
	for _, a := range actions {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			return a.(core.UpdateAction).GetObject().(*appsv1.DaemonSet).Status
		}
	}
	t.Fatal("no status update")
	return appsv1.DaemonSetStatus{}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type nodeOpt func(*corev1.Node)

func labelled(kv ...string) nodeOpt {
	return func(n *corev1.Node) {
		for i := 0; i < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func tainted(key, value string, effect corev1.TaintEffect) nodeOpt {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: effect})
	}
}

func newNode(name string, opts ...nodeOpt) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	for _, o := range opts {
		o(n)
	}
	return n
}

func newDS(name, image string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromInt32(1)), MaxSurge: ptr.To(intstr.FromInt32(0))}},
			RevisionHistoryLimit: ptr.To[int32](10),
		},
	}
}

// withImage returns a copy of ds at the next generation with a new image.
func withImage(ds *appsv1.DaemonSet, image string) *appsv1.DaemonSet {
	ds = ds.DeepCopy()
	ds.Spec.Template.Spec.Containers[0].Image = image
	ds.Generation++
	return ds
}

func hashOf(ds *appsv1.DaemonSet) string {
	return computeHash(&ds.Spec.Template, ds.Status.CollisionCount)
}

// revisionOf is the ControllerRevision the controller makes for ds's template.
func revisionOf(t *testing.T, ds *appsv1.DaemonSet, revision int64) *appsv1.ControllerRevision {
	t.Helper()
	data, err := revisionData(ds)
	if err != nil {
		t.Fatal(err)
	}
	h := hashOf(ds)
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: ds.Name + "-" + h, Namespace: ds.Namespace, UID: types.UID(ds.Name + "-" + h),
			Labels:          map[string]string{"app": ds.Name, appsv1.DefaultDaemonSetUniqueLabelKey: h},
			OwnerReferences: []metav1.OwnerReference{ownerRef(ds)}},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
}

type podOpt func(*corev1.Pod)

func notReady() podOpt { return func(p *corev1.Pod) { p.Status.Conditions = nil } }
func readySince(t time.Time) podOpt {
	return func(p *corev1.Pod) { p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(t) }
}
func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
func created(t time.Time) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}
func unscheduled() podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = pinToNode(nil, p.Spec.NodeName)
		p.Spec.NodeName = ""
	}
}
func orphaned() podOpt { return func(p *corev1.Pod) { p.OwnerReferences = nil } }

// daemonPod is a running, ready pod of ds's template hashed as ofTemplate's, on node.
func daemonPod(ds, ofTemplate *appsv1.DaemonSet, name, node string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ds.Namespace, UID: types.UID(name + "-uid"),
			CreationTimestamp: metav1.NewTime(testNow.Add(-time.Hour)),
			Labels:            map[string]string{"app": ds.Name, appsv1.DefaultDaemonSetUniqueLabelKey: hashOf(ofTemplate)},
			OwnerReferences:   []metav1.OwnerReference{ownerRef(ds)}},
		Spec: corev1.PodSpec{NodeName: node, Containers: ofTemplate.Spec.Template.Spec.Containers},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady,
			Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(testNow.Add(-time.Hour))}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

var defaultTolerations = []corev1.Toleration{
	{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: "node.kubernetes.io/disk-pressure", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: "node.kubernetes.io/memory-pressure", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: "node.kubernetes.io/pid-pressure", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: "node.kubernetes.io/unschedulable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

func pinnedAffinity(node string) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{
			Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}}}
}

func TestCreatesPodsOnEligibleNodesOnly(t *testing.T) {
	ds := newDS("agent", "agent:1")
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"role": "agent"}
	f := newFixture(t, ds,
		newNode("a", labelled("role", "agent")),
		newNode("b"), // not selected
		newNode("c", labelled("role", "agent"), tainted("dedicated", "infra", corev1.TaintEffectNoSchedule)),
		newNode("d", labelled("role", "agent"), tainted("node.kubernetes.io/not-ready", "", corev1.TaintEffectNoExecute)),
		newNode("e", labelled("role", "agent"), tainted("node.kubernetes.io/unschedulable", "", corev1.TaintEffectNoSchedule)),
		newNode("f", labelled("role", "agent"), tainted("node.kubernetes.io/network-unavailable", "", corev1.TaintEffectNoSchedule)),
		newNode("g", labelled("role", "agent"), tainted("dedicated", "infra", corev1.TaintEffectPreferNoSchedule)),
	)
	f.sync(ds)
	got := f.expectVerbs("create controllerrevisions", "create pods", "create pods", "create pods", "create pods", "update daemonsets/status")
	pods := createdPods(t, got)
	if nodes := sortedKeys(pods); !slices.Equal(nodes, []string{"a", "d", "e", "g"}) {
		t.Fatalf("pods created for nodes %v, want a, d, e and g", nodes)
	}
	hash := hashOf(ds)
	for node, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if pod.GenerateName != "agent-" || pod.Spec.NodeName != "" || ref == nil || ref.UID != ds.UID || ref.Kind != "DaemonSet" ||
			ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Fatalf("pod for %s: %+v", node, pod.ObjectMeta)
		}
		if want := map[string]string{"app": "agent", "controller-revision-hash": hash}; !apiequality.Semantic.DeepEqual(pod.Labels, want) {
			t.Fatalf("pod for %s: labels %v, want %v", node, pod.Labels, want)
		}
		if !apiequality.Semantic.DeepEqual(pod.Spec.Affinity, pinnedAffinity(node)) {
			t.Fatalf("pod for %s: affinity %+v", node, pod.Spec.Affinity)
		}
		if !apiequality.Semantic.DeepEqual(pod.Spec.Tolerations, defaultTolerations) {
			t.Fatalf("pod for %s: tolerations %+v", node, pod.Spec.Tolerations)
		}
	}
	st := statusOf(t, got)
	if st.DesiredNumberScheduled != 4 || st.CurrentNumberScheduled != 0 || st.NumberUnavailable != 4 || st.ObservedGeneration != 1 {
		t.Fatalf("status %+v", st)
	}
	if ev := f.events(); len(ev) != 4 || !strings.HasPrefix(ev[0], "Normal SuccessfulCreate Created pod: agent-") {
		t.Fatalf("events %q", ev)
	}

	// Until the informer shows the new pods, a sync creates nothing more; it finds the revision
	// it made (the cache does not show it yet either) and writes the status, without raising
	// observedGeneration.
	f.client.ClearActions()
	f.sync(ds)
	got = f.expectVerbs("create controllerrevisions", "get controllerrevisions", "update daemonsets/status")
	if st := statusOf(t, got); st.ObservedGeneration != 0 || st.DesiredNumberScheduled != 4 {
		t.Fatalf("status while waiting for the pods %+v", st)
	}
}

func TestHostNetworkTolerationsAndAffinity(t *testing.T) {
	ds := newDS("net", "net:1")
	spec := &ds.Spec.Template.Spec
	spec.HostNetwork = true
	// A user's not-ready toleration with a limit is replaced by the unlimited default.
	spec.Tolerations = []corev1.Toleration{
		{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "infra", Effect: corev1.TaintEffectNoSchedule},
	}
	preferred := []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: corev1.NodeSelectorTerm{
		MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}}}}
	spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1"}}}},
			{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}},
		}},
		PreferredDuringSchedulingIgnoredDuringExecution: preferred,
	}}
	f := newFixture(t, ds,
		newNode("a", labelled("zone", "z1"), tainted("node.kubernetes.io/network-unavailable", "", corev1.TaintEffectNoSchedule)),
		newNode("b", labelled("zone", "z2"), tainted("dedicated", "infra", corev1.TaintEffectNoSchedule)),
		newNode("d", labelled("zone", "z2")), // matches neither term
	)
	f.sync(ds)
	pods := createdPods(t, f.expectVerbs("create controllerrevisions", "create pods", "create pods", "update daemonsets/status"))
	if nodes := sortedKeys(pods); !slices.Equal(nodes, []string{"a", "b"}) {
		t.Fatalf("pods created for nodes %v, want a and b", nodes)
	}
	wantTolerations := []corev1.Toleration{
		{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "infra", Effect: corev1.TaintEffectNoSchedule},
	}
	wantTolerations = append(wantTolerations, defaultTolerations[1:]...)
	wantTolerations = append(wantTolerations, corev1.Toleration{Key: "node.kubernetes.io/network-unavailable",
		Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	for node, pod := range pods {
		if !apiequality.Semantic.DeepEqual(pod.Spec.Tolerations, wantTolerations) {
			t.Fatalf("pod for %s: tolerations %+v", node, pod.Spec.Tolerations)
		}
		// The required terms are replaced by the one that pins the pod; the rest stays.
		want := pinnedAffinity(node)
		want.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = preferred
		if !apiequality.Semantic.DeepEqual(pod.Spec.Affinity, want) {
			t.Fatalf("pod for %s: affinity %+v", node, pod.Spec.Affinity.NodeAffinity)
		}
	}
	// The template itself is untouched.
	if len(ds.Spec.Template.Spec.Tolerations) != 2 || len(ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) != 2 {
		t.Fatal("the cached DaemonSet was modified")
	}
}

func TestNodeShouldRunDaemonPod(t *testing.T) {
	base := newDS("x", "x:1")
	for _, tc := range []struct {
		name                  string
		mutate                func(*appsv1.DaemonSet)
		node                  *corev1.Node
		shouldRun, shouldStay bool
	}{
		{"plain node", nil, newNode("n"), true, true},
		{"nodeName of another node", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeName = "m" }, newNode("n"), false, false},
		{"nodeName of this node", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeName = "n" }, newNode("n"), true, true},
		{"nodeSelector mismatch", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"a": "b"} }, newNode("n"), false, false},
		{"untolerated NoSchedule", nil, newNode("n", tainted("k", "v", corev1.TaintEffectNoSchedule)), false, true},
		{"untolerated NoExecute", nil, newNode("n", tainted("k", "v", corev1.TaintEffectNoExecute)), false, false},
		{"PreferNoSchedule", nil, newNode("n", tainted("k", "v", corev1.TaintEffectPreferNoSchedule)), true, true},
		{"tolerated NoExecute", func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
		}, newNode("n", tainted("k", "v", corev1.TaintEffectNoExecute)), true, true},
		{"unreachable", nil, newNode("n", tainted("node.kubernetes.io/unreachable", "", corev1.TaintEffectNoExecute)), true, true},
		{"memory pressure", nil, newNode("n", tainted("node.kubernetes.io/memory-pressure", "", corev1.TaintEffectNoSchedule)), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := base.DeepCopy()
			if tc.mutate != nil {
				tc.mutate(ds)
			}
			run, stay := nodeShouldRunDaemonPod(tc.node, ds)
			if run != tc.shouldRun || stay != tc.shouldStay {
				t.Fatalf("shouldRun, shouldContinueRunning = %v, %v; want %v, %v", run, stay, tc.shouldRun, tc.shouldStay)
			}
		})
	}
}

func TestDeletesPodsWhereDaemonSetNoLongerFits(t *testing.T) {
	ds := newDS("agent", "agent:1")
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"role": "agent"}
	f := newFixture(t, ds, revisionOf(t, ds, 1),
		newNode("a", labelled("role", "agent")),
		newNode("b"), // lost its label
		newNode("c", labelled("role", "agent"), tainted("evict", "", corev1.TaintEffectNoExecute)),
		newNode("d", labelled("role", "agent"), tainted("keep-out", "", corev1.TaintEffectNoSchedule)),
		daemonPod(ds, ds, "on-a", "a"), daemonPod(ds, ds, "on-b", "b"), daemonPod(ds, ds, "on-c", "c"), daemonPod(ds, ds, "on-d", "d"),
		daemonPod(ds, ds, "for-gone-node", "gone", unscheduled()),
		daemonPod(ds, ds, "extra-on-a", "a", created(testNow.Add(-time.Minute))),
	)
	f.sync(ds)
	got := f.expectVerbs("delete pods", "delete pods", "delete pods", "delete pods", "update daemonsets/status")
	if d := deletedPods(got); !slices.Equal(d, []string{"extra-on-a", "for-gone-node", "on-b", "on-c"}) {
		t.Fatalf("deleted %v", d)
	}
	// d's pod tolerates nothing but a NoSchedule taint came after it: it stays, misscheduled.
	st := statusOf(t, got)
	want := appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, CurrentNumberScheduled: 1, NumberMisscheduled: 3, NumberReady: 1,
		UpdatedNumberScheduled: 1, NumberAvailable: 1, ObservedGeneration: 1}
	if !apiequality.Semantic.DeepEqual(st, want) {
		t.Fatalf("status %+v, want %+v", st, want)
	}
}

func TestFailedPodIsReplacedWithBackoff(t *testing.T) {
	ds := newDS("agent", "agent:1")
	failed := daemonPod(ds, ds, "failed-1", "a", phase(corev1.PodFailed), notReady())
	f := newFixture(t, ds, revisionOf(t, ds, 1), newNode("a"), failed)
	f.sync(ds)
	got := f.expectVerbs("delete pods", "update daemonsets/status")
	if d := deletedPods(got); !slices.Equal(d, []string{"failed-1"}) {
		t.Fatalf("deleted %v", d)
	}
	if ev := f.events(); len(ev) != 2 || ev[0] != "Warning FailedDaemonPod Found failed daemon pod default/failed-1 on node a, will try to kill it" ||
		ev[1] != "Normal SuccessfulDelete Deleted pod: failed-1" {
		t.Fatalf("events %q", ev)
	}

	// Its replacement fails at once too: it is left alone for the backoff (1s) and the
	// DaemonSet is looked at again when it ends.
	_ = f.factory.Core().V1().Pods().Informer().GetIndexer().Delete(failed)
	f.c.deletePod(failed)
	f.add(daemonPod(ds, ds, "failed-2", "a", phase(corev1.PodFailed), notReady()))
	f.client.ClearActions()
	f.sync(ds)
	f.expectVerbs("update daemonsets/status")
	if ev := f.events(); len(ev) != 0 {
		t.Fatalf("events during backoff %q", ev)
	}
	f.clock.Step(2 * time.Second)
	f.client.ClearActions()
	f.sync(ds)
	if d := deletedPods(f.expectVerbs("delete pods", "update daemonsets/status")); !slices.Equal(d, []string{"failed-2"}) {
		t.Fatalf("deleted %v", d)
	}
}

func TestSucceededPodIsDeleted(t *testing.T) {
	ds := newDS("agent", "agent:1")
	f := newFixture(t, ds, revisionOf(t, ds, 1), newNode("a"), daemonPod(ds, ds, "done", "a", phase(corev1.PodSucceeded), notReady()))
	f.sync(ds)
	if d := deletedPods(f.expectVerbs("delete pods", "update daemonsets/status")); !slices.Equal(d, []string{"done"}) {
		t.Fatalf("deleted %v", d)
	}
}

func TestRollingUpdateRespectsMaxUnavailable(t *testing.T) {
	v1 := newDS("agent", "agent:1")
	v2 := withImage(v1, "agent:2")
	nodes := []runtime.Object{newNode("a"), newNode("b"), newNode("c")}
	for _, tc := range []struct {
		name           string
		maxUnavailable intstr.IntOrString
		pods           []*corev1.Pod
		deleted        []string
	}{
		{"one at a time", intstr.FromInt32(1),
			[]*corev1.Pod{daemonPod(v2, v1, "old-a", "a"), daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c")},
			[]string{"old-a"}},
		{"new pod not yet available", intstr.FromInt32(1),
			[]*corev1.Pod{daemonPod(v2, v2, "new-a", "a", notReady()), daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c")},
			nil},
		{"next once available", intstr.FromInt32(1),
			[]*corev1.Pod{daemonPod(v2, v2, "new-a", "a"), daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c")},
			[]string{"old-b"}},
		{"a percentage rounds up", intstr.FromString("50%"),
			[]*corev1.Pod{daemonPod(v2, v1, "old-a", "a"), daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c")},
			[]string{"old-a", "old-b"}},
		{"unavailable old pods are replaced first", intstr.FromInt32(1),
			[]*corev1.Pod{daemonPod(v2, v1, "old-a", "a"), daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c", notReady())},
			[]string{"old-c"}},
		{"a node being filled holds the update back", intstr.FromInt32(1),
			[]*corev1.Pod{daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c")},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := v2.DeepCopy()
			ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &tc.maxUnavailable
			objs := append([]runtime.Object{ds, revisionOf(t, v1, 1), revisionOf(t, v2, 2)}, nodes...)
			for _, p := range tc.pods {
				objs = append(objs, p)
			}
			f := newFixture(t, objs...)
			f.sync(ds)
			var want []string
			if len(tc.pods) < 3 {
				want = append(want, "create pods") // manage fills the empty node first
			}
			for range tc.deleted {
				want = append(want, "delete pods")
			}
			got := f.expectVerbs(append(want, "update daemonsets/status")...)
			if d := deletedPods(got); !slices.Equal(d, tc.deleted) {
				t.Fatalf("deleted %v, want %v", d, tc.deleted)
			}
		})
	}
}

func TestRollingUpdateWithMaxSurge(t *testing.T) {
	v1 := newDS("agent", "agent:1")
	v2 := withImage(v1, "agent:2")
	v2.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1))}
	objs := func(pods ...*corev1.Pod) []runtime.Object {
		out := []runtime.Object{v2, revisionOf(t, v1, 1), revisionOf(t, v2, 2), newNode("a"), newNode("b"), newNode("c")}
		for _, p := range pods {
			out = append(out, p)
		}
		return out
	}

	// Step 1: a new pod starts next to the old one on one node; nothing is deleted.
	f := newFixture(t, objs(daemonPod(v2, v1, "old-a", "a"), daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c"))...)
	f.sync(v2)
	pods := createdPods(t, f.expectVerbs("create pods", "update daemonsets/status"))
	if p := pods["a"]; p == nil || p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != hashOf(v2) || p.Spec.Containers[0].Image != "agent:2" {
		t.Fatalf("surge pods %v", pods)
	}

	// Step 2: the new pod is not ready yet: both stay, no other node surges.
	f = newFixture(t, objs(daemonPod(v2, v1, "old-a", "a"), daemonPod(v2, v2, "new-a", "a", notReady()),
		daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c"))...)
	f.sync(v2)
	f.expectVerbs("update daemonsets/status")

	// Step 3: the new pod is available: the old one goes. The oldest pod still speaks for
	// the node in the status.
	f = newFixture(t, objs(daemonPod(v2, v1, "old-a", "a"), daemonPod(v2, v2, "new-a", "a", created(testNow.Add(-time.Minute))),
		daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c"))...)
	f.sync(v2)
	got := f.expectVerbs("delete pods", "update daemonsets/status")
	if d := deletedPods(got); !slices.Equal(d, []string{"old-a"}) {
		t.Fatalf("deleted %v", d)
	}
	if st := statusOf(t, got); st.UpdatedNumberScheduled != 0 || st.NumberAvailable != 3 {
		t.Fatalf("status %+v", st)
	}

	// Step 4: once that deletion is seen, the next node surges.
	f = newFixture(t, objs(daemonPod(v2, v2, "new-a", "a"), daemonPod(v2, v1, "old-b", "b"), daemonPod(v2, v1, "old-c", "c"))...)
	f.sync(v2)
	if nodes := sortedKeys(createdPods(t, f.expectVerbs("create pods", "update daemonsets/status"))); !slices.Equal(nodes, []string{"b"}) {
		t.Fatalf("surged onto %v", nodes)
	}

	// An old pod that is not ready is replaced whatever the surge budget.
	f = newFixture(t, objs(daemonPod(v2, v1, "old-a", "a"), daemonPod(v2, v2, "new-a", "a", notReady()),
		daemonPod(v2, v1, "old-b", "b", notReady()), daemonPod(v2, v1, "old-c", "c"))...)
	f.sync(v2)
	if nodes := sortedKeys(createdPods(t, f.expectVerbs("create pods", "update daemonsets/status"))); !slices.Equal(nodes, []string{"b"}) {
		t.Fatalf("surged onto %v", nodes)
	}
}

func TestOnDeleteReplacesOnlyDeletedPods(t *testing.T) {
	v1 := newDS("agent", "agent:1")
	v2 := withImage(v1, "agent:2")
	v2.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	f := newFixture(t, v2, revisionOf(t, v1, 1), newNode("a"), newNode("b"),
		daemonPod(v2, v1, "old-a", "a"), daemonPod(v2, v1, "old-b", "b"))
	f.sync(v2)
	got := f.expectVerbs("create controllerrevisions", "update daemonsets/status")
	cr := got[0].(core.CreateAction).GetObject().(*appsv1.ControllerRevision)
	if cr.Revision != 2 || cr.Name != "agent-"+hashOf(v2) {
		t.Fatalf("revision %s %d", cr.Name, cr.Revision)
	}
	if st := statusOf(t, got); st.UpdatedNumberScheduled != 0 || st.CurrentNumberScheduled != 2 {
		t.Fatalf("status %+v", st)
	}

	// Someone deletes the pod on a: its replacement runs the new template.
	f = newFixture(t, v2, revisionOf(t, v1, 1), revisionOf(t, v2, 2), newNode("a"), newNode("b"), daemonPod(v2, v1, "old-b", "b"))
	f.sync(v2)
	pods := createdPods(t, f.expectVerbs("create pods", "update daemonsets/status"))
	if p := pods["a"]; p == nil || p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != hashOf(v2) || p.Spec.Containers[0].Image != "agent:2" {
		t.Fatalf("replacement %+v", pods)
	}
}

func TestHistory(t *testing.T) {
	v1 := newDS("agent", "agent:1")
	v1.Annotations = map[string]string{"kubernetes.io/change-cause": "first"}

	// The first sync records revision 1: kubectl reads its data as a patch of the template.
	f := newFixture(t, v1)
	f.sync(v1)
	got := f.expectVerbs("create controllerrevisions", "update daemonsets/status")
	cr := got[0].(core.CreateAction).GetObject().(*appsv1.ControllerRevision)
	hash := hashOf(v1)
	wantData := `{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"agent"}},"spec":{"containers":[{"image":"agent:1","name":"c","resources":{}}]}}}}`
	if string(cr.Data.Raw) != wantData {
		t.Fatalf("data %s\nwant %s", cr.Data.Raw, wantData)
	}
	ref := metav1.GetControllerOf(cr)
	if cr.Name != "agent-"+hash || cr.Revision != 1 || ref == nil || ref.UID != v1.UID ||
		!apiequality.Semantic.DeepEqual(cr.Labels, map[string]string{"app": "agent", "controller-revision-hash": hash}) ||
		cr.Annotations["kubernetes.io/change-cause"] != "first" {
		t.Fatalf("revision %+v", cr.ObjectMeta)
	}

	// A new template is revision 2.
	v2 := withImage(v1, "agent:2")
	f = newFixture(t, v2, revisionOf(t, v1, 1))
	f.sync(v2)
	cr = f.expectVerbs("create controllerrevisions", "update daemonsets/status")[0].(core.CreateAction).GetObject().(*appsv1.ControllerRevision)
	if cr.Revision != 2 || cr.Name != "agent-"+hashOf(v2) {
		t.Fatalf("second revision %s %d", cr.Name, cr.Revision)
	}

	// Undo: the first template comes back and its revision is renumbered 3.
	v3 := withImage(v2, "agent:1")
	f = newFixture(t, v3, revisionOf(t, v1, 1), revisionOf(t, v2, 2))
	f.sync(v3)
	cr = f.expectVerbs("update controllerrevisions", "update daemonsets/status")[0].(core.UpdateAction).GetObject().(*appsv1.ControllerRevision)
	if cr.Name != "agent-"+hash || cr.Revision != 3 {
		t.Fatalf("undo revision %s %d", cr.Name, cr.Revision)
	}

	// revisionHistoryLimit: the oldest old revisions no pod runs go.
	v4 := withImage(v3, "agent:4")
	v4.Spec.RevisionHistoryLimit = ptr.To[int32](1)
	r1, r2, r3 := revisionOf(t, withImage(v1, "agent:a"), 1), revisionOf(t, withImage(v1, "agent:b"), 2), revisionOf(t, withImage(v1, "agent:c"), 3)
	f = newFixture(t, v4, r1, r2, r3, revisionOf(t, v4, 4), newNode("a"),
		daemonPod(v4, withImage(v1, "agent:b"), "runs-r2", "a", notReady()))
	f.sync(v4)
	got = f.expectVerbs("delete pods", "delete controllerrevisions", "delete controllerrevisions", "update daemonsets/status")
	var deleted []string
	for _, a := range got[1:3] {
		deleted = append(deleted, a.(core.DeleteAction).GetName())
	}
	if !slices.Equal(deleted, []string{r1.Name, r3.Name}) {
		t.Fatalf("deleted revisions %v, want %s and %s", deleted, r1.Name, r3.Name)
	}
}

func TestAdoptsOrphans(t *testing.T) {
	ds := newDS("agent", "agent:1")
	orphanRevision := revisionOf(t, ds, 1)
	orphanRevision.OwnerReferences = nil
	f := newFixture(t, ds, orphanRevision, newNode("a"), daemonPod(ds, ds, "orphan", "a", orphaned()))
	f.sync(ds)
	// Each claim reads the DaemonSet live once before adopting; the adopted pod fills node a.
	got := f.expectVerbs("get daemonsets", "patch pods", "get daemonsets", "patch controllerrevisions", "update daemonsets/status")
	want := `{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"agent","uid":"agent-uid","controller":true,"blockOwnerDeletion":true}],"uid":"orphan-uid"}}`
	if p := string(got[1].(core.PatchAction).GetPatch()); p != want {
		t.Fatalf("adopt patch %s, want %s", p, want)
	}
	if st := statusOf(t, got); st.CurrentNumberScheduled != 1 || st.UpdatedNumberScheduled != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestStatusCountsAndMinReadySeconds(t *testing.T) {
	v1 := newDS("agent", "agent:1")
	ds := withImage(v1, "agent:2")
	ds.Spec.MinReadySeconds = 30
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	f := newFixture(t, ds, revisionOf(t, v1, 1), revisionOf(t, ds, 2),
		newNode("a"), newNode("b"), newNode("c"), newNode("d", tainted("k", "", corev1.TaintEffectNoSchedule)),
		daemonPod(ds, ds, "long-ready", "a"),
		daemonPod(ds, ds, "just-ready", "b", readySince(testNow.Add(-time.Second))),
		daemonPod(ds, v1, "old-not-ready", "c", notReady()),
		daemonPod(ds, ds, "misscheduled", "d"),
	)
	f.sync(ds)
	st := statusOf(t, f.expectVerbs("update daemonsets/status"))
	want := appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberMisscheduled: 1, NumberReady: 2,
		NumberAvailable: 1, NumberUnavailable: 2, UpdatedNumberScheduled: 2, ObservedGeneration: 2}
	if !apiequality.Semantic.DeepEqual(st, want) {
		t.Fatalf("status %+v, want %+v", st, want)
	}
	// Woken again when the just-ready pod should be available, not at once.
	if f.c.queue.Len() != 0 {
		t.Fatal("requeued at once")
	}
}

func TestSteadyDaemonSetMakesNoCalls(t *testing.T) {
	ds := newDS("agent", "agent:1")
	ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, CurrentNumberScheduled: 1, NumberReady: 1, NumberAvailable: 1,
		UpdatedNumberScheduled: 1, ObservedGeneration: 1}
	f := newFixture(t, ds, revisionOf(t, ds, 1), newNode("a"), daemonPod(ds, ds, "p", "a"))
	f.sync(ds)
	f.expectVerbs()
}

func TestTemplateGenerationLabel(t *testing.T) {
	v1 := newDS("agent", "agent:1")
	v2 := withImage(v1, "agent:2")
	v2.Annotations = map[string]string{appsv1.DeprecatedTemplateGeneration: "2"}
	// A pod made by an older controller carries the generation, not the hash: it is current.
	legacy := daemonPod(v2, v1, "legacy", "b")
	legacy.Labels = map[string]string{"app": "agent", templateGenerationLabel: "2"}
	f := newFixture(t, v2, revisionOf(t, v1, 1), revisionOf(t, v2, 2), newNode("a"), newNode("b"), legacy)
	f.sync(v2)
	got := f.expectVerbs("create pods", "update daemonsets/status")
	if p := createdPods(t, got)["a"]; p == nil || p.Labels[templateGenerationLabel] != "2" || p.Labels["controller-revision-hash"] != hashOf(v2) {
		t.Fatalf("created %+v", createdPods(t, got))
	}
	if st := statusOf(t, got); st.UpdatedNumberScheduled != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestSelectingAllIsRefused(t *testing.T) {
	ds := newDS("agent", "agent:1")
	ds.Spec.Selector = &metav1.LabelSelector{}
	f := newFixture(t, ds, newNode("a"))
	f.sync(ds)
	f.expectVerbs()
	if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning SelectingAll ") {
		t.Fatalf("events %q", ev)
	}
}

func TestNodeEventsWakeTheRightDaemonSets(t *testing.T) {
	all := newDS("all", "x")
	picky := newDS("picky", "x")
	picky.Spec.Template.Spec.NodeSelector = map[string]string{"role": "gpu"}
	f := newFixture(t, all, picky)
	drain := func() []string {
		var out []string
		for f.c.queue.Len() > 0 {
			k, _ := f.c.queue.Get()
			f.c.queue.Done(k)
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	n := newNode("n")
	f.c.addNode(n)
	if got := drain(); !slices.Equal(got, []string{"default/all"}) {
		t.Fatalf("node added: %v", got)
	}
	beat := n.DeepCopy()
	beat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	f.c.updateNode(n, beat)
	if got := drain(); len(got) != 0 {
		t.Fatalf("status-only update: %v", got)
	}
	gpu := newNode("n", labelled("role", "gpu"))
	f.c.updateNode(n, gpu)
	if got := drain(); !slices.Equal(got, []string{"default/picky"}) {
		t.Fatalf("label added: %v", got)
	}
	evict := gpu.DeepCopy()
	evict.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoExecute}}
	f.c.updateNode(gpu, evict)
	if got := drain(); !slices.Equal(got, []string{"default/all", "default/picky"}) {
		t.Fatalf("NoExecute taint: %v", got)
	}
}

func TestSlowStartBatch(t *testing.T) {
	var calls atomic.Int32
	done, err := slowStartBatch(10, 1, func(i int) error {
		calls.Add(1)
		if i >= 4 {
			return fmt.Errorf("quota")
		}
		return nil
	})
	// Batches of 1, 2, 4: the third batch has failures, so no fourth batch.
	if err == nil || calls.Load() != 7 || done != 7 {
		t.Fatalf("calls %d, done %d, err %v", calls.Load(), done, err)
	}
}
