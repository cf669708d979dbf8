package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

type harness struct {
	c      *Controller
	client *fake.Clientset
}

func newTest(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	client := fake.NewClientset(objs...)
	var n atomic.Int32
	// The fake clientset does not generate names.
	client.PrependReactor("create", "endpointslices", func(a clienttesting.Action) (bool, runtime.Object, error) {
		s := a.(clienttesting.CreateAction).GetObject().(*discoveryv1.EndpointSlice)
		if s.Name == "" {
			s.Name = fmt.Sprintf("%s%d", s.GenerateName, n.Add(1))
			s.UID = types.UID("uid-" + s.Name)
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.StartInformers(t, client, factory)
	client.ClearActions()
	return &harness{c: c, client: client}
}

// sync runs one sync after the cache has caught up with earlier writes, and returns the writes.
func (h *harness) sync(t *testing.T, key string) []clienttesting.Action {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	h.client.ClearActions()
	for {
		err := h.c.sync(context.Background(), key)
		if err == nil {
			break
		}
		if !errors.Is(err, errCacheBehind) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var out []clienttesting.Action
	for _, a := range h.client.Actions() {
		if v := a.GetVerb(); v == "create" || v == "update" || v == "delete" {
			out = append(out, a)
		}
	}
	return out
}

func (h *harness) waitCache(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := h.c.sliceLister.List(labels.Everything())
		all, _ := h.client.DiscoveryV1().EndpointSlices("ns").List(context.Background(), metav1.ListOptions{})
		if len(l) == n && len(all.Items) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache has %d slices, want %d", len(l), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func verbs(acts []clienttesting.Action) []string {
	var out []string
	for _, a := range acts {
		out = append(out, a.GetVerb())
	}
	return out
}

func sliceOf(a clienttesting.Action) *discoveryv1.EndpointSlice {
	switch a := a.(type) {
	case clienttesting.CreateAction:
		return a.GetObject().(*discoveryv1.EndpointSlice)
	case clienttesting.UpdateAction:
		return a.GetObject().(*discoveryv1.EndpointSlice)
	}
	return nil
}

var (
	httpPort    = corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}
	metricsPort = corev1.ServicePort{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP}
)

func service(selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "svc-uid", Labels: map[string]string{"team": "a"}},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports, ClusterIP: "10.96.0.10", IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}},
	}
}

func pod(name, ip string, ready bool, opts ...func(*corev1.Pod)) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func noPorts(p *corev1.Pod)     { p.Spec.Containers[0].Ports = nil }
func terminating(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{}; p.Finalizers = []string{"x"} }

type epView struct {
	Pod                         string
	Ready, Serving, Terminating bool
	Node, Zone                  string
}

func view(s *discoveryv1.EndpointSlice) []epView {
	var out []epView
	for _, ep := range s.Endpoints {
		out = append(out, epView{ep.TargetRef.Name, *ep.Conditions.Ready, *ep.Conditions.Serving, *ep.Conditions.Terminating,
			deref(ep.NodeName), deref(ep.Zone)})
	}
	return out
}

