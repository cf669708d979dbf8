package authz

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ObjectKind is a kind of object a node may reach through the pods bound to it.
type ObjectKind uint8

const (
	SecretKind ObjectKind = iota + 1
	ConfigMapKind
	PersistentVolumeClaimKind
	ServiceAccountKind
)

type objectRef struct {
	kind      ObjectKind
	namespace string
	name      string
}

type boundPod struct {
	node string
	refs []objectRef
}

// NodeGraph records which objects each node may read: the secrets, config maps, claims and
// service accounts of the pods bound to it, and the persistent volumes bound to those claims
// (through the volume's claimRef, as Kubernetes' graph does). It is fed with pods and
// persistent volumes as they change (SetPod, DeletePod, SetPV, DeletePV) and answered by
// HasPath; all methods are safe for concurrent use. Unlike Kubernetes' general graph of
// vertices and edges it keeps the two hops it needs as reference counts, which is all the
// Node authorizer asks of it.
type NodeGraph struct {
	mu   sync.RWMutex
	pods map[string]boundPod          // "ns/name" → the node it is bound to and what it references
	refs map[objectRef]map[string]int // object → node → number of that node's pods referencing it
	pvs  map[string]objectRef         // persistent volume → the claim it is bound to

	podRev, pvRev int64
	changed       chan struct{} // closed and replaced on every revision change
}

// NewNodeGraph returns an empty graph.
func NewNodeGraph() *NodeGraph {
	return &NodeGraph{pods: map[string]boundPod{}, refs: map[objectRef]map[string]int{}, pvs: map[string]objectRef{},
		changed: make(chan struct{})}
}

// SetPod records pod as it now is; a pod not bound to a node references nothing.
func (g *NodeGraph) SetPod(pod *corev1.Pod) {
	key := pod.Namespace + "/" + pod.Name
	var next boundPod
	if pod.Spec.NodeName != "" {
		next = boundPod{node: pod.Spec.NodeName, refs: podReferences(pod)}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dropPodLocked(key)
	if next.node == "" {
		return
	}
	g.pods[key] = next
	for _, r := range next.refs {
		nodes := g.refs[r]
		if nodes == nil {
			nodes = map[string]int{}
			g.refs[r] = nodes
		}
		nodes[next.node]++
	}
}

// DeletePod forgets the pod namespace/name.
func (g *NodeGraph) DeletePod(namespace, name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dropPodLocked(namespace + "/" + name)
}

func (g *NodeGraph) dropPodLocked(key string) {
	old, ok := g.pods[key]
	if !ok {
		return
	}
	delete(g.pods, key)
	for _, r := range old.refs {
		nodes := g.refs[r]
		if nodes[old.node]--; nodes[old.node] <= 0 {
			delete(nodes, old.node)
		}
		if len(nodes) == 0 {
			delete(g.refs, r)
		}
	}
}

// PodKeys returns the "namespace/name" keys of the pods recorded, for pruning after a relist.
func (g *NodeGraph) PodKeys() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	keys := make([]string, 0, len(g.pods))
	for k := range g.pods {
		keys = append(keys, k)
	}
	return keys
}

// SetPV records the claim a persistent volume is bound to.
func (g *NodeGraph) SetPV(pv *corev1.PersistentVolume) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pvs, pv.Name)
	if c := pv.Spec.ClaimRef; c != nil && c.Name != "" {
		g.pvs[pv.Name] = objectRef{kind: PersistentVolumeClaimKind, namespace: c.Namespace, name: c.Name}
	}
}

// DeletePV forgets a persistent volume.
func (g *NodeGraph) DeletePV(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pvs, name)
}

// PVNames returns the persistent volumes recorded, for pruning after a relist.
func (g *NodeGraph) PVNames() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	names := make([]string, 0, len(g.pvs))
	for k := range g.pvs {
		names = append(names, k)
	}
	return names
}

// HasPath reports whether a pod bound to node references the object kind namespace/name.
func (g *NodeGraph) HasPath(node string, kind ObjectKind, namespace, name string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.refs[objectRef{kind: kind, namespace: namespace, name: name}][node] > 0
}

