package scheduler

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nanokube/nanokube/internal/scheduler/framework"
)

func testNode(name string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourcePods: resource.MustParse("10")}}}
}

func testPod(name, node string) *framework.PodInfo {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)},
		Spec: v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}}}}
	return framework.NewPodInfo(p, 0)
}

func TestSnapshotCopiesOnlyChangedNodes(t *testing.T) {
	c := newCache()
	c.addNode(testNode("a"))
	c.addNode(testNode("b"))
	snap := &framework.Snapshot{}
	c.updateSnapshot(snap)
	if len(snap.Nodes) != 2 {
		t.Fatalf("snapshot has %d nodes", len(snap.Nodes))
	}
	a, b := snap.ByName["a"], snap.ByName["b"]
	bGen := b.Generation

	c.assume(testPod("p1", "a"))
	c.updateSnapshot(snap)
	if snap.ByName["a"] != a || len(a.Pods) != 1 || a.Requested.MilliCPU != 1000 {
		t.Errorf("node a not updated in place: %+v", a)
	}
	if b.Generation != bGen {
		t.Error("unchanged node b was copied")
	}

	// The binding confirms the assumed pod; deleting it frees the room.
	c.addPod(testPod("p1", "a"))
	c.updateSnapshot(snap)
	if len(a.Pods) != 1 {
		t.Errorf("confirmed pod counted %d times", len(a.Pods))
	}
	c.removePod("p1")
	c.forget("p1")
	c.updateSnapshot(snap)
	if len(a.Pods) != 0 || a.Requested.MilliCPU != 0 {
		t.Errorf("pod not removed: %+v", a)
	}

	// A failed binding is forgotten.
	c.assume(testPod("p2", "b"))
	c.forget("p2")
	c.updateSnapshot(snap)
	if len(b.Pods) != 0 || c.has("p2") {
		t.Error("forgotten pod still counted")
	}

	c.removeNode("a")
	c.updateSnapshot(snap)
	if len(snap.Nodes) != 1 || snap.ByName["a"] != nil {
		t.Errorf("removed node still in the snapshot: %d nodes", len(snap.Nodes))
	}
}

func TestPodOnUnknownNodeWaitsForIt(t *testing.T) {
	c := newCache()
	c.addPod(testPod("early", "late-node"))
	snap := &framework.Snapshot{}
	c.updateSnapshot(snap)
	if len(snap.Nodes) != 0 {
		t.Fatal("a node without a Node object is in the snapshot")
	}
	c.addNode(testNode("late-node"))
	c.updateSnapshot(snap)
	if n := snap.ByName["late-node"]; n == nil || len(n.Pods) != 1 {
		t.Errorf("late node lacks its pod: %+v", n)
	}
}
