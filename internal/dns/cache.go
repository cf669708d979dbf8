package dns

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Index names. Every query is answered by GetByKey or ByIndex on one of these, never by a
// List: the informers' indexers are maps guarded by a read lock, and the objects they hold are
// shared and never modified.
const (
	// byIP maps a canonical IP string to the Services with that ClusterIP, or to the
	// EndpointSlices holding an endpoint with that address.
	byIP = "ip"
	// byService maps "namespace/service" to the EndpointSlices of that Service.
	byService = "service"
	// byEndpointLabel maps "namespace/service/label" to the EndpointSlices holding an
	// endpoint whose DNS label (its hostname, else its dashed IP) is label.
	byEndpointLabel = "endpoint"
)

// serviceCache is the watch-fed view of Services and EndpointSlices that answers are built from.
type serviceCache struct {
	services cache.SharedIndexInformer
	slices   cache.SharedIndexInformer
	// serial is the SOA serial: the Unix time of the last change seen, as CoreDNS does.
	serial atomic.Uint32

	startOnce sync.Once
	done      sync.WaitGroup // the informers' goroutines
}

func newServiceCache(client kubernetes.Interface) (*serviceCache, error) {
	c := &serviceCache{
		services: coreinformers.NewServiceInformer(client, metav1.NamespaceAll, 0, cache.Indexers{
			cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
			byIP:                 serviceIPs,
		}),
		slices: discoveryinformers.NewEndpointSliceInformer(client, metav1.NamespaceAll, 0, cache.Indexers{
			byService:       sliceService,
			byIP:            sliceIPs,
			byEndpointLabel: sliceEndpointLabels,
		}),
	}
	c.serial.Store(uint32(time.Now().Unix()))
	touch := func(any) { c.serial.Store(uint32(time.Now().Unix())) }
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    touch,
		UpdateFunc: func(_, obj any) { touch(obj) },
		DeleteFunc: touch,
	}
	for _, inf := range []cache.SharedIndexInformer{c.services, c.slices} {
		// Managed fields are most of an object's size and no answer needs them.
		if err := inf.SetTransform(dropManagedFields); err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// start runs the informers until ctx ends and waits for their first List. It returns
// ctx's error if ctx ends first.
func (c *serviceCache) start(ctx context.Context) error {
	c.startOnce.Do(func() {
		for _, inf := range []cache.SharedIndexInformer{c.services, c.slices} {
			c.done.Go(func() { inf.RunWithContext(ctx) })
		}
	})
	if !cache.WaitForCacheSync(ctx.Done(), c.services.HasSynced, c.slices.HasSynced) {
		return errors.Join(errors.New("dns: caches did not sync"), ctx.Err())
	}
	return nil
}

// wait returns once the informers stopped; their context must have ended.
func (c *serviceCache) wait() { c.done.Wait() }

func dropManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// service returns the Service namespace/name, or nil.
func (c *serviceCache) service(namespace, name string) *corev1.Service {
	obj, ok, err := c.services.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	svc, _ := obj.(*corev1.Service)
	return svc
}

// namespaceHasServices reports whether <namespace>.svc.<zone> is an empty non-terminal.
func (c *serviceCache) namespaceHasServices(namespace string) bool {
	keys, err := c.services.GetIndexer().IndexKeys(cache.NamespaceIndex, namespace)
	return err == nil && len(keys) > 0
}

// servicesByIP returns the Services with ip among their ClusterIPs.
func (c *serviceCache) servicesByIP(ip netip.Addr) []*corev1.Service {
	objs, _ := c.services.GetIndexer().ByIndex(byIP, ip.String())
	out := make([]*corev1.Service, 0, len(objs))
	for _, obj := range objs {
		if svc, ok := obj.(*corev1.Service); ok {
			out = append(out, svc)
		}
	}
	return out
}

// slicesBy returns the EndpointSlices under one index key.
func (c *serviceCache) slicesBy(index, key string) []*discoveryv1.EndpointSlice {
	objs, _ := c.slices.GetIndexer().ByIndex(index, key)
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, obj := range objs {
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			out = append(out, s)
		}
	}
	return out
}

// Index functions. They see every object the informers store, so they tolerate anything.

func serviceIPs(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	var keys []string
	for _, ip := range clusterIPs(svc) {
		keys = append(keys, ip.String())
	}
	return keys, nil
}

func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + name}, nil
}

func sliceIPs(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	var keys []string
	for i := range s.Endpoints {
		for _, a := range s.Endpoints[i].Addresses {
			if ip, ok := parseIP(a); ok {
				keys = append(keys, ip.String())
			}
		}
	}
	return keys, nil
}

func sliceEndpointLabels(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	prefix := s.Namespace + "/" + name + "/"
	var keys []string
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		for _, a := range ep.Addresses {
			if ip, ok := parseIP(a); ok {
				keys = append(keys, prefix+endpointLabel(ep, ip))
			}
		}
	}
	return keys, nil
}

// Helpers over API objects.

// clusterIPs returns a Service's parsed ClusterIPs; none for headless Services.
func clusterIPs(svc *corev1.Service) []netip.Addr {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, s := range ips {
		if ip, ok := parseIP(s); ok {
			out = append(out, ip)
		}
	}
	return out
}

func isHeadless(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP == corev1.ClusterIPNone
}

// endpointReady follows CoreDNS: only the Ready condition counts (an absent one is ready);
// the EndpointSlice controller already marks endpoints ready for Services that publish
// not-ready addresses.
func endpointReady(ep *discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// endpointLabel is an endpoint's name under its Service: its hostname, else its IP with
// dashes ("10-0-0-1", "fd00--1"), as CoreDNS names them.
func endpointLabel(ep *discoveryv1.Endpoint, ip netip.Addr) string {
	if ep.Hostname != nil && *ep.Hostname != "" {
		return strings.ToLower(*ep.Hostname)
	}
	return dashedIP(ip)
}

func dashedIP(ip netip.Addr) string {
	if ip.Is4() {
		return strings.ReplaceAll(ip.String(), ".", "-")
	}
	return strings.ReplaceAll(ip.String(), ":", "-")
}

// parseIP accepts an IP without a zone; IPv4-mapped IPv6 addresses become IPv4.
func parseIP(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}
