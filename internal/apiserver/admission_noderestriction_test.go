package apiserver

import (
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
)

func TestForbiddenNodeLabels(t *testing.T) {
	for _, tc := range []struct {
		labels, old map[string]string
		create      bool
		want        []string
	}{
		{map[string]string{"kubernetes.io/hostname": "a", "kubernetes.io/os": "linux", "topology.kubernetes.io/zone": "z",
			"node.kubernetes.io/instance-type": "m", "kubelet.kubernetes.io/x": "1", "example.com/y": "2", "plain": "3"}, nil, true, nil},
		{map[string]string{"node-role.kubernetes.io/control-plane": "", "node-restriction.kubernetes.io/t": "1",
			"foo.node-restriction.kubernetes.io/t": "1", "example.k8s.io/z": "1"}, nil, true,
			[]string{"example.k8s.io/z", "foo.node-restriction.kubernetes.io/t", "node-restriction.kubernetes.io/t", "node-role.kubernetes.io/control-plane"}},
		// Updates judge only what changes: a label an administrator set may stay.
		{map[string]string{"node-role.kubernetes.io/worker": "", "a": "b"}, map[string]string{"node-role.kubernetes.io/worker": ""}, false, nil},
		{map[string]string{}, map[string]string{"node-role.kubernetes.io/worker": ""}, false, []string{"node-role.kubernetes.io/worker"}},
		{map[string]string{"node-role.kubernetes.io/worker": "x"}, map[string]string{"node-role.kubernetes.io/worker": ""}, false, []string{"node-role.kubernetes.io/worker"}},
	} {
		got := forbiddenNodeLabels(tc.labels, tc.old, tc.create)
		if len(got) != len(tc.want) {
			t.Errorf("%v (old %v): got %v, want %v", tc.labels, tc.old, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%v (old %v): got %v, want %v", tc.labels, tc.old, got, tc.want)
			}
		}
	}
}

func TestNodeTokenRequest(t *testing.T) {
	pods := map[string]*corev1.Pod{
		"on-a": {ObjectMeta: metav1.ObjectMeta{Name: "on-a", UID: "u1"}, Spec: corev1.PodSpec{NodeName: "a"}},
		"on-b": {ObjectMeta: metav1.ObjectMeta{Name: "on-b", UID: "u2"}, Spec: corev1.PodSpec{NodeName: "b"}},
	}
	get := func(name string) (*corev1.Pod, error) {
		if p, ok := pods[name]; ok {
			return p, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
	}
	tr := func(ref *authenticationv1.BoundObjectReference) *authenticationv1.TokenRequest {
		return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: ref}}
	}
	pod := func(name, uid string) *authenticationv1.BoundObjectReference {
		return &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: name, UID: k8stypes.UID(uid)}
	}
	for _, tc := range []struct {
		req  *authenticationv1.TokenRequest
		want string
	}{
		{tr(pod("on-a", "u1")), ""},
		{tr(nil), `serviceaccounts "sa" is forbidden: node requested token not bound to a pod`},
		{tr(&authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Secret", Name: "s"}), `serviceaccounts "sa" is forbidden: node requested token not bound to a pod`},
		{tr(pod("on-a", "")), `serviceaccounts "sa" is forbidden: node requested token with a pod binding without a uid`},
		{tr(pod("on-a", "old")), `serviceaccounts "sa" is forbidden: the UID in the bound object reference (old) does not match the UID in record. The object might have been deleted and then recreated`},
		{tr(pod("on-b", "u2")), `serviceaccounts "sa" is forbidden: node requested token bound to a pod scheduled on a different node`},
		{tr(pod("gone", "u3")), `pods "gone" not found`},
	} {
		err := nodeTokenRequestAllowed("a", "default", "sa", tc.req, get)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%+v:\n got: %s\nwant: %s", tc.req.Spec.BoundObjectRef, got, tc.want)
		}
	}
}
