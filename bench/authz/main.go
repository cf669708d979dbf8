// Command authz measures what authorization costs a request: two control planes run in this
// process, one with --authorization-mode=Node,RBAC (the default) and one with AlwaysAllow,
// each holding the same 1,000 Roles and 1,000 RoleBindings (and the default policy). A user outside
// system:masters, bound like every other user, GETs one ConfigMap from each in turn, in
// interleaved blocks so that both see the same machine load; the figure is the ratio of the
// median and trimmed mean latencies, RBAC over AlwaysAllow (goal: at most 1.10).
//
// Admission runs in both planes (it has no switch); a GET passes none of it, so a second
// figure times pod creates by the same user into a namespace where every admission plugin
// has work: a PodSecurity enforce and warn level, a LimitRange with defaults and a
// ResourceQuota that each create is charged to.
package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/internal/pki"
	"github.com/nanokube/nanokube/internal/server"
)

type config struct {
	objects    int // roles, and as many role bindings
	namespaces int
	requests   int // per mode
	block      int
	creates    int // per mode
}

func main() {
	var cfg config
	flag.IntVar(&cfg.objects, "objects", 1000, "Roles, and as many RoleBindings, in each control plane")
	flag.IntVar(&cfg.namespaces, "namespaces", 100, "namespaces the roles and bindings are spread over")
	flag.IntVar(&cfg.requests, "requests", 20000, "GETs measured per authorization mode")
	flag.IntVar(&cfg.block, "block", 200, "GETs (and creates) per mode before switching to the other")
	flag.IntVar(&cfg.creates, "creates", 2000, "pod creates through admission measured per authorization mode")
	flag.Parse()
	if cfg.objects <= 0 || cfg.namespaces <= 0 || cfg.requests <= 0 || cfg.block <= 0 || cfg.creates <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -objects, -namespaces, -requests, -block and -creates must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// plane is one running control plane and the bench user's client of it.
type plane struct {
	mode  string
	admin kubernetes.Interface
	user  kubernetes.Interface
	lat   []time.Duration
}

func run(ctx context.Context, cfg config) error {
	dir, err := os.MkdirTemp("", "nanokube-bench-authz-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	var planes []*plane
	for _, mode := range []string{"Node,RBAC", "AlwaysAllow"} {
		p, err := start(ctx, &wg, filepath.Join(dir, strings.ReplaceAll(mode, ",", "-")), mode)
		if err != nil {
			return fmt.Errorf("%s control plane: %w", mode, err)
		}
		begin := time.Now()
		if err := populate(ctx, p.admin, cfg); err != nil {
			return fmt.Errorf("%s: populate: %w", mode, err)
		}
		if err := populateAdmission(ctx, p.admin, cfg.creates); err != nil {
			return fmt.Errorf("%s: populate the admission namespace: %w", mode, err)
		}
		fmt.Printf("%-12s %d roles and %d role bindings in %d namespaces written in %v\n", mode, cfg.objects, cfg.objects, cfg.namespaces, time.Since(begin).Round(time.Millisecond))
		planes = append(planes, p)
	}
	// Warm up: connections, caches, and the RBAC index over the final policy.
	for _, p := range planes {
		if err := waitAllowed(ctx, p); err != nil {
			return fmt.Errorf("%s: %w", p.mode, err)
		}
	}
	for done := 0; done < cfg.requests; done += cfg.block {
		for _, p := range planes {
			for range min(cfg.block, cfg.requests-done) {
				t0 := time.Now()
				if _, err := p.user.CoreV1().ConfigMaps("bench-0").Get(ctx, "target", metav1.GetOptions{}); err != nil {
					return fmt.Errorf("%s GET: %w", p.mode, err)
				}
				p.lat = append(p.lat, time.Since(t0))
			}
		}
	}
	mean := func(d []time.Duration) time.Duration {
		var s time.Duration
		for _, x := range d {
			s += x
		}
		return s / time.Duration(len(d))
	}
	pct := func(d []time.Duration, q float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[int(q*float64(len(s)-1))]
	}
	for _, p := range planes {
		fmt.Printf("%-12s GET configmap as a bound user: mean %v  p50 %v  p99 %v  (%d requests)\n", p.mode,
			mean(p.lat).Round(time.Microsecond), pct(p.lat, 0.5).Round(time.Microsecond), pct(p.lat, 0.99).Round(time.Microsecond), len(p.lat))
	}
	// The trimmed mean leaves out the slowest 1%: on a shared machine those are scheduling
	// stalls of either process, not authorization.
	trimmed := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return mean(s[:len(s)*99/100+1])
	}
	r, a := planes[0].lat, planes[1].lat
	fmt.Printf("RBAC / AlwaysAllow latency ratio: p50 %.3f  trimmed mean %.3f  mean %.3f  (goal <= 1.10)\n",
		float64(pct(r, 0.5))/float64(pct(a, 0.5)), float64(trimmed(r))/float64(trimmed(a)), float64(mean(r))/float64(mean(a)))

	for _, p := range planes {
		p.lat = p.lat[:0]
	}
	for done := 0; done < cfg.creates; done += cfg.block {
		for _, p := range planes {
			for i := range min(cfg.block, cfg.creates-done) {
				t0 := time.Now()
				if _, err := p.user.CoreV1().Pods(admitNamespace).Create(ctx, admitPod(done+i), metav1.CreateOptions{}); err != nil {
					return fmt.Errorf("%s create: %w", p.mode, err)
				}
				p.lat = append(p.lat, time.Since(t0))
			}
		}
	}
	for _, p := range planes {
		fmt.Printf("%-12s create pod through admission: mean %v  p50 %v  p99 %v  (%d requests)\n", p.mode,
			mean(p.lat).Round(time.Microsecond), pct(p.lat, 0.5).Round(time.Microsecond), pct(p.lat, 0.99).Round(time.Microsecond), len(p.lat))
	}
	r, a = planes[0].lat, planes[1].lat
	fmt.Printf("RBAC / AlwaysAllow create ratio: p50 %.3f  trimmed mean %.3f  mean %.3f\n",
		float64(pct(r, 0.5))/float64(pct(a, 0.5)), float64(trimmed(r))/float64(trimmed(a)), float64(mean(r))/float64(mean(a)))
	return nil
}

// admitNamespace is where the create figure is measured: every admission plugin has work.
const admitNamespace = "bench-admit"

// admitPod passes the baseline enforce level and warns under restricted; the LimitRange
// fills in its resources.
func admitPod(i int) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

// populateAdmission makes the create figure's namespace, its policy objects, and lets
// user-0 create pods there.
func populateAdmission(ctx context.Context, c kubernetes.Interface, creates int) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: admitNamespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted"}}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "defaults"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
		Default:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
		DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}}
	if _, err := c.CoreV1().LimitRanges(admitNamespace).Create(ctx, lr, metav1.CreateOptions{}); err != nil {
		return err
	}
	hard := corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(int64(creates+1), resource.DecimalSI),
		corev1.ResourceRequestsCPU: resource.MustParse("1000"), corev1.ResourceLimitsMemory: resource.MustParse("1Ti")}
	q, err := c.CoreV1().ResourceQuotas(admitNamespace).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "quota"},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	// No controller manager runs here: set the status its first sync would.
	q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0"),
		corev1.ResourceRequestsCPU: resource.MustParse("0"), corev1.ResourceLimitsMemory: resource.MustParse("0")}}
	if _, err := c.CoreV1().ResourceQuotas(admitNamespace).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		return err
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "creator"}, Rules: []rbacv1.PolicyRule{
		{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
	if _, err := c.RbacV1().Roles(admitNamespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "creator"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "user-0"}}}
	_, err = c.RbacV1().RoleBindings(admitNamespace).Create(ctx, rb, metav1.CreateOptions{})
	return err
}

