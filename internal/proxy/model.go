package proxy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// servicePort is the desired state of one port of one Service, with the endpoints that back it.
type servicePort struct {
	Namespace string
	Service   string
	PortName  string
	Protocol  string // "tcp", "udp" or "sctp"
	ClusterIP string
	Port      int32
	NodePort  int32
	// AffinitySeconds is the ClientIP session affinity timeout; 0 means no affinity.
	AffinitySeconds int32
	InternalLocal   bool // internalTrafficPolicy: Local
	ExternalLocal   bool // externalTrafficPolicy: Local
	Endpoints       []endpoint
}

// endpoint is one address:port of a servicePort, with the conditions from its EndpointSlice.
type endpoint struct {
	IP          string
	Port        int32
	Ready       bool
	Serving     bool
	Terminating bool
	Local       bool // on this proxy's node
}

func (e endpoint) hostPort() string { return e.IP + ":" + strconv.Itoa(int(e.Port)) }

// name is the service port's name as kube-proxy prints it: "ns/name:port".
func (sp *servicePort) name() string {
	if sp.PortName == "" {
		return sp.Namespace + "/" + sp.Service
	}
	return sp.Namespace + "/" + sp.Service + ":" + sp.PortName
}

// serviceKey is the informer key of a Service: "namespace/name".
func serviceKey(namespace, name string) string { return namespace + "/" + name }

// buildServicePorts returns the desired state of svc's ports, backed by the IPv4 endpoints of
// slices (those labelled with svc's name). It returns nil for Services the proxy leaves alone:
// headless ones, ExternalName ones and those without an IPv4 ClusterIP. problems says, for
// people, why endpoints of a slice were left out. It reads svc and slices without modifying
// them.
func buildServicePorts(svc *v1.Service, epSlices []*discovery.EndpointSlice, nodeName string) (ports []servicePort, problems []string) {
	if svc == nil || svc.Spec.Type == v1.ServiceTypeExternalName {
		return nil, nil
	}
	clusterIP := ipv4ClusterIP(svc)
	if clusterIP == "" {
		return nil, nil
	}
	var affinity int32
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		affinity = v1.DefaultClientIPServiceAffinitySeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
			affinity = *c.ClientIP.TimeoutSeconds
		}
	}
	internalLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal
	exposesNodePorts := svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer
	externalLocal := exposesNodePorts && svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal

	ports = make([]servicePort, 0, len(svc.Spec.Ports))
	for _, p := range svc.Spec.Ports {
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		sp := servicePort{
			Namespace:       svc.Namespace,
			Service:         svc.Name,
			PortName:        p.Name,
			Protocol:        proto,
			ClusterIP:       clusterIP,
			Port:            p.Port,
			AffinitySeconds: affinity,
			InternalLocal:   internalLocal,
			ExternalLocal:   externalLocal,
		}
		if exposesNodePorts {
			sp.NodePort = p.NodePort
		}
		var skipped []string
		sp.Endpoints, skipped = endpointsFor(p, epSlices, nodeName)
		problems = append(problems, skipped...)
		ports = append(ports, sp)
	}
	return ports, problems
}

func ipv4ClusterIP(svc *v1.Service) string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		if s == v1.ClusterIPNone {
			return ""
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return a.String()
		}
	}
	return ""
}

// endpointsFor collects the endpoints of one service port from its slices, merging duplicates
// (an address in two slices counts once, ready if either says so) and sorting by address so
// that rendering is deterministic.
func endpointsFor(port v1.ServicePort, epSlices []*discovery.EndpointSlice, nodeName string) (_ []endpoint, skipped []string) {
	byAddr := map[string]endpoint{}
	for _, slice := range epSlices {
		if slice.AddressType != discovery.AddressTypeIPv4 {
			continue
		}
		var number int32
		found, named := false, false
		for _, sp := range slice.Ports {
			if ptrValue(sp.Name) != port.Name {
				continue
			}
			if proto := ptrValue(sp.Protocol); proto != "" && proto != port.Protocol && port.Protocol != "" {
				continue
			}
			named = true
			if sp.Port != nil && *sp.Port > 0 {
				number, found = *sp.Port, true
			}
			break
		}
		if !found {
			if len(slice.Endpoints) > 0 {
				reason := "has no port of that name"
				if named {
					reason = "gives the port no number"
				}
				skipped = append(skipped, fmt.Sprintf("port %q (targetPort %s): EndpointSlice %s %s, so its %d endpoints get no traffic",
					port.Name, port.TargetPort.String(), slice.Name, reason, len(slice.Endpoints)))
			}
			continue
		}
		for _, ep := range slice.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ready
			if ep.Conditions.Serving != nil {
				serving = *ep.Conditions.Serving
			}
			terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			local := ep.NodeName != nil && *ep.NodeName == nodeName && nodeName != ""
			for _, addr := range ep.Addresses {
				a, err := netip.ParseAddr(addr)
				if err != nil || !a.Is4() {
					continue
				}
				e := endpoint{IP: a.String(), Port: number, Ready: ready, Serving: serving, Terminating: terminating, Local: local}
				if old, ok := byAddr[e.hostPort()]; ok && old.Ready && !e.Ready {
					continue
				}
				byAddr[e.hostPort()] = e
			}
		}
	}
	out := make([]endpoint, 0, len(byAddr))
	for _, e := range byAddr {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b endpoint) int {
		pa, pb := netip.MustParseAddr(a.IP), netip.MustParseAddr(b.IP)
		if c := pa.Compare(pb); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	return out, skipped
}

// usableEndpoints picks, as kube-proxy does, the endpoints traffic may go to: the ready ones,
// or, when none is ready, the serving ones that are terminating (so that connections still
// succeed while a rollout drains the last pods).
func usableEndpoints(eps []endpoint, localOnly bool) []endpoint {
	var ready, terminating []endpoint
	for _, e := range eps {
		if localOnly && !e.Local {
			continue
		}
		switch {
		case e.Ready:
			ready = append(ready, e)
		case e.Serving && e.Terminating:
			terminating = append(terminating, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
