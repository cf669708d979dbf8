package hollow

import (
	"context"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// nodeObject is the Node a kubelet would register.
func (n *Nodes) nodeObject(nd *node) *v1.Node {
	labels := map[string]string{
		"kubernetes.io/hostname":           nd.name,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"node.kubernetes.io/instance-type": "hollow",
	}
	if n.cfg.Zones > 0 {
		labels["topology.kubernetes.io/zone"] = zoneName(nd.index % n.cfg.Zones)
	}
	for k, v := range n.cfg.Labels {
		labels[k] = v
	}
	resources := v1.ResourceList{
		v1.ResourceCPU:              resource.MustParse(n.cfg.CPU),
		v1.ResourceMemory:           resource.MustParse(n.cfg.Memory),
		v1.ResourcePods:             *resource.NewQuantity(int64(n.cfg.Pods), resource.DecimalSI),
		v1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nd.name, Labels: labels,
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "nanokube.io/hollow": "true"}},
		Spec: v1.NodeSpec{PodCIDR: nd.podNet.String(), PodCIDRs: []string{nd.podNet.String()}},
		Status: v1.NodeStatus{
			Capacity:    resources,
			Allocatable: resources.DeepCopy(),
			Phase:       v1.NodeRunning,
			Conditions:  n.conditions(),
			Addresses: []v1.NodeAddress{
				{Type: v1.NodeInternalIP, Address: nd.hostIP},
				{Type: v1.NodeHostName, Address: nd.name},
			},
			DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: 10250}},
			NodeInfo: v1.NodeSystemInfo{
				MachineID: nd.name, SystemUUID: nd.name, BootID: nd.name,
				KernelVersion: "hollow", OSImage: "nanokube hollow node", ContainerRuntimeVersion: "hollow://1.0",
				KubeletVersion: "v1.37.0-nanokube", KubeProxyVersion: "v1.37.0-nanokube",
				OperatingSystem: "linux", Architecture: "amd64",
			},
		},
	}
}

func zoneName(i int) string { return "zone-" + strconv.Itoa(i) }

// conditions are a healthy kubelet's node conditions.
func (n *Nodes) conditions() []v1.NodeCondition {
	now := metav1.Now()
	cond := func(t v1.NodeConditionType, s v1.ConditionStatus, reason, msg string) v1.NodeCondition {
		return v1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return []v1.NodeCondition{
		cond(v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		cond(v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		cond(v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		cond(v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
	}
}

// register creates the Node (or refreshes its status if it exists) and its Lease.
func (n *Nodes) register(ctx context.Context, nd *node) error {
	want := n.nodeObject(nd)
	err := retry(ctx, func() error {
		created, err := n.cfg.Client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			// Status is a subresource: a create may drop it, as Kubernetes' does.
			if len(created.Status.Conditions) == 0 || created.Status.Allocatable == nil {
				created.Status = want.Status
				_, err = n.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
			}
			return err
		}
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		return n.postReady(ctx, nd)
	})
	if err != nil || n.cfg.LeaseInterval < 0 {
		return err
	}
	return n.renewLease(ctx, nd)
}

// postReady writes a healthy status over the node's current one.
func (n *Nodes) postReady(ctx context.Context, nd *node) error {
	return retry(ctx, func() error {
		cur, err := n.cfg.Client.CoreV1().Nodes().Get(ctx, nd.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := n.nodeObject(nd)
		cur.Status = want.Status
		_, err = n.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// renewLease writes the node's Lease with renewTime now, creating it if needed.
func (n *Nodes) renewLease(ctx context.Context, nd *node) error {
	leases := n.cfg.Client.CoordinationV1().Leases(LeaseNamespace)
	return retry(ctx, func() error {
		now := metav1.NewMicroTime(time.Now())
		if l := nd.lease.Load(); l != nil {
			l = l.DeepCopy()
			l.Spec.RenewTime = &now
			updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
			if err == nil {
				nd.lease.Store(updated)
				return nil
			}
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				return err
			}
			nd.lease.Store(nil) // re-read below
		}
		cur, err := leases.Get(ctx, nd.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			lease := &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: nd.name, Namespace: LeaseNamespace},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(nd.name), LeaseDurationSeconds: ptr.To[int32](40),
					RenewTime: &now},
			}
			if node, err := n.cfg.Client.CoreV1().Nodes().Get(ctx, nd.name, metav1.GetOptions{}); err == nil {
				lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
			}
			created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
			if err == nil {
				nd.lease.Store(created)
			}
			return err
		}
		if err != nil {
			return err
		}
		cur.Spec.RenewTime = &now
		cur.Spec.HolderIdentity = ptr.To(nd.name)
		updated, err := leases.Update(ctx, cur, metav1.UpdateOptions{})
		if err == nil {
			nd.lease.Store(updated)
		}
		return err
	})
}

// renewLeases renews every node's Lease once per LeaseInterval, spreading the renewals over
// the interval in ticks of at most 100ms, with at most Workers renewals in flight.
func (n *Nodes) renewLeases(ctx context.Context) {
	tick := min(100*time.Millisecond, n.cfg.LeaseInterval)
	slots := int(n.cfg.LeaseInterval / tick)
	perTick := (len(n.nodes) + slots - 1) / slots
	if perTick == 0 {
		return
	}
	sem := make(chan struct{}, n.cfg.Workers)
	t := time.NewTicker(tick)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for range perTick {
			nd := n.nodes[next]
			next = (next + 1) % len(n.nodes)
			if nd.silent.Load() {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				if err := n.renewLease(ctx, nd); err != nil && ctx.Err() == nil {
					n.cfg.Log.Warn("hollow: lease renewal failed", "node", nd.name, "err", err)
				}
			}()
		}
	}
}
