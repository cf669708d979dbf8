package apiserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func TestPodLifecycleProtobuf(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	pods := c.Client.CoreV1().Pods("default")

	created, err := pods.Create(ctx, testPod("p1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() || created.Generation != 1 {
		t.Fatalf("server-set metadata missing: %+v", created.ObjectMeta)
	}
	// Defaults as Kubernetes sets them.
	if created.Spec.RestartPolicy != corev1.RestartPolicyAlways || created.Spec.DNSPolicy != corev1.DNSClusterFirst ||
		created.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways || created.Spec.ServiceAccountName != "default" ||
		created.Status.Phase != corev1.PodPending {
		t.Fatalf("defaults not applied: %+v / %+v", created.Spec, created.Status)
	}

	if _, err := pods.Create(ctx, testPod("p1"), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("duplicate create: want AlreadyExists, got %v", err)
	}

	// Optimistic concurrency: a stale update conflicts.
	stale := created.DeepCopy()
	upd := created.DeepCopy()
	upd.Labels["tier"] = "front"
	upd, err = pods.Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Generation != 1 {
		t.Errorf("a label change bumped generation to %d", upd.Generation)
	}
	stale.Labels["tier"] = "back"
	if _, err := pods.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: want Conflict, got %v", err)
	}

	// A spec change bumps generation; the status subresource ignores spec changes.
	upd.Spec.Containers[0].Image = "busybox:2"
	upd, err = pods.Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Generation != 2 {
		t.Errorf("generation after spec change = %d, want 2", upd.Generation)
	}
	st := upd.DeepCopy()
	st.Status.Phase = corev1.PodRunning
	st.Spec.Containers[0].Image = "ignored"
	st, err = pods.UpdateStatus(ctx, st, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.Phase != corev1.PodRunning || st.Spec.Containers[0].Image != "busybox:2" {
		t.Errorf("status update: phase %q image %q", st.Status.Phase, st.Spec.Containers[0].Image)
	}

	// Invalid objects: 422 with field causes.
	bad := testPod("p2")
	bad.Spec.Containers = nil
	_, err = pods.Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.containers") {
		t.Fatalf("invalid pod: want Invalid naming spec.containers, got %v", err)
	}

	// Binding, then graceful deletion waits for the kubelet.
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Target: corev1.ObjectReference{Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Target: corev1.ObjectReference{Name: "node-b"}}, metav1.CreateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("second binding: want Conflict, got %v", err)
	}
	bound, _ := pods.Get(ctx, "p1", metav1.GetOptions{})
	if bound.Spec.NodeName != "node-a" || !hasCondition(bound, corev1.PodScheduled) {
		t.Fatalf("binding not applied: node %q conditions %v", bound.Spec.NodeName, bound.Status.Conditions)
	}
	if err := pods.Delete(ctx, "p1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	terminating, err := pods.Get(ctx, "p1", metav1.GetOptions{})
	if err != nil || terminating.DeletionTimestamp == nil || *terminating.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("bound pod should wait for its kubelet: %v %+v", err, terminating.ObjectMeta)
	}
	if err := pods.Delete(ctx, "p1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "p1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after grace 0: want NotFound, got %v", err)
	}
}

func hasCondition(p *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func TestNamespaceLifecycleAndFinalizers(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if _, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
	if _, err := c.Client.CoreV1().ConfigMaps("nope").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: want NotFound, got %v", err)
	}
	if err := c.Client.CoreV1().Namespaces().Delete(ctx, "default", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("deleting default: want Forbidden, got %v", err)
	}
	// Finalizers hold an object until they are removed.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}
	cms := c.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "held", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	got, err := cms.Get(ctx, "held", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil || len(got.Finalizers) != 2 {
		t.Fatalf("want held with deletionTimestamp and foregroundDeletion: %v %+v", err, got.ObjectMeta)
	}
	got.Finalizers = nil
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("removing the last finalizer should delete: %v", err)
	}
	// A terminating namespace takes no new objects.
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, _ := c.Client.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if ns.Status.Phase != corev1.NamespaceTerminating {
		t.Errorf("deleted namespace phase = %q, want Terminating", ns.Status.Phase)
	}
	_, err = c.Client.CoreV1().ConfigMaps("doomed").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "being terminated") {
		t.Fatalf("create in terminating namespace: want Forbidden, got %v", err)
	}
}

