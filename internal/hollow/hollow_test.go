package hollow_test

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/hollow"
)

func startNodes(t *testing.T, c *apitest.Cluster, cfg hollow.Config) *hollow.Nodes {
	t.Helper()
	cfg.Client = c.Client
	nodes, err := hollow.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nodes.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-nodes.Ready():
	case err := <-done:
		t.Fatalf("hollow nodes stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("hollow nodes not ready after 60s")
	}
	return nodes
}

func poll(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return cond() })
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestNodesRegisterAndRenewLeases(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	nodes := startNodes(t, c, hollow.Config{Count: 20, LeaseInterval: time.Second, Zones: 2, Labels: map[string]string{"pool": "a"}})

	list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 20 {
		t.Fatalf("got %d nodes, want 20", len(list.Items))
	}
	n := list.Items[0]
	if n.Labels["pool"] != "a" || n.Labels["kubernetes.io/hostname"] != n.Name || n.Labels["topology.kubernetes.io/zone"] == "" {
		t.Errorf("labels: %v", n.Labels)
	}
	if cpu := n.Status.Allocatable.Cpu().String(); cpu != "32" {
		t.Errorf("allocatable cpu %s, want 32", cpu)
	}
	if pods := n.Status.Allocatable.Pods().Value(); pods != 110 {
		t.Errorf("allocatable pods %d, want 110", pods)
	}
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == v1.NodeReady && cond.Status == v1.ConditionTrue {
			ready = true
		}
	}
	if !ready || len(n.Status.Addresses) == 0 || n.Status.NodeInfo.KubeletVersion == "" {
		t.Errorf("status: %+v", n.Status)
	}

	leases := c.Client.CoordinationV1().Leases(hollow.LeaseNamespace)
	first, err := leases.Get(ctx, "hollow-3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *first.Spec.HolderIdentity != "hollow-3" || len(first.OwnerReferences) != 1 {
		t.Errorf("lease: %+v", first)
	}
	poll(t, "lease renewed", func() (bool, error) {
		l, err := leases.Get(ctx, "hollow-3", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(first.Spec.RenewTime.Time), nil
	})

	// A silenced node stops renewing.
	if err := nodes.Silence("hollow-4"); err != nil {
		t.Fatal(err)
	}
	renewedAfter := func(name string, after time.Time) *coordinationv1.Lease {
		var got *coordinationv1.Lease
		poll(t, name+" renewed", func() (bool, error) {
			l, err := leases.Get(ctx, name, metav1.GetOptions{})
			got = l
			return err == nil && l.Spec.RenewTime.After(after), nil
		})
		return got
	}
	// Once another node renewed, any renewal of hollow-4 that was in flight has landed.
	other := renewedAfter("hollow-5", time.Now())
	silent, _ := leases.Get(ctx, "hollow-4", metav1.GetOptions{})
	renewedAfter("hollow-5", other.Spec.RenewTime.Add(500*time.Millisecond))
	if l, _ := leases.Get(ctx, "hollow-4", metav1.GetOptions{}); !l.Spec.RenewTime.Equal(silent.Spec.RenewTime) {
		t.Errorf("silenced node renewed its lease")
	}
	if err := nodes.Resume(ctx, "hollow-4"); err != nil {
		t.Fatal(err)
	}
	if l, _ := leases.Get(ctx, "hollow-4", metav1.GetOptions{}); !l.Spec.RenewTime.After(silent.Spec.RenewTime.Time) {
		t.Errorf("resumed node did not renew its lease")
	}
}

func TestPodsRunAndTerminate(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	startNodes(t, c, hollow.Config{Count: 3, LeaseInterval: -1})

	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: v1.PodSpec{
			InitContainers: []v1.Container{{Name: "init", Image: "busybox"}},
			Containers:     []v1.Container{{Name: "app", Image: "nginx"}, {Name: "side", Image: "envoy"}},
		},
	}
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := c.Client.CoreV1().Pods("default").Bind(ctx, &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Target:     v1.ObjectReference{Kind: "Node", Name: "hollow-1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got *v1.Pod
	poll(t, "pod running", func() (bool, error) {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		got = p
		return err == nil && p.Status.Phase == v1.PodRunning, nil
	})
	want := map[v1.PodConditionType]bool{v1.PodReady: true, v1.ContainersReady: true, v1.PodInitialized: true, v1.PodScheduled: true}
	for _, cond := range got.Status.Conditions {
		if cond.Status == v1.ConditionTrue {
			delete(want, cond.Type)
		}
	}
	if len(want) > 0 {
		t.Errorf("conditions missing: %v in %+v", want, got.Status.Conditions)
	}
	if got.Status.PodIP == "" || got.Status.HostIP == "" || got.Status.StartTime == nil {
		t.Errorf("status: ip %q host %q start %v", got.Status.PodIP, got.Status.HostIP, got.Status.StartTime)
	}
	if len(got.Status.ContainerStatuses) != 2 || !got.Status.ContainerStatuses[0].Ready || len(got.Status.InitContainerStatuses) != 1 {
		t.Errorf("container statuses: %+v", got.Status.ContainerStatuses)
	}

	// A graceful delete is finished by the node.
	if err := c.Client.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "pod deleted", func() (bool, error) {
		_, err := c.Client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// With CompleteAfter, a pod that is not restarted forever runs, then succeeds; one that is
// keeps running.
func TestPodsComplete(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	startNodes(t, c, hollow.Config{Count: 1, LeaseInterval: -1, CompleteAfter: 200 * time.Millisecond})
	for name, policy := range map[string]v1.RestartPolicy{"job": v1.RestartPolicyNever, "server": v1.RestartPolicyAlways} {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1.PodSpec{RestartPolicy: policy, NodeName: "hollow-0", Containers: []v1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "the job pod to succeed", func() (bool, error) {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "job", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodSucceeded &&
			p.Status.ContainerStatuses[0].State.Terminated != nil && p.Status.ContainerStatuses[0].State.Terminated.ExitCode == 0, err
	})
	p, err := c.Client.CoreV1().Pods("default").Get(ctx, "server", metav1.GetOptions{})
	if err != nil || p.Status.Phase != v1.PodRunning {
		t.Errorf("the server pod: %v, phase %s, want Running", err, p.Status.Phase)
	}
}
