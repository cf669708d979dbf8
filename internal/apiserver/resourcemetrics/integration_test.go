package resourcemetrics_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
)

// kubeletStub serves /stats/summary over HTTPS for one node running one pod whose container
// burns half a core, and records the client certificates it was called with.
type kubeletStub struct {
	srv     *httptest.Server
	start   time.Time
	mu      sync.Mutex
	podUID  types.UID
	callers map[string]bool
}

func newKubeletStub(t *testing.T) *kubeletStub {
	k := &kubeletStub{start: time.Now(), callers: map[string]bool{}}
	k.srv = httptest.NewUnstartedServer(http.HandlerFunc(k.serve))
	k.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	k.srv.StartTLS()
	t.Cleanup(k.srv.Close)
	return k
}

func (k *kubeletStub) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/stats/summary" {
		http.NotFound(w, r)
		return
	}
	k.mu.Lock()
	k.callers[r.TLS.PeerCertificates[0].Subject.CommonName] = true
	uid := k.podUID
	k.mu.Unlock()
	now := time.Now()
	elapsed := uint64(now.Sub(k.start).Nanoseconds())
	sum := statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: "stub-node",
		CPU:    &statsv1alpha1.CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: ptr.To(1e12 + elapsed)}, // one core busy
		Memory: &statsv1alpha1.MemoryStats{Time: metav1.NewTime(now), WorkingSetBytes: ptr.To[uint64](2 << 30)}}}
	if uid != "" {
		sum.Pods = []statsv1alpha1.PodStats{{PodRef: statsv1alpha1.PodReference{Name: "busy", Namespace: "default", UID: string(uid)},
			Containers: []statsv1alpha1.ContainerStats{{Name: "burn", StartTime: metav1.NewTime(k.start),
				CPU:    &statsv1alpha1.CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: ptr.To(elapsed / 2), UsageNanoCores: ptr.To[uint64](500e6)},
				Memory: &statsv1alpha1.MemoryStats{Time: metav1.NewTime(now), WorkingSetBytes: ptr.To[uint64](50 << 20)}}}}}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&sum)
}

func registerNode(t *testing.T, ctx context.Context, c *apitest.Cluster, name, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	node, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"stub": "true"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(p)
	if _, err := c.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsAPIOnRealAPIServer(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stub := newKubeletStub(t)
	registerNode(t, ctx, c, "stub-node", strings.TrimPrefix(stub.srv.URL, "https://"))
	// A Ready node nobody answers for: it must only be left out.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	registerNode(t, ctx, c, "dead-node", deadAddr)

	pods := c.Client.CoreV1().Pods("default")
	for _, name := range []string{"busy", "idle"} {
		p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{NodeName: "stub-node", Containers: []corev1.Container{{Name: "burn", Image: "busybox"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if name == "busy" {
			stub.mu.Lock()
			stub.podUID = p.UID
			stub.mu.Unlock()
		}
	}

	// Discovery, aggregated (client-go's default) and legacy.
	groups, resources, err := c.Client.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range groups {
		found = found || g.Name == "metrics.k8s.io"
	}
	var names []string
	for _, l := range resources {
		if l.GroupVersion == "metrics.k8s.io/v1beta1" {
			for _, r := range l.APIResources {
				names = append(names, r.Name+":"+r.Kind+":"+strings.Join(r.Verbs, ","))
			}
		}
	}
	if !found || strings.Join(names, " ") != "nodes:NodeMetrics:get,list pods:PodMetrics:get,list" {
		t.Fatalf("aggregated discovery: group found %v, resources %v", found, names)
	}
	legacy, err := c.Client.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1").SetHeader("Accept", "application/json").DoRaw(ctx)
	if err != nil || !strings.Contains(string(legacy), `"kind":"APIResourceList"`) || !strings.Contains(string(legacy), `"name":"pods"`) {
		t.Fatalf("legacy discovery: %v %s", err, legacy)
	}

	// The client-go metrics clientset, with the protobuf-first content type of controllers.
	mc := metricsclient.NewForConfigOrDie(rest.CopyConfig(c.Config))
	var node *metricsv1beta1.NodeMetrics
	deadline := time.Now().Add(60 * time.Second)
	for {
		node, err = mc.MetricsV1beta1().NodeMetricses().Get(ctx, "stub-node", metav1.GetOptions{})
		if err == nil && node.Window.Duration < 15*time.Second+5*time.Second && node.Window.Duration > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node metrics within 60s: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if cpu := node.Usage.Cpu().MilliValue(); cpu < 900 || cpu > 1100 {
		t.Errorf("node CPU = %dm, want about one core", cpu)
	}
	if node.Usage.Memory().Value() != 2<<30 || node.Labels["stub"] != "true" {
		t.Errorf("node metrics = %+v", node)
	}
	nodes, err := mc.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("node list (the dead node left out) = %v, %v", nodes, err)
	}
	podList, err := mc.MetricsV1beta1().PodMetricses("").List(ctx, metav1.ListOptions{LabelSelector: "app in (busy,idle)"})
	if err != nil || len(podList.Items) != 1 || podList.Items[0].Name != "busy" {
		t.Fatalf("pod list = %+v, %v", podList, err)
	}
	if cpu := podList.Items[0].Containers[0].Usage.Cpu().MilliValue(); cpu < 400 || cpu > 600 {
		t.Errorf("busy pod CPU = %dm, want about 500m", cpu)
	}
	stub.mu.Lock()
	callers := stub.callers
	stub.mu.Unlock()
	if !callers["kube-apiserver-kubelet-client"] {
		t.Errorf("the kubelet was called with %v, not the API server's kubelet client certificate", callers)
	}

	// The real kubectl: top prints the busy pod, and says "metrics not available yet" for a
	// young pod without metrics.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl not installed: skipping the kubectl top checks")
		return
	}
	cache := t.TempDir()
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", c.Kubecfg, "--cache-dir", cache}, args...)...)
		cmd.Env = append(os.Environ(), "KUBECACHEDIR="+cache)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("top", "pod", "-n", "default")
	if err != nil || !strings.Contains(out, "busy") || !strings.Contains(out, "CPU(cores)") {
		t.Fatalf("kubectl top pod: %v\n%s", err, out)
	}
	out, err = run("top", "node")
	if err != nil || !strings.Contains(out, "stub-node") {
		t.Fatalf("kubectl top node: %v\n%s", err, out)
	}
	out, err = run("top", "pod", "-l", "app=idle")
	if err == nil || !strings.Contains(out, "metrics not available yet") {
		t.Fatalf("kubectl top pod of a pod without metrics: %v\n%s", err, out)
	}
}
