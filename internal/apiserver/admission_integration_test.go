package apiserver_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
)

// warningRecorder collects the Warning headers client-go sees.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

func warningClient(t *testing.T, c *apitest.Cluster) (kubernetes.Interface, *warningRecorder) {
	t.Helper()
	rec := &warningRecorder{}
	cfg := rest.CopyConfig(c.Config)
	cfg.WarningHandler = rec
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, rec
}

func createNamespace(t *testing.T, cs kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// restrictedPod passes the restricted level.
func restrictedPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "c", Image: "busybox", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
}

func privilegedPod(name string) *corev1.Pod {
	p := testPod(name)
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	return p
}

const restrictedViolations = `allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ` +
	`unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), ` +
	`runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), ` +
	`seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`

func TestPodSecurityAdmission(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	cs, warnings := warningClient(t, c)
	createNamespace(t, cs, "locked", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	createNamespace(t, cs, "watched", map[string]string{"pod-security.kubernetes.io/warn": "baseline"})
	createNamespace(t, cs, "open", nil)
	warnings.take()

	t.Run("enforce rejects with the reasons", func(t *testing.T) {
		_, err := cs.CoreV1().Pods("locked").Create(ctx, testPod("x"), metav1.CreateOptions{})
		want := `pods "x" is forbidden: violates PodSecurity "restricted:latest": ` + restrictedViolations
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
		if _, err := cs.CoreV1().Pods("locked").Get(ctx, "x", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a refused pod was stored: %v", err)
		}
	})
	t.Run("enforce admits a compliant pod", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods("locked").Create(ctx, restrictedPod("ok"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if w := warnings.take(); len(w) != 0 {
			t.Fatalf("unexpected warnings %q", w)
		}
	})
	t.Run("an update that changes an image is checked", func(t *testing.T) {
		p, err := cs.CoreV1().Pods("locked").Get(ctx, "ok", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Labels = map[string]string{"touched": "yes"} // not significant: allowed
		if p, err = cs.CoreV1().Pods("locked").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		p.Spec.Containers[0].Image = "busybox:2"
		if _, err := cs.CoreV1().Pods("locked").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("a compliant image change was refused: %v", err)
		}
	})
	t.Run("warn admits with a warning", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods("watched").Create(ctx, privilegedPod("priv"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := `would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`
		if w := warnings.take(); len(w) != 1 || w[0] != want {
			t.Fatalf("warnings %q, want [%q]", w, want)
		}
	})
	t.Run("workload templates are warned about, not refused", func(t *testing.T) {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: testPod("").Spec},
		}}
		if _, err := cs.AppsV1().Deployments("locked").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a deployment was refused: %v", err)
		}
		want := `would violate PodSecurity "restricted:latest": ` + restrictedViolations
		if w := warnings.take(); len(w) != 1 || w[0] != want {
			t.Fatalf("warnings %q, want [%q]", w, want)
		}
	})
	t.Run("privileged namespaces check nothing", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods("open").Create(ctx, privilegedPod("priv"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if w := warnings.take(); len(w) != 0 {
			t.Fatalf("unexpected warnings %q", w)
		}
	})
	t.Run("tightening a namespace warns about its pods", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods("open").Create(ctx, privilegedPod("priv2"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("open").Create(ctx, restrictedPod("fine"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		warnings.take()
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "open", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.Labels["pod-security.kubernetes.io/enforce"] = "baseline"
		if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := []string{
			`existing pods in namespace "open" violate the new PodSecurity enforce level "baseline:latest"`,
			`priv (and 1 other pod): privileged`,
		}
		if w := warnings.take(); strings.Join(w, "\n") != strings.Join(want, "\n") {
			t.Fatalf("warnings %q, want %q", w, want)
		}
		// Existing pods stay; new ones are refused.
		_, err = cs.CoreV1().Pods("open").Create(ctx, privilegedPod("priv3"), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "baseline:latest": privileged`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("invalid labels are refused", func(t *testing.T) {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bad",
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "strict"}}}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict"`) {
			t.Fatalf("got %v", err)
		}
	})
}

func setQuota(t *testing.T, cs kubernetes.Interface, ns, name string, hard, used corev1.ResourceList) {
	t.Helper()
	ctx := context.Background()
	q, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The resourcequota controller's first sync, done by hand: these tests run the API
	// server alone so that nothing but admission moves status.used.
	q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: used}
	if _, err := cs.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func quotaUsed(t *testing.T, cs kubernetes.Interface, ns, name string) corev1.ResourceList {
	t.Helper()
	q, err := cs.CoreV1().ResourceQuotas(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return q.Status.Used
}

func rl(pairs ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		out[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return out
}

func withResources(p *corev1.Pod, requests, limits corev1.ResourceList) *corev1.Pod {
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: requests, Limits: limits}
	return p
}

func TestResourceQuotaAdmission(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	cs := c.Client
	createNamespace(t, cs, "q", nil)
	setQuota(t, cs, "q", "pods", rl("pods", "2", "count/configmaps", "1"), rl("pods", "0", "count/configmaps", "0"))

	for _, name := range []string{"a", "b"} {
		if _, err := cs.CoreV1().Pods("q").Create(ctx, testPod(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := quotaUsed(t, cs, "q", "pods")[corev1.ResourcePods]; got.Value() != 2 {
		t.Fatalf("used pods = %s, want 2", got.String())
	}
	_, err := cs.CoreV1().Pods("q").Create(ctx, testPod("c"), metav1.CreateOptions{})
	want := `pods "c" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if _, err := cs.CoreV1().Pods("q").Get(ctx, "c", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused pod was stored: %v", err)
	}
	// A dry run is checked but charges nothing.
	if _, err := cs.CoreV1().ConfigMaps("q").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if got := quotaUsed(t, cs, "q", "pods")["count/configmaps"]; got.Value() != 0 {
		t.Fatalf("a dry run charged the quota: %s", got.String())
	}
	// A charge whose object is not written is given back.
	if _, err := cs.CoreV1().ConfigMaps("q").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ConfigMaps("q").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm2"}}, metav1.CreateOptions{})
	if want := `configmaps "cm2" is forbidden: exceeded quota: pods, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1`; err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}

	t.Run("compute quotas require requests and limits", func(t *testing.T) {
		createNamespace(t, cs, "cpu", nil)
		setQuota(t, cs, "cpu", "compute", rl("requests.cpu", "1", "limits.memory", "1Gi"), rl("requests.cpu", "0", "limits.memory", "0"))
		p := testPod("bare")
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", Resources: corev1.ResourceRequirements{
			Requests: rl("cpu", "100m"), Limits: rl("memory", "10Mi")}}}
		_, err := cs.CoreV1().Pods("cpu").Create(ctx, p, metav1.CreateOptions{})
		want := `pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: c; requests.cpu for: c`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
		if _, err := cs.CoreV1().Pods("cpu").Create(ctx, withResources(testPod("p1"), rl("cpu", "600m"), rl("memory", "512Mi")), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err = cs.CoreV1().Pods("cpu").Create(ctx, withResources(testPod("p2"), rl("cpu", "600m"), rl("memory", "256Mi")), metav1.CreateOptions{})
		want = `pods "p2" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
		used := quotaUsed(t, cs, "cpu", "compute")
		if cpu, mem := used["requests.cpu"], used["limits.memory"]; cpu.String() != "600m" || mem.String() != "512Mi" {
			t.Fatalf("used = %v", used)
		}
	})
	t.Run("services and node ports", func(t *testing.T) {
		createNamespace(t, cs, "svc", nil)
		setQuota(t, cs, "svc", "svc", rl("services", "5", "services.nodeports", "1"), rl("services", "0", "services.nodeports", "0"))
		svc := func(name string, typ corev1.ServiceType) *corev1.Service {
			return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Type: typ,
				Ports: []corev1.ServicePort{{Port: 80}}, Selector: map[string]string{"app": "web"}}}
		}
		if _, err := cs.CoreV1().Services("svc").Create(ctx, svc("np1", corev1.ServiceTypeNodePort), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Services("svc").Create(ctx, svc("plain", corev1.ServiceTypeClusterIP), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := cs.CoreV1().Services("svc").Create(ctx, svc("np2", corev1.ServiceTypeNodePort), metav1.CreateOptions{})
		want := `services "np2" is forbidden: exceeded quota: svc, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
		if got := quotaUsed(t, cs, "svc", "svc")["services"]; got.Value() != 2 {
			t.Fatalf("used services = %s, want 2", got.String())
		}
		// An update that adds usage is checked too.
		plain, err := cs.CoreV1().Services("svc").Get(ctx, "plain", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		plain.Spec.Type = corev1.ServiceTypeNodePort
		_, err = cs.CoreV1().Services("svc").Update(ctx, plain, metav1.UpdateOptions{})
		want = `services "plain" is forbidden: exceeded quota: svc, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
	})
	t.Run("scopes", func(t *testing.T) {
		createNamespace(t, cs, "scoped", nil)
		setQuota(t, cs, "scoped", "besteffort", rl("pods", "1"), rl("pods", "0"))
		q, err := cs.CoreV1().ResourceQuotas("scoped").Get(ctx, "besteffort", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		q.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}
		if _, err := cs.CoreV1().ResourceQuotas("scoped").Update(ctx, q, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"g1", "g2"} { // not best effort: out of scope
			if _, err := cs.CoreV1().Pods("scoped").Create(ctx, withResources(testPod(name), rl("cpu", "1"), nil), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cs.CoreV1().Pods("scoped").Create(ctx, testPod("be1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("scoped").Create(ctx, testPod("be2"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("a second best-effort pod: %v", err)
		}
	})
}

// TestResourceQuotaConcurrentCreates races ten creates for three slots: the quota's
// compare-and-swap must let exactly three through.
func TestResourceQuotaConcurrentCreates(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	cs := c.Client
	createNamespace(t, cs, "race", nil)
	setQuota(t, cs, "race", "pods", rl("pods", "3"), rl("pods", "0"))

	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = cs.CoreV1().Pods("race").Create(ctx, testPod(fmt.Sprintf("p%d", i)), metav1.CreateOptions{})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota: pods, requested: pods=1, used: pods=3, limited: pods=3"):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	pods, err := cs.CoreV1().Pods("race").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ok != 3 || len(pods.Items) != 3 {
		t.Fatalf("%d creates succeeded and %d pods exist, want 3 and 3", ok, len(pods.Items))
	}
	if got := quotaUsed(t, cs, "race", "pods")[corev1.ResourcePods]; got.Value() != 3 {
		t.Fatalf("used pods = %s, want 3", got.String())
	}
}

func TestLimitRangerAdmission(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	cs := c.Client
	createNamespace(t, cs, "lr", nil)
	_, err := cs.CoreV1().LimitRanges("lr").Create(ctx, &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "limits"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
			{Type: corev1.LimitTypeContainer, Max: rl("cpu", "500m"), Min: rl("memory", "4Mi"),
				Default: rl("cpu", "200m", "memory", "64Mi"), DefaultRequest: rl("cpu", "100m", "memory", "32Mi"),
				MaxLimitRequestRatio: rl("memory", "4")},
			{Type: corev1.LimitTypePod, Max: rl("memory", "1Gi")},
			{Type: corev1.LimitTypePersistentVolumeClaim, Max: rl("storage", "1Gi"), Min: rl("storage", "100Mi")},
		}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("defaults", func(t *testing.T) {
		p, err := cs.CoreV1().Pods("lr").Create(ctx, testPod("d"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := p.Spec.Containers[0].Resources
		if r.Limits.Cpu().String() != "200m" || r.Limits.Memory().String() != "64Mi" || r.Requests.Cpu().String() != "100m" || r.Requests.Memory().String() != "32Mi" {
			t.Fatalf("resources %+v", r)
		}
		want := "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
		if got := p.Annotations["kubernetes.io/limit-ranger"]; got != want {
			t.Fatalf("annotation %q, want %q", got, want)
		}
	})
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"max", withResources(testPod("max"), rl("cpu", "1"), rl("cpu", "1")),
			`pods "max" is forbidden: maximum cpu usage per Container is 500m, but limit is 1`},
		{"min", withResources(testPod("min"), rl("memory", "1Mi"), rl("memory", "2Mi")),
			`pods "min" is forbidden: minimum memory usage per Container is 4Mi, but request is 1Mi`},
		{"ratio", withResources(testPod("ratio"), rl("memory", "10Mi"), rl("memory", "100Mi")),
			`pods "ratio" is forbidden: memory max limit to request ratio per Container is 4, but provided ratio is 10.000000`},
		{"several", withResources(testPod("several"), rl("cpu", "1", "memory", "1Mi"), rl("cpu", "1", "memory", "2Mi")),
			`pods "several" is forbidden: [minimum memory usage per Container is 4Mi, but request is 1Mi, maximum cpu usage per Container is 500m, but limit is 1]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cs.CoreV1().Pods("lr").Create(ctx, tc.pod, metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	t.Run("pod total", func(t *testing.T) {
		p := withResources(testPod("big"), rl("memory", "600Mi"), rl("memory", "600Mi"))
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "d", Image: "busybox",
			Resources: corev1.ResourceRequirements{Requests: rl("memory", "600Mi"), Limits: rl("memory", "600Mi")}})
		_, err := cs.CoreV1().Pods("lr").Create(ctx, p, metav1.CreateOptions{})
		want := `pods "big" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 1200Mi`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
	})
	t.Run("claims", func(t *testing.T) {
		claim := func(name, size string) *corev1.PersistentVolumeClaim {
			return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: rl("storage", size)}}}
		}
		_, err := cs.CoreV1().PersistentVolumeClaims("lr").Create(ctx, claim("huge", "2Gi"), metav1.CreateOptions{})
		want := `persistentvolumeclaims "huge" is forbidden: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 2Gi`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got %v\nwant %s", err, want)
		}
		if _, err := cs.CoreV1().PersistentVolumeClaims("lr").Create(ctx, claim("fits", "500Mi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNamespaceLifecycleAdmission(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	cs := c.Client

	_, err := cs.CoreV1().ConfigMaps("nowhere").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `namespaces "nowhere" not found` {
		t.Fatalf("create in a missing namespace: %v", err)
	}

	createNamespace(t, cs, "doomed", nil)
	// No namespace controller runs here, so the "kubernetes" finalizer keeps it Terminating.
	if err := cs.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ConfigMaps("doomed").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || err.Error() != `configmaps "x" is forbidden: unable to create new content in namespace doomed because it is being terminated` ||
		!apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		t.Fatalf("create in a terminating namespace: %v", err)
	}

	for _, name := range []string{"default", "kube-system", "kube-public"} {
		err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		if !apierrors.IsForbidden(err) || err.Error() != fmt.Sprintf(`namespaces "%s" is forbidden: this namespace may not be deleted`, name) {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
}

// TestAdmissionWithKubectl shows the denials as a kubectl user sees them.
func TestAdmissionWithKubectl(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatal("kubectl is required: ", err)
	}
	c := apitest.Start(t, apitest.Options{})
	cache := t.TempDir()
	kubectl := func(stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.Kubecfg, "--cache-dir", cache}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustKubectl := func(stdin string, args ...string) string {
		t.Helper()
		out, err := kubectl(stdin, args...)
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return out
	}
	mustKubectl("", "create", "namespace", "secure")
	mustKubectl("", "label", "namespace", "secure", "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")

	pod := `apiVersion: v1
kind: Pod
metadata: {name: x}
spec:
  containers: [{name: c, image: busybox}]
`
	out, err := kubectl(pod, "apply", "-n", "secure", "-f", "-")
	want := `Error from server (Forbidden): error when creating "STDIN": pods "x" is forbidden: violates PodSecurity "restricted:latest": ` + restrictedViolations
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("kubectl apply of a violating pod: %v\n%s\nwant %s", err, out, want)
	}

	deploy := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
`
	out = mustKubectl(deploy, "apply", "-n", "secure", "-f", "-")
	if want := `Warning: would violate PodSecurity "restricted:latest": ` + restrictedViolations; !strings.Contains(out, want) {
		t.Fatalf("kubectl apply of a violating deployment:\n%s\nwant %s", out, want)
	}

	mustKubectl("", "create", "namespace", "small")
	mustKubectl("", "create", "quota", "two", "-n", "small", "--hard=pods=2,count/configmaps=5")
	// The quota's status is the resourcequota controller's to set; none runs here.
	mustKubectl("", "patch", "quota", "two", "-n", "small", "--subresource=status", "--type=merge",
		"-p", `{"status":{"hard":{"pods":"2","count/configmaps":"5"},"used":{"pods":"0","count/configmaps":"0"}}}`)
	mustKubectl("", "run", "a", "-n", "small", "--image=busybox")
	mustKubectl("", "run", "b", "-n", "small", "--image=busybox")
	out, err = kubectl("", "run", "c", "-n", "small", "--image=busybox")
	want = `Error from server (Forbidden): pods "c" is forbidden: exceeded quota: two, requested: pods=1, used: pods=2, limited: pods=2`
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("kubectl run over quota: %v\n%s\nwant %s", err, out, want)
	}
	out = mustKubectl("", "get", "quota", "-n", "small")
	if !strings.Contains(out, "REQUEST") || !strings.Contains(out, "count/configmaps: 0/5, pods: 2/2") {
		t.Fatalf("kubectl get quota:\n%s", out)
	}
	out = mustKubectl("", "describe", "quota", "two", "-n", "small")
	if !regexp.MustCompile(`pods\s+2\s+2`).MatchString(out) {
		t.Fatalf("kubectl describe quota:\n%s", out)
	}
	t.Logf("kubectl get/describe quota:\n%s", out)
}
