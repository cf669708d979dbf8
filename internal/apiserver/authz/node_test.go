package authz

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nanokube/nanokube/internal/pki"
)

func boundPodObj(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			NodeName:           node,
			ServiceAccountName: "sa1",
			ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "pull"}},
			Volumes: []corev1.Volume{
				{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-secret"}}},
				{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-cm"}}}},
				{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-secret"}}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-cm"}}},
				}}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "claim"}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}},
			},
			InitContainers: []corev1.Container{{Name: "i", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-cm"}}}}}},
			Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}, Key: "k"}}}}}},
		},
	}
}

func nodeUser(name string) pki.UserInfo {
	return pki.UserInfo{Name: NodeUserPrefix + name, Groups: []string{NodesGroup, AuthenticatedGroup}}
}

func TestNodeIdentity(t *testing.T) {
	for _, tc := range []struct {
		user   pki.UserInfo
		name   string
		isNode bool
	}{
		{nodeUser("a"), "a", true},
		{pki.UserInfo{Name: "system:node:a"}, "", false},                    // not in system:nodes
		{pki.UserInfo{Name: "bob", Groups: []string{NodesGroup}}, "", true}, // in the group, no node name
		{pki.UserInfo{Name: "system:kube-proxy", Groups: nil}, "", false},
	} {
		name, isNode := NodeIdentity(tc.user)
		if name != tc.name || isNode != tc.isNode {
			t.Errorf("%v: got %q %v, want %q %v", tc.user, name, isNode, tc.name, tc.isNode)
		}
	}
}

