package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

const (
	// ControllerName is the value of the managed-by label on our slices.
	ControllerName = "endpointslice-controller.k8s.io"
	// MaxEndpointsPerSlice is the most endpoints one slice holds (kube-controller-manager's
	// --max-endpoints-per-slice default).
	MaxEndpointsPerSlice = 100
	// HeadlessLabel marks the slices of a headless Service.
	HeadlessLabel = "service.kubernetes.io/headless"
)

// errCacheBehind asks for a retry once the informer shows our own writes.
var errCacheBehind = errors.New("endpointslice cache has not caught up with our writes")

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder // nil: no events
	Log       *slog.Logger         // the caller names the controller in it; nil: discard
	// MaxEndpointsPerSlice bounds slice size (0: MaxEndpointsPerSlice).
	MaxEndpointsPerSlice int
}

// Controller is the endpointslice controller.
type Controller struct {
	client        kubernetes.Interface
	serviceLister corelisters.ServiceLister
	podLister     corelisters.PodLister
	nodeLister    corelisters.NodeLister
	sliceLister   discoverylisters.EndpointSliceLister
	synced        []cache.InformerSynced
	queue         workqueue.TypedRateLimitingInterface[string]
	recorder      record.EventRecorder
	log           *slog.Logger
	maxPerSlice   int

	mu      sync.Mutex
	pending map[string]*pendingWrites // service key → writes the cache has yet to show
}

type pendingWrites struct {
	created sets.Set[string] // slice names
	deleted sets.Set[string]
}

// New builds the controller and registers its informer handlers.
func New(cfg Config) (*Controller, error) {
	svcInformer := cfg.Informers.Core().V1().Services()
	podInformer := cfg.Informers.Core().V1().Pods()
	nodeInformer := cfg.Informers.Core().V1().Nodes()
	sliceInformer := cfg.Informers.Discovery().V1().EndpointSlices()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		client:        cfg.Client,
		serviceLister: svcInformer.Lister(),
		podLister:     podInformer.Lister(),
		nodeLister:    nodeInformer.Lister(),
		sliceLister:   sliceInformer.Lister(),
		synced: []cache.InformerSynced{svcInformer.Informer().HasSynced, podInformer.Informer().HasSynced,
			nodeInformer.Informer().HasSynced, sliceInformer.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpoint_slice"}),
		recorder:    cfg.Recorder,
		log:         log,
		maxPerSlice: cfg.MaxEndpointsPerSlice,
		pending:     map[string]*pendingWrites{},
	}
	if c.recorder == nil {
		c.recorder = &record.FakeRecorder{}
	}
	if c.maxPerSlice <= 0 {
		c.maxPerSlice = MaxEndpointsPerSlice
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, cur any) { enqueue(cur) }, DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueServicesOf(obj.(*corev1.Pod), nil) },
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
			if podChanged(o, n) {
				c.enqueueServicesOf(n, o)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				c.enqueueServicesOf(pod, nil)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := sliceInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.sliceChanged,
		UpdateFunc: func(_, cur any) { c.sliceChanged(cur) },
		DeleteFunc: c.sliceChanged,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// sliceChanged queues the Service of one of our slices.
func (c *Controller) sliceChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || slice.Labels[discoveryv1.LabelManagedBy] != ControllerName || slice.Labels[discoveryv1.LabelServiceName] == "" {
		return
	}
	c.queue.Add(slice.Namespace + "/" + slice.Labels[discoveryv1.LabelServiceName])
}

// podChanged reports whether an update can change any slice.
func podChanged(o, n *corev1.Pod) bool {
	return !maps.Equal(o.Labels, n.Labels) || o.Status.PodIP != n.Status.PodIP || len(o.Status.PodIPs) != len(n.Status.PodIPs) ||
		isPodReady(o) != isPodReady(n) || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) ||
		o.Status.Phase != n.Status.Phase || o.Spec.NodeName != n.Spec.NodeName ||
		o.Spec.Hostname != n.Spec.Hostname || o.Spec.Subdomain != n.Spec.Subdomain
}

// enqueueServicesOf queues the Services whose selectors match the pod now or matched before.
func (c *Controller) enqueueServicesOf(pod, old *corev1.Pod) {
	services, err := c.serviceLister.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, svc := range services {
		if svc.Spec.Selector == nil {
			continue
		}
		sel := labels.Set(svc.Spec.Selector).AsSelectorPreValidated()
		if sel.Matches(labels.Set(pod.Labels)) || (old != nil && sel.Matches(labels.Set(old.Labels))) {
			c.queue.Add(svc.Namespace + "/" + svc.Name)
		}
	}
}

