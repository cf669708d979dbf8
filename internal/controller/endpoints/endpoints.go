package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

const (
	// MaxCapacity is the most addresses one Endpoints object holds.
	MaxCapacity = 1000
	// OverCapacityAnnotation marks truncated Endpoints.
	OverCapacityAnnotation = "endpoints.kubernetes.io/over-capacity"
	// HeadlessLabel marks the Endpoints of a headless Service.
	HeadlessLabel = "service.kubernetes.io/headless"
)

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder // nil: no events
	Log       *slog.Logger         // the caller names the controller in it; nil: discard
}

// Controller is the endpoints controller.
type Controller struct {
	client          kubernetes.Interface
	serviceLister   corelisters.ServiceLister
	podLister       corelisters.PodLister
	endpointsLister corelisters.EndpointsLister
	synced          []cache.InformerSynced
	queue           workqueue.TypedRateLimitingInterface[string]
	recorder        record.EventRecorder
	log             *slog.Logger
}

// New builds the controller and registers its informer handlers.
func New(cfg Config) (*Controller, error) {
	svcInformer := cfg.Informers.Core().V1().Services()
	podInformer := cfg.Informers.Core().V1().Pods()
	epInformer := cfg.Informers.Core().V1().Endpoints()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		client:          cfg.Client,
		serviceLister:   svcInformer.Lister(),
		podLister:       podInformer.Lister(),
		endpointsLister: epInformer.Lister(),
		synced: []cache.InformerSynced{svcInformer.Informer().HasSynced, podInformer.Informer().HasSynced,
			epInformer.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpoint"}),
		recorder: cfg.Recorder,
		log:      log,
	}
	if c.recorder == nil {
		c.recorder = &record.FakeRecorder{}
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
	// Someone else's write to the Endpoints of a Service with a selector (or their deletion)
	// is undone; Endpoints of other Services, or of none, are not ours.
	ours := func(obj any) {
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			return
		}
		ns, name, _ := cache.SplitMetaNamespaceKey(key)
		if svc, err := c.serviceLister.Services(ns).Get(name); err == nil && svc.Spec.Selector != nil {
			c.queue.Add(key)
		}
	}
	if _, err := epInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) { ours(cur) }, DeleteFunc: ours,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// podChanged reports whether an update can change any Endpoints.
