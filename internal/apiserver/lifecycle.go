package apiserver

import (
	"context"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// gracePeriod is the grace period a deletion gets: only pods that run on a node have one.
func gracePeriod(obj runtime.Object, opts *metav1.DeleteOptions) *int64 {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return opts.GracePeriodSeconds
	}
	var g int64 = corev1.DefaultTerminationGracePeriodSeconds
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *pod.Spec.TerminationGracePeriodSeconds
	}
	if opts.GracePeriodSeconds != nil {
		g = *opts.GracePeriodSeconds
	}
	// Pods that never ran or have finished have nothing to stop.
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		g = 0
	}
	return &g
}

// gracefulPending is true for a pod whose graceful deletion still waits for its kubelet.
func gracefulPending(obj runtime.Object) bool {
	pod, ok := obj.(*corev1.Pod)
	return ok && pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds > 0
}

func hasNamespaceFinalizers(obj runtime.Object) bool {
	ns, ok := obj.(*corev1.Namespace)
	return ok && len(ns.Spec.Finalizers) > 0
}

// pendingNamespaceFinalizers is true while a namespace's spec.finalizers still hold it.
func pendingNamespaceFinalizers(obj runtime.Object) bool { return hasNamespaceFinalizers(obj) }

func markNamespaceTerminating(obj runtime.Object) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		ns.Status.Phase = corev1.NamespaceTerminating
	}
}

// ensureSystemObjects creates the namespaces every cluster has and the kubernetes Service
// with its endpoints, as kube-apiserver's bootstrap controllers do.
func (s *Server) ensureSystemObjects(ctx context.Context) error {
	opts := writeOptions{manager: "kube-apiserver"}
	nsStore := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}]
	for _, name := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease} {
		ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := s.ensure(ctx, nsStore, ns, opts); err != nil {
			return err
		}
	}
	if err := s.ensurePriorityClasses(ctx, opts); err != nil {
		return err
	}
	svcStore := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "services"}]
	if svcStore == nil {
		return nil
	}
	port := int32(443)
	target := s.securePort()
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault, Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{ClusterIP: s.ips.first(), Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(target)}}},
	}
	if err := s.ensure(ctx, svcStore, svc, opts); err != nil {
		return err
	}
	addr := s.advertiseAddress()
	if epStore := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}]; epStore != nil {
		ep := &corev1.Endpoints{
			TypeMeta:   metav1.TypeMeta{Kind: "Endpoints", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault, Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: addr}},
				Ports: []corev1.EndpointPort{{Name: "https", Port: target, Protocol: corev1.ProtocolTCP}}}},
		}
		if err := s.ensure(ctx, epStore, ep, opts); err != nil {
			return err
		}
	}
	if esStore := s.resources[schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}]; esStore != nil {
		ready := true
		name, proto := "https", corev1.ProtocolTCP
		es := &discoveryv1.EndpointSlice{
			TypeMeta:    metav1.TypeMeta{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1"},
			ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault, Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "kube-apiserver"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &target, Protocol: &proto}},
		}
		if err := s.ensure(ctx, esStore, es, opts); err != nil {
			return err
		}
	}
	return nil
}

// ensure creates obj unless an object of that name exists.
func (s *Server) ensure(ctx context.Context, rs *resourceStore, obj runtime.Object, opts writeOptions) error {
	m, _ := meta.Accessor(obj)
	if _, err := rs.get(ctx, rs.key(m.GetNamespace(), m.GetName()), 0); err == nil {
		return nil
	}
	_, err := s.createObject(ctx, rs, obj, opts)
	if err == nil || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return fmt.Errorf("create %s: %w", rs.res.Resource, err)
}

func (s *Server) securePort() int32 {
	if tcp, ok := s.Addr().(*net.TCPAddr); ok {
		return int32(tcp.Port)
	}
	return int32(s.cfg.SecurePort)
}

// advertiseAddress is the address other members of the cluster reach the API server at.
func (s *Server) advertiseAddress() string {
	if s.cfg.AdvertiseAddress != "" {
		return s.cfg.AdvertiseAddress
	}
	if ip := net.ParseIP(s.cfg.BindAddress); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return "127.0.0.1"
}
