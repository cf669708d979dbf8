package nodelifecycle

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	c      *Controller
	client *fake.Clientset
	rec    *record.FakeRecorder
	now    time.Time
}

func newTest(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	rec := record.NewFakeRecorder(100)
	c, err := New(Config{Client: client, Informers: factory, Recorder: rec, NodeMonitorGracePeriod: 40 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{c: c, client: client, rec: rec, now: t0}
	c.now = func() time.Time { return h.now }
	controllertest.StartInformers(t, client, factory)
	nodes, _ := c.nodeLister.List(labels.Everything())
	c.updateZones(nodes)
	client.ClearActions()
	return h
}

// writes renders the write actions as "verb resource[/subresource] name".
func (h *harness) writes() []string {
	var out []string
	for _, a := range h.client.Actions() {
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		switch a := a.(type) {
		case clienttesting.DeleteAction:
			out = append(out, fmt.Sprintf("delete %s %s", res, a.GetName()))
		case clienttesting.UpdateAction:
			m, _ := metaName(a.GetObject())
			out = append(out, fmt.Sprintf("update %s %s", res, m))
		case clienttesting.CreateAction:
			m, _ := metaName(a.GetObject())
			out = append(out, fmt.Sprintf("create %s %s", res, m))
		}
	}
	h.client.ClearActions()
	return out
}

func metaName(obj runtime.Object) (string, bool) {
	switch o := obj.(type) {
	case *corev1.Node:
		return o.Name, true
	case *corev1.Pod:
		return o.Name, true
	}
	return "", false
}

func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func readyNode(name string, status corev1.ConditionStatus, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: status, LastHeartbeatTime: metav1.NewTime(t0.Add(-time.Minute))},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
		}},
	}
}

func lease(name string, renew time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: NodeLeaseNamespace},
		Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renew}}}
}

func boundPod(name, node string, tolerations ...corev1.Toleration) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: node, Tolerations: tolerations},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func unreachable(added time.Time) corev1.Taint {
	return corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: added}}
}

func TestSilentNodeMarkedUnknownAndTainted(t *testing.T) {
	custom := corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}
	h := newTest(t, readyNode("n1", corev1.ConditionTrue, custom), lease("n1", t0.Add(-time.Second)), readyNode("healthy", corev1.ConditionTrue),
		boundPod("p1", "n1"), boundPod("elsewhere", "n2"))
	ctx := context.Background()

	if err := h.c.syncNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if w := h.writes(); len(w) != 0 {
		t.Fatalf("healthy node: want no writes, got %q", w)
	}
	h.now = t0.Add(39 * time.Second)
	if err := h.c.syncNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if w := h.writes(); len(w) != 0 {
		t.Fatalf("inside the grace period: want no writes, got %q", w)
	}

	h.now = t0.Add(40 * time.Second)
	if err := h.c.syncNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"update nodes/status n1", "update nodes n1", "update pods/status p1"}
	if got := h.writes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
	node, _ := h.client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	for _, ct := range nodeConditionTypes {
		cond := condition(node.Status.Conditions, ct)
		if cond == nil || cond.Status != corev1.ConditionUnknown {
			t.Fatalf("condition %s: %+v", ct, cond)
		}
		if ct == corev1.NodeReady && (cond.Reason != "NodeStatusUnknown" || cond.Message != "Kubelet stopped posting node status.") {
			t.Fatalf("ready condition %+v", cond)
		}
	}
	if ready := condition(node.Status.Conditions, corev1.NodeReady); !ready.LastHeartbeatTime.Time.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("heartbeat time rewritten: %v", ready.LastHeartbeatTime)
	}
	var taints []string
	for _, tt := range node.Spec.Taints {
		taints = append(taints, tt.ToString())
		if tt.Effect == corev1.TaintEffectNoExecute && (tt.TimeAdded == nil || !tt.TimeAdded.Time.Equal(h.now)) {
			t.Fatalf("NoExecute taint without timeAdded: %+v", tt)
		}
	}
	sort.Strings(taints)
	wantTaints := []string{"dedicated=db:NoSchedule", "node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"}
	if !reflect.DeepEqual(taints, wantTaints) {
		t.Fatalf("taints %q, want %q", taints, wantTaints)
	}
	pod, _ := h.client.CoreV1().Pods("ns").Get(ctx, "p1", metav1.GetOptions{})
	if podCondition(pod.Status.Conditions, corev1.PodReady).Status != corev1.ConditionFalse {
		t.Fatalf("pod still ready: %+v", pod.Status.Conditions)
	}
	ev := strings.Join(h.events(), "\n")
	if !strings.Contains(ev, "Normal NodeNotReady Node n1 status is now: NodeNotReady") ||
		!strings.Contains(ev, "Warning NodeNotReady Node is not ready") {
		t.Fatalf("events:\n%s", ev)
	}
}