func podChanged(o, n *corev1.Pod) bool {
	return !maps.Equal(o.Labels, n.Labels) || o.Status.PodIP != n.Status.PodIP ||
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
		if err := c.sync(ctx, key); err != nil {
			c.log.Info("sync failed, requeued", "service", key, "err", err)
			c.queue.AddRateLimited(key)
		} else {
			c.queue.Forget(key)
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
	svc, err := c.serviceLister.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		err := c.client.CoreV1().Endpoints(namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return nil
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
	subsets, truncated := buildSubsets(svc, pods)

	current, err := c.endpointsLister.Endpoints(namespace).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	want := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Subsets: subsets}
	if current != nil {
		want = current.DeepCopy()
		want.Subsets = subsets
	}
	want.Labels = endpointsLabels(svc)
	if truncated {
		if want.Annotations == nil {
			want.Annotations = map[string]string{}
		}
		want.Annotations[OverCapacityAnnotation] = "truncated"
	} else {
		delete(want.Annotations, OverCapacityAnnotation)
	}
	if current == nil {
		if _, err := c.client.CoreV1().Endpoints(namespace).Create(ctx, want, metav1.CreateOptions{}); err != nil {
			if apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToCreateEndpoint", "Failed to create endpoint for service %s: %v", key, err)
			return fmt.Errorf("creating endpoints %s: %w", key, err)
		}
		return nil
	}
	if apiequality.Semantic.DeepEqual(current.Subsets, want.Subsets) && maps.Equal(current.Labels, want.Labels) &&
		maps.Equal(current.Annotations, want.Annotations) {
		return nil
	}
	if _, err := c.client.CoreV1().Endpoints(namespace).Update(ctx, want, metav1.UpdateOptions{}); err != nil {
		if !apierrors.IsConflict(err) {
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpoint", "Failed to update endpoint %s: %v", key, err)
		}
		return fmt.Errorf("updating endpoints %s: %w", key, err)
	}
	return nil
}

// endpointsLabels is the Service's labels plus the headless marker; labels the Endpoints
// carry besides are dropped, as Kubernetes does.
func endpointsLabels(svc *corev1.Service) map[string]string {
	out := map[string]string{}
	maps.Copy(out, svc.Labels)
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[HeadlessLabel] = ""
	} else {
		delete(out, HeadlessLabel)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// buildSubsets computes the Endpoints subsets of a Service over its pods, and whether they
// were cut at MaxCapacity.
func buildSubsets(svc *corev1.Service, pods []*corev1.Pod) ([]corev1.EndpointSubset, bool) {
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	add := func(ports []corev1.EndpointPort, addr corev1.EndpointAddress, ready bool) {
		k := portsKey(ports)
		g := groups[k]
		if g == nil {
			g = &group{ports: ports}
			groups[k] = g
		}
		if ready {
			g.ready = append(g.ready, addr)
		} else {
			g.notReady = append(g.notReady, addr)
		}
	}
	publish := svc.Spec.PublishNotReadyAddresses
	for _, pod := range pods {
		if !shouldPodBeInEndpoints(pod, publish) {
			continue
		}
		addr := corev1.EndpointAddress{IP: pod.Status.PodIP,
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}}
		if pod.Spec.NodeName != "" {
			addr.NodeName = &pod.Spec.NodeName
		}
		if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace {
			addr.Hostname = pod.Spec.Hostname
		}
		ready := publish || isPodReady(pod)
		if !ready && pod.DeletionTimestamp != nil {
			continue
		}
		if len(svc.Spec.Ports) == 0 {
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				add(nil, addr, ready)
			}
			continue
		}
		for _, sp := range svc.Spec.Ports {
			port, ok := findPort(pod, &sp)
			if !ok {
				continue
			}
			add([]corev1.EndpointPort{{Name: sp.Name, Port: port, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol}}, addr, ready)
		}
	}
	// Merge groups with the same addresses (a pod serving every port) into multi-port subsets,
	// as Kubernetes' RepackSubsets does.
	byAddrs := map[string]*group{}
	for _, g := range groups {
		sortAddresses(g.ready)
		sortAddresses(g.notReady)
		k := addressesKey(g.ready) + "|" + addressesKey(g.notReady)
		if m := byAddrs[k]; m != nil {
			m.ports = append(m.ports, g.ports...)
			continue
		}
		byAddrs[k] = &group{ports: append([]corev1.EndpointPort(nil), g.ports...), ready: g.ready, notReady: g.notReady}
	}
	var subsets []corev1.EndpointSubset
	for _, g := range byAddrs {
		sort.Slice(g.ports, func(i, j int) bool { return portKey(g.ports[i]) < portKey(g.ports[j]) })
		subsets = append(subsets, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	sort.Slice(subsets, func(i, j int) bool { return portsKey(subsets[i].Ports) < portsKey(subsets[j].Ports) })
	return truncate(subsets)
}

// truncate keeps at most MaxCapacity addresses, ready ones first.
func truncate(subsets []corev1.EndpointSubset) ([]corev1.EndpointSubset, bool) {
	total := 0
	for _, s := range subsets {
		total += len(s.Addresses) + len(s.NotReadyAddresses)
	}
	if total <= MaxCapacity {
		return subsets, false
	}
	left := MaxCapacity
	for i := range subsets {
		n := min(len(subsets[i].Addresses), left)
		subsets[i].Addresses = subsets[i].Addresses[:n]
		left -= n
	}
	for i := range subsets {
		n := min(len(subsets[i].NotReadyAddresses), left)
		subsets[i].NotReadyAddresses = subsets[i].NotReadyAddresses[:n]
		left -= n
	}
	out := subsets[:0]
	for _, s := range subsets {
		if len(s.Addresses)+len(s.NotReadyAddresses) > 0 {
			out = append(out, s)
		}
	}
	return out, true
}

func sortAddresses(a []corev1.EndpointAddress) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].IP != a[j].IP {
			return a[i].IP < a[j].IP
		}
		return a[i].TargetRef.Name < a[j].TargetRef.Name
	})
}

func addressesKey(a []corev1.EndpointAddress) string {
	var b strings.Builder
	for _, x := range a {
		b.WriteString(x.IP)
		b.WriteByte('/')
		b.WriteString(string(x.TargetRef.UID))
		b.WriteByte(',')
	}
	return b.String()
}

func portKey(p corev1.EndpointPort) string {
	return fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol)
}

func portsKey(ps []corev1.EndpointPort) string {
	var keys []string
	for _, p := range ps {
		keys = append(keys, portKey(p))
	}
	return strings.Join(keys, ",")
}

// shouldPodBeInEndpoints: a pod with an IP, not terminal, and not terminating unless
// includeTerminating.
func shouldPodBeInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.Status.PodIP == "" {
		return false
	}
	return includeTerminating || pod.DeletionTimestamp == nil
}

func isPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// findPort resolves a Service port's targetPort on a pod: a number as is (the port itself when
// unset), a name by the pod's container ports of the same name and protocol.
func findPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, bool) {
	switch sp.TargetPort.Type {
	case intstr.String:
		name := sp.TargetPort.StrVal
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == name && protocolOf(p.Protocol) == protocolOf(sp.Protocol) {
					return p.ContainerPort, true
				}
			}
		}
		return 0, false
	default:
		if sp.TargetPort.IntVal == 0 {
			return sp.Port, true
		}
		return sp.TargetPort.IntVal, true
	}
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}
