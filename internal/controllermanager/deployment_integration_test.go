package controllermanager_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/nanokube/nanokube/internal/apitest"
)

// kubectl runs the machine's kubectl against c.
func kubectl(t *testing.T, c *apitest.Cluster, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	cmd := exec.Command(path, append([]string{"--kubeconfig", c.Kubecfg, "--cache-dir", c.Dir + "/kubectl-cache"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustKubectl(t *testing.T, c *apitest.Cluster, args ...string) string {
	t.Helper()
	out, err := kubectl(t, c, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func ownedReplicaSets(t *testing.T, c *apitest.Cluster, ns, name string) []appsv1.ReplicaSet {
	t.Helper()
	ctx := context.Background()
	d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []appsv1.ReplicaSet
	for _, rs := range list.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	return out
}

func rsByRevision(rss []appsv1.ReplicaSet, revision string) *appsv1.ReplicaSet {
	for i := range rss {
		if rss[i].Annotations["deployment.kubernetes.io/revision"] == revision {
			return &rss[i]
		}
	}
	return nil
}

func TestDeploymentRolloutWithKubectl(t *testing.T) {
	c, ctx := startManager(t, "replicaset", "deployment")
	cs := c.Client
	createNamespace(t, cs, "dep")
	markPodsReady(ctx, t, cs, "dep", labels.SelectorFromSet(labels.Set{"app": "web"}))
	replicas := int32(4)
	_, err := cs.AppsV1().Deployments("dep").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate("web", "nginx:1")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := mustKubectl(t, c, "-n", "dep", "rollout", "status", "deployment/web", "--timeout=60s")
	if !strings.Contains(out, `deployment "web" successfully rolled out`) {
		t.Fatalf("rollout status: %s", out)
	}
	rss := ownedReplicaSets(t, c, "dep", "web")
	if len(rss) != 1 {
		t.Fatalf("%d replica sets, want 1", len(rss))
	}
	first := rss[0]
	hash := first.Labels["pod-template-hash"]
	if hash == "" || first.Name != "web-"+hash || first.Spec.Selector.MatchLabels["pod-template-hash"] != hash ||
		first.Spec.Template.Labels["pod-template-hash"] != hash {
		t.Fatalf("replica set %s: labels %v selector %v", first.Name, first.Labels, first.Spec.Selector)
	}
	if a := first.Annotations; a["deployment.kubernetes.io/revision"] != "1" || a["deployment.kubernetes.io/desired-replicas"] != "4" ||
		a["deployment.kubernetes.io/max-replicas"] != "5" {
		t.Fatalf("annotations %v", a)
	}
	d, err := cs.AppsV1().Deployments("dep").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Annotations["deployment.kubernetes.io/revision"] != "1" {
		t.Fatalf("deployment annotations %v", d.Annotations)
	}
	if cond := conditionOf(d, appsv1.DeploymentProgressing); cond == nil || cond.Reason != "NewReplicaSetAvailable" || cond.Status != corev1.ConditionTrue {
		t.Fatalf("Progressing = %+v", cond)
	}
	if cond := conditionOf(d, appsv1.DeploymentAvailable); cond == nil || cond.Status != corev1.ConditionTrue {
		t.Fatalf("Available = %+v", cond)
	}
	if s := d.Status; s.Replicas != 4 || s.UpdatedReplicas != 4 || s.ReadyReplicas != 4 || s.AvailableReplicas != 4 || s.UnavailableReplicas != 0 {
		t.Fatalf("status %+v", s)
	}

	// Roll to a new image.
	mustKubectl(t, c, "-n", "dep", "set", "image", "deployment/web", "c=nginx:2")
	mustKubectl(t, c, "-n", "dep", "rollout", "status", "deployment/web", "--timeout=60s")
	rss = ownedReplicaSets(t, c, "dep", "web")
	second := rsByRevision(rss, "2")
	if len(rss) != 2 || second == nil || *second.Spec.Replicas != 4 || second.Spec.Template.Spec.Containers[0].Image != "nginx:2" {
		t.Fatalf("after set image: %d replica sets, revision 2 = %v", len(rss), second)
	}
	if old := rsByRevision(rss, "1"); old == nil || *old.Spec.Replicas != 0 {
		t.Fatalf("old replica set not scaled down: %+v", old)
	}
	if n := len(activePods(t, cs, "dep", "app=web")); n != 4 {
		t.Fatalf("%d pods, want 4", n)
	}
	out = mustKubectl(t, c, "-n", "dep", "rollout", "history", "deployment/web")
	if !strings.Contains(out, "1 ") || !strings.Contains(out, "2 ") {
		t.Fatalf("rollout history:\n%s", out)
	}

	// Undo: back to the first template, on the first ReplicaSet, as revision 3.
	mustKubectl(t, c, "-n", "dep", "rollout", "undo", "deployment/web")
	mustKubectl(t, c, "-n", "dep", "rollout", "status", "deployment/web", "--timeout=60s")
	rss = ownedReplicaSets(t, c, "dep", "web")
	third := rsByRevision(rss, "3")
	if len(rss) != 2 || third == nil || third.Name != first.Name || *third.Spec.Replicas != 4 ||
		third.Annotations["deployment.kubernetes.io/revision-history"] != "1" {
		t.Fatalf("after undo: %d replica sets, revision 3 = %+v", len(rss), third)
	}
	d, _ = cs.AppsV1().Deployments("dep").Get(ctx, "web", metav1.GetOptions{})
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1" || d.Annotations["deployment.kubernetes.io/revision"] != "3" {
		t.Fatalf("after undo: image %s, annotations %v", img, d.Annotations)
	}

	// Pause: template changes wait; resume rolls them out.
	mustKubectl(t, c, "-n", "dep", "rollout", "pause", "deployment/web")
	mustKubectl(t, c, "-n", "dep", "set", "image", "deployment/web", "c=nginx:3")
	eventually(t, "DeploymentPaused", func() (bool, error) {
		d, err := cs.AppsV1().Deployments("dep").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cond := conditionOf(d, appsv1.DeploymentProgressing)
		return d.Status.ObservedGeneration == d.Generation && cond != nil && cond.Reason == "DeploymentPaused", nil
	})
	if n := len(ownedReplicaSets(t, c, "dep", "web")); n != 2 {
		t.Fatalf("paused deployment has %d replica sets, want 2", n)
	}
	mustKubectl(t, c, "-n", "dep", "rollout", "resume", "deployment/web")
	mustKubectl(t, c, "-n", "dep", "rollout", "status", "deployment/web", "--timeout=60s")
	if rs := rsByRevision(ownedReplicaSets(t, c, "dep", "web"), "4"); rs == nil || rs.Spec.Template.Spec.Containers[0].Image != "nginx:3" {
		t.Fatalf("after resume: revision 4 = %+v", rs)
	}

	// Restart: a new ReplicaSet with the restartedAt annotation.
	mustKubectl(t, c, "-n", "dep", "rollout", "restart", "deployment/web")
	mustKubectl(t, c, "-n", "dep", "rollout", "status", "deployment/web", "--timeout=60s")
	if rs := rsByRevision(ownedReplicaSets(t, c, "dep", "web"), "5"); rs == nil || rs.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Fatalf("after restart: revision 5 = %+v", rs)
	}

	// Scale.
	mustKubectl(t, c, "-n", "dep", "scale", "deployment/web", "--replicas=6")
	mustKubectl(t, c, "-n", "dep", "rollout", "status", "deployment/web", "--timeout=60s")
	eventually(t, "6 available", func() (bool, error) {
		d, err := cs.AppsV1().Deployments("dep").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == 6 && len(activePods(t, cs, "dep", "app=web")) == 6, err
	})
	if out := mustKubectl(t, c, "-n", "dep", "get", "deployment", "web"); !strings.Contains(out, "6/6") {
		t.Fatalf("kubectl get:\n%s", out)
	}
}

func TestDeploymentRecreateAndHistoryLimit(t *testing.T) {
	c, ctx := startManager(t, "replicaset", "deployment")
	cs := c.Client
	createNamespace(t, cs, "rec")
	markPodsReady(ctx, t, cs, "rec", labels.SelectorFromSet(labels.Set{"app": "r"}))
	replicas, limit := int32(2), int32(1)
	_, err := cs.AppsV1().Deployments("rec").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "r"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, RevisionHistoryLimit: &limit,
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "r"}}, Template: podTemplate("r", "img:1")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, c, "-n", "rec", "rollout", "status", "deployment/r", "--timeout=60s")
	for _, img := range []string{"img:2", "img:3"} {
		mustKubectl(t, c, "-n", "rec", "set", "image", "deployment/r", "c="+img)
		mustKubectl(t, c, "-n", "rec", "rollout", "status", "deployment/r", "--timeout=60s")
		for _, p := range activePods(t, cs, "rec", "app=r") {
			if p.Spec.Containers[0].Image != img {
				t.Fatalf("pod %s runs %s after a Recreate rollout to %s", p.Name, p.Spec.Containers[0].Image, img)
			}
		}
	}
	// revisionHistoryLimit 1: the new ReplicaSet and one old one.
	eventually(t, "history trimmed to 1 old replica set", func() (bool, error) {
		rss := ownedReplicaSets(t, c, "rec", "r")
		return len(rss) == 2 && rsByRevision(rss, "1") == nil, nil
	})
}

func TestDeploymentProgressDeadline(t *testing.T) {
	c, ctx := startManager(t, "replicaset", "deployment")
	cs := c.Client
	createNamespace(t, cs, "stuck")
	replicas, deadline := int32(1), int32(1)
	_, err := cs.AppsV1().Deployments("stuck").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, ProgressDeadlineSeconds: &deadline,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "s"}}, Template: podTemplate("s", "never-ready")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := kubectl(t, c, "-n", "stuck", "rollout", "status", "deployment/s", "--timeout=60s")
	if err == nil || !strings.Contains(out, "exceeded its progress deadline") {
		t.Fatalf("rollout status of a stuck deployment: err %v\n%s", err, out)
	}
	d, _ := cs.AppsV1().Deployments("stuck").Get(ctx, "s", metav1.GetOptions{})
	if cond := conditionOf(d, appsv1.DeploymentProgressing); cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != "ProgressDeadlineExceeded" {
		t.Fatalf("Progressing = %+v", cond)
	}
}

func conditionOf(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}