func TestLeaseRenewalKeepsNodeHealthy(t *testing.T) {
	h := newTest(t, readyNode("n1", corev1.ConditionTrue), lease("n1", t0), readyNode("healthy", corev1.ConditionTrue))
	ctx := context.Background()
	if err := h.c.syncNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	// The lease is renewed at t0+30s; at t0+60s the node has been silent for 30s only.
	if _, err := h.client.CoordinationV1().Leases(NodeLeaseNamespace).Update(ctx, lease("n1", t0.Add(30*time.Second)),
		metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l, _ := h.c.leaseLister.Leases(NodeLeaseNamespace).Get("n1"); l != nil && l.Spec.RenewTime.Time.After(t0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("informer did not see the renewal")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.client.ClearActions()
	for _, now := range []time.Duration{30 * time.Second, 60 * time.Second} {
		h.now = t0.Add(now)
		if err := h.c.syncNode(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
	}
	if w := h.writes(); len(w) != 0 {
		t.Fatalf("want no writes, got %q", w)
	}
	h.now = t0.Add(70 * time.Second)
	if err := h.c.syncNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.writes(), []string{"update nodes/status n1", "update nodes n1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("40s after the renewal: actions\n got %q\nwant %q", got, want)
	}
}

func TestNotReadyNodeTainted(t *testing.T) {
	h := newTest(t, readyNode("n1", corev1.ConditionFalse), lease("n1", t0), boundPod("p1", "n1"), readyNode("healthy", corev1.ConditionTrue))
	if err := h.c.syncNode(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.writes(), []string{"update nodes n1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
	node, _ := h.client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	var taints []string
	for _, tt := range node.Spec.Taints {
		taints = append(taints, tt.ToString())
	}
	want := []string{"node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/not-ready:NoExecute"}
	if !reflect.DeepEqual(taints, want) {
		t.Fatalf("taints %q, want %q", taints, want)
	}
}

func TestRecoveredNodeUntainted(t *testing.T) {
	custom := corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoExecute}
	h := newTest(t, readyNode("n1", corev1.ConditionTrue, unreachable(t0), custom,
		corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}), lease("n1", t0))
	if err := h.c.syncNode(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.writes(), []string{"update nodes n1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
	node, _ := h.client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != "dedicated" {
		t.Fatalf("taints %+v", node.Spec.Taints)
	}
}

func TestUnschedulableAndPressureTaints(t *testing.T) {
	n := readyNode("n1", corev1.ConditionTrue)
	n.Spec.Unschedulable = true
	n.Status.Conditions[1].Status = corev1.ConditionTrue // MemoryPressure
	got, changed := desiredTaints(n, t0, normal)
	if !changed {
		t.Fatal("want a change")
	}
	var s []string
	for _, tt := range got {
		s = append(s, tt.ToString())
	}
	want := []string{"node.kubernetes.io/memory-pressure:NoSchedule", "node.kubernetes.io/unschedulable:NoSchedule"}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("taints %q, want %q", s, want)
	}
	n.Spec.Taints = got
	if _, changed := desiredTaints(n, t0.Add(time.Hour), normal); changed {
		t.Fatal("second pass changed the taints")
	}
}

func TestTaintEviction(t *testing.T) {
	seconds := func(key string, s int64) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &s}
	}
	h := newTest(t,
		readyNode("n1", corev1.ConditionUnknown, unreachable(t0)),
		boundPod("intolerant", "n1"),
		boundPod("other-key", "n1", seconds(corev1.TaintNodeNotReady, 300)),
		boundPod("short", "n1", seconds(corev1.TaintNodeUnreachable, 30), seconds("", 60)),
		boundPod("forever", "n1", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists}),
		boundPod("wildcard", "n1", corev1.Toleration{Operator: corev1.TolerationOpExists}),
		boundPod("noschedule-only", "n1", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoSchedule}),
	)
	ctx := context.Background()
	h.now = t0.Add(10 * time.Second)
	for _, p := range []string{"intolerant", "other-key", "short", "forever", "wildcard", "noschedule-only"} {
		if err := h.c.syncPod(ctx, "ns/"+p); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"delete pods intolerant", "delete pods other-key", "delete pods noschedule-only"}
	if got := h.writes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
	if due := h.c.evictions["ns/short"]; !due.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("short due at %v", due)
	}
	h.now = t0.Add(29 * time.Second)
	if err := h.c.syncPod(ctx, "ns/short"); err != nil {
		t.Fatal(err)
	}
	if got := h.writes(); len(got) != 0 {
		t.Fatalf("before the toleration time: %q", got)
	}
	h.now = t0.Add(30 * time.Second)
	if err := h.c.syncPod(ctx, "ns/short"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.writes(), []string{"delete pods short"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
	ev := strings.Join(h.events(), "\n")
	for _, p := range []string{"intolerant", "short"} {
		if !strings.Contains(ev, "Normal TaintManagerEviction Marking for deletion Pod ns/"+p) {
			t.Fatalf("no eviction event for %s:\n%s", p, ev)
		}
	}
	for _, a := range h.client.Actions() {
		if d, ok := a.(clienttesting.DeleteAction); ok && (d.GetDeleteOptions().Preconditions == nil || d.GetDeleteOptions().Preconditions.UID == nil) {
			t.Fatal("delete without a UID precondition")
		}
	}
}

func TestEvictionCancelledWhenTaintGoes(t *testing.T) {
	h := newTest(t, readyNode("n1", corev1.ConditionUnknown, unreachable(t0)),
		boundPod("p", "n1", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)}))
	ctx := context.Background()
	if err := h.c.syncPod(ctx, "ns/p"); err != nil {
		t.Fatal(err)
	}
	n := readyNode("n1", corev1.ConditionTrue)
	if _, err := h.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cur, _ := h.c.nodeLister.Get("n1"); cur != nil && len(cur.Spec.Taints) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("informer did not see the update")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.client.ClearActions()
	if err := h.c.syncPod(ctx, "ns/p"); err != nil {
		t.Fatal(err)
	}
	if got := h.writes(); len(got) != 0 {
		t.Fatalf("want no writes, got %q", got)
	}
	if ev := strings.Join(h.events(), "\n"); !strings.Contains(ev, "Cancelling deletion of Pod ns/p") {
		t.Fatalf("events:\n%s", ev)
	}
}