// HasPVPath reports whether the persistent volume name is bound to a claim that a pod bound
// to node uses.
func (g *NodeGraph) HasPVPath(node, name string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	claim, ok := g.pvs[name]
	return ok && g.refs[claim][node] > 0
}

// Observed records the revisions of the pod and volume feeds the graph has applied; zero
// leaves one unchanged.
func (g *NodeGraph) Observed(podRev, pvRev int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	moved := false
	if podRev > g.podRev {
		g.podRev, moved = podRev, true
	}
	if pvRev > g.pvRev {
		g.pvRev, moved = pvRev, true
	}
	if moved {
		close(g.changed)
		g.changed = make(chan struct{})
	}
}

// WaitFor waits until the graph has applied the pod feed up to podRev and the volume feed
// up to pvRev, at most timeout; false when it gave up.
func (g *NodeGraph) WaitFor(ctx context.Context, podRev, pvRev int64, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		g.mu.RLock()
		done, ch := g.podRev >= podRev && g.pvRev >= pvRev, g.changed
		g.mu.RUnlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// podReferences lists the secrets, config maps, claims and service account pod uses, as
// Kubernetes' VisitPodSecretNames and VisitPodConfigmapNames find them.
func podReferences(pod *corev1.Pod) []objectRef {
	ns := pod.Namespace
	seen := map[objectRef]bool{}
	var out []objectRef
	add := func(kind ObjectKind, name string) {
		r := objectRef{kind: kind, namespace: ns, name: name}
		if name != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	localSecret := func(r *corev1.LocalObjectReference) {
		if r != nil {
			add(SecretKind, r.Name)
		}
	}
	add(ServiceAccountKind, pod.Spec.ServiceAccountName)
	for _, s := range pod.Spec.ImagePullSecrets {
		add(SecretKind, s.Name)
	}
	for _, v := range pod.Spec.Volumes {
		src := v.VolumeSource
		switch {
		case src.Secret != nil:
			add(SecretKind, src.Secret.SecretName)
		case src.ConfigMap != nil:
			add(ConfigMapKind, src.ConfigMap.Name)
		case src.Projected != nil:
			for _, p := range src.Projected.Sources {
				if p.Secret != nil {
					add(SecretKind, p.Secret.Name)
				}
				if p.ConfigMap != nil {
					add(ConfigMapKind, p.ConfigMap.Name)
				}
			}
		case src.PersistentVolumeClaim != nil:
			add(PersistentVolumeClaimKind, src.PersistentVolumeClaim.ClaimName)
		case src.Ephemeral != nil:
			add(PersistentVolumeClaimKind, pod.Name+"-"+v.Name) // the claim the ephemeral controller makes
		case src.CSI != nil:
			localSecret(src.CSI.NodePublishSecretRef)
		case src.AzureFile != nil:
			add(SecretKind, src.AzureFile.SecretName)
		case src.CephFS != nil:
			localSecret(src.CephFS.SecretRef)
		case src.Cinder != nil:
			localSecret(src.Cinder.SecretRef)
		case src.FlexVolume != nil:
			localSecret(src.FlexVolume.SecretRef)
		case src.ISCSI != nil:
			localSecret(src.ISCSI.SecretRef)
		case src.RBD != nil:
			localSecret(src.RBD.SecretRef)
		case src.ScaleIO != nil:
			localSecret(src.ScaleIO.SecretRef)
		case src.StorageOS != nil:
			localSecret(src.StorageOS.SecretRef)
		}
	}
	env := func(envFrom []corev1.EnvFromSource, vars []corev1.EnvVar) {
		for _, e := range envFrom {
			if e.SecretRef != nil {
				add(SecretKind, e.SecretRef.Name)
			}
			if e.ConfigMapRef != nil {
				add(ConfigMapKind, e.ConfigMapRef.Name)
			}
		}
		for _, e := range vars {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.SecretKeyRef != nil {
				add(SecretKind, e.ValueFrom.SecretKeyRef.Name)
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				add(ConfigMapKind, e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		env(c.EnvFrom, c.Env)
	}
	for _, c := range pod.Spec.Containers {
		env(c.EnvFrom, c.Env)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		env(c.EnvFrom, c.Env)
	}
	return out
}
