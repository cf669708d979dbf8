package statefulset_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/hollow"
)

const testTimeout = 90 * time.Second

// poll calls cond until it returns "" or the deadline passes; its last answer says what was
// still wrong.
func poll(t *testing.T, what string, cond func() (string, error)) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		msg, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, testTimeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startNodes(t *testing.T, client kubernetes.Interface, count int) {
	t.Helper()
	nodes, err := hollow.New(hollow.Config{Client: client, Count: count, NamePrefix: "node-",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
		t.Fatalf("hollow nodes: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("hollow nodes not ready")
	}
}

// recordPodEvents records, in order, "ADDED web-0", "DELETED web-2", ... for pods of ns.
type podLog struct {
	mu     sync.Mutex
	events []string
}

func (l *podLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events[n:])
}

func (l *podLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

func watchPods(t *testing.T, client kubernetes.Interface, ns string) *podLog {
	t.Helper()
	w, err := client.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	l := &podLog{}
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Deleted {
				continue
			}
			p := ev.Object.(*corev1.Pod)
			l.mu.Lock()
			l.events = append(l.events, string(ev.Type)+" "+p.Name)
			l.mu.Unlock()
		}
	}()
	return l
}

func kubectl(t *testing.T, c *apitest.Cluster, args ...string) string {
	t.Helper()
	out, err := exec.Command("kubectl", append([]string{"--kubeconfig", c.Kubecfg, "--cache-dir", c.Dir + "/kubectl-cache"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// state reports the set's pods as "web-0=image@node" (ready ones only) and the status.
func state(ctx context.Context, client kubernetes.Interface, ns string) (map[string]string, *appsv1.StatefulSet, error) {
	set, err := client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return nil, nil, err
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
		}
		if ready && p.DeletionTimestamp == nil {
			out[p.Name] = p.Spec.Containers[0].Image + "@" + p.Spec.NodeName
		}
	}
	return out, set, nil
}

func setImage(t *testing.T, client kubernetes.Interface, ns, image string, partition int32) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		set, err := client.AppsV1().StatefulSets(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		set.Spec.Template.Spec.Containers[0].Image = image
		set.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To(partition)}
		_, err = client.AppsV1().StatefulSets(ns).Update(context.Background(), set, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStatefulSetOnHollowNodes runs the real API server, scheduler and controller manager
// (StatefulSet controller and local-path provisioner included) with simulated nodes that
// mark bound pods ready: ordered creation, claims provisioned and bound on the pods' nodes,
// a partitioned rolling update, kubectl rollout status, a pod recreated on its volume's node
// and an ordered scale-down that keeps the claims.
func TestStatefulSetOnHollowNodes(t *testing.T) {
	c := apitest.Start(t, apitest.Options{Controllers: true})
	client := c.Client
	ctx := context.Background()
	startNodes(t, client, 3)
	const ns = "sts"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	log := watchPods(t, client, ns)
	labels := map[string]string{"app": "web"}
	_, err := client.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(int32(3)),
			ServiceName: "web",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "web:1",
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	allAt := func(image string) func() (string, error) {
		return func() (string, error) {
			pods, set, err := state(ctx, client, ns)
			if err != nil {
				return "", err
			}
			st := set.Status
			if len(pods) != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.UpdatedReplicas != 3 || st.CurrentReplicas != 3 ||
				st.CurrentRevision != st.UpdateRevision || st.ObservedGeneration != set.Generation {
				return fmt.Sprintf("pods %v status %+v", pods, st), nil
			}
			for name, v := range pods {
				if !strings.HasPrefix(v, image+"@") {
					return fmt.Sprintf("%s is %s", name, v), nil
				}
			}
			return "", nil
		}
	}
	poll(t, "three ready pods", allAt("web:1"))
	if got := log.since(0); !slices.Equal(got, []string{"ADDED web-0", "ADDED web-1", "ADDED web-2"}) {
		t.Fatalf("creation order %v", got)
	}

	// Every pod has its claim, of the default class, bound to a volume on the pod's node.
	nodeOf := map[string]string{}
	for i := range 3 {
		pod, err := client.CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("web-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Spec.Hostname != pod.Name || pod.Spec.Subdomain != "web" {
			t.Fatalf("%s identity: hostname %q subdomain %q", pod.Name, pod.Spec.Hostname, pod.Spec.Subdomain)
		}
		nodeOf[pod.Name] = pod.Spec.NodeName
		claim := fmt.Sprintf("data-web-%d", i)
		poll(t, claim+" bound", func() (string, error) {
			pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
				return fmt.Sprintf("phase %s volume %q annotations %v", pvc.Status.Phase, pvc.Spec.VolumeName, pvc.Annotations), nil
			}
			if ptr.Deref(pvc.Spec.StorageClassName, "") != "local-path" {
				return "", fmt.Errorf("class %v, want the default local-path", pvc.Spec.StorageClassName)
			}
			pv, err := client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			if pv.Status.Phase != corev1.VolumeBound || pv.Spec.ClaimRef.UID != pvc.UID ||
				pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != pod.Spec.NodeName ||
				pv.Spec.HostPath.Path != "/var/lib/nanokube/storage/"+pv.Name {
				return fmt.Sprintf("volume %+v", pv), nil
			}
			return "", nil
		})
	}

	// A partitioned rolling update: only web-2 moves to web:2.
	setImage(t, client, ns, "web:2", 2)
	poll(t, "web-2 updated, web-0 and web-1 not", func() (string, error) {
		pods, set, err := state(ctx, client, ns)
		if err != nil {
			return "", err
		}
		st := set.Status
		if len(pods) != 3 || !strings.HasPrefix(pods["web-2"], "web:2@") || !strings.HasPrefix(pods["web-1"], "web:1@") ||
			!strings.HasPrefix(pods["web-0"], "web:1@") || st.UpdatedReplicas != 1 || st.CurrentReplicas != 2 ||
			st.CurrentRevision == st.UpdateRevision || st.ReadyReplicas != 3 || st.ObservedGeneration != set.Generation {
			return fmt.Sprintf("pods %v status %+v", pods, st), nil
		}
		return "", nil
	})
	if _, err := exec.LookPath("kubectl"); err == nil {
		if out := kubectl(t, c, "-n", ns, "rollout", "status", "sts/web", "--timeout=60s"); !strings.Contains(out, "partitioned roll out complete: 1 new pods have been updated") {
			t.Fatalf("rollout status: %s", out)
		}
		out := kubectl(t, c, "get", "storageclass")
		if f := strings.Fields(out); len(f) < 13 || !slices.Equal(f[:6], []string{"NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"}) ||
			!slices.Equal(f[6:12], []string{"local-path", "(default)", "nanokube.io/local-path", "Delete", "WaitForFirstConsumer", "false"}) {
			t.Fatalf("kubectl get storageclass:\n%s", out)
		}
	} else {
		t.Log("kubectl not installed: rollout status not tested")
	}
	mark := log.len()
	setImage(t, client, ns, "web:2", 0)
	poll(t, "all pods at web:2", allAt("web:2"))
	// Highest ordinal first, each replaced before the next goes.
	if got := log.since(mark); !slices.Equal(got, []string{"DELETED web-1", "ADDED web-1", "DELETED web-0", "ADDED web-0"}) {
		t.Fatalf("update order %v", got)
	}
	if _, err := exec.LookPath("kubectl"); err == nil {
		if out := kubectl(t, c, "-n", ns, "rollout", "status", "sts/web", "--timeout=60s"); !strings.Contains(out, "partitioned roll out complete: 3 new pods have been updated") {
			t.Fatalf("rollout status: %s", out)
		}
	}
	revisions, err := client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(revisions.Items) != 2 {
		t.Fatalf("revisions: %v %d", err, len(revisions.Items))
	}
	if _, err := exec.LookPath("kubectl"); err == nil {
		if out := kubectl(t, c, "-n", ns, "rollout", "history", "sts/web"); !slices.Equal(historyRevisions(out), []string{"1", "2"}) {
			t.Fatalf("rollout history:\n%s", out)
		}
		// undo brings web:1 back as revision 3.
		kubectl(t, c, "-n", ns, "rollout", "undo", "sts/web")
		poll(t, "all pods at web:1 after undo", allAt("web:1"))
		if out := kubectl(t, c, "-n", ns, "rollout", "history", "sts/web"); !slices.Equal(historyRevisions(out), []string{"2", "3"}) {
			t.Fatalf("rollout history after undo:\n%s", out)
		}
	}

	// A deleted pod comes back under its name, on its volume's node, with its claim.
	old, _ := client.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
	if err := client.CoreV1().Pods(ns).Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "web-1 recreated", func() (string, error) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
		if err != nil || p.UID == old.UID || p.Spec.NodeName == "" {
			return fmt.Sprintf("web-1: %v", err), nil
		}
		if p.Spec.NodeName != nodeOf["web-1"] {
			return "", fmt.Errorf("web-1 came back on %s, its volume is on %s", p.Spec.NodeName, nodeOf["web-1"])
		}
		if p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-web-1" {
			return "", fmt.Errorf("web-1 volumes %+v", p.Spec.Volumes)
		}
		return "", nil
	})

	// Scale down to 1: web-2, then web-1; the claims stay.
	mark = log.len()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := client.AppsV1().StatefulSets(ns).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = 1
		_, err = client.AppsV1().StatefulSets(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "scaled to 1", func() (string, error) {
		pods, set, err := state(ctx, client, ns)
		if err != nil {
			return "", err
		}
		if len(pods) != 1 || set.Status.Replicas != 1 || set.Status.ReadyReplicas != 1 {
			return fmt.Sprintf("pods %v status %+v", pods, set.Status), nil
		}
		return "", nil
	})
	if got := log.since(mark); !slices.Equal(got, []string{"DELETED web-2", "DELETED web-1"}) {
		t.Fatalf("scale-down order %v", got)
	}
	claims, err := client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(claims.Items) != 3 {
		t.Fatalf("claims after scale-down: %v %d", err, len(claims.Items))
	}

	// Deleting a claim (reclaim policy Delete) deletes its volume.
	pvName := ""
	for _, cl := range claims.Items {
		if cl.Name == "data-web-2" {
			pvName = cl.Spec.VolumeName
		}
	}
	if err := client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data-web-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "volume of the deleted claim deleted", func() (string, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
		if err == nil {
			return pvName + " still there", nil
		}
		return "", nil
	})
}

// historyRevisions returns the revision column of kubectl rollout history.
func historyRevisions(out string) []string {
	var revs []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Trim(f[0], "0123456789") == "" {
			revs = append(revs, f[0])
		}
	}
	return revs
}