// Run runs workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	for range workers {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	<-ctx.Done()
}

func (c *Controller) worker(ctx context.Context) {
	for {
		key, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.sync(ctx, key)
		switch {
		case err == nil:
			c.queue.Forget(key)
		case errors.Is(err, errCacheBehind):
			c.queue.AddAfter(key, 100*time.Millisecond)
		default:
			c.log.Info("sync failed, requeued", "service", key, "err", err)
			c.queue.AddRateLimited(key)
		}
		c.queue.Done(key)
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	if namespace == metav1.NamespaceDefault && name == "kubernetes" {
		return nil
	}
	existing, err := c.sliceLister.EndpointSlices(namespace).List(labels.SelectorFromSet(labels.Set{
		discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ControllerName}))
	if err != nil {
		return err
	}
	if !c.cacheCaughtUp(key, existing) {
		return errCacheBehind
	}
	svc, err := c.serviceLister.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		// The garbage collector removes owned slices too; doing it here does not wait for it.
		return c.apply(ctx, key, nil, nil, existing, nil)
	}
	if err != nil {
		return err
	}
	if svc.Spec.Selector == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	pods, err := c.podLister.Pods(namespace).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
	if err != nil {
		return err
	}
	desired := c.desiredSlices(svc, pods, existing)
	return c.apply(ctx, key, svc, desired.create, desired.deleteSlices, desired.update)
}

// cacheCaughtUp forgets the pending writes the cache now shows and reports whether none is left.
func (c *Controller) cacheCaughtUp(key string, existing []*discoveryv1.EndpointSlice) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[key]
	if p == nil {
		return true
	}
	have := sets.New[string]()
	for _, s := range existing {
		have.Insert(s.Name)
	}
	for name := range p.created {
		if have.Has(name) {
			p.created.Delete(name)
		}
	}
	for name := range p.deleted {
		if !have.Has(name) {
			p.deleted.Delete(name)
		}
	}
	if p.created.Len() == 0 && p.deleted.Len() == 0 {
		delete(c.pending, key)
		return true
	}
	return false
}

func (c *Controller) remember(key string, created, deleted string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[key]
	if p == nil {
		p = &pendingWrites{created: sets.New[string](), deleted: sets.New[string]()}
		c.pending[key] = p
	}
	if created != "" {
		p.created.Insert(created)
	}
	if deleted != "" {
		p.deleted.Insert(deleted)
	}
}

// apply performs the writes: creations first, so that a Service never loses all its
// endpoints in between, then updates, then deletions.
func (c *Controller) apply(ctx context.Context, key string, svc *corev1.Service, create, del, update []*discoveryv1.EndpointSlice) error {
	namespace, _, _ := cache.SplitMetaNamespaceKey(key)
	api := c.client.DiscoveryV1().EndpointSlices(namespace)
	var errs []error
	for _, s := range create {
		created, err := api.Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			if apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
			errs = append(errs, fmt.Errorf("creating endpointslice for %s: %w", key, err))
			continue
		}
		c.remember(key, created.Name, "")
	}
	for _, s := range update {
		if _, err := api.Update(ctx, s, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("updating endpointslice %s/%s: %w", namespace, s.Name, err))
		}
	}
	for _, s := range del {
		uid := s.UID
		err := api.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting endpointslice %s/%s: %w", namespace, s.Name, err))
			continue
		}
		if err == nil {
			c.remember(key, "", s.Name)
		}
	}
	err := errors.Join(errs...)
	if err != nil && svc != nil && !isConflict(errs) {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpointSlices", "Error updating Endpoint Slices for Service %s: %v", key, err)
	}
	return err
}

func isConflict(errs []error) bool {
	for _, err := range errs {
		if !apierrors.IsConflict(err) {
			return false
		}
	}
	return true
}

type plan struct {
	create, update, deleteSlices []*discoveryv1.EndpointSlice
}

// group is the endpoints that share an address type and a resolved port set.
type group struct {
	addressType discoveryv1.AddressType
	ports       []discoveryv1.EndpointPort
	endpoints   map[string]discoveryv1.Endpoint // by endpointKey
}

func (g *group) key() string { return groupKey(g.addressType, g.ports) }

func groupKey(t discoveryv1.AddressType, ports []discoveryv1.EndpointPort) string {
	keys := make([]string, 0, len(ports))
	for _, p := range ports {
		keys = append(keys, portKey(p))
	}
	sort.Strings(keys)
	return string(t) + "|" + strings.Join(keys, ",")
}