func TestZoneDisruptionStopsNoExecuteTainting(t *testing.T) {
	inZone := func(n *corev1.Node, zone string) *corev1.Node {
		n.Labels = map[string]string{corev1.LabelTopologyZone: zone}
		return n
	}
	// Zone a: both nodes go silent. Zone b: one ready node.
	h := newTest(t, inZone(readyNode("a1", corev1.ConditionTrue), "a"), inZone(readyNode("a2", corev1.ConditionTrue), "a"),
		inZone(readyNode("b1", corev1.ConditionTrue), "b"))
	ctx := context.Background()
	for _, n := range []string{"a1", "a2", "b1"} {
		if err := h.c.syncNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	h.now = t0.Add(time.Minute)
	h.c.mu.Lock()
	h.c.health["b1"].probe = h.now // b1 keeps reporting
	h.c.mu.Unlock()
	if err := h.c.syncNode(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	n, _ := h.client.CoreV1().Nodes().Get(ctx, "a1", metav1.GetOptions{})
	if got := len(noExecuteTaints(n.Spec.Taints)); got != 1 {
		t.Fatalf("first silent node of a zone with a ready node: %d NoExecute taints", got)
	}
	// The pass sees a1 down; a2 is the zone's last node: it is marked, tainted NoSchedule only.
	nodes, _ := h.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	var ptrs []*corev1.Node
	for i := range nodes.Items {
		ptrs = append(ptrs, &nodes.Items[i])
	}
	h.c.updateZones(ptrs)
	if err := h.c.syncNode(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	n, _ = h.client.CoreV1().Nodes().Get(ctx, "a2", metav1.GetOptions{})
	if len(noExecuteTaints(n.Spec.Taints)) != 0 || len(n.Spec.Taints) != 1 {
		t.Fatalf("last node of a disrupted zone: taints %+v", n.Spec.Taints)
	}
}

func TestAllNodesDownRemovesNoExecuteTaints(t *testing.T) {
	h := newTest(t, readyNode("n1", corev1.ConditionUnknown, unreachable(t0),
		corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}),
		readyNode("n2", corev1.ConditionUnknown))
	if err := h.c.syncNode(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.writes(), []string{"update nodes n1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
	n, _ := h.client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Effect != corev1.TaintEffectNoSchedule {
		t.Fatalf("taints %+v", n.Spec.Taints)
	}
}
