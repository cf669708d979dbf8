package scheduler_test

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/hollow"
)

func withClaim(claim string) podOpt {
	return func(p *v1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
	}
}

func (e *env) createClaim(name, class, volume string) {
	e.t.Helper()
	pvc := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(class), VolumeName: volume,
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}}}}
	if _, err := e.client.CoreV1().PersistentVolumeClaims("default").Create(context.Background(), pvc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// TestVolumeBinding: a delayed claim gets the pod's node as selected-node; a pod whose claim
// is bound to a node-local volume goes to that node; missing claims and unbound claims of an
// Immediate class make the pod unschedulable with kube-scheduler's messages.
func TestVolumeBinding(t *testing.T) {
	e := start(t, hollow.Config{Count: 3})
	ctx := context.Background()
	for _, sc := range []*storagev1.StorageClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "later"}, Provisioner: "example.com/later",
			VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)},
		{ObjectMeta: metav1.ObjectMeta{Name: "now"}, Provisioner: "example.com/now"},
	} {
		if _, err := e.client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	e.createClaim("delayed", "later", "")
	e.createPod("first", withClaim("delayed"))
	node := e.waitBound("first")["first"]
	pvc, err := e.client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "delayed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pvc.Annotations["volume.kubernetes.io/selected-node"]; got != node {
		t.Fatalf("selected-node %q, pod on %q", got, node)
	}
	// A second consumer of the still unbound claim follows the selected node.
	e.createPod("second", withClaim("delayed"))
	if got := e.waitBound("second")["second"]; got != node {
		t.Fatalf("second consumer on %s, claim selected %s", got, node)
	}

	// A volume pinned to one node: the pod goes there, whatever the spreading says.
	target := "hollow-2"
	if node == target {
		target = "hollow-1"
	}
	pv := &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pinned"}, Spec: v1.PersistentVolumeSpec{
		Capacity:               v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes:            []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
		StorageClassName:       "now",
		PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/tmp/pinned"}},
		NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{target}}}}}}},
	}}
	if _, err := e.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.createClaim("bound", "now", "pinned")
	for _, name := range []string{"p1", "p2", "p3"} {
		e.createPod(name, withClaim("bound"))
		if got := e.waitBound(name)[name]; got != target {
			t.Fatalf("%s on %s, its volume is on %s", name, got, target)
		}
	}

	e.createPod("orphan", withClaim("missing"))
	e.waitUnschedulableWith("orphan", `persistentvolumeclaim "missing" not found`)
	e.createClaim("immediate", "now", "")
	// The scheduler's cache may see the pod before the claim: the first message may say
	// "not found", the retry that the claim's arrival triggers says what is wrong now.
	e.createPod("waiting", withClaim("immediate"))
	e.waitUnschedulableWith("waiting", "pod has unbound immediate PersistentVolumeClaims")
	// The claim appears: the pod is retried and scheduled.
	e.createClaim("missing", "later", "")
	e.waitBound("orphan")
}

// waitUnschedulableWith waits for a PodScheduled=False condition whose message contains msg.
func (e *env) waitUnschedulableWith(name, msg string) {
	e.t.Helper()
	last := ""
	e.poll(name+" unschedulable with "+msg, func() bool {
		for _, c := range e.pod(name).Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
				last = c.Message
				return strings.Contains(c.Message, msg)
			}
		}
		return false
	})
	if !strings.Contains(last, msg) {
		e.t.Fatalf("%s: %s", name, last)
	}
}
