package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

// routeProtocol marks the routes the pod network owns (rtnetlink's protocol field), so a
// resync finds and removes those whose node is gone without touching anyone else's.
const routeProtocol netlink.RouteProtocol = 0x4e // 'N'

const podnetTable = "nanokube-podnet"

// podNetwork joins this node's pods to the other nodes' pods, as flannel's host-gw backend
// does: a route to every other node's pod CIDR via that node's InternalIP (the nodes share a
// link), kept in step with the Node objects; and one masquerade rule, for pod traffic that
// leaves the cluster CIDR, so traffic between pods keeps its source addresses.
type podNetwork struct {
	node        string
	clusterCIDR netip.Prefix
	nodes       cache.SharedIndexInformer
	nft         knftables.Interface
	log         *slog.Logger
	wake        chan struct{}
}

func newPodNetwork(node, clusterCIDR string, client kubernetes.Interface, log *slog.Logger) (*podNetwork, error) {
	cidr, err := netip.ParsePrefix(clusterCIDR)
	if err != nil || !cidr.Addr().Is4() {
		return nil, fmt.Errorf("cluster CIDR %q is not an IPv4 prefix", clusterCIDR)
	}
	nft, err := knftables.New(knftables.IPv4Family, podnetTable)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	n := &podNetwork{node: node, clusterCIDR: cidr.Masked(), nodes: factory.Core().V1().Nodes().Informer(), nft: nft, log: log,
		wake: make(chan struct{}, 1)}
	poke := func(interface{}) {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
	if _, err := n.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, DeleteFunc: poke, UpdateFunc: func(_, o interface{}) { poke(o) },
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// Run keeps routes and the masquerade rule in step until ctx is done. Failures are logged
// and retried: a missing route cuts off one node's pods, never the whole agent.
func (n *podNetwork) Run(ctx context.Context) error {
	go n.nodes.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), n.nodes.HasSynced) {
		return ctx.Err()
	}
	tick := time.NewTicker(30 * time.Second) // repairs routes someone else removed
	defer tick.Stop()
	for {
		if err := n.sync(ctx); err != nil {
			n.log.Warn("pod network sync failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		case <-tick.C:
		}
	}
}

func (n *podNetwork) sync(ctx context.Context) error {
	return errors.Join(n.syncMasquerade(ctx), n.syncRoutes())
}

func (n *podNetwork) syncMasquerade(ctx context.Context) error {
	tx := n.nft.NewTransaction()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("nanokube pod network: masquerade traffic leaving the cluster CIDR")})
	tx.Add(&knftables.Chain{Name: "postrouting", Type: knftables.PtrTo(knftables.NATType),
		Hook: knftables.PtrTo(knftables.PostroutingHook), Priority: knftables.PtrTo(knftables.SNATPriority)})
	tx.Flush(&knftables.Chain{Name: "postrouting"})
	cidr := n.clusterCIDR.String()
	tx.Add(&knftables.Rule{Chain: "postrouting", Rule: knftables.Concat(
		"ip saddr", cidr, "ip daddr !=", cidr, "ip daddr != 224.0.0.0/4", "masquerade")})
	return n.nft.Run(ctx, tx)
}

// syncRoutes makes this node's routing table hold exactly one route per other node's pod
// CIDR, via that node's InternalIP.
func (n *podNetwork) syncRoutes() error {
	nodes := n.nodes.GetStore().List()
	want := map[string]net.IP{}
	for _, o := range nodes {
		node := o.(*corev1.Node)
		if node.Name == n.node || node.Spec.PodCIDR == "" {
			continue
		}
		ip := internalIP(node)
		if ip == nil {
			continue
		}
		_, dst, err := net.ParseCIDR(node.Spec.PodCIDR)
		if err != nil {
			continue
		}
		want[dst.String()] = ip
	}
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	var errs []error
	for _, r := range have {
		if r.Dst == nil {
			continue
		}
		if gw, ok := want[r.Dst.String()]; ok && gw.Equal(r.Gw) {
			delete(want, r.Dst.String())
			continue
		}
		if err := netlink.RouteDel(&r); err != nil {
			errs = append(errs, fmt.Errorf("remove route %s: %w", r.Dst, err))
		}
	}
	for dst, gw := range want {
		_, ipnet, _ := net.ParseCIDR(dst)
		if err := netlink.RouteReplace(&netlink.Route{Dst: ipnet, Gw: gw, Protocol: routeProtocol}); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", dst, gw, err))
			continue
		}
		n.log.Info("route to a node's pods", "podCIDR", dst, "via", gw.String())
	}
	return errors.Join(errs...)
}

func internalIP(node *corev1.Node) net.IP {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(a.Address).To4(); ip != nil {
				return ip
			}
		}
	}
	return nil
}