func portKey(p discoveryv1.EndpointPort) string {
	s := fmt.Sprintf("%s/%d/%s", deref(p.Name), deref(p.Port), deref(p.Protocol))
	if p.AppProtocol != nil {
		s += "/" + *p.AppProtocol
	}
	return s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func endpointKey(ep discoveryv1.Endpoint) string {
	k := strings.Join(ep.Addresses, ",")
	if ep.TargetRef != nil {
		k += "/" + ep.TargetRef.Name
	}
	return k
}

// desiredSlices plans the writes that bring the Service's slices in line with its pods.
func (c *Controller) desiredSlices(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice) plan {
	groups := map[string]*group{}
	for _, addressType := range addressTypes(svc) {
		for _, pod := range pods {
			if !shouldPodBeInEndpoints(pod) {
				continue
			}
			ip, ok := podIP(pod, addressType)
			if !ok {
				continue
			}
			ports := resolvePorts(svc, pod)
			if len(ports) == 0 && len(svc.Spec.Ports) > 0 {
				continue // every port named one the pod lacks
			}
			ep := c.endpoint(svc, pod, ip)
			k := groupKey(addressType, ports)
			g := groups[k]
			if g == nil {
				g = &group{addressType: addressType, ports: ports, endpoints: map[string]discoveryv1.Endpoint{}}
				groups[k] = g
			}
			g.endpoints[endpointKey(ep)] = ep
		}
	}

	sort.Slice(existing, func(i, j int) bool { return existing[i].Name < existing[j].Name })
	byGroup := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		k := groupKey(s.AddressType, s.Ports)
		byGroup[k] = append(byGroup[k], s)
	}

	var p plan
	keep := map[string]bool{} // slices that stay (updated or not)
	groupKeys := make([]string, 0, len(groups))
	for k := range groups {
		groupKeys = append(groupKeys, k)
	}
	sort.Strings(groupKeys)
	for _, k := range groupKeys {
		g := groups[k]
		slices := byGroup[k]
		contents := make([][]discoveryv1.Endpoint, len(slices))
		placed := map[string]bool{}
		// Endpoints stay where they are.
		for i, s := range slices {
			for _, ep := range s.Endpoints {
				ek := endpointKey(ep)
				if want, ok := g.endpoints[ek]; ok && !placed[ek] && len(contents[i]) < c.maxPerSlice {
					contents[i] = append(contents[i], want)
					placed[ek] = true
				}
			}
		}
		var rest []string
		for ek := range g.endpoints {
			if !placed[ek] {
				rest = append(rest, ek)
			}
		}
		sort.Strings(rest)
		// New endpoints fill the slices with room, those to be written anyway first, then
		// new slices.
		order := make([]int, len(slices))
		for i := range order {
			order[i] = i
		}
		changing := make([]bool, len(slices))
		for i := range slices {
			changing[i] = !apiequality.Semantic.DeepEqual(slices[i].Endpoints, contents[i])
		}
		sort.SliceStable(order, func(a, b int) bool { return changing[order[a]] && !changing[order[b]] })
		for _, i := range order {
			for len(rest) > 0 && len(contents[i]) < c.maxPerSlice {
				contents[i] = append(contents[i], g.endpoints[rest[0]])
				rest = rest[1:]
			}
		}
		for i, s := range slices {
			if len(contents[i]) == 0 {
				continue
			}
			keep[s.Name] = true
			if want := c.sliceFor(svc, g, contents[i], s); want != nil {
				p.update = append(p.update, want)
			}
		}
		for len(rest) > 0 {
			n := min(len(rest), c.maxPerSlice)
			eps := make([]discoveryv1.Endpoint, 0, n)
			for _, ek := range rest[:n] {
				eps = append(eps, g.endpoints[ek])
			}
			rest = rest[n:]
			p.create = append(p.create, c.sliceFor(svc, g, eps, nil))
		}
	}

	if len(groups) == 0 {
		// A placeholder: one empty slice says "this Service has no endpoints". An existing
		// slice is emptied rather than a new one made, an empty one preferred.
		g := &group{addressType: addressTypes(svc)[0]}
		var reuse *discoveryv1.EndpointSlice
		for _, s := range existing {
			if s.AddressType != g.addressType {
				continue
			}
			if reuse == nil || (len(s.Endpoints) == 0 && len(s.Ports) == 0 && len(reuse.Endpoints)+len(reuse.Ports) > 0) {
				reuse = s
			}
		}
		if reuse != nil {
			keep[reuse.Name] = true
			if want := c.sliceFor(svc, g, nil, reuse); want != nil {
				p.update = append(p.update, want)
			}
		} else {
			p.create = append(p.create, c.sliceFor(svc, g, nil, nil))
		}
	}
	for _, s := range existing {
		if !keep[s.Name] {
			p.deleteSlices = append(p.deleteSlices, s)
		}
	}
	return p
}

