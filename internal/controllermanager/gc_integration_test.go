package controllermanager_test

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

func configMap(t *testing.T, cs kubernetes.Interface, ns, name string, finalizers []string, owners ...metav1.OwnerReference) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owners, Finalizers: finalizers}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func refTo(cm *corev1.ConfigMap, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID, BlockOwnerDeletion: &block}
}

func gone(cs kubernetes.Interface, ns, name string) func() (bool, error) {
	return func() (bool, error) {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
		if isGone(err) {
			return true, nil
		}
		return false, err
	}
}

// TestGarbageCollectorOwnerReferences exercises the collector on plain ConfigMaps, so that
// nothing but ownerReferences and the metadata informers are involved.
func TestGarbageCollectorOwnerReferences(t *testing.T) {
	c, ctx := startManager(t, "garbagecollector")
	cs := c.Client
	createNamespace(t, cs, "gc")

	// Background: the dependent goes after its owner.
	owner := configMap(t, cs, "gc", "owner", nil)
	configMap(t, cs, "gc", "dep", nil, refTo(owner, false))
	if err := cs.CoreV1().ConfigMaps("gc").Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "background deletion of the dependent", gone(cs, "gc", "dep"))

	// An owner that never existed: the dependent is collected.
	configMap(t, cs, "gc", "dangling", nil, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "nobody", UID: types.UID("00000000-0000-0000-0000-000000000001")})
	eventually(t, "a dependent of a missing owner collected", gone(cs, "gc", "dangling"))

	// Two owners, one deleted: the dependent stays and loses that reference only.
	a, b := configMap(t, cs, "gc", "a", nil), configMap(t, cs, "gc", "b", nil)
	configMap(t, cs, "gc", "shared", nil, refTo(a, false), refTo(b, false))
	if err := cs.CoreV1().ConfigMaps("gc").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dangling reference removed", func() (bool, error) {
		cm, err := cs.CoreV1().ConfigMaps("gc").Get(ctx, "shared", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(cm.OwnerReferences) == 1 && cm.OwnerReferences[0].UID == b.UID, nil
	})

	// Foreground: the owner waits for a blocking dependent held by its own finalizer.
	fg := configMap(t, cs, "gc", "fg", nil)
	configMap(t, cs, "gc", "fg-held", []string{"example.com/hold"}, refTo(fg, true))
	configMap(t, cs, "gc", "fg-free", nil, refTo(fg, false))
	fore := metav1.DeletePropagationForeground
	if err := cs.CoreV1().ConfigMaps("gc").Delete(ctx, "fg", metav1.DeleteOptions{PropagationPolicy: &fore}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "foreground dependents deleted", func() (bool, error) {
		held, err := cs.CoreV1().ConfigMaps("gc").Get(ctx, "fg-held", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		freeGone, err := gone(cs, "gc", "fg-free")()
		return held.DeletionTimestamp != nil && freeGone, err
	})
	o, err := cs.CoreV1().ConfigMaps("gc").Get(ctx, "fg", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the owner must wait for its blocking dependent: %v", err)
	}
	if o.DeletionTimestamp == nil || len(o.Finalizers) != 1 || o.Finalizers[0] != metav1.FinalizerDeleteDependents {
		t.Fatalf("owner: deletionTimestamp %v finalizers %v", o.DeletionTimestamp, o.Finalizers)
	}
	held, _ := cs.CoreV1().ConfigMaps("gc").Get(ctx, "fg-held", metav1.GetOptions{})
	held.Finalizers = nil
	if _, err := cs.CoreV1().ConfigMaps("gc").Update(ctx, held, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "foreground owner deleted once its dependent went", gone(cs, "gc", "fg"))

	// Orphan: the dependent stays, without the reference.
	orph := configMap(t, cs, "gc", "orph", nil)
	configMap(t, cs, "gc", "orph-dep", nil, refTo(orph, true))
	orphan := metav1.DeletePropagationOrphan
	if err := cs.CoreV1().ConfigMaps("gc").Delete(ctx, "orph", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "orphaning owner deleted", gone(cs, "gc", "orph"))
	dep, err := cs.CoreV1().ConfigMaps("gc").Get(ctx, "orph-dep", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("orphaned dependent: %v", err)
	}
	if len(dep.OwnerReferences) != 0 {
		t.Fatalf("orphaned dependent still has owners %v", dep.OwnerReferences)
	}
}