func TestServiceAllocation(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	svcs := c.Client.CoreV1().Services("default")
	k, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || k.Spec.ClusterIP != "10.96.0.1" {
		t.Fatalf("kubernetes service: %v %v", err, k)
	}
	np := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{{Port: 80}}}}
	got, err := svcs.Create(ctx, np, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.ClusterIP == "" || got.Spec.Ports[0].NodePort < 30000 || got.Spec.Ports[0].TargetPort.IntVal != 80 {
		t.Fatalf("allocation/defaults missing: %+v", got.Spec)
	}
	dup := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dup"}, Spec: corev1.ServiceSpec{
		ClusterIP: got.Spec.ClusterIP, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := svcs.Create(ctx, dup, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "already allocated") {
		t.Fatalf("duplicate cluster IP: want Invalid 'already allocated', got %v", err)
	}
	// Released on delete: the same IP and port can be taken again.
	if err := svcs.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := np.DeepCopy()
	again.Spec.ClusterIP = got.Spec.ClusterIP
	again.Spec.Ports[0].NodePort = got.Spec.Ports[0].NodePort
	if _, err := svcs.Create(ctx, again, metav1.CreateOptions{}); err != nil {
		t.Fatalf("recreate with released IP and port: %v", err)
	}
}

func TestListPaginationAndSelectors(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	cms := c.Client.CoreV1().ConfigMaps("default")
	for i := 0; i < 25; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "cm-", Labels: map[string]string{"parity": []string{"even", "odd"}[i%2]}}}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	opts := metav1.ListOptions{Limit: 10}
	pages := 0
	for {
		l, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(l.Items)
		pages++
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if seen != 25+1 || pages != 3 { // kube-root-ca.crt is not there yet: 25 + 0
		if seen != 25 {
			t.Errorf("paginated list saw %d items in %d pages", seen, pages)
		}
	}
	l, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "parity=even"})
	if err != nil || len(l.Items) != 13 {
		t.Fatalf("label selector: %v, %d items", err, len(l.Items))
	}
	name := l.Items[0].Name
	l, err = cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("field selector: %v %d", err, len(l.Items))
	}
	_, err = cms.List(ctx, metav1.ListOptions{FieldSelector: "spec.nope=1"})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("unsupported field label: want BadRequest, got %v", err)
	}
	_, err = cms.List(ctx, metav1.ListOptions{LabelSelector: "a in (b"})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("bad label selector: want BadRequest, got %v", err)
	}
	if err := cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "parity=odd"}); err != nil {
		t.Fatal(err)
	}
	l, _ = cms.List(ctx, metav1.ListOptions{})
	if len(l.Items) != 13 {
		t.Errorf("after deletecollection: %d items, want 13", len(l.Items))
	}
}

