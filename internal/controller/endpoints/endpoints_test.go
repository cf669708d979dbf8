package endpoints

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

func newTest(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.StartInformers(t, client, factory)
	client.ClearActions()
	return c, client
}

func writes(client *fake.Clientset) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" && a.GetVerb() != "get" {
			out = append(out, a)
		}
	}
	return out
}

func service(name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"team": "a"}},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports, ClusterIP: "10.96.0.10"},
	}
}

type podOpt func(*corev1.Pod)

func pod(name, ip string, ready bool, opts ...podOpt) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func noPorts(p *corev1.Pod)     { p.Spec.Containers[0].Ports = nil }
func terminating(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{}; p.Finalizers = []string{"x"} }

func addr(name, ip string) corev1.EndpointAddress {
	return corev1.EndpointAddress{IP: ip, NodeName: ptr.To("node-1"),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}}
}

var (
	httpPort    = corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}
	metricsPort = corev1.ServicePort{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP}
	httpEP      = corev1.EndpointPort{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}
	metricsEP   = corev1.EndpointPort{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP}
)

func TestCreate(t *testing.T) {
	succeeded := func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }
	otherApp := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "db"} }
	c, client := newTest(t, service("web", map[string]string{"app": "web"}, httpPort, metricsPort),
		pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false), pod("c", "10.0.0.3", true, noPorts),
		pod("no-ip", "", true), pod("term", "10.0.0.5", false, terminating), pod("term-ready", "10.0.0.8", true, terminating),
		pod("done", "10.0.0.6", true, succeeded), pod("other", "10.0.0.7", true, otherApp))
	if err := c.sync(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	acts := writes(client)
	if len(acts) != 1 || acts[0].GetVerb() != "create" || acts[0].GetResource().Resource != "endpoints" {
		t.Fatalf("want one create of endpoints, got %v", acts)
	}
	got := acts[0].(clienttesting.CreateAction).GetObject().(*corev1.Endpoints)
	want := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: map[string]string{"team": "a"}},
		// As Kubernetes' RepackSubsets: one subset per set of ports with the same addresses;
		// c lacks the named port "http".
		Subsets: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1")}, NotReadyAddresses: []corev1.EndpointAddress{addr("b", "10.0.0.2")},
				Ports: []corev1.EndpointPort{httpEP}},
			{Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1"), addr("c", "10.0.0.3")},
				NotReadyAddresses: []corev1.EndpointAddress{addr("b", "10.0.0.2")}, Ports: []corev1.EndpointPort{metricsEP}},
		},
	}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Fatalf("endpoints\n got %+v\nwant %+v", got, want)
	}

	// Nothing changed: nothing written.
	c2, client2 := newTest(t, service("web", map[string]string{"app": "web"}, httpPort, metricsPort),
		pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false), pod("c", "10.0.0.3", true, noPorts), pod("no-ip", "", true), got)
	if err := c2.sync(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	if acts := writes(client2); len(acts) != 0 {
		t.Fatalf("unchanged: want no writes, got %v", acts)
	}
}

func TestReadinessChangeUpdates(t *testing.T) {
	existing := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: map[string]string{"team": "a"}},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1")}, Ports: []corev1.EndpointPort{metricsEP}}}}
	c, client := newTest(t, service("web", map[string]string{"app": "web"}, metricsPort), pod("a", "10.0.0.1", false), existing)
	if err := c.sync(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	acts := writes(client)
	if len(acts) != 1 || acts[0].GetVerb() != "update" {
		t.Fatalf("want one update, got %v", acts)
	}
	got := acts[0].(clienttesting.UpdateAction).GetObject().(*corev1.Endpoints)
	want := []corev1.EndpointSubset{{NotReadyAddresses: []corev1.EndpointAddress{addr("a", "10.0.0.1")}, Ports: []corev1.EndpointPort{metricsEP}}}
	if !apiequality.Semantic.DeepEqual(got.Subsets, want) {
		t.Fatalf("subsets\n got %+v\nwant %+v", got.Subsets, want)
	}
}

