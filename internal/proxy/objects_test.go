package proxy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/knftables"
)

// Builders of test objects.

type svcOpt func(*v1.Service)

func service(ns, name, clusterIP string, opts ...svcOpt) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Selector: map[string]string{"app": name},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func port(name string, proto v1.Protocol, p, target int32) svcOpt {
	return func(s *v1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: name, Protocol: proto, Port: p, TargetPort: intstr.FromInt32(target)})
	}
}

func nodePort(np int32) svcOpt {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		s.Spec.Ports[len(s.Spec.Ports)-1].NodePort = np
	}
}

func externalLocal(s *v1.Service) {
	s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
}

func internalLocal(s *v1.Service) {
	p := v1.ServiceInternalTrafficPolicyLocal
	s.Spec.InternalTrafficPolicy = &p
}

func affinity(seconds int32) svcOpt {
	return func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &seconds}}
	}
}

func noSelector(s *v1.Service) { s.Spec.Selector = nil }

type epOpt func(*discovery.Endpoint)

func notReady(e *discovery.Endpoint) {
	f := false
	e.Conditions.Ready = &f
}

func terminatingServing(e *discovery.Endpoint) {
	f, t := false, true
	e.Conditions.Ready, e.Conditions.Serving, e.Conditions.Terminating = &f, &t, &t
}

func onNode(n string) epOpt { return func(e *discovery.Endpoint) { e.NodeName = &n } }

func ep(ip string, opts ...epOpt) discovery.Endpoint {
	t := true
	e := discovery.Endpoint{Addresses: []string{ip}, Conditions: discovery.EndpointConditions{Ready: &t}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

type slicePort struct {
	name  string
	proto v1.Protocol
	port  int32
}

func slice(ns, svcName, name string, ports []slicePort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discovery.LabelServiceName: svcName}},
		AddressType: discovery.AddressTypeIPv4,
		Endpoints:   eps,
	}
	for _, p := range ports {
		p := p
		sp := discovery.EndpointPort{Name: &p.name, Protocol: &p.proto}
		if p.port != 0 {
			sp.Port = &p.port
		}
		s.Ports = append(s.Ports, sp)
	}
	return s
}

// world holds the informer caches a Proxier reads, filled by hand, so that tests drive syncs
// one by one without informers or timing.
type world struct {
	services cache.Indexer
	slices   cache.Indexer
}

func newWorld() *world {
	return &world{
		services: cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}),
		slices:   cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{byServiceIndex: sliceServiceKeys}),
	}
}

func (w *world) put(t testing.TB, objs ...any) {
	t.Helper()
	for _, o := range objs {
		store := w.services
		if _, ok := o.(*discovery.EndpointSlice); ok {
			store = w.slices
		}
		if err := store.Update(o); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *world) remove(t testing.TB, objs ...any) {
	t.Helper()
	for _, o := range objs {
		store := w.services
		if _, ok := o.(*discovery.EndpointSlice); ok {
			store = w.slices
		}
		if err := store.Delete(o); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *world) attach(p *Proxier) {
	p.services = corelisters.NewServiceLister(w.services)
	p.slices = w.slices
}

// recordingNFT is a knftables fake that remembers the transactions it ran and fails those
// containing a chosen string.
type recordingNFT struct {
	*knftables.Fake
	mu     sync.Mutex
	ran    []string
	failOn string
}

var errInjected = errors.New("injected nftables failure")

func (r *recordingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	s := tx.String()
	r.mu.Lock()
	r.ran = append(r.ran, s)
	fail := r.failOn != "" && strings.Contains(s, r.failOn)
	r.mu.Unlock()
	if fail {
		return errInjected
	}
	return r.Fake.Run(ctx, tx)
}

func (r *recordingNFT) Check(ctx context.Context, tx *knftables.Transaction) error {
	r.mu.Lock()
	fail := r.failOn != "" && strings.Contains(tx.String(), r.failOn)
	r.mu.Unlock()
	if fail {
		return errInjected
	}
	return r.Fake.Check(ctx, tx)
}

func (r *recordingNFT) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ran) == 0 {
		return ""
	}
	return r.ran[len(r.ran)-1]
}

func testConfig() Config {
	cfg, err := Config{NodeName: "node-a", NodeIPs: []string{"192.0.2.10"}, ClusterCIDR: "10.200.0.0/16"}.withDefaults()
	if err != nil {
		panic(err)
	}
	return cfg
}

// newTestProxier returns a Proxier over recording fakes and w's caches, with its events
// going to a FakeRecorder, and the fake of its first table.
func newTestProxier(cfg Config, w *world) (*Proxier, *recordingNFT, *record.FakeRecorder) {
	rec := record.NewFakeRecorder(100)
	p := newProxier(cfg, nil, rec, &knftTables{open: func(table string) knftables.Interface {
		return &recordingNFT{Fake: knftables.NewFake(knftables.IPv4Family, table)}
	}})
	w.attach(p)
	return p, fakeTable(p, cfg.TableName), rec
}

// fakeTable is the recording fake of one table of a Proxier made by newTestProxier, nil if
// the Proxier never opened it.
func fakeTable(p *Proxier, name string) *recordingNFT {
	nft, _ := p.nft.(*knftTables).opened[name].(*recordingNFT)
	return nft
}