// TestCascadingDeleteWithKubectl deletes Deployments in the three propagation modes.
func TestCascadingDeleteWithKubectl(t *testing.T) {
	c, ctx := startManager(t, "replicaset", "deployment", "garbage-collector-controller")
	cs := c.Client
	createNamespace(t, cs, "cascade")
	markPodsReady(ctx, t, cs, "cascade", labels.Everything())
	for _, name := range []string{"bg", "fg", "orphan"} {
		replicas := int32(3)
		_, err := cs.AppsV1().Deployments("cascade").Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: podTemplate(name, "nginx")},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mustKubectl(t, c, "-n", "cascade", "rollout", "status", "deployment/"+name, "--timeout=60s")
	}
	countRS := func(app string) int {
		list, err := cs.AppsV1().ReplicaSets("cascade").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	countPods := func(app string) int {
		list, err := cs.CoreV1().Pods("cascade").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}

	mustKubectl(t, c, "-n", "cascade", "delete", "deployment", "bg", "--timeout=60s")
	eventually(t, "background cascade", func() (bool, error) { return countRS("bg") == 0 && countPods("bg") == 0, nil })

	// Foreground: kubectl waits for the Deployment, which goes after everything below it.
	mustKubectl(t, c, "-n", "cascade", "delete", "deployment", "fg", "--cascade=foreground", "--timeout=60s")
	if rs, pods := countRS("fg"), countPods("fg"); rs != 0 || pods != 0 {
		t.Fatalf("foreground delete returned with %d replica sets and %d pods left", rs, pods)
	}

	mustKubectl(t, c, "-n", "cascade", "delete", "deployment", "orphan", "--cascade=orphan", "--timeout=60s")
	rss, err := cs.AppsV1().ReplicaSets("cascade").List(ctx, metav1.ListOptions{LabelSelector: "app=orphan"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 1 || len(rss.Items[0].OwnerReferences) != 0 {
		t.Fatalf("orphaned replica sets: %+v", rss.Items)
	}
	if n := countPods("orphan"); n != 3 {
		t.Fatalf("%d orphaned pods, want 3", n)
	}
}

func TestNamespaceDeletionEmptiesNamespace(t *testing.T) {
	c, ctx := startManager(t, "replicaset", "deployment", "garbagecollector", "namespace")
	cs := c.Client
	createNamespace(t, cs, "doomed")
	markPodsReady(ctx, t, cs, "doomed", labels.Everything())
	replicas := int32(3)
	if _, err := cs.AppsV1().Deployments("doomed").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate("web", "nginx")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, c, "-n", "doomed", "rollout", "status", "deployment/web", "--timeout=60s")
	configMap(t, cs, "doomed", "settings", nil)
	if _, err := cs.CoreV1().Secrets("doomed").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("doomed").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A namespace in another namespace's name must survive.
	createNamespace(t, cs, "kept")
	configMap(t, cs, "kept", "settings", nil)

	mustKubectl(t, c, "delete", "namespace", "doomed", "--timeout=60s")
	_, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if !isGone(err) {
		t.Fatalf("namespace still there after kubectl delete: %v", err)
	}
	for _, check := range []func() (int, error){
		func() (int, error) {
			l, err := cs.CoreV1().Pods("doomed").List(ctx, metav1.ListOptions{})
			return lenOr(l, err)
		},
		func() (int, error) {
			l, err := cs.AppsV1().ReplicaSets("doomed").List(ctx, metav1.ListOptions{})
			return lenOr(l, err)
		},
		func() (int, error) {
			l, err := cs.AppsV1().Deployments("doomed").List(ctx, metav1.ListOptions{})
			return lenOr(l, err)
		},
		func() (int, error) {
			l, err := cs.CoreV1().ConfigMaps("doomed").List(ctx, metav1.ListOptions{})
			return lenOr(l, err)
		},
		func() (int, error) {
			l, err := cs.CoreV1().Secrets("doomed").List(ctx, metav1.ListOptions{})
			return lenOr(l, err)
		},
		func() (int, error) {
			l, err := cs.CoreV1().Services("doomed").List(ctx, metav1.ListOptions{})
			return lenOr(l, err)
		},
	} {
		if n, err := check(); err != nil || n != 0 {
			t.Fatalf("left in the deleted namespace: %d (%v)", n, err)
		}
	}
	if _, err := cs.CoreV1().ConfigMaps("kept").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Fatalf("other namespace touched: %v", err)
	}
}

func lenOr[T any](l *T, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	switch v := any(l).(type) {
	case *corev1.PodList:
		return len(v.Items), nil
	case *appsv1.ReplicaSetList:
		return len(v.Items), nil
	case *appsv1.DeploymentList:
		return len(v.Items), nil
	case *corev1.ConfigMapList:
		return len(v.Items), nil
	case *corev1.SecretList:
		return len(v.Items), nil
	case *corev1.ServiceList:
		return len(v.Items), nil
	}
	return -1, nil
}
