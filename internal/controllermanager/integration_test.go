package controllermanager_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/controllermanager"
)

const testTimeout = 60 * time.Second

func testLog() *slog.Logger {
	if os.Getenv("NANOKUBE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startManager runs a control plane and a controller manager with the given controllers.
func startManager(t *testing.T, controllers ...string) (*apitest.Cluster, context.Context) {
	t.Helper()
	c := apitest.Start(t, apitest.Options{})
	m, err := controllermanager.New(controllermanager.Config{RESTConfig: c.Config, Controllers: controllers, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("controller manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("controller manager did not stop")
		}
	})
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("controller manager stopped: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("controller manager not ready")
	}
	return c, ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, testTimeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
	}
}

func createNamespace(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func podTemplate(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
	}
}

// markPodsReady plays the kubelet for unscheduled test pods: every pod matching selector in
// namespace is made Running and Ready, until ctx is done.
func markPodsReady(ctx context.Context, t *testing.T, c kubernetes.Interface, namespace string, selector labels.Selector) {
	go func() {
		for ctx.Err() == nil {
			pods, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
			if err == nil {
				for i := range pods.Items {
					p := &pods.Items[i]
					if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodRunning {
						continue
					}
					p.Status.Phase = corev1.PodRunning
					p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
					_, _ = c.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

func activePods(t *testing.T, c kubernetes.Interface, namespace, selector string) []corev1.Pod {
	t.Helper()
	pods, err := c.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func TestReplicaSetKeepsReplicasAdoptsAndReleases(t *testing.T) {
	c, ctx := startManager(t, "replicaset")
	cs := c.Client
	createNamespace(t, cs, "rs")
	three := int32(3)
	rs, err := cs.AppsV1().ReplicaSets("rs").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &three, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate("web", "nginx")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	markPodsReady(ctx, t, cs, "rs", labels.SelectorFromSet(labels.Set{"app": "web"}))
	eventually(t, "3 ready replicas", func() (bool, error) {
		got, err := cs.AppsV1().ReplicaSets("rs").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.ReadyReplicas == 3 && got.Status.AvailableReplicas == 3 && got.Status.Replicas == 3 &&
			got.Status.FullyLabeledReplicas == 3 && got.Status.ObservedGeneration == got.Generation, nil
	})
	pods := activePods(t, cs, "rs", "app=web")
	if len(pods) != 3 {
		t.Fatalf("%d pods, want 3", len(pods))
	}
	for _, p := range pods {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.UID != rs.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion || ref.Kind != "ReplicaSet" {
			t.Fatalf("pod %s controller ref = %+v", p.Name, ref)
		}
	}

	// A deleted pod is replaced.
	if err := cs.CoreV1().Pods("rs").Delete(ctx, pods[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted pod replaced", func() (bool, error) {
		ps := activePods(t, cs, "rs", "app=web")
		if len(ps) != 3 {
			return false, nil
		}
		for _, p := range ps {
			if p.Name == pods[0].Name {
				return false, nil
			}
		}
		return true, nil
	})

	// A pod whose labels stop matching is released and replaced.
	// (A JSON merge patch: the pod may be changing under the controller meanwhile.)
	released := activePods(t, cs, "rs", "app=web")[0]
	if _, err := cs.CoreV1().Pods("rs").Patch(ctx, released.Name, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"app":"other"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the relabelled pod released", func() (bool, error) {
		p, err := cs.CoreV1().Pods("rs").Get(ctx, released.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return metav1.GetControllerOf(p) == nil && len(activePods(t, cs, "rs", "app=web")) == 3, nil
	})

	// Relabelled back, it is adopted again and one pod too many is deleted.
	p, err := cs.CoreV1().Pods("rs").Get(ctx, released.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Labels = map[string]string{"app": "web"}
	if _, err := cs.CoreV1().Pods("rs").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "adoption and scale back to 3", func() (bool, error) {
		ps := activePods(t, cs, "rs", "app=web")
		if len(ps) != 3 {
			return false, nil
		}
		for _, p := range ps {
			if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != rs.UID {
				return false, nil
			}
		}
		return true, nil
	})

	// Scale through the scale subresource, as kubectl scale does.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := cs.AppsV1().ReplicaSets("rs").GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = 1
		_, err = cs.AppsV1().ReplicaSets("rs").UpdateScale(ctx, "web", scale, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "scale down to 1", func() (bool, error) {
		got, err := cs.AppsV1().ReplicaSets("rs").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(activePods(t, cs, "rs", "app=web")) == 1 && got.Status.Replicas == 1, nil
	})

	// Events tell the story.
	eventually(t, "SuccessfulCreate and SuccessfulDelete events", func() (bool, error) {
		evs, err := cs.CoreV1().Events("rs").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
		if err != nil {
			return false, err
		}
		var created, deleted bool
		for _, e := range evs.Items {
			created = created || e.Reason == "SuccessfulCreate"
			deleted = deleted || e.Reason == "SuccessfulDelete"
		}
		return created && deleted, nil
	})
}

// TestDefaultControllersRun starts every controller "*" selects against one API server.
func TestDefaultControllersRun(t *testing.T) {
	c, ctx := startManager(t)
	// The serviceaccount controller is among them: every namespace gets "default".
	createNamespace(t, c.Client, "everyone")
	eventually(t, "the default service account", func() (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("everyone").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	// So is the resourcequota controller: a new quota's status counts the default account.
	_, err := c.Client.CoreV1().ResourceQuotas("everyone").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/serviceaccounts": resource.MustParse("5")}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the quota's status", func() (bool, error) {
		q, err := c.Client.CoreV1().ResourceQuotas("everyone").Get(ctx, "q", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		used := q.Status.Used["count/serviceaccounts"]
		return used.Value() == 1, nil
	})
}

func TestReplicaSetAdoptsOrphans(t *testing.T) {
	c, ctx := startManager(t, "replicaset")
	cs := c.Client
	createNamespace(t, cs, "adopt")
	for i := range 2 {
		_, err := cs.CoreV1().Pods("adopt").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("orphan-%d", i), Labels: map[string]string{"app": "a"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	one := int32(1)
	rs, err := cs.AppsV1().ReplicaSets("adopt").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "a"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			Template: podTemplate("a", "nginx")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "one adopted pod left, no pod created", func() (bool, error) {
		ps := activePods(t, cs, "adopt", "app=a")
		if len(ps) != 1 {
			return false, nil
		}
		ref := metav1.GetControllerOf(&ps[0])
		return ref != nil && ref.UID == rs.UID && ps[0].Name[:7] == "orphan-", nil
	})
}

func TestManagerLeaderElection(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	m, err := controllermanager.New(controllermanager.Config{RESTConfig: c.Config, LeaderElect: true, Controllers: []string{"replicaset"}, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("stopped: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("not ready")
	}
	lease, err := c.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("lease holder = %v", lease.Spec.HolderIdentity)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// ReleaseOnCancel empties the holder so that a successor need not wait out the lease.
	eventually(t, "lease released", func() (bool, error) {
		l, err := c.Client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kube-controller-manager", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "", nil
	})
}

func TestManagerLeaderFailover(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	start := func(id string) (*controllermanager.Manager, context.CancelFunc, chan error) {
		m, err := controllermanager.New(controllermanager.Config{RESTConfig: c.Config, LeaderElect: true, Identity: id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond,
			Controllers: []string{"replicaset"}, Log: testLog()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return m, cancel, done
	}
	first, stopFirst, firstDone := start("first")
	select {
	case <-first.Ready():
	case <-time.After(testTimeout):
		t.Fatal("first manager never led")
	}
	second, _, _ := start("second")
	// The second waits while the first holds the Lease...
	select {
	case <-second.Ready():
		t.Fatal("two leaders at once")
	default:
	}
	// ...and takes over as soon as the first lets go.
	stopFirst()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	firstDone <- nil // for the cleanup
	select {
	case <-second.Ready():
	case <-time.After(testTimeout):
		t.Fatal("second manager never took over")
	}
	l, err := c.Client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kube-controller-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "second" {
		t.Fatalf("holder %v", l.Spec.HolderIdentity)
	}
}

func isGone(err error) bool { return apierrors.IsNotFound(err) }