func TestWatchSemantics(t *testing.T) {
	c := apitest.Start(t, apitest.Options{EventCapacity: 16})
	ctx := ctxT(t)
	cms := c.Client.CoreV1().ConfigMaps("default")
	first, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "w0"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "w1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "w0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ  watch.EventType
		name string
	}{{watch.Added, "w1"}, {watch.Deleted, "w0"}} {
		select {
		case ev := <-w.ResultChan():
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok || ev.Type != want.typ || cm.Name != want.name {
				t.Fatalf("event %v %T, want %v %s", ev.Type, ev.Object, want.typ, want.name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v event", want.typ)
		}
	}
	// Push the first revision out of the cache's history: resuming there is 410 Gone.
	for i := 0; i < 40; i++ {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "fill-"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("watch from an expired revision: want 410, got %v", err)
	}
}

func TestInformersSurviveRestartAndCompaction(t *testing.T) {
	c := apitest.Start(t, apitest.Options{EventCapacity: 8})
	// Two restarts and reflector backoffs: more than ctxT's minute on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	factory := informers.NewSharedInformerFactory(kubernetes.NewForConfigOrDie(rest.CopyConfig(c.Config)), 0)
	inf := factory.Core().V1().ConfigMaps().Informer()
	lister := factory.Core().V1().ConfigMaps().Lister()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	waitFor := func(what string, n int) {
		t.Helper()
		// A reflector that failed while the server restarted backs off for up to 30 s plus
		// as much jitter before it watches again; a loaded machine gets there.
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			l, _ := lister.ConfigMaps("default").List(labels.Everything())
			return len(l) == n, nil
		})
		if err != nil {
			l, _ := lister.ConfigMaps("default").List(labels.Everything())
			t.Fatalf("%s: informer has %d configmaps, want %d", what, len(l), n)
		}
	}
	create := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "inf-"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	create(3)
	waitFor("live events", 3)

	c.Restart()
	create(2)
	waitFor("after API server restart", 5)

	// Compact etcd to its current revision and overflow the watch cache's history: the
	// informer's watch resumes from a revision that is gone and it relists (410 Gone).
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{"unix://" + filepath.Join(c.Dir, "etcd", "client.sock")}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	st, err := ec.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Compact(ctx, st.Header.Revision); err != nil {
		t.Fatal(err)
	}
	c.Restart()
	create(20)
	waitFor("after compaction, restart and overflow", 25)
}

func TestRawErrors(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	cfg := rest.CopyConfig(c.Config)
	cfg.ContentType = "application/json"
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, ct, body string) (int, metav1.Status) {
		req, _ := http.NewRequestWithContext(ctx, method, cfg.Host+path, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st metav1.Status
		_ = json.NewDecoder(resp.Body).Decode(&st)
		return resp.StatusCode, st
	}
	cases := []struct {
		name, method, path, ct, body string
		code                         int
		reason                       metav1.StatusReason
	}{
		{"malformed json", "POST", "/api/v1/namespaces/default/configmaps", "application/json", "{", 400, metav1.StatusReasonBadRequest},
		{"wrong kind", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`, 400, metav1.StatusReasonBadRequest},
		{"wrong version", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}`, 400, metav1.StatusReasonBadRequest},
		{"unknown resource", "GET", "/api/v1/namespaces/default/widgets", "", "", 404, metav1.StatusReasonNotFound},
		{"invalid name", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}`, 422, metav1.StatusReasonInvalid},
		{"too large", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"data":{"a":"` + strings.Repeat("x", 4<<20) + `"}}`, 413, metav1.StatusReasonRequestEntityTooLarge},
		{"strict unknown field", "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"nope":1}`, 400, metav1.StatusReasonBadRequest},
		{"malformed yaml", "POST", "/api/v1/namespaces/default/configmaps", "application/yaml", "a: [", 400, metav1.StatusReasonBadRequest},
		{"malformed protobuf", "POST", "/api/v1/namespaces/default/configmaps", "application/vnd.kubernetes.protobuf", "k8s\x00\xff\xff", 400, metav1.StatusReasonBadRequest},
		{"bad patch", "PATCH", "/api/v1/namespaces/default/services/kubernetes", "application/json-patch+json", `[{"op":"nope"}]`, 422, metav1.StatusReasonInvalid},
		{"unauthenticated", "", "", "", "", 401, metav1.StatusReasonUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == 401 {
				req, _ := http.NewRequestWithContext(ctx, "GET", cfg.Host+"/api/v1/pods", nil)
				tr := &http.Transport{TLSClientConfig: mustTLS(t, cfg)}
				resp, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 401 {
					t.Fatalf("code %d, want 401", resp.StatusCode)
				}
				return
			}
			code, st := do(tc.method, tc.path, tc.ct, tc.body)
			if code != tc.code || st.Kind != "Status" || (tc.reason != metav1.StatusReasonInvalid && st.Reason != tc.reason) || st.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", code, st, tc.code, tc.reason)
			}
		})
	}
	// Nothing was written by any of the failures.
	l, err := c.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 0 {
		t.Fatalf("failed requests left objects behind: %v %d", err, len(l.Items))
	}
}