func TestCreateSlices(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{corev1.LabelTopologyZone: "z1"}}}
	done := func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }
	h := newTest(t, node, service(map[string]string{"app": "web"}, httpPort, metricsPort),
		pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false), pod("c", "10.0.0.3", true, noPorts),
		pod("t", "10.0.0.4", true, terminating), pod("no-ip", "", true), pod("done", "10.0.0.5", true, done))
	acts := h.sync(t, "ns/web")
	if !reflect.DeepEqual(verbs(acts), []string{"create", "create"}) {
		t.Fatalf("want two creates, got %v", acts)
	}
	byPorts := map[string]*discoveryv1.EndpointSlice{}
	for _, a := range acts {
		s := sliceOf(a)
		var names []string
		for _, p := range s.Ports {
			names = append(names, fmt.Sprintf("%s:%d", *p.Name, *p.Port))
		}
		byPorts[fmt.Sprint(names)] = s
		wantLabels := map[string]string{"team": "a", discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: ControllerName}
		if !reflect.DeepEqual(s.Labels, wantLabels) || s.GenerateName != "web-" || s.AddressType != discoveryv1.AddressTypeIPv4 {
			t.Fatalf("slice meta %+v", s.ObjectMeta)
		}
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "svc-uid" || !*s.OwnerReferences[0].Controller ||
			s.OwnerReferences[0].Kind != "Service" {
			t.Fatalf("owner %+v", s.OwnerReferences)
		}
	}
	both, metricsOnly := byPorts["[http:8080 metrics:9090]"], byPorts["[metrics:9090]"]
	if both == nil || metricsOnly == nil {
		t.Fatalf("port groups %v", byPorts)
	}
	want := []epView{{"a", true, true, false, "node-1", "z1"}, {"b", false, false, false, "node-1", "z1"}, {"t", false, true, true, "node-1", "z1"}}
	if got := view(both); !reflect.DeepEqual(got, want) {
		t.Fatalf("endpoints\n got %+v\nwant %+v", got, want)
	}
	if got := view(metricsOnly); !reflect.DeepEqual(got, []epView{{"c", true, true, false, "node-1", "z1"}}) {
		t.Fatalf("endpoints %+v", got)
	}
	if tr := both.Endpoints[0].TargetRef; tr.Kind != "Pod" || tr.Namespace != "ns" || tr.UID != "uid-a" || both.Endpoints[0].Addresses[0] != "10.0.0.1" {
		t.Fatalf("endpoint %+v", both.Endpoints[0])
	}

	h.waitCache(t, 2)
	if acts := h.sync(t, "ns/web"); len(acts) != 0 {
		t.Fatalf("unchanged: want no writes, got %v", acts)
	}
}

func TestReadinessChangeUpdatesOneSlice(t *testing.T) {
	h := newTest(t, service(map[string]string{"app": "web"}, metricsPort), pod("a", "10.0.0.1", true))
	h.sync(t, "ns/web")
	h.waitCache(t, 1)
	p, _ := h.client.CoreV1().Pods("ns").Get(context.Background(), "a", metav1.GetOptions{})
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	if _, err := h.client.CoreV1().Pods("ns").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cur, _ := h.c.podLister.Pods("ns").Get("a"); cur != nil && !isPodReady(cur) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod update not seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	acts := h.sync(t, "ns/web")
	if !reflect.DeepEqual(verbs(acts), []string{"update"}) {
		t.Fatalf("want one update, got %v", acts)
	}
	if got := view(sliceOf(acts[0])); !reflect.DeepEqual(got, []epView{{"a", false, false, false, "node-1", ""}}) {
		t.Fatalf("endpoints %+v", got)
	}
}

