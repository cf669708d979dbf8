package proxy

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// SyntheticServices returns n ClusterIP Services (namespace "bench", one TCP port 80, ClusterIPs
// from 10.96.0.0/12) and, for each, one EndpointSlice of m ready endpoints on port 8080 (from
// 10.128.0.0/10), spread over nodes "node-0".."node-9". It is for measuring sync cost: feed the
// objects to a fake clientset and time New→Ready, or see BenchmarkFullSync in this package.
func SyntheticServices(n, m int) ([]*v1.Service, []*discovery.EndpointSlice) {
	svcs := make([]*v1.Service, 0, n)
	sl := make([]*discovery.EndpointSlice, 0, n)
	ready := true
	port := int32(8080)
	proto := v1.ProtocolTCP
	portName := "http"
	next := 0
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		svcIP := fmt.Sprintf("10.%d.%d.%d", 96+(i>>16)&15, (i>>8)&255, i&255)
		svcs = append(svcs, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
			Spec: v1.ServiceSpec{
				Type:       v1.ServiceTypeClusterIP,
				ClusterIP:  svcIP,
				ClusterIPs: []string{svcIP},
				Selector:   map[string]string{"app": name},
				Ports:      []v1.ServicePort{{Name: portName, Protocol: proto, Port: 80, TargetPort: intstr.FromInt32(port)}},
			},
		})
		slice := &discovery.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "bench", Name: name + "-abcde",
				Labels: map[string]string{discovery.LabelServiceName: name},
			},
			AddressType: discovery.AddressTypeIPv4,
			Ports:       []discovery.EndpointPort{{Name: &portName, Protocol: &proto, Port: &port}},
		}
		for range m {
			ip := fmt.Sprintf("10.%d.%d.%d", 128+(next>>16)&63, (next>>8)&255, next&255)
			node := fmt.Sprintf("node-%d", next%10)
			next++
			slice.Endpoints = append(slice.Endpoints, discovery.Endpoint{
				Addresses:  []string{ip},
				Conditions: discovery.EndpointConditions{Ready: &ready},
				NodeName:   &node,
			})
		}
		sl = append(sl, slice)
	}
	return svcs, sl
}
