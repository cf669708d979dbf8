package podautoscaler_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
)

// fakeKubelet plays the node "hpa-node": it keeps the node Ready, marks the pods bound to
// it Running and Ready, and serves /stats/summary with each of them burning 200m of CPU.
type fakeKubelet struct {
	srv  *httptest.Server
	mu   sync.Mutex
	pods map[string]string // name → UID
}

func (k *fakeKubelet) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	sum := statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: "hpa-node",
		CPU:    &statsv1alpha1.CPUStats{Time: metav1.NewTime(now), UsageNanoCores: ptr.To[uint64](1e9)},
		Memory: &statsv1alpha1.MemoryStats{Time: metav1.NewTime(now), WorkingSetBytes: ptr.To[uint64](1 << 30)}}}
	k.mu.Lock()
	for name, uid := range k.pods {
		sum.Pods = append(sum.Pods, statsv1alpha1.PodStats{PodRef: statsv1alpha1.PodReference{Name: name, Namespace: "default", UID: uid},
			Containers: []statsv1alpha1.ContainerStats{{Name: "app",
				CPU:    &statsv1alpha1.CPUStats{Time: metav1.NewTime(now), UsageNanoCores: ptr.To[uint64](200e6)},
				Memory: &statsv1alpha1.MemoryStats{Time: metav1.NewTime(now), WorkingSetBytes: ptr.To[uint64](20 << 20)}}}})
	}
	k.mu.Unlock()
	_ = json.NewEncoder(w).Encode(&sum)
}

// run is the kubelet's loop: heartbeat and pod status.
func (k *fakeKubelet) run(ctx context.Context, t *testing.T, c *apitest.Cluster) {
	nodes, pods := c.Client.CoreV1().Nodes(), c.Client.CoreV1().Pods("default")
	for ctx.Err() == nil {
		if node, err := nodes.Get(ctx, "hpa-node", metav1.GetOptions{}); err == nil {
			node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour)), Reason: "KubeletReady"}}
			_, _ = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		}
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=hpa-node"})
		if err == nil {
			for i := range list.Items {
				p := &list.Items[i]
				if p.Status.Phase != corev1.PodRunning {
					// Started long enough ago that its CPU samples are trusted at once.
					started := metav1.NewTime(time.Now().Add(-10 * time.Minute))
					p.Status.Phase, p.Status.StartTime = corev1.PodRunning, &started
					p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started}}
					if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
						continue
					}
				}
				k.mu.Lock()
				k.pods[p.Name] = string(p.UID)
				k.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func TestKubectlAutoscaleScalesOnCPU(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	c := apitest.Start(t, apitest.Options{Controllers: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	k := &fakeKubelet{pods: map[string]string{}}
	k.srv = httptest.NewUnstartedServer(http.HandlerFunc(k.serve))
	k.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	k.srv.StartTLS()
	defer k.srv.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(k.srv.URL, "https://"))
	p, _ := strconv.Atoi(port)
	node, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "hpa-node"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("16Gi"), corev1.ResourcePods: resource.MustParse("110")}
	node.Status.Capacity, node.Status.Allocatable = capacity, capacity
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(p)
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := c.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeletCtx, stopKubelet := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { k.run(kubeletCtx, t, c) })
	defer func() { stopKubelet(); wg.Wait() }()

	labels := map[string]string{"app": "web"}
	_, err = c.Client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	cache := t.TempDir()
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubecfg, "--cache-dir", cache,
		"autoscale", "deploy/web", "--cpu-percent=50", "--min=1", "--max=5").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl autoscale: %v\n%s", err, out)
	}
	hpa, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hpa.Spec.MaxReplicas != 5 || ptr.Deref(hpa.Spec.MinReplicas, 0) != 1 || len(hpa.Spec.Metrics) != 1 ||
		*hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 50 || hpa.Spec.ScaleTargetRef.Kind != "Deployment" {
		t.Fatalf("kubectl autoscale made %+v", hpa.Spec)
	}

	// One pod at 200% of its request against 50% wants 4 replicas; the first sync may go
	// straight there (the no-behavior limit is max(2×1, 4)).
	var last *autoscalingv2.HorizontalPodAutoscaler
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, err := c.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last, _ = c.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
		if *d.Spec.Replicas >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment was not scaled up; autoscaler status: %+v", last.Status)
		}
		time.Sleep(time.Second)
	}
	// The status is written right after the scale.
	deadline = time.Now().Add(30 * time.Second)
	for last.Status.LastScaleTime == nil || len(last.Status.CurrentMetrics) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("autoscaler status after scaling: %+v", last.Status)
		}
		time.Sleep(500 * time.Millisecond)
		last, _ = c.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	}
	if cur := last.Status.CurrentMetrics[0].Resource; cur == nil || cur.Current.AverageUtilization == nil || *cur.Current.AverageUtilization < 100 {
		t.Errorf("current metrics = %+v", last.Status.CurrentMetrics)
	}
	out, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubecfg, "--cache-dir", cache, "get", "hpa", "web").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "/50%") || !strings.Contains(string(out), "Deployment/web") {
		t.Errorf("kubectl get hpa: %v\n%s", err, out)
	}
	t.Logf("kubectl get hpa:\n%s", out)
	events, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web,involvedObject.kind=HorizontalPodAutoscaler"})
	if err != nil {
		t.Fatal(err)
	}
	rescaled := false
	for _, e := range events.Items {
		rescaled = rescaled || (e.Reason == "SuccessfulRescale" && strings.HasPrefix(e.Message, "New size: 4"))
	}
	if !rescaled {
		t.Errorf("no SuccessfulRescale event: %+v", events.Items)
	}
}
