package apiserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/storage"
)

// bitmap is a range allocation persisted in etcd under one key and changed with
// compare-and-swap, so that concurrent API servers never hand out the same value.
type bitmap struct {
	client *clientv3.Client
	key    string
	size   int
}

var errFull = errors.New("range is full")
var errTaken = errors.New("already allocated")

// update runs fn on the current bits and writes them back unless fn fails.
func (b *bitmap) update(ctx context.Context, fn func(bits *big.Int) error) error {
	for {
		resp, err := b.client.Get(ctx, b.key)
		if err != nil {
			return err
		}
		bits := new(big.Int)
		var rev int64
		if len(resp.Kvs) > 0 {
			bits.SetBytes(resp.Kvs[0].Value)
			rev = resp.Kvs[0].ModRevision
		}
		if err := fn(bits); err != nil {
			return err
		}
		txn, err := b.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(b.key), "=", rev)).
			Then(clientv3.OpPut(b.key, string(bits.Bytes()))).Commit()
		if err != nil {
			return err
		}
		if txn.Succeeded {
			return nil
		}
	}
}

// allocate takes offset (or, if offset < 0, a free one at random) and returns it.
func (b *bitmap) allocate(ctx context.Context, offset int, reserved func(int) bool) (int, error) {
	got := -1
	err := b.update(ctx, func(bits *big.Int) error {
		if offset >= 0 {
			if bits.Bit(offset) == 1 {
				return errTaken
			}
			got = offset
		} else {
			start := rand.IntN(b.size)
			for i := 0; i < b.size; i++ {
				o := (start + i) % b.size
				if bits.Bit(o) == 0 && !reserved(o) {
					got = o
					break
				}
			}
			if got < 0 {
				return errFull
			}
		}
		bits.SetBit(bits, got, 1)
		return nil
	})
	return got, err
}

func (b *bitmap) release(ctx context.Context, offsets ...int) error {
	if len(offsets) == 0 {
		return nil
	}
	return b.update(ctx, func(bits *big.Int) error {
		for _, o := range offsets {
			bits.SetBit(bits, o, 0)
		}
		return nil
	})
}

// replace writes the given set of offsets (the repair at start-up).
func (b *bitmap) replace(ctx context.Context, offsets []int) error {
	return b.update(ctx, func(bits *big.Int) error {
		bits.SetInt64(0)
		for _, o := range offsets {
			bits.SetBit(bits, o, 1)
		}
		return nil
	})
}

// ipAllocator hands out Service cluster IPs from an IPv4 CIDR.
type ipAllocator struct {
	bitmap
	cidr *net.IPNet
	base uint32
}

func newIPAllocator(store *storage.Store, cidr string) (*ipAllocator, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil || n.IP.To4() == nil {
		return nil, fmt.Errorf("service cluster IP range %q: an IPv4 CIDR is required", cidr)
	}
	ones, bits := n.Mask.Size()
	if bits-ones < 2 || bits-ones > 24 {
		return nil, fmt.Errorf("service cluster IP range %q: the prefix must be between /8 and /30", cidr)
	}
	return &ipAllocator{
		bitmap: bitmap{client: store.Client(), key: "/registry/ranges/serviceips", size: 1 << (bits - ones)},
		cidr:   n, base: binary.BigEndian.Uint32(n.IP.To4()),
	}, nil
}

func (a *ipAllocator) offset(ip net.IP) (int, bool) {
	v4 := ip.To4()
	if v4 == nil || !a.cidr.Contains(v4) {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(v4) - a.base), true
}

func (a *ipAllocator) ip(offset int) string {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, a.base+uint32(offset))
	return b.String()
}

// first is the address of the kubernetes Service.
func (a *ipAllocator) first() string { return a.ip(1) }

// reservedIP excludes the network and broadcast addresses, and keeps the first address for
// the kubernetes Service, from random allocation.
func (a *ipAllocator) reservedIP(o int) bool { return o <= 1 || o == a.size-1 }

