package daemonset_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/controller/daemonset"
	"github.com/nanokube/nanokube/internal/controllermanager"
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

// startNodes runs count hollow nodes named prefix0… until the test ends.
func startNodes(t *testing.T, client kubernetes.Interface, prefix string, count int) {
	t.Helper()
	nodes, err := hollow.New(hollow.Config{Client: client, Count: count, NamePrefix: prefix,
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

// startController runs the DaemonSet controller unless the control plane's controller manager
// already does.
func startController(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	if slices.Contains(controllermanager.DefaultControllers(), "daemonset-controller") {
		return
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := daemonset.New(daemonset.Config{Client: client, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { c.Run(ctx, 2); close(done) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })
}

// kubectl runs the machine's kubectl against c.
func kubectl(t *testing.T, c *apitest.Cluster, args ...string) string {
	t.Helper()
	out, err := exec.Command("kubectl", append([]string{"--kubeconfig", c.Kubecfg, "--cache-dir", c.Dir + "/kubectl-cache"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
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

// rolledOut reports what keeps DaemonSet ns/name from running exactly one ready pod of image
// on each of nodes and nowhere else, with a status that says so.
func rolledOut(ctx context.Context, client kubernetes.Interface, ns, name, image string, nodes ...string) (string, error) {
	ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	st, n := ds.Status, int32(len(nodes))
	if st.ObservedGeneration < ds.Generation || st.DesiredNumberScheduled != n || st.CurrentNumberScheduled != n ||
		st.UpdatedNumberScheduled != n || st.NumberReady != n || st.NumberAvailable != n || st.NumberUnavailable != 0 ||
		st.NumberMisscheduled != 0 {
		return fmt.Sprintf("generation %d, status %+v", ds.Generation, st), nil
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(ds.Spec.Selector)})
	if err != nil {
		return "", err
	}
	onNode := map[string][]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		onNode[p.Spec.NodeName] = append(onNode[p.Spec.NodeName], fmt.Sprintf("%s(%s,ready=%v)", p.Name, p.Spec.Containers[0].Image, ready))
		if p.Spec.Containers[0].Image != image || !ready || len(onNode[p.Spec.NodeName]) > 1 {
			return fmt.Sprintf("pods by node %v", onNode), nil
		}
	}
	var got []string
	for node := range onNode {
		got = append(got, node)
	}
	sort.Strings(got)
	nodes = slices.Sorted(slices.Values(nodes))
	if !slices.Equal(got, nodes) {
		return fmt.Sprintf("pods on nodes %v, want %v", onNode, nodes), nil
	}
	return "", nil
}

// TestDaemonSetOnHollowNodes runs the controller with the real API server, scheduler and
// controller manager, simulated nodes that run bound pods, and the real kubectl.
func TestDaemonSetOnHollowNodes(t *testing.T) {
	c := apitest.Start(t, apitest.Options{Controllers: true})
	client := c.Client
	ctx := context.Background()
	startNodes(t, client, "node-", 3)
	startController(t, client)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ds"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "agent"}
	_, err := client.AppsV1().DaemonSets("ds").Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "agent:1"}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"node-0", "node-1", "node-2"}
	poll(t, "a pod on every node", func() (string, error) { return rolledOut(ctx, client, "ds", "agent", "agent:1", all...) })

	// A node joins: it gets its pod.
	startNodes(t, client, "late-", 1)
	all = append(all, "late-0")
	poll(t, "a pod on the new node", func() (string, error) { return rolledOut(ctx, client, "ds", "agent", "agent:1", all...) })

	// A NoExecute taint the pods do not tolerate: the node loses its pod.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := client.CoreV1().Nodes().Get(ctx, "late-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoExecute})
		_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	untainted := all[:3]
	poll(t, "no pod on the tainted node", func() (string, error) { return rolledOut(ctx, client, "ds", "agent", "agent:1", untainted...) })

	// A new template that tolerates the taint rolls out to every node, the tainted one too.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ds, err := client.AppsV1().DaemonSets("ds").Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			return err
		}
		ds.Spec.Template.Spec.Containers[0].Image = "agent:2"
		ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
		_, err = client.AppsV1().DaemonSets("ds").Update(ctx, ds, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "agent:2 on every node", func() (string, error) { return rolledOut(ctx, client, "ds", "agent", "agent:2", all...) })
	revisions, err := client.AppsV1().ControllerRevisions("ds").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil {
		t.Fatal(err)
	}
	var numbers []int64
	for _, r := range revisions.Items {
		numbers = append(numbers, r.Revision)
	}
	slices.Sort(numbers)
	if !slices.Equal(numbers, []int64{1, 2}) {
		t.Fatalf("revisions %v, want 1 and 2", numbers)
	}

	// kubectl: rollout status, history and undo (back to agent:1, which does not tolerate the
	// taint).
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Log("kubectl not installed: rollout status, history and undo not tested")
		return
	}
	if out := kubectl(t, c, "-n", "ds", "rollout", "status", "ds/agent", "--timeout=60s"); !strings.Contains(out, `daemon set "agent" successfully rolled out`) {
		t.Fatalf("rollout status: %s", out)
	}
	if out := kubectl(t, c, "-n", "ds", "rollout", "history", "ds/agent"); !slices.Equal(historyRevisions(out), []string{"1", "2"}) {
		t.Fatalf("rollout history:\n%s", out)
	}
	if out := kubectl(t, c, "-n", "ds", "rollout", "history", "ds/agent", "--revision=1"); !strings.Contains(out, "agent:1") {
		t.Fatalf("rollout history --revision=1:\n%s", out)
	}
	kubectl(t, c, "-n", "ds", "rollout", "undo", "ds/agent")
	poll(t, "agent:1 after undo", func() (string, error) { return rolledOut(ctx, client, "ds", "agent", "agent:1", untainted...) })
	kubectl(t, c, "-n", "ds", "rollout", "status", "ds/agent", "--timeout=60s")
	if out := kubectl(t, c, "-n", "ds", "rollout", "history", "ds/agent"); !slices.Equal(historyRevisions(out), []string{"2", "3"}) {
		t.Fatalf("rollout history after undo:\n%s", out)
	}
}