func TestHundredPerSlice(t *testing.T) {
	objs := []runtime.Object{service(map[string]string{"app": "web"}, metricsPort)}
	for i := range 250 {
		objs = append(objs, pod(fmt.Sprintf("p%03d", i), fmt.Sprintf("10.1.%d.%d", i/200, i%200+1), true))
	}
	h := newTest(t, objs...)
	acts := h.sync(t, "ns/web")
	var sizes []int
	for _, a := range acts {
		if a.GetVerb() != "create" {
			t.Fatalf("unexpected %v", a)
		}
		sizes = append(sizes, len(sliceOf(a).Endpoints))
	}
	sort.Ints(sizes)
	if !reflect.DeepEqual(sizes, []int{50, 100, 100}) {
		t.Fatalf("slice sizes %v", sizes)
	}
	h.waitCache(t, 3)

	// A pod goes: only its slice is written; a new pod fills that slice's room.
	if err := h.client.CoreV1().Pods("ns").Delete(context.Background(), "p000", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.c.podLister.Pods("ns").Get("p000"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod delete not seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	acts = h.sync(t, "ns/web")
	if !reflect.DeepEqual(verbs(acts), []string{"update"}) || len(sliceOf(acts[0]).Endpoints) != 99 {
		t.Fatalf("want one update to 99 endpoints, got %v", acts)
	}
}

func TestPodsGoneLeavesPlaceholder(t *testing.T) {
	h := newTest(t, service(map[string]string{"app": "web"}, metricsPort), pod("a", "10.0.0.1", true))
	h.sync(t, "ns/web")
	h.waitCache(t, 1)
	if err := h.client.CoreV1().Pods("ns").Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.c.podLister.Pods("ns").Get("a"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod delete not seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	acts := h.sync(t, "ns/web")
	if !reflect.DeepEqual(verbs(acts), []string{"update"}) {
		t.Fatalf("want one update, got %v", acts)
	}
	if s := sliceOf(acts[0]); len(s.Endpoints) != 0 || len(s.Ports) != 0 {
		t.Fatalf("placeholder %+v", s)
	}
}

func TestNoPodsPlaceholderCreated(t *testing.T) {
	h := newTest(t, service(map[string]string{"app": "web"}, metricsPort))
	acts := h.sync(t, "ns/web")
	if !reflect.DeepEqual(verbs(acts), []string{"create"}) || len(sliceOf(acts[0]).Endpoints) != 0 {
		t.Fatalf("want one empty slice, got %v", acts)
	}
}

func TestPublishNotReady(t *testing.T) {
	svc := service(map[string]string{"app": "web"}, metricsPort)
	svc.Spec.PublishNotReadyAddresses = true
	h := newTest(t, svc, pod("a", "10.0.0.1", false), pod("t", "10.0.0.2", false, terminating))
	acts := h.sync(t, "ns/web")
	want := []epView{{"a", true, false, false, "node-1", ""}, {"t", true, false, true, "node-1", ""}}
	if got := view(sliceOf(acts[0])); !reflect.DeepEqual(got, want) {
		t.Fatalf("endpoints\n got %+v\nwant %+v", got, want)
	}
}

func TestLeftAlone(t *testing.T) {
	kube := service(map[string]string{"app": "web"}, metricsPort)
	kube.Name, kube.Namespace = "kubernetes", "default"
	manual := service(nil, metricsPort)
	foreign := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-manual", Namespace: "ns",
		Labels: map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "someone-else"}},
		AddressType: discoveryv1.AddressTypeIPv4}
	h := newTest(t, kube, manual, foreign, pod("a", "10.0.0.1", true))
	for _, key := range []string{"ns/web", "default/kubernetes"} {
		if acts := h.sync(t, key); len(acts) != 0 {
			t.Fatalf("%s: want no writes, got %v", key, acts)
		}
	}
}

func TestServiceGoneDeletesSlices(t *testing.T) {
	ours := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns",
		Labels: map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: ControllerName}},
		AddressType: discoveryv1.AddressTypeIPv4}
	h := newTest(t, ours)
	acts := h.sync(t, "ns/web")
	if !reflect.DeepEqual(verbs(acts), []string{"delete"}) {
		t.Fatalf("want one delete, got %v", acts)
	}
}

func TestStaleCacheRequeues(t *testing.T) {
	h := newTest(t, service(map[string]string{"app": "web"}, metricsPort))
	h.c.remember("ns/web", "web-not-yet-seen", "")
	if err := h.c.sync(context.Background(), "ns/web"); !errors.Is(err, errCacheBehind) {
		t.Fatalf("want errCacheBehind, got %v", err)
	}
	for _, a := range h.client.Actions() {
		if a.GetVerb() == "create" {
			t.Fatal("created a slice on a stale cache")
		}
	}
}

func TestDualStack(t *testing.T) {
	svc := service(map[string]string{"app": "web"}, metricsPort)
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	p := pod("a", "10.0.0.1", true)
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}
	h := newTest(t, svc, p)
	acts := h.sync(t, "ns/web")
	got := map[discoveryv1.AddressType]string{}
	for _, a := range acts {
		s := sliceOf(a)
		got[s.AddressType] = s.Endpoints[0].Addresses[0]
	}
	if !reflect.DeepEqual(got, map[discoveryv1.AddressType]string{discoveryv1.AddressTypeIPv4: "10.0.0.1", discoveryv1.AddressTypeIPv6: "fd00::1"}) {
		t.Fatalf("slices %v", got)
	}
}
