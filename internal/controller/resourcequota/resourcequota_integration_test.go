package resourcequota_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/metadata"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/controller/resourcequota"
)

// startController runs the controller until the returned stop is called.
func startController(t *testing.T, c *apitest.Cluster) (stop func()) {
	t.Helper()
	md, err := metadata.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(c.Client, 0)
	ctrl, err := resourcequota.New(resourcequota.Config{Client: c.Client, Metadata: md, Informers: factory, ResyncPeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); ctrl.Run(ctx, 2) }()
	stop = func() { cancel(); <-done; factory.Shutdown() }
	t.Cleanup(stop)
	return stop
}

func pod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

// waitUsed polls until the quota's status.used[name] is want.
func waitUsed(t *testing.T, c *apitest.Cluster, ns, quota string, name corev1.ResourceName, want int64) {
	t.Helper()
	var last corev1.ResourceList
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		q, err := c.Client.CoreV1().ResourceQuotas(ns).Get(ctx, quota, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = q.Status.Used
		v, ok := q.Status.Used[name]
		return ok && v.Value() == want, nil
	})
	if err != nil {
		t.Fatalf("quota %s used %s: want %d, have %v: %v", quota, name, want, last, err)
	}
}

func TestResourceQuotaController(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	cs := c.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Objects that exist before the quota are counted by its first sync.
	if _, err := cs.CoreV1().ConfigMaps("team").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "old"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := startController(t, c)
	hard := corev1.ResourceList{
		"pods": resource.MustParse("2"), "configmaps": resource.MustParse("5"),
		"count/deployments.apps": resource.MustParse("1"), "requests.storage": resource.MustParse("1Gi"),
	}
	if _, err := cs.CoreV1().ResourceQuotas("team").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, c, "team", "q", "configmaps", 1)
	q, err := cs.CoreV1().ResourceQuotas("team").Get(ctx, "q", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Status.Hard) != 4 || len(q.Status.Used) != 4 {
		t.Fatalf("status after the first sync: %+v", q.Status)
	}

	t.Run("admission charges, deletion gives back", func(t *testing.T) {
		for _, name := range []string{"a", "b"} {
			if _, err := cs.CoreV1().Pods("team").Create(ctx, pod(name), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		waitUsed(t, c, "team", "q", "pods", 2)
		if _, err := cs.CoreV1().Pods("team").Create(ctx, pod("c"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("a third pod: %v", err)
		}
		// Unscheduled pods are deleted at once.
		if err := cs.CoreV1().Pods("team").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUsed(t, c, "team", "q", "pods", 1)
		if _, err := cs.CoreV1().Pods("team").Create(ctx, pod("c"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("a pod after a deletion freed a slot: %v", err)
		}
	})
	t.Run("finished pods count nothing", func(t *testing.T) {
		p, err := cs.CoreV1().Pods("team").Get(ctx, "b", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodSucceeded
		if _, err := cs.CoreV1().Pods("team").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUsed(t, c, "team", "q", "pods", 1)
	})
	t.Run("count of another group's kind", func(t *testing.T) {
		d := func(name string) *appsv1.Deployment {
			return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](0),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: pod("").Spec},
			}}
		}
		if _, err := cs.AppsV1().Deployments("team").Create(ctx, d("web"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUsed(t, c, "team", "q", "count/deployments.apps", 1)
		_, err := cs.AppsV1().Deployments("team").Create(ctx, d("api"), metav1.CreateOptions{})
		want := `deployments.apps "api" is forbidden: exceeded quota: q, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1`
		if err == nil || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
	})
	t.Run("claims", func(t *testing.T) {
		claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": resource.MustParse("2Gi")}}}}
		_, err := cs.CoreV1().PersistentVolumeClaims("team").Create(ctx, claim, metav1.CreateOptions{})
		want := `persistentvolumeclaims "data" is forbidden: exceeded quota: q, requested: requests.storage=2Gi, used: requests.storage=0, limited: requests.storage=1Gi`
		if err == nil || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
	})
	t.Run("spec changes reach status", func(t *testing.T) {
		q, err := cs.CoreV1().ResourceQuotas("team").Get(ctx, "q", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		q.Spec.Hard["secrets"] = resource.MustParse("3")
		if _, err := cs.CoreV1().ResourceQuotas("team").Update(ctx, q, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUsed(t, c, "team", "q", "secrets", 0)
		for i := range 3 {
			if _, err := cs.CoreV1().Secrets("team").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("s", i)}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cs.CoreV1().Secrets("team").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s4"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("a fourth secret: %v", err)
		}
	})
	t.Run("a restarted controller repairs wrong usage", func(t *testing.T) {
		stop()
		q, err := cs.CoreV1().ResourceQuotas("team").Get(ctx, "q", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		q.Status.Used["pods"] = resource.MustParse("2")
		q.Status.Used["configmaps"] = resource.MustParse("4")
		if _, err := cs.CoreV1().ResourceQuotas("team").UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.Restart()
		startController(t, c)
		waitUsed(t, c, "team", "q", "pods", 1)
		waitUsed(t, c, "team", "q", "configmaps", 1)
	})
}