func start(ctx context.Context, wg *sync.WaitGroup, dir, mode string) (*plane, error) {
	ready := make(chan server.Ready, 1)
	errc := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- server.Run(ctx, server.Config{DataDir: dir, BindAddress: "127.0.0.1", AdvertiseAddress: "127.0.0.1",
			UnsafeNoFsync: true, DisableAgent: true, DisableScheduler: true, DisableControllerManager: true,
			AuthorizationMode: mode, Log: log}, func(r server.Ready) { ready <- r })
	}()
	var r server.Ready
	select {
	case r = <-ready:
	case err := <-errc:
		return nil, err
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("not ready within 60s")
	}
	adminCfg, err := clientcmd.BuildConfigFromFlags("", r.Kubeconfig)
	if err != nil {
		return nil, err
	}
	adminCfg.QPS, adminCfg.Burst = -1, 0
	adminCfg.ContentType = "application/vnd.kubernetes.protobuf"
	userCfg, err := userConfig(dir, adminCfg, "user-0")
	if err != nil {
		return nil, err
	}
	userCfg.WarningHandler = rest.NoWarnings{} // the create figure's pods draw PodSecurity warnings
	return &plane{mode: mode, admin: kubernetes.NewForConfigOrDie(adminCfg), user: kubernetes.NewForConfigOrDie(userCfg)}, nil
}

// userConfig is adminCfg with a client certificate of the cluster CA for user cn.
func userConfig(dir string, adminCfg *rest.Config, cn string) (*rest.Config, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "pki", "ca.key"))
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the CA key cannot sign")
	}
	cert, key, err := pki.IssueClientCert(&pki.CA{Cert: caCert, Key: signer, CertPEM: certPEM}, cn, nil, time.Hour)
	if err != nil {
		return nil, err
	}
	cfg := rest.AnonymousClientConfig(adminCfg)
	cfg.CertData, cfg.KeyData = cert, key
	return cfg, nil
}

// populate writes the namespaces, objects.Roles and as many RoleBindings (user-i is bound to
// role-i in namespace bench-(i mod namespaces)), and the ConfigMap the user reads.
func populate(ctx context.Context, c kubernetes.Interface, cfg config) error {
	for n := range cfg.namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d", n)}}
		if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if _, err := c.CoreV1().ConfigMaps("bench-0").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target"},
		Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	jobs := make(chan int)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ns := fmt.Sprintf("bench-%d", i%cfg.namespaces)
				role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("role-%d", i)}, Rules: []rbacv1.PolicyRule{
					{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"configmaps", "pods"}},
					{Verbs: []string{"get"}, APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets"}},
				}}
				if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
					errc <- err
					return
				}
				rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("binding-%d", i)},
					RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
					Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: fmt.Sprintf("user-%d", i)}}}
				if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range cfg.objects {
		select {
		case jobs <- i:
		case err = <-errc:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

// waitAllowed waits until the user's first GET succeeds: the authorizer follows the writes
// through the watch caches.
func waitAllowed(ctx context.Context, p *plane) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := p.user.CoreV1().ConfigMaps("bench-0").Get(ctx, "target", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("user-0 still cannot read its ConfigMap: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
