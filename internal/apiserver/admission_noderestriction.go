package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/apiserver/authz"
	"github.com/nanokube/nanokube/internal/storage"
)

// admissionOperation is the operation an admission check sees, named as in Kubernetes.
type admissionOperation string

const (
	admissionCreate admissionOperation = "CREATE"
	admissionUpdate admissionOperation = "UPDATE"
	admissionDelete admissionOperation = "DELETE"
)

// mirrorPodAnnotation marks the API copy of a kubelet's static pod.
const mirrorPodAnnotation = "kubernetes.io/config.mirror"

// admitNodeRestriction is Kubernetes' NodeRestriction admission plugin: a node (user
// system:node:<name> in system:nodes) may only create and modify its own Node object,
// without setting labels reserved to administrators; only create mirror pods bound to
// itself; only update the status of and delete pods bound to itself; only write its own
// Lease. obj is the new object (nil on delete), old the stored one (nil on create); sub the
// subresource. Requests of other users pass.
func (s *Server) admitNodeRestriction(ctx context.Context, op admissionOperation, rs *resourceStore, sub string, obj, old runtime.Object) error {
	u, ok := userFromContext(ctx)
	if !ok {
		return nil
	}
	node, isNode := authz.NodeIdentity(u)
	if !isNode {
		return nil
	}
	gr := rs.gr
	name := ""
	if o := firstObject(obj, old); o != nil {
		if m, err := meta.Accessor(o); err == nil {
			name = m.GetName()
		}
	}
	forbid := func(format string, args ...any) error {
		return apierrors.NewForbidden(gr, name, fmt.Errorf(format, args...))
	}
	if node == "" {
		return forbid("could not determine node from user %q", u.Name)
	}
	switch {
	case gr.Group == "" && gr.Resource == "nodes":
		return admitNodeObject(node, op, obj, old, forbid)
	case gr.Group == "" && gr.Resource == "pods":
		return admitNodePod(node, op, sub, obj, old, forbid)
	case gr.Group == "coordination.k8s.io" && gr.Resource == "leases":
		if op == admissionDelete {
			return nil
		}
		lease, _ := obj.(*coordinationv1.Lease)
		if lease == nil {
			return nil
		}
		if lease.Namespace != authz.NodeLeaseNamespace {
			return forbid("can only access leases in the %q system namespace", authz.NodeLeaseNamespace)
		}
		if lease.Name != node {
			return forbid("can only access node lease with the same name as the requesting node")
		}
	}
	return nil
}

func firstObject(objs ...runtime.Object) runtime.Object {
	for _, o := range objs {
		if o != nil {
			return o
		}
	}
	return nil
}

func admitNodeObject(node string, op admissionOperation, obj, old runtime.Object, forbid func(string, ...any) error) error {
	n, _ := obj.(*corev1.Node)
	if n == nil {
		n, _ = old.(*corev1.Node)
	}
	if n == nil {
		return nil
	}
	if n.Name != node {
		return forbid("node %q is not allowed to modify node %q", node, n.Name)
	}
	switch op {
	case admissionCreate:
		if bad := forbiddenNodeLabels(n.Labels, nil, true); len(bad) > 0 {
			return forbid("node %q is not allowed to set the following labels: %s", node, strings.Join(bad, ", "))
		}
	case admissionUpdate:
		o, _ := old.(*corev1.Node)
		if o == nil {
			return nil
		}
		if bad := forbiddenNodeLabels(n.Labels, o.Labels, false); len(bad) > 0 {
			return forbid("node %q is not allowed to modify labels: %s", node, strings.Join(bad, ", "))
		}
		// A node may not steer workloads to itself by dropping its taints, nor change what
		// the control plane assigned it.
		if !taintsEqual(n.Spec.Taints, o.Spec.Taints) {
			return forbid("node %q is not allowed to modify taints", node)
		}
		if n.Spec.PodCIDR != o.Spec.PodCIDR && o.Spec.PodCIDR != "" {
			return forbid("node %q is not allowed to modify pod CIDR", node)
		}
		if n.Spec.ProviderID != o.Spec.ProviderID && o.Spec.ProviderID != "" {
			return forbid("node %q is not allowed to modify provider ID", node)
		}
	}
	return nil
}

func taintsEqual(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Value != b[i].Value || a[i].Effect != b[i].Effect {
			return false
		}
	}
	return true
}

