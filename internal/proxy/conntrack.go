package proxy

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// staleUDP returns the UDP flows old has and new lacks.
func staleUDP(old, new *fragment) []udpFlow {
	if old == nil {
		return nil
	}
	var stale []udpFlow
	for fl := range old.udp {
		if new == nil || !new.udp[fl] {
			stale = append(stale, fl)
		}
	}
	return stale
}

// deleteConntrack deletes the conntrack entries of UDP flows, in the network namespace at
// path ("" for the process's own), as kube-proxy does when a UDP endpoint goes away.
func deleteConntrack(path string, flows []udpFlow) error {
	var h *netlink.Handle
	var err error
	if path == "" {
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
	} else {
		var ns netns.NsHandle
		if ns, err = netns.GetFromPath(path); err != nil {
			return fmt.Errorf("conntrack: %w", err)
		}
		defer ns.Close()
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	}
	if err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	defer h.Close()
	filters := make([]netlink.CustomConntrackFilter, 0, len(flows))
	for _, fl := range flows {
		f := &netlink.ConntrackFilter{}
		if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return err
		}
		if fl.Dst != "" {
			if err := f.AddIP(netlink.ConntrackOrigDstIP, net.ParseIP(fl.Dst)); err != nil {
				return err
			}
		}
		if err := f.AddPort(netlink.ConntrackOrigDstPort, uint16(fl.Port)); err != nil {
			return err
		}
		if err := f.AddIP(netlink.ConntrackReplySrcIP, net.ParseIP(fl.Endpoint)); err != nil {
			return err
		}
		filters = append(filters, f)
	}
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("deleting conntrack entries: %w", err)
	}
	return nil
}
