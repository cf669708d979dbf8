package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// kubeDNSName is the Service pods find the cluster DNS at, as in every Kubernetes cluster.
const kubeDNSName = "kube-dns"

// clusterDNSIP is the tenth address of the service range (10.96.0.10 for 10.96.0.0/12), the
// address kubeadm gives kube-dns.
func clusterDNSIP(serviceCIDR string) (string, error) {
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil {
		return "", err
	}
	a := p.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	if !p.Contains(a) {
		return "", fmt.Errorf("service range %s is too small for a DNS address", serviceCIDR)
	}
	return a.String(), nil
}

// clusterDNSHost is the address the cluster DNS listens on, or "" and why it does not run.
//
// With the agent it is this machine's node address, as it always was. A control plane
// without an agent listens where agents join it: the advertise address, else the node
// address (--node-ip or the default route's), the choice the join URL makes. It does not run
// when the API server listens on loopback only (no agent can join it), nor when the address
// is loopback: the kube-dns EndpointSlice would point every agent's pods at 127.0.0.1, which
// in a pod is the pod itself, so a server there would answer nobody while taking port 53
// from every other server on the machine (the e2e and integration tests run many such
// servers at once). A log line saying so serves better.
func clusterDNSHost(cfg Config, node nodeIdentity, nodeErr error) (host, why string) {
	switch {
	case cfg.DisableDNS:
		return "", ""
	case !cfg.DisableAgent:
		return node.ip, ""
	}
	if ip := net.ParseIP(cfg.BindAddress); ip != nil && ip.IsLoopback() {
		return "", fmt.Sprintf("the API server listens on loopback only (--bind-address %s), so no agent can join", cfg.BindAddress)
	}
	host = cfg.AdvertiseAddress
	if host == "" && nodeErr == nil {
		host = node.ip
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		return "", fmt.Sprintf("no address agents reach this server at (no --advertise-address or --node-ip, and %v)", nodeErr)
	case ip == nil:
		return "", fmt.Sprintf("%q is not an IP address to listen on", host)
	case ip.IsLoopback() || ip.IsUnspecified():
		return "", fmt.Sprintf("agents' pods cannot reach a DNS server at %s; give an --advertise-address they can reach", host)
	}
	return host, ""
}

// ensureKubeDNS makes the kube-dns Service at dnsIP, without a selector, and its
// EndpointSlice pointing at the DNS server on serverIP: the service proxy then carries pods'
// queries to the server wherever it runs. A restart on another address moves the slice.
func ensureKubeDNS(ctx context.Context, client kubernetes.Interface, dnsIP, serverIP string) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: kubeDNSName, Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: dnsIP,
			Ports: []corev1.ServicePort{
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53)},
			},
		},
	}
	// Get before Create: creating an existing Service with a fixed ClusterIP fails on the
	// IP ("already allocated"), not with AlreadyExists, as in Kubernetes.
	services := client.CoreV1().Services(metav1.NamespaceSystem)
	if _, err := services.Get(ctx, kubeDNSName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := services.Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("kube-dns service: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("kube-dns service: %w", err)
	}
	ready := true
	port := int32(53)
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	dnsName, tcpName := "dns", "dns-tcp"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: kubeDNSName + "-server", Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{discoveryv1.LabelServiceName: kubeDNSName, discoveryv1.LabelManagedBy: "nanokube-server"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{serverIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports: []discoveryv1.EndpointPort{
			{Name: &dnsName, Protocol: &udp, Port: &port},
			{Name: &tcpName, Protocol: &tcp, Port: &port},
		},
	}
	slices := client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem)
	cur, err := slices.Get(ctx, slice.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = slices.Create(ctx, slice, metav1.CreateOptions{})
	case err == nil:
		slice.ResourceVersion = cur.ResourceVersion
		_, err = slices.Update(ctx, slice, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("kube-dns endpoints: %w", err)
	}
	return nil
}

// hostPort joins an address and a port.
func hostPort(ip string, port int) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }
