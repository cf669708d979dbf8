package nodelifecycle_test

import (
	"context"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/controller/nodelifecycle"
)

// poll calls cond until it returns true or the deadline passes.
func poll(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heartbeat renews a node's Lease the way a kubelet does, until stopped.
type heartbeat struct {
	stop chan struct{}
	done sync.WaitGroup
}

func startHeartbeat(ctx context.Context, t *testing.T, client kubernetes.Interface, node string) *heartbeat {
	h := &heartbeat{stop: make(chan struct{})}
	leases := client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	renew := func() {
		l, err := leases.Get(ctx, node, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: corev1.NamespaceNodeLease},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To[int32](40),
					RenewTime: &metav1.MicroTime{Time: time.Now()}}}
			_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		} else if err == nil {
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			t.Logf("renewing lease: %v", err)
		}
	}
	renew()
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				renew()
			}
		}
	}()
	return h
}

func (h *heartbeat) Stop() { close(h.stop); h.done.Wait() }

func setNodeReady(ctx context.Context, t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	poll(t, 10*time.Second, "posting node status", func() (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		now := metav1.Now()
		n.Status.Conditions = []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now},
		}
		_, err = client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err == nil, nil
	})
}

func TestSilentNodeTaintedAndPodsEvicted(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := c.Client

	const grace = 2 * time.Second
	const toleration = 3 // seconds
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	factory := informers.NewSharedInformerFactory(client, 0)
	ctrl, err := nodelifecycle.New(nodelifecycle.Config{Client: client, Informers: factory,
		Recorder:               broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "node-controller"}),
		NodeMonitorGracePeriod: grace, NodeMonitorPeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	go ctrl.Run(ctx, 2)

	// n2 stays healthy: with no node ready at all the controller would take the fault for its
	// own (or the network's) and evict nothing.
	for _, name := range []string{"n1", "n2"} {
		if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		setNodeReady(ctx, t, client, name)
	}
	hb := startHeartbeat(ctx, t, client, "n1")
	defer startHeartbeat(ctx, t, client, "n2").Stop()

	unreachable := func(seconds *int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
	}
	pods := map[string]*int64{"zero": ptr.To[int64](0), "short": ptr.To[int64](toleration), "forever": nil}
	for name, seconds := range pods {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "n1", Tolerations: []corev1.Toleration{unreachable(seconds)},
				Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		p, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// While the lease is renewed, the node stays untainted through several grace periods.
	healthyUntil := time.Now().Add(2 * grace)
	for time.Now().Before(healthyUntil) {
		n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Spec.Taints) != 0 {
			t.Fatalf("heartbeating node tainted: %+v", n.Spec.Taints)
		}
		time.Sleep(100 * time.Millisecond)
	}

	hb.Stop()
	var taint corev1.Taint
	poll(t, 30*time.Second, "node tainted unreachable", func() (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, tt := range n.Spec.Taints {
			if tt.Key == corev1.TaintNodeUnreachable && tt.Effect == corev1.TaintEffectNoExecute {
				taint = tt
				for _, cond := range n.Status.Conditions {
					if cond.Type == corev1.NodeReady && (cond.Status != corev1.ConditionUnknown || cond.Reason != "NodeStatusUnknown") {
						t.Fatalf("tainted but Ready is %+v", cond)
					}
				}
				return true, nil
			}
		}
		return false, nil
	})
	if taint.TimeAdded == nil {
		t.Fatal("NoExecute taint without timeAdded")
	}

	gone := func(name string) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && p.DeletionTimestamp != nil, err
	}
	poll(t, 10*time.Second, "pod tolerating 0s evicted", func() (bool, error) { return gone("zero") })
	poll(t, 10*time.Second, "forever pod marked not ready", func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "forever", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady {
				return cond.Status == corev1.ConditionFalse, nil
			}
		}
		return false, nil
	})
	due := taint.TimeAdded.Add(toleration * time.Second)
	poll(t, toleration*time.Second+10*time.Second, "pod tolerating 3s evicted", func() (bool, error) {
		ok, err := gone("short")
		if ok && time.Now().Before(due.Add(-time.Second)) { // timeAdded has second precision
			t.Fatalf("evicted before its toleration ran out (due %v)", due)
		}
		return ok, err
	})
	if ok, err := gone("forever"); err != nil || ok {
		t.Fatalf("pod tolerating the taint for ever was evicted (%v)", err)
	}
	poll(t, 10*time.Second, "eviction and node events", func() (bool, error) {
		evs, err := client.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		var eviction, notReady bool
		for _, e := range evs.Items {
			eviction = eviction || (e.Reason == "TaintManagerEviction" && e.InvolvedObject.Name == "zero")
			notReady = notReady || (e.Reason == "NodeNotReady" && e.InvolvedObject.Kind == "Node")
		}
		return eviction && notReady, nil
	})

	// The node comes back: its kubelet renews the lease and reports Ready again.
	hb = startHeartbeat(ctx, t, client, "n1")
	defer hb.Stop()
	setNodeReady(ctx, t, client, "n1")
	poll(t, 30*time.Second, "taints removed", func() (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		return err == nil && len(n.Spec.Taints) == 0, err
	})
}