// portAllocator hands out NodePorts.
type portAllocator struct {
	bitmap
	low, high int
}

func newPortAllocator(store *storage.Store, r string) (*portAllocator, error) {
	lo, hi, ok := strings.Cut(r, "-")
	low, err1 := strconv.Atoi(lo)
	high, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || low < 1 || high > 65535 || low > high {
		return nil, fmt.Errorf("service node port range %q: want LOW-HIGH, for example 30000-32767", r)
	}
	return &portAllocator{bitmap: bitmap{client: store.Client(), key: "/registry/ranges/servicenodeports", size: high - low + 1}, low: low, high: high}, nil
}

func noneReserved(int) bool { return false }

var servicesGR = schema.GroupResource{Resource: "services"}

// allocateService gives a new Service its cluster IP and node ports. release undoes it.
func (s *Server) allocateService(ctx context.Context, svc *corev1.Service, old *corev1.Service) (release func(), err error) {
	var ips, ports []int
	release = func() {
		_ = s.ips.release(context.WithoutCancel(ctx), ips...)
		_ = s.ports.release(context.WithoutCancel(ctx), ports...)
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	invalid := func(path *field.Path, v any, msg string) error {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, field.ErrorList{field.Invalid(path, v, msg)})
	}
	spec := &svc.Spec
	if spec.Type != corev1.ServiceTypeExternalName && spec.ClusterIP != corev1.ClusterIPNone && (old == nil || old.Spec.ClusterIP == "" || old.Spec.ClusterIP == corev1.ClusterIPNone) {
		path := field.NewPath("spec", "clusterIPs").Index(0)
		if spec.ClusterIP == "" {
			o, err := s.ips.allocate(ctx, -1, s.ips.reservedIP)
			if err != nil {
				return release, apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: %v", err))
			}
			ips = append(ips, o)
			spec.ClusterIP = s.ips.ip(o)
		} else {
			o, ok := s.ips.offset(net.ParseIP(spec.ClusterIP))
			if !ok || o == 0 || o == s.ips.size-1 {
				return release, invalid(path, spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is not in the valid range. The range of valid IPs is %s", spec.ClusterIP, s.ips.cidr))
			}
			if _, err := s.ips.allocate(ctx, o, nil); err != nil {
				return release, invalid(path, spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", spec.ClusterIP))
			}
			ips = append(ips, o)
		}
	}
	if spec.ClusterIP != "" {
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	if spec.Type == corev1.ServiceTypeNodePort || spec.Type == corev1.ServiceTypeLoadBalancer {
		oldPorts := map[string]int32{}
		if old != nil {
			for _, p := range old.Spec.Ports {
				if p.NodePort != 0 {
					oldPorts[fmt.Sprint(p.Port, p.Protocol)] = p.NodePort
				}
			}
		}
		for i := range spec.Ports {
			p := &spec.Ports[i]
			path := field.NewPath("spec", "ports").Index(i).Child("nodePort")
			prev := oldPorts[fmt.Sprint(p.Port, p.Protocol)]
			switch {
			case p.NodePort == 0 && prev != 0:
				p.NodePort = prev
			case p.NodePort == 0:
				o, err := s.ports.allocate(ctx, -1, noneReserved)
				if err != nil {
					return release, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %v", err))
				}
				ports = append(ports, o)
				p.NodePort = int32(s.ports.low + o)
			case p.NodePort == prev:
			default:
				if int(p.NodePort) < s.ports.low || int(p.NodePort) > s.ports.high {
					return release, invalid(path, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", s.ports.low, s.ports.high))
				}
				if _, err := s.ports.allocate(ctx, int(p.NodePort)-s.ports.low, nil); err != nil {
					return release, invalid(path, p.NodePort, "provided port is already allocated")
				}
				ports = append(ports, int(p.NodePort)-s.ports.low)
			}
		}
	} else {
		for i := range spec.Ports {
			spec.Ports[i].NodePort = 0
		}
	}
	return release, nil
}

// serviceAllocations lists the cluster IP and node port offsets a Service holds.
func (s *Server) serviceAllocations(svc *corev1.Service) (ips, ports []int) {
	if o, ok := s.ips.offset(net.ParseIP(svc.Spec.ClusterIP)); ok {
		ips = append(ips, o)
	}
	for _, p := range svc.Spec.Ports {
		if int(p.NodePort) >= s.ports.low && int(p.NodePort) <= s.ports.high {
			ports = append(ports, int(p.NodePort)-s.ports.low)
		}
	}
	return ips, ports
}

// releaseService frees what old held and new no longer does (new nil: everything).
func (s *Server) releaseService(ctx context.Context, old, new *corev1.Service) {
	oi, op := s.serviceAllocations(old)
	var ni, np []int
	if new != nil {
		ni, np = s.serviceAllocations(new)
	}
	_ = s.ips.release(ctx, minus(oi, ni)...)
	_ = s.ports.release(ctx, minus(op, np)...)
}

func minus(a, b []int) []int {
	var out []int
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x == y
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}

// repairAllocations rebuilds both bitmaps from the stored Services, so that a crash between
// an allocation and the Service's write leaks nothing.
func (s *Server) repairAllocations(ctx context.Context) error {
	svcs := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "services"}]
	if svcs == nil {
		return nil
	}
	rev, err := s.cfg.Store.Revision(ctx)
	if err != nil {
		return err
	}
	objs, _, err := svcs.cacheList(ctx, svcs.prefix, rev, nil)
	if err != nil {
		return err
	}
	var ips, ports []int
	for _, o := range objs {
		i, p := s.serviceAllocations(o.(*corev1.Service))
		ips, ports = append(ips, i...), append(ports, p...)
	}
	if err := s.ips.replace(ctx, ips); err != nil {
		return fmt.Errorf("repair service IPs: %w", err)
	}
	if err := s.ports.replace(ctx, ports); err != nil {
		return fmt.Errorf("repair node ports: %w", err)
	}
	return nil
}

// admitCreate runs the admission steps that allocate resources; release undoes them.
// ResourceQuota comes last, as in Kubernetes.
func (s *Server) admitCreate(ctx context.Context, rs *resourceStore, obj runtime.Object, dryRun bool) (func(), error) {
	release := func() {}
	if svc, ok := obj.(*corev1.Service); ok && rs.res.GroupVersion.Group == "" {
		var err error
		if release, err = s.allocateService(ctx, svc, nil); err != nil {
			return nil, err
		}
	}
	uncharge, err := s.chargeQuotas(ctx, rs, obj, dryRun)
	if err != nil {
		release()
		return nil, err
	}
	return func() { uncharge(); release() }, nil
}

// admitUpdate allocates what an updated object newly needs and frees what it dropped.
func (s *Server) admitUpdate(ctx context.Context, rs *resourceStore, obj, old runtime.Object, dryRun bool) error {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil
	}
	prev := old.(*corev1.Service)
	if svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP == "" && prev.Spec.ClusterIP != "" {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = prev.Spec.ClusterIP, prev.Spec.ClusterIPs
	}
	// Fields that only mean something for other types go when the type changes, as in
	// Kubernetes' dropTypeDependentFields.
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
		svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = nil, nil
	}
	if svc.Spec.Type != corev1.ServiceTypeNodePort && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		svc.Spec.ExternalTrafficPolicy = ""
		svc.Spec.HealthCheckNodePort = 0
	}
	if _, err := s.allocateService(ctx, svc, prev); err != nil {
		return err
	}
	if !dryRun {
		s.releaseService(ctx, prev, svc)
	}
	return nil
}

// released frees what a deleted object held.
func (s *Server) released(ctx context.Context, rs *resourceStore, obj runtime.Object) {
	if svc, ok := obj.(*corev1.Service); ok {
		s.releaseService(ctx, svc, nil)
	}
}