func TestNodeAuthorizer(t *testing.T) {
	g := NewNodeGraph()
	g.SetPod(boundPodObj("ns", "p1", "a"))
	g.SetPod(boundPodObj("other", "p2", "b"))
	unbound := boundPodObj("ns", "pending", "")
	unbound.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pending-secret"}}
	g.SetPod(unbound)
	g.SetPV(&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: corev1.PersistentVolumeSpec{ClaimRef: &corev1.ObjectReference{Namespace: "ns", Name: "claim"}}})
	g.SetPV(&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv2"},
		Spec: corev1.PersistentVolumeSpec{ClaimRef: &corev1.ObjectReference{Namespace: "other", Name: "claim"}}})
	az := NewNode(g, nil)

	a := nodeUser("a")
	at := func(verb, group, resource, sub, ns, name string) Attributes {
		x := res(verb, group, resource, sub, ns, name)
		x.User = a
		return x
	}
	for _, tc := range []struct {
		attrs  Attributes
		want   Decision
		reason string
	}{
		{at("get", "", "secrets", "", "ns", "vol-secret"), Allow, ""},
		{at("get", "", "secrets", "", "ns", "pull"), Allow, ""},
		{at("get", "", "secrets", "", "ns", "proj-secret"), Allow, ""},
		{at("get", "", "secrets", "", "ns", "env-secret"), Allow, ""},
		{at("watch", "", "secrets", "", "ns", "env-secret"), Allow, ""}, // watch by metadata.name
		{at("get", "", "configmaps", "", "ns", "vol-cm"), Allow, ""},
		{at("get", "", "configmaps", "", "ns", "proj-cm"), Allow, ""},
		{at("get", "", "configmaps", "", "ns", "init-cm"), Allow, ""},
		{at("get", "", "persistentvolumeclaims", "", "ns", "claim"), Allow, ""},
		{at("get", "", "persistentvolumeclaims", "", "ns", "p1-scratch"), Allow, ""},
		{at("get", "", "persistentvolumes", "", "", "pv1"), Allow, ""},
		{at("get", "", "serviceaccounts", "", "ns", "sa1"), Allow, ""},
		{at("create", "", "serviceaccounts", "token", "ns", "sa1"), Allow, ""},
		{at("update", "", "persistentvolumeclaims", "status", "ns", "claim"), Allow, ""},
		// Another node's objects, and objects of no pod.
		{at("get", "", "secrets", "", "other", "vol-secret"), NoOpinion, "no relationship found between node 'a' and this object"},
		{at("get", "", "secrets", "", "ns", "unrelated"), NoOpinion, "no relationship found between node 'a' and this object"},
		{at("get", "", "secrets", "", "ns", "pending-secret"), NoOpinion, "no relationship found between node 'a' and this object"},
		{at("get", "", "persistentvolumes", "", "", "pv2"), NoOpinion, "no relationship found between node 'a' and this object"},
		{at("create", "", "serviceaccounts", "token", "other", "sa1"), NoOpinion, "no relationship found between node 'a' and this object"},
		// Shapes the node authorizer never allows.
		{at("list", "", "secrets", "", "ns", ""), NoOpinion, "No Object name found"},
		{at("list", "", "secrets", "", "", ""), NoOpinion, "can only read namespaced object of this type"},
		{at("update", "", "secrets", "", "ns", "vol-secret"), NoOpinion, "can only read resources of this type"},
		{at("list", "", "persistentvolumes", "", "", ""), NoOpinion, "can only get individual resources of this type"},
		{at("create", "", "serviceaccounts", "", "ns", ""), NoOpinion, "can only create tokens for individual service accounts"},
		// Leases: only its own, only in kube-node-lease.
		{at("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "a"), Allow, ""},
		{at("create", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), Allow, ""},
		{at("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "b"), NoOpinion, "can only access node lease with the same name as the requesting node"},
		{at("get", "coordination.k8s.io", "leases", "", "kube-system", "a"), NoOpinion, `can only access leases in the "kube-node-lease" system namespace`},
		{at("list", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), NoOpinion, "can only get, create, update, patch, or delete a node lease"},
		// The static node rules.
		{at("get", "", "nodes", "", "", "a"), Allow, ""},
		{at("watch", "", "pods", "", "", ""), Allow, ""},
		{at("list", "", "services", "", "", ""), Allow, ""},
		{at("patch", "", "pods", "status", "ns", "p1"), Allow, ""},
		{at("create", "", "events", "", "ns", ""), Allow, ""},
		{at("delete", "", "nodes", "", "", "a"), NoOpinion, ""},
		{at("create", "apps", "deployments", "", "ns", ""), NoOpinion, ""},
	} {
		d, reason, err := az.Authorize(context.Background(), tc.attrs)
		if err != nil || d != tc.want || reason != tc.reason {
			t.Errorf("%s %s/%s %s/%s: got %v %q %v, want %v %q", tc.attrs.Verb, tc.attrs.Resource, tc.attrs.Subresource,
				tc.attrs.Namespace, tc.attrs.Name, d, reason, err, tc.want, tc.reason)
		}
	}

	// Other users: no opinion, whatever they ask.
	bob := res("get", "", "secrets", "", "ns", "vol-secret")
	bob.User = pki.UserInfo{Name: "bob"}
	if d, _, _ := az.Authorize(context.Background(), bob); d != NoOpinion {
		t.Errorf("non-node user: %v", d)
	}
}

func TestNodeGraphFollowsPods(t *testing.T) {
	g := NewNodeGraph()
	p := boundPodObj("ns", "p1", "")
	g.SetPod(p) // pending: nothing
	if g.HasPath("a", SecretKind, "ns", "vol-secret") {
		t.Fatal("unbound pod grants access")
	}
	p = p.DeepCopy()
	p.Spec.NodeName = "a" // bound
	g.SetPod(p)
	if !g.HasPath("a", SecretKind, "ns", "vol-secret") {
		t.Fatal("bound pod grants no access")
	}
	// A second pod on a referencing the same secret; deleting one keeps the other's grant.
	q := p.DeepCopy()
	q.Name = "p2"
	g.SetPod(q)
	g.DeletePod("ns", "p1")
	if !g.HasPath("a", SecretKind, "ns", "vol-secret") {
		t.Fatal("deleting one of two pods dropped the grant")
	}
	// An update that stops using the secret drops it.
	q = q.DeepCopy()
	q.Spec.Volumes = nil
	g.SetPod(q)
	if g.HasPath("a", SecretKind, "ns", "vol-secret") || g.HasPath("a", PersistentVolumeClaimKind, "ns", "claim") {
		t.Fatal("a volume the pod dropped still grants access")
	}
	if !g.HasPath("a", SecretKind, "ns", "pull") {
		t.Fatal("image pull secret lost")
	}
	g.DeletePod("ns", "p2")
	if g.HasPath("a", SecretKind, "ns", "pull") || len(g.refs) != 0 || len(g.pods) != 0 {
		t.Fatalf("deleted pods leave grants: %v %v", g.refs, g.pods)
	}
	// Volumes follow their claim.
	g.SetPV(&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: corev1.PersistentVolumeSpec{ClaimRef: &corev1.ObjectReference{Namespace: "ns", Name: "claim"}}})
	if g.HasPVPath("a", "pv1") {
		t.Fatal("volume of an unused claim readable")
	}
	g.SetPod(p)
	if !g.HasPVPath("a", "pv1") {
		t.Fatal("volume of a used claim unreadable")
	}
	g.DeletePV("pv1")
	if g.HasPVPath("a", "pv1") {
		t.Fatal("deleted volume readable")
	}
}

func TestNodeGraphWaitFor(t *testing.T) {
	g := NewNodeGraph()
	go g.Observed(5, 3) // a feed that catches up while WaitFor waits, or before
	if !g.WaitFor(context.Background(), 5, 3, 5*time.Second) {
		t.Fatal("WaitFor gave up although the graph caught up")
	}
	if g.WaitFor(context.Background(), 6, 0, 20*time.Millisecond) {
		t.Fatal("WaitFor reported a revision the graph has not seen")
	}
}

func TestUnionAuthorizer(t *testing.T) {
	g := NewNodeGraph()
	u := Union{NewNode(g, nil), AlwaysAllow{}}
	a := res("get", "", "secrets", "", "ns", "x")
	a.User = nodeUser("a")
	if d, _, _ := u.Authorize(context.Background(), a); d != Allow {
		t.Fatalf("a NoOpinion of Node must fall through to the next mode, got %v", d)
	}
	d, reason, _ := Union{NewNode(g, nil)}.Authorize(context.Background(), a)
	if d != NoOpinion || reason != "no relationship found between node 'a' and this object" {
		t.Fatalf("got %v %q", d, reason)
	}
}
