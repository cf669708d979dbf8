package endpoints_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/controller/endpoints"
	"github.com/nanokube/nanokube/internal/controller/endpointslice"
)

// poll calls cond until it returns "" or the deadline passes; the last answer says what was
// wrong.
func poll(t *testing.T, timeout time.Duration, cond func() (string, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg, err := cond()
		if err != nil {
			t.Fatal(err)
		}
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func setReady(ctx context.Context, t *testing.T, client kubernetes.Interface, name, ip string, ready bool) {
	t.Helper()
	p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Phase, p.Status.PodIP, p.Status.PodIPs = corev1.PodRunning, ip, []corev1.PodIP{{IP: ip}}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// endpointsState renders the Endpoints as "ready=[...] notReady=[...]" of pod:port.
func endpointsState(ctx context.Context, client kubernetes.Interface) (string, error) {
	ep, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return "", nil
	}
	var ready, notReady []string
	for _, s := range ep.Subsets {
		for _, p := range s.Ports {
			for _, a := range s.Addresses {
				ready = append(ready, fmt.Sprintf("%s:%d", a.TargetRef.Name, p.Port))
			}
			for _, a := range s.NotReadyAddresses {
				notReady = append(notReady, fmt.Sprintf("%s:%d", a.TargetRef.Name, p.Port))
			}
		}
	}
	sort.Strings(ready)
	sort.Strings(notReady)
	return fmt.Sprintf("ready=%v notReady=%v", ready, notReady), nil
}

// slicesState renders the Service's slices as pod:port(ready,serving,terminating) entries.
func slicesState(ctx context.Context, client kubernetes.Interface) (string, error) {
	list, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=web," + discoveryv1.LabelManagedBy + "=" + endpointslice.ControllerName})
	if err != nil {
		return "", err
	}
	var out []string
	for _, s := range list.Items {
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Service" || s.OwnerReferences[0].Name != "web" {
			return "", fmt.Errorf("slice %s owners %+v", s.Name, s.OwnerReferences)
		}
		for _, p := range s.Ports {
			for _, e := range s.Endpoints {
				out = append(out, fmt.Sprintf("%s:%d(%v,%v,%v)", e.TargetRef.Name, *p.Port,
					*e.Conditions.Ready, *e.Conditions.Serving, *e.Conditions.Terminating))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, " "), nil
}

func TestEndpointsFollowPodReadiness(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := c.Client

	factory := informers.NewSharedInformerFactory(client, 0)
	epCtrl, err := endpoints.New(endpoints.Config{Client: client, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	sliceCtrl, err := endpointslice.New(endpointslice.Config{Client: client, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	go epCtrl.Run(ctx, 2)
	go sliceCtrl.Run(ctx, 2)

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, port := range []int32{8080, 8081, 0} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "default", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if port != 0 { // p2 has no port named http
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: port}}
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	want := func(wantEP, wantSlices string) func() (string, error) {
		return func() (string, error) {
			ep, err := endpointsState(ctx, client)
			if err != nil {
				return "", err
			}
			sl, err := slicesState(ctx, client)
			if err != nil {
				return "", err
			}
			if ep != wantEP || sl != wantSlices {
				return fmt.Sprintf("endpoints %q (want %q), slices %q (want %q)", ep, wantEP, sl, wantSlices), nil
			}
			return "", nil
		}
	}
	// No pod has an IP yet: an empty Endpoints, an empty placeholder slice.
	poll(t, 20*time.Second, want("ready=[] notReady=[]", ""))

	setReady(ctx, t, client, "p0", "10.244.0.10", true)
	setReady(ctx, t, client, "p1", "10.244.0.11", false)
	setReady(ctx, t, client, "p2", "10.244.0.12", true)
	poll(t, 20*time.Second, want("ready=[p0:8080] notReady=[p1:8081]",
		"p0:8080(true,true,false) p1:8081(false,false,false)"))

	setReady(ctx, t, client, "p1", "10.244.0.11", true)
	setReady(ctx, t, client, "p0", "10.244.0.10", false)
	poll(t, 20*time.Second, want("ready=[p1:8081] notReady=[p0:8080]",
		"p0:8080(false,false,false) p1:8081(true,true,false)"))

	// A terminating pod leaves the Endpoints but stays in its slice, terminating and not ready.
	p1, _ := client.CoreV1().Pods("default").Get(ctx, "p1", metav1.GetOptions{})
	p1.Finalizers = []string{"example.com/hold"}
	if _, err := client.CoreV1().Pods("default").Update(ctx, p1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Pods("default").Delete(ctx, "p1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, want("ready=[] notReady=[p0:8080]",
		"p0:8080(false,false,false) p1:8081(false,true,true)"))

	// The Endpoints are rewritten when someone else changes them.
	ep, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep.Subsets = nil
	if _, err := client.CoreV1().Endpoints("default").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, want("ready=[] notReady=[p0:8080]",
		"p0:8080(false,false,false) p1:8081(false,true,true)"))
}