// forbiddenNodeLabels lists the labels a node may not set (all of labels on create, the
// added, changed or removed ones on update): those under node-restriction.kubernetes.io/,
// and those under kubernetes.io or k8s.io that are not the kubelet's own.
func forbiddenNodeLabels(labels, old map[string]string, create bool) []string {
	var bad []string
	check := func(k string) {
		if forbiddenNodeLabel(k) {
			bad = append(bad, k)
		}
	}
	for k, v := range labels {
		if ov, ok := old[k]; create || !ok || ov != v {
			check(k)
		}
	}
	if !create {
		for k := range old {
			if _, ok := labels[k]; !ok {
				check(k)
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// kubeletLabels are the kubernetes.io labels a kubelet sets on its own Node.
var kubeletLabels = map[string]bool{
	corev1.LabelHostname: true, corev1.LabelTopologyZone: true, corev1.LabelTopologyRegion: true,
	corev1.LabelFailureDomainBetaZone: true, corev1.LabelFailureDomainBetaRegion: true,
	corev1.LabelInstanceType: true, corev1.LabelInstanceTypeStable: true,
	corev1.LabelOSStable: true, corev1.LabelArchStable: true,
	"beta.kubernetes.io/os": true, "beta.kubernetes.io/arch": true,
}

// kubeletLabelNamespaces are label namespaces a kubelet may use freely.
var kubeletLabelNamespaces = []string{"kubelet.kubernetes.io", "node.kubernetes.io"}

func forbiddenNodeLabel(key string) bool {
	ns, _, found := strings.Cut(key, "/")
	if !found {
		return false
	}
	const restricted = "node-restriction.kubernetes.io"
	if ns == restricted || strings.HasSuffix(ns, "."+restricted) {
		return true
	}
	kubernetesLabel := ns == "kubernetes.io" || strings.HasSuffix(ns, ".kubernetes.io") || ns == "k8s.io" || strings.HasSuffix(ns, ".k8s.io")
	if !kubernetesLabel || kubeletLabels[key] {
		return false
	}
	for _, allowed := range kubeletLabelNamespaces {
		if ns == allowed || strings.HasSuffix(ns, "."+allowed) {
			return false
		}
	}
	return true
}

func admitNodePod(node string, op admissionOperation, sub string, obj, old runtime.Object, forbid func(string, ...any) error) error {
	switch {
	case op == admissionCreate && sub == "eviction":
		pod, _ := old.(*corev1.Pod)
		if pod != nil && pod.Spec.NodeName != node {
			return forbid("node %q can only evict pods with spec.nodeName set to itself", node)
		}
	case op == admissionCreate && sub == "":
		pod, _ := obj.(*corev1.Pod)
		if pod == nil {
			return nil
		}
		if _, ok := pod.Annotations[mirrorPodAnnotation]; !ok {
			return forbid("pod does not have %q annotation, node %q can only create mirror pods", mirrorPodAnnotation, node)
		}
		if pod.Spec.NodeName != node {
			return forbid("node %q can only create pods with spec.nodeName set to itself", node)
		}
		for _, r := range pod.OwnerReferences {
			if r.APIVersion != "v1" || r.Kind != "Node" || r.Name != node {
				return forbid("node %q can only create pods with an owner reference set to itself", node)
			}
		}
		if len(pod.Spec.ServiceAccountName) > 0 && pod.Spec.ServiceAccountName != "default" || podUsesAPIObjects(pod) {
			return forbid("node %q can not create pods that reference secrets, configmaps, service accounts or persistent volume claims", node)
		}
	case op == admissionUpdate && sub == "status":
		pod, _ := old.(*corev1.Pod)
		if pod != nil && pod.Spec.NodeName != node {
			return forbid("node %q can only update pod status for pods with spec.nodeName set to itself", node)
		}
	case op == admissionDelete:
		pod, _ := old.(*corev1.Pod)
		if pod != nil && pod.Spec.NodeName != node {
			return forbid("node %q can only delete pods with spec.nodeName set to itself", node)
		}
	case op == admissionUpdate && sub == "":
		return forbid("unexpected operation %q, node %q can only create and delete mirror pods", string(op), node)
	}
	return nil
}

// podUsesAPIObjects reports a pod that reads secrets, config maps or claims, which a mirror
// pod may not: its node could otherwise read any of them by making a pod that names it.
func podUsesAPIObjects(pod *corev1.Pod) bool {
	if len(pod.Spec.ImagePullSecrets) > 0 {
		return true
	}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil || v.ConfigMap != nil || v.PersistentVolumeClaim != nil || v.Projected != nil || v.Ephemeral != nil || v.CSI != nil {
			return true
		}
	}
	uses := func(envFrom []corev1.EnvFromSource, env []corev1.EnvVar) bool {
		for _, e := range envFrom {
			if e.SecretRef != nil || e.ConfigMapRef != nil {
				return true
			}
		}
		for _, e := range env {
			if e.ValueFrom != nil && (e.ValueFrom.SecretKeyRef != nil || e.ValueFrom.ConfigMapKeyRef != nil) {
				return true
			}
		}
		return false
	}
	for _, c := range pod.Spec.InitContainers {
		if uses(c.EnvFrom, c.Env) {
			return true
		}
	}
	for _, c := range pod.Spec.Containers {
		if uses(c.EnvFrom, c.Env) {
			return true
		}
	}
	return false
}

// admitNodeDelete runs NodeRestriction for a DELETE of namespace/name, reading the stored
// object it needs to judge.
func (s *Server) admitNodeDelete(ctx context.Context, rs *resourceStore, namespace, name string) error {
	return s.admitNodeStored(ctx, rs, admissionDelete, "", namespace, name)
}

// admitNodeEviction runs NodeRestriction for a pods/eviction of namespace/name.
func (s *Server) admitNodeEviction(ctx context.Context, rs *resourceStore, namespace, name string) error {
	return s.admitNodeStored(ctx, rs, admissionCreate, "eviction", namespace, name)
}

func (s *Server) admitNodeStored(ctx context.Context, rs *resourceStore, op admissionOperation, sub, namespace, name string) error {
	u, ok := userFromContext(ctx)
	if !ok {
		return nil
	}
	if _, isNode := authz.NodeIdentity(u); !isNode {
		return nil
	}
	if rs.gr.Group != "" || (rs.gr.Resource != "pods" && rs.gr.Resource != "nodes") {
		return nil
	}
	cur, err := rs.get(ctx, rs.key(namespace, name), 0)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // the delete answers 404
	}
	if err != nil {
		return toStatus(err, rs.gr, name)
	}
	return s.admitNodeRestriction(ctx, op, rs, sub, nil, cur)
}

// AdmitNodeTokenRequest is NodeRestriction for serviceaccounts/<name>/token (TokenRequest):
// a node may only ask for tokens bound to a pod, by name and UID, that is scheduled on it.
// The TokenRequest handler calls it before issuing the token; other users pass.
func (s *Server) admitNodeTokenRequest(ctx context.Context, namespace, serviceAccount string, tr *authenticationv1.TokenRequest) error {
	u, ok := userFromContext(ctx)
	if !ok {
		return nil
	}
	node, isNode := authz.NodeIdentity(u)
	if !isNode {
		return nil
	}
	pods := s.resources[podsGVR]
	return nodeTokenRequestAllowed(node, namespace, serviceAccount, tr, func(name string) (*corev1.Pod, error) {
		obj, err := pods.get(ctx, pods.key(namespace, name), 0)
		if err != nil {
			return nil, toStatus(err, pods.gr, name)
		}
		return obj.(*corev1.Pod), nil
	})
}

// nodeTokenRequestAllowed decides a node's TokenRequest as Kubernetes' NodeRestriction
// does; getPod reads a pod of the request's namespace.
func nodeTokenRequestAllowed(node, namespace, serviceAccount string, tr *authenticationv1.TokenRequest,
	getPod func(name string) (*corev1.Pod, error)) error {
	forbid := func(err error) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts"}, serviceAccount, err)
	}
	if node == "" {
		return forbid(errors.New("could not determine node from user"))
	}
	ref := tr.Spec.BoundObjectRef
	if ref == nil || ref.APIVersion != "v1" || ref.Kind != "Pod" || ref.Name == "" {
		return forbid(errors.New("node requested token not bound to a pod"))
	}
	if ref.UID == "" {
		return forbid(errors.New("node requested token with a pod binding without a uid"))
	}
	pod, err := getPod(ref.Name)
	if apierrors.IsNotFound(err) {
		return err
	}
	if err != nil {
		return forbid(err)
	}
	if ref.UID != pod.UID {
		return forbid(fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
	}
	if pod.Spec.NodeName != node {
		return forbid(errors.New("node requested token bound to a pod scheduled on a different node"))
	}
	return nil
}