// sliceFor returns the slice holding endpoints: a new one when current is nil, else an
// updated copy of current, or nil when current already is what is wanted.
func (c *Controller) sliceFor(svc *corev1.Service, g *group, endpoints []discoveryv1.Endpoint, current *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	sort.Slice(endpoints, func(i, j int) bool { return endpointKey(endpoints[i]) < endpointKey(endpoints[j]) })
	lbls := sliceLabels(svc)
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
		Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}
	if current == nil {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{GenerateName: svc.Name + "-", Namespace: svc.Namespace, Labels: lbls,
				OwnerReferences: []metav1.OwnerReference{owner}},
			AddressType: g.addressType,
			Endpoints:   endpoints,
			Ports:       g.ports,
		}
	}
	ownerOK := false
	for _, ref := range current.OwnerReferences {
		if ref.UID == svc.UID && ref.Controller != nil && *ref.Controller {
			ownerOK = true
		}
	}
	if ownerOK && maps.Equal(current.Labels, lbls) && apiequality.Semantic.DeepEqual(current.Endpoints, endpoints) &&
		apiequality.Semantic.DeepEqual(current.Ports, g.ports) {
		return nil
	}
	want := current.DeepCopy()
	want.Labels, want.Endpoints, want.Ports = lbls, endpoints, g.ports
	if !ownerOK {
		want.OwnerReferences = []metav1.OwnerReference{owner}
	}
	return want
}

func sliceLabels(svc *corev1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Labels {
		if k != discoveryv1.LabelServiceName && k != discoveryv1.LabelManagedBy && k != HeadlessLabel {
			out[k] = v
		}
	}
	out[discoveryv1.LabelServiceName] = svc.Name
	out[discoveryv1.LabelManagedBy] = ControllerName
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[HeadlessLabel] = ""
	}
	return out
}

func (c *Controller) endpoint(svc *corev1.Service, pod *corev1.Pod, ip string) discoveryv1.Endpoint {
	publish := svc.Spec.PublishNotReadyAddresses
	serving := isPodReady(pod)
	terminating := pod.DeletionTimestamp != nil
	ready := publish || serving
	if terminating && !publish {
		ready = false
	}
	ep := discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	if pod.Spec.NodeName != "" {
		nodeName := pod.Spec.NodeName
		ep.NodeName = &nodeName
		if node, err := c.nodeLister.Get(nodeName); err == nil {
			if zone, ok := node.Labels[corev1.LabelTopologyZone]; ok {
				ep.Zone = &zone
			}
		}
	}
	if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace {
		hostname := pod.Spec.Hostname
		ep.Hostname = &hostname
	}
	return ep
}

// addressTypes are the slice address types of a Service's IP families.
func addressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discoveryv1.AddressTypeIPv6)
		}
	}
	if len(out) == 0 {
		if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil && ip.Is6() {
			return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv6}
		}
		out = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	}
	return out
}

// podIP returns the pod's IP of an address type.
func podIP(pod *corev1.Pod, t discoveryv1.AddressType) (string, bool) {
	ips := []string{pod.Status.PodIP}
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if (t == discoveryv1.AddressTypeIPv4 && ip.Is4()) || (t == discoveryv1.AddressTypeIPv6 && ip.Is6() && !ip.Is4In6()) {
			return ip.String(), true
		}
	}
	return "", false
}

// resolvePorts resolves every Service port on a pod, leaving out the named ports it lacks.
func resolvePorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		port, ok := findPort(pod, sp)
		if !ok {
			continue
		}
		name, protocol := sp.Name, protocolOf(sp.Protocol)
		out = append(out, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &protocol, AppProtocol: sp.AppProtocol})
	}
	return out
}

// findPort resolves a Service port's targetPort on a pod: a number as is (the port itself when
// unset), a name by the pod's container ports of the same name and protocol.
func findPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, bool) {
	if sp.TargetPort.Type == intstr.String {
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == sp.TargetPort.StrVal && protocolOf(p.Protocol) == protocolOf(sp.Protocol) {
					return p.ContainerPort, true
				}
			}
		}
		return 0, false
	}
	if sp.TargetPort.IntVal == 0 {
		return sp.Port, true
	}
	return sp.TargetPort.IntVal, true
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// shouldPodBeInEndpoints: a pod with an IP and not terminal (terminating pods stay, marked).
func shouldPodBeInEndpoints(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	return pod.Status.PodIP != "" || len(pod.Status.PodIPs) > 0
}

func isPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func ptrTo[T any](v T) *T { return &v }
