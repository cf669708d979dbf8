package podgc

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func pod(name, node string, phase corev1.PodPhase, age int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Minute))},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func node(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }

func newTest(t *testing.T, cfg Config, objs ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	cfg.Client, cfg.Informers = client, factory
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return t0 }
	controllertest.StartInformers(t, client, factory)
	client.ClearActions()
	return c, client
}

// writes renders the non-read actions as "verb resource[/subresource] name".
func writes(client *fake.Clientset) []string {
	var out []string
	for _, a := range client.Actions() {
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		switch a := a.(type) {
		case clienttesting.DeleteAction:
			out = append(out, fmt.Sprintf("delete %s %s", res, a.GetName()))
		case clienttesting.UpdateAction:
			p := a.GetObject().(*corev1.Pod)
			out = append(out, fmt.Sprintf("update %s %s %s", res, p.Name, p.Status.Phase))
		case clienttesting.GetAction:
			out = append(out, fmt.Sprintf("get %s %s", res, a.GetName()))
		}
	}
	return out
}

func TestTerminatedOverThresholdOldestFirst(t *testing.T) {
	c, client := newTest(t, Config{TerminatedPodThreshold: 2},
		node("n1"),
		pod("new", "n1", corev1.PodSucceeded, 4), pod("old", "n1", corev1.PodFailed, 1),
		pod("mid", "n1", corev1.PodSucceeded, 2), pod("newer", "n1", corev1.PodFailed, 5),
		pod("running", "n1", corev1.PodRunning, 0))
	if err := c.gc(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"delete pods old", "delete pods mid"}
	if got := writes(client); !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
}

func TestUnderThresholdNothing(t *testing.T) {
	c, client := newTest(t, Config{}, node("n1"), pod("a", "n1", corev1.PodSucceeded, 1))
	if err := c.gc(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := writes(client); len(got) != 0 {
		t.Fatalf("want no writes, got %q", got)
	}
}

func TestOrphanedAfterQuarantine(t *testing.T) {
	c, client := newTest(t, Config{Quarantine: 40 * time.Second},
		node("n1"), pod("kept", "n1", corev1.PodRunning, 1), pod("orphan", "gone", corev1.PodRunning, 1),
		pod("orphan-done", "gone", corev1.PodSucceeded, 1))
	if err := c.gc(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := writes(client); len(got) != 0 {
		t.Fatalf("inside the quarantine: want no writes, got %q", got)
	}
	c.now = func() time.Time { return t0.Add(41 * time.Second) }
	if err := c.gc(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"get nodes gone", "update pods/status orphan Failed", "delete pods orphan", "delete pods orphan-done"}
	got := writes(client)
	if len(got) == 4 && got[1] == "delete pods orphan-done" { // pods of one node come in cache order
		got = []string{got[0], got[2], got[3], got[1]}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
	for _, a := range client.Actions() {
		if u, ok := a.(clienttesting.UpdateAction); ok {
			p := u.GetObject().(*corev1.Pod)
			if len(p.Status.Conditions) != 1 || p.Status.Conditions[0].Type != corev1.DisruptionTarget ||
				p.Status.Conditions[0].Reason != "DeletionByPodGC" {
				t.Fatalf("conditions %+v", p.Status.Conditions)
			}
		}
	}
}

func TestNodeBackInCacheNotOrphaned(t *testing.T) {
	// The cache lacks the node but the API server has it (just registered).
	c, client := newTest(t, Config{Quarantine: -1}, pod("p", "fresh", corev1.PodRunning, 1))
	if _, err := client.CoreV1().Nodes().Create(context.Background(), node("fresh"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	// Sync on the stale pod list: call gcOrphaned with no nodes.
	p, _ := client.CoreV1().Pods("ns").Get(context.Background(), "p", metav1.GetOptions{})
	client.ClearActions()
	if err := c.gcOrphaned(context.Background(), []*corev1.Pod{p}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := writes(client), []string{"get nodes fresh"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
}

func TestUnscheduledTerminating(t *testing.T) {
	deleting := pod("deleting", "", corev1.PodPending, 1)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	deleting.Finalizers = []string{"x"}
	c, client := newTest(t, Config{}, deleting, pod("pending", "", corev1.PodPending, 1))
	if err := c.gc(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"update pods/status deleting Failed", "delete pods deleting"}
	if got := writes(client); !reflect.DeepEqual(got, want) {
		t.Fatalf("actions\n got %q\nwant %q", got, want)
	}
}