func TestPublishNotReadyAddresses(t *testing.T) {
	svc := service("web", map[string]string{"app": "web"}, metricsPort)
	svc.Spec.PublishNotReadyAddresses = true
	c, client := newTest(t, svc, pod("a", "10.0.0.1", false), pod("b", "10.0.0.2", false, terminating))
	if err := c.sync(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	got := writes(client)[0].(clienttesting.CreateAction).GetObject().(*corev1.Endpoints)
	want := []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1"), addr("b", "10.0.0.2")},
		Ports: []corev1.EndpointPort{metricsEP}}}
	if !apiequality.Semantic.DeepEqual(got.Subsets, want) {
		t.Fatalf("subsets\n got %+v\nwant %+v", got.Subsets, want)
	}
}

func TestHeadlessWithoutPorts(t *testing.T) {
	svc := service("web", map[string]string{"app": "web"})
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	hostname := func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "h", "web" }
	c, client := newTest(t, svc, pod("a", "10.0.0.1", true, hostname))
	if err := c.sync(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	got := writes(client)[0].(clienttesting.CreateAction).GetObject().(*corev1.Endpoints)
	a := addr("a", "10.0.0.1")
	a.Hostname = "h"
	want := []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{a}}}
	if !apiequality.Semantic.DeepEqual(got.Subsets, want) || !reflect.DeepEqual(got.Labels, map[string]string{"team": "a", HeadlessLabel: ""}) {
		t.Fatalf("got %+v", got)
	}
}

func TestLeftAlone(t *testing.T) {
	kube := service("kubernetes", map[string]string{"app": "web"}, metricsPort)
	kube.Namespace = "default"
	external := service("external", map[string]string{"app": "web"}, metricsPort)
	external.Spec.Type, external.Spec.ExternalName, external.Spec.ClusterIP = corev1.ServiceTypeExternalName, "example.com", ""
	c, client := newTest(t, service("manual", nil, metricsPort), kube, external, pod("a", "10.0.0.1", true))
	for _, key := range []string{"ns/manual", "default/kubernetes", "ns/external"} {
		if err := c.sync(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	if acts := writes(client); len(acts) != 0 {
		t.Fatalf("want no writes, got %v", acts)
	}
}

func TestServiceDeleted(t *testing.T) {
	c, client := newTest(t, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}})
	if err := c.sync(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	acts := writes(client)
	if len(acts) != 1 || acts[0].GetVerb() != "delete" || acts[0].(clienttesting.DeleteAction).GetName() != "web" {
		t.Fatalf("want one delete, got %v", acts)
	}
}

func TestOverCapacity(t *testing.T) {
	objs := []runtime.Object{service("web", map[string]string{"app": "web"}, metricsPort)}
	for i := range MaxCapacity + 5 {
		objs = append(objs, pod(fmt.Sprintf("p%d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250), true))
	}
	c, client := newTest(t, objs...)
	if err := c.sync(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	got := writes(client)[0].(clienttesting.CreateAction).GetObject().(*corev1.Endpoints)
	if n := len(got.Subsets[0].Addresses); n != MaxCapacity || got.Annotations[OverCapacityAnnotation] != "truncated" {
		t.Fatalf("%d addresses, annotations %v", n, got.Annotations)
	}
}

func TestMultiPortSubset(t *testing.T) {
	c, client := newTest(t, service("web", map[string]string{"app": "web"}, httpPort, metricsPort),
		pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false))
	if err := c.sync(context.Background(), "ns/web"); err != nil {
		t.Fatal(err)
	}
	got := writes(client)[0].(clienttesting.CreateAction).GetObject().(*corev1.Endpoints)
	want := []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1")},
		NotReadyAddresses: []corev1.EndpointAddress{addr("b", "10.0.0.2")}, Ports: []corev1.EndpointPort{httpEP, metricsEP}}}
	if !apiequality.Semantic.DeepEqual(got.Subsets, want) {
		t.Fatalf("subsets\n got %+v\nwant %+v", got.Subsets, want)
	}
}
