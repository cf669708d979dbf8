package controllermanager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/hollow"
)

// TestDeploymentOnHollowNodes is issue 4's demonstration on the whole control plane: the
// server's own scheduler and controller manager, simulated nodes that run bound pods and
// finish their graceful deletions, and the real kubectl.
func TestDeploymentOnHollowNodes(t *testing.T) {
	c := apitest.Start(t, apitest.Options{Controllers: true})
	ctx, cancel := context.WithCancel(context.Background())
	nodes, err := hollow.New(hollow.Config{Client: c.Client, Count: 5, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
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
	createNamespace(t, c.Client, "demo")
	replicas := int32(30)
	if _, err := c.Client.AppsV1().Deployments("demo").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate("web", "nginx:1")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	status := func() {
		t.Helper()
		mustKubectl(t, c, "-n", "demo", "rollout", "status", "deployment/web", "--timeout=90s")
	}
	images := func() map[string]int {
		t.Helper()
		m := map[string]int{}
		for _, p := range activePods(t, c.Client, "demo", "app=web") {
			if p.Spec.NodeName == "" {
				t.Fatalf("pod %s not scheduled after a complete rollout", p.Name)
			}
			m[p.Spec.Containers[0].Image]++
		}
		return m
	}
	status()
	if got := images(); got["nginx:1"] != 30 || len(got) != 1 {
		t.Fatalf("pods after the first rollout: %v", got)
	}
	mustKubectl(t, c, "-n", "demo", "set", "image", "deployment/web", "c=nginx:2")
	status()
	eventually(t, "30 pods of nginx:2 only", func() (bool, error) {
		got := images()
		return got["nginx:2"] == 30 && len(got) == 1, nil
	})
	mustKubectl(t, c, "-n", "demo", "rollout", "undo", "deployment/web")
	status()
	eventually(t, "30 pods of nginx:1 only", func() (bool, error) {
		got := images()
		return got["nginx:1"] == 30 && len(got) == 1, nil
	})
	mustKubectl(t, c, "-n", "demo", "scale", "deployment/web", "--replicas=10")
	status()
	eventually(t, "10 pods", func() (bool, error) { return len(activePods(t, c.Client, "demo", "app=web")) == 10, nil })
	if out := mustKubectl(t, c, "-n", "demo", "rollout", "history", "deployment/web"); !strings.Contains(out, "2 ") || !strings.Contains(out, "3 ") {
		t.Fatalf("history:\n%s", out)
	}
	mustKubectl(t, c, "-n", "demo", "delete", "deployment", "web", "--cascade=foreground", "--timeout=90s")
	eventually(t, "every pod gone", func() (bool, error) {
		pods, err := c.Client.CoreV1().Pods("demo").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(pods.Items) == 0, nil
	})
	mustKubectl(t, c, "delete", "namespace", "demo", "--timeout=90s")
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "demo", metav1.GetOptions{}); !isGone(err) {
		t.Fatal(fmt.Errorf("namespace demo still there: %v", err))
	}
}