func mustTLS(t *testing.T, cfg *rest.Config) *tls.Config {
	anon := rest.AnonymousClientConfig(cfg)
	tc, err := rest.TLSConfigFor(anon)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

func TestScaleAndPatch(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}},
		},
	}
	deps := c.Client.AppsV1().Deployments("default")
	got, err := deps.Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Replicas != 1 || got.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || *got.Spec.RevisionHistoryLimit != 10 {
		t.Fatalf("deployment defaults: %+v", got.Spec)
	}
	sc, err := deps.GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 1 || sc.Status.Selector != "app=web" {
		t.Fatalf("scale: %v %+v", err, sc)
	}
	if _, err := deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	got, _ = deps.Get(ctx, "web", metav1.GetOptions{})
	if *got.Spec.Replicas != 3 || got.Generation != 2 {
		t.Fatalf("after scale patch: replicas %d generation %d", *got.Spec.Replicas, got.Generation)
	}
	// Strategic merge patch merges containers by name.
	smp := `{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox"}]}}}}`
	got, err = deps.Patch(ctx, "web", types.StrategicMergePatchType, []byte(smp), metav1.PatchOptions{})
	if err != nil || len(got.Spec.Template.Spec.Containers) != 2 {
		t.Fatalf("strategic merge: %v %d containers", err, len(got.Spec.Template.Spec.Containers))
	}
	// JSON patch.
	got, err = deps.Patch(ctx, "web", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:2"}]`), metav1.PatchOptions{})
	if err != nil || got.Spec.Template.Spec.Containers[0].Image != "nginx:2" {
		t.Fatalf("json patch: %v", err)
	}
	// Server-side apply: creates, records managedFields, and conflicts on a field owned by another manager.
	cmApply := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"a":"1"}}`
	cms := c.Client.CoreV1().ConfigMaps("default")
	cm, err := cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(cmApply), metav1.PatchOptions{FieldManager: "alice"})
	if err != nil || cm.Data["a"] != "1" || len(cm.ManagedFields) != 1 || cm.ManagedFields[0].Manager != "alice" {
		t.Fatalf("apply create: %v %+v", err, cm)
	}
	_, err = cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(strings.Replace(cmApply, `"1"`, `"2"`, 1)), metav1.PatchOptions{FieldManager: "bob"})
	if !apierrors.IsConflict(err) {
		t.Fatalf("apply by another manager: want Conflict, got %v", err)
	}
	cm, err = cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(strings.Replace(cmApply, `"1"`, `"2"`, 1)), metav1.PatchOptions{FieldManager: "bob", Force: ptr.To(true)})
	if err != nil || cm.Data["a"] != "2" {
		t.Fatalf("forced apply: %v", err)
	}
	var se *apierrors.StatusError
	_, err = cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(cmApply), metav1.PatchOptions{})
	if !errors.As(err, &se) || se.ErrStatus.Code != 422 {
		t.Fatalf("apply without fieldManager: want 422, got %v", err)
	}
}

func TestEventsShareOneStorage(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	now := metav1.NowMicro()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "e1"}, EventTime: now, Reason: "Scheduled", Note: "assigned to node-a",
		Type: "Normal", Action: "Binding", ReportingController: "default-scheduler", ReportingInstance: "s-1",
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p"},
	}
	w, err := c.Client.CoreV1().Events("default").Watch(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=p"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := c.Client.EventsV1().Events("default").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	core, err := c.Client.CoreV1().Events("default").Get(ctx, "e1", metav1.GetOptions{})
	if err != nil || core.Message != "assigned to node-a" || core.InvolvedObject.Name != "p" || core.ReportingController != "default-scheduler" {
		t.Fatalf("core view of an events.k8s.io event: %v %+v", err, core)
	}
	select {
	case e := <-w.ResultChan():
		if e.Type != watch.Added || e.Object.(*corev1.Event).Name != "e1" {
			t.Fatalf("core watch: %v %v", e.Type, e.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("core watch saw nothing")
	}
	l, err := c.Client.EventsV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=p"})
	if err != nil || len(l.Items) != 1 || l.Items[0].Note != "assigned to node-a" {
		t.Fatalf("events.k8s.io list: %v %+v", err, l)
	}
	if err := c.Client.CoreV1().Events("default").Delete(ctx, "e1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.EventsV1().Events("default").Get(ctx, "e1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("deleted through core, still visible through events.k8s.io: %v", err)
	}
}

// TestWatchListInitialEvents is the streaming list client-go 0.35+ informers start with:
// the current objects as ADDED events, then a BOOKMARK annotated as the end of them.
func TestWatchListInitialEvents(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	for _, n := range []string{"a", "b"} {
		if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{
		SendInitialEvents: ptr.To(true), AllowWatchBookmarks: true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var added []string
	for {
		select {
		case ev := <-w.ResultChan():
			switch ev.Type {
			case watch.Added:
				added = append(added, ev.Object.(*corev1.ConfigMap).Name)
				continue
			case watch.Bookmark:
				cm := ev.Object.(*corev1.ConfigMap)
				if cm.Annotations[metav1.InitialEventsAnnotationKey] != "true" || cm.ResourceVersion == "" {
					t.Fatalf("bookmark without the initial-events-end annotation: %+v", cm.ObjectMeta)
				}
				if len(added) != 2 {
					t.Fatalf("initial events %v, want a and b", added)
				}
				return
			default:
				t.Fatalf("unexpected %v", ev.Type)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no bookmark after %v", added)
		}
	}
}

// TestWatchListNeedsBookmarks: without its companion parameters the request is invalid
// (client-go then falls back to list and watch).
func TestWatchListNeedsBookmarks(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	_, err := c.Client.CoreV1().ConfigMaps("default").Watch(ctxT(t), metav1.ListOptions{SendInitialEvents: ptr.To(true)})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("sendInitialEvents without resourceVersionMatch and bookmarks: want 422, got %v", err)
	}
}

func TestHealthVersionMetrics(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	anon, err := rest.HTTPClientFor(rest.AnonymousClientConfig(c.Config))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.Config.Host+p, nil)
		resp, err := anon.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 16)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body[:n]) != "ok" {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body[:n])
		}
	}
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil || v.Major != "1" || v.GitVersion == "" {
		t.Fatalf("version: %v %+v", err, v)
	}
	raw, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil || !strings.Contains(string(raw), `apiserver_request_total{code="200"`) {
		t.Fatalf("metrics: %v\n%.500s", err, raw)
	}
}

func TestPriorityAdmission(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	pods := c.Client.CoreV1().Pods("default")
	p := testPod("critical")
	p.Spec.PriorityClassName = "system-node-critical"
	got, err := pods.Create(ctx, p, metav1.CreateOptions{})
	if err != nil || got.Spec.Priority == nil || *got.Spec.Priority != 2000001000 {
		t.Fatalf("system-node-critical pod: %v %v", err, got)
	}
	plain, err := pods.Create(ctx, testPod("plain"), metav1.CreateOptions{})
	if err != nil || plain.Spec.Priority == nil || *plain.Spec.Priority != 0 {
		t.Fatalf("pod without a class: %v %v", err, plain.Spec.Priority)
	}
	bad := testPod("bad")
	bad.Spec.PriorityClassName = "nope"
	if _, err := pods.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "no PriorityClass with name nope") {
		t.Fatalf("unknown class: want Forbidden, got %v", err)
	}
}
