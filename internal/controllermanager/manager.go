package controllermanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/nanokube/nanokube/internal/apiserver/satoken"
	"github.com/nanokube/nanokube/internal/pki"
)

// ErrLeaderElectionLost is what Run returns when the manager lost its Lease. A standalone
// kube-controller-manager exits then (and is restarted); an assembly may campaign again
// with a new Manager.
var ErrLeaderElectionLost = errors.New("controller manager: leader election lost")

// Config configures a controller manager.
type Config struct {
	// Kubeconfig is a kubeconfig file; RESTConfig, when set, is used instead.
	Kubeconfig string
	RESTConfig *rest.Config
	// LeaderElect makes the manager act only while it holds the Lease
	// LeaseNamespace/LeaseName (default kube-system/kube-controller-manager).
	LeaderElect    bool
	LeaseNamespace string
	LeaseName      string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election (defaults 15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Identity names this manager in the Lease (default hostname_uuid).
	Identity string
	// Controllers selects controllers like kube-controller-manager's --controllers: "*" is every
	// controller that is on by default, "name" turns one on, "-name" turns one off. Empty: "*".
	Controllers []string
	// Workers is the number of concurrent syncs per controller (default 5).
	Workers int
	// ClusterCIDR, NodeCIDRMaskSize and NodeMonitorGracePeriod are passed to the controllers
	// through Context.
	ClusterCIDR            netip.Prefix
	NodeCIDRMaskSize       int
	NodeMonitorGracePeriod time.Duration
	// CronJobClockSpeed: see Context.
	CronJobClockSpeed float64
	// HorizontalPodAutoscalerSyncPeriod: see Context.
	HorizontalPodAutoscalerSyncPeriod time.Duration
	// ClusterSigningCertFile and ClusterSigningKeyFile are the CA the csrsigning controller
	// issues certificates with (empty: no signing); ClusterSigningDuration caps their life.
	ClusterSigningCertFile, ClusterSigningKeyFile string
	ClusterSigningDuration                        time.Duration
	// RootCAFile is kube-controller-manager's --root-ca-file: the CA bundle published in
	// every namespace as the kube-root-ca.crt ConfigMap (empty: none).
	RootCAFile string
	// ServiceAccountPrivateKeyFile is kube-controller-manager's
	// --service-account-private-key-file: the PEM key (RSA or ECDSA) the tokens of
	// service-account token Secrets are signed with, the one the API server signs with
	// (empty: the serviceaccount-token-controller does not run).
	ServiceAccountPrivateKeyFile string
	// ResyncPeriod of the shared informers (default 0: no periodic resync).
	ResyncPeriod time.Duration
	Log          *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.RESTConfig == nil && c.Kubeconfig == "" {
		errs = append(errs, errors.New("--kubeconfig is required"))
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Workers <= 0 {
		c.Workers = 5
	}
	if len(c.Controllers) == 0 {
		c.Controllers = []string{"*"}
	}
	for _, name := range c.Controllers {
		n := strings.TrimPrefix(name, "-")
		if n == "*" {
			continue
		}
		if _, ok := constructors[canonicalName(n)]; !ok {
			errs = append(errs, fmt.Errorf("--controllers: unknown controller %q (known: %s)", n, strings.Join(KnownControllers(), ", ")))
		}
	}
	if c.LeaseNamespace == "" {
		c.LeaseNamespace = "kube-system"
	}
	if c.LeaseName == "" {
		c.LeaseName = "kube-controller-manager"
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = 2 * time.Second
	}
	if c.NodeCIDRMaskSize == 0 {
		c.NodeCIDRMaskSize = 24
	}
	if c.NodeMonitorGracePeriod == 0 {
		c.NodeMonitorGracePeriod = 40 * time.Second
	}
	return errors.Join(errs...)
}

// canonicalName maps an old short name ("replicaset") to its current one
// ("replicaset-controller").
func canonicalName(name string) string {
	if c, ok := aliases[name]; ok {
		return c
	}
	return name
}

// Enabled reports whether the controller name (or alias) is selected by the --controllers
// list: an explicit "name" or "-name" wins over "*".
func (c *Config) Enabled(name string) bool {
	name = canonicalName(name)
	on := false
	for _, s := range c.Controllers {
		switch {
		case canonicalName(s) == name:
			return true
		case strings.HasPrefix(s, "-") && canonicalName(s[1:]) == name:
			return false
		case s == "*":
			on = !disabledByDefault[name]
		}
	}
	return on
}

// Manager runs the selected controllers.
type Manager struct {
	cfg    Config
	rest   *rest.Config
	client kubernetes.Interface
	meta   metadata.Interface
	ready  chan struct{}
	once   sync.Once
}

// New checks cfg and builds the clients; nothing talks to the API server before Run.
func New(cfg Config) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rc := cfg.RESTConfig
	if rc == nil {
		var err error
		if rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		rc.ContentType = "application/vnd.kubernetes.protobuf"
		rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		if rc.QPS == 0 {
			rc.QPS, rc.Burst = 200, 400
		}
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "nanokube-controller-manager"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	// The metadata client asks for as=PartialObjectMetadata(List);g=meta.k8s.io;v=v1.
	meta, err := metadata.NewForConfig(metadata.ConfigFor(rc))
	if err != nil {
		return nil, err
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = host + "_" + string(uuid.NewUUID())
	}
	return &Manager{cfg: cfg, rest: rc, client: client, meta: meta, ready: make(chan struct{})}, nil
}

// Ready is closed once this manager leads (or leader election is off) and every controller's
// informers have synced and its workers are running.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Run runs the controllers until ctx is done (nil) or leadership is lost (an error).
func (m *Manager) Run(ctx context.Context) error {
	log := m.cfg.Log
	if !m.cfg.LeaderElect {
		return m.runControllers(ctx)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1ObjectMeta(m.cfg.LeaseNamespace, m.cfg.LeaseName),
		Client:     m.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: m.cfg.Identity},
	}
	// le.Run cancels the context it gave OnStartedLeading when it returns but does not wait
	// for the callback (a goroutine): running and done do.
	var mu sync.Mutex
	running, finished := false, false
	done := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   m.cfg.LeaseDuration,
		RenewDeadline:   m.cfg.RenewDeadline,
		RetryPeriod:     m.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            m.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				mu.Lock()
				if finished {
					mu.Unlock()
					return
				}
				running = true
				mu.Unlock()
				log.Info("became leader", "identity", m.cfg.Identity)
				done <- m.runControllers(ctx)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != m.cfg.Identity {
					log.Info("another controller manager leads", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx)
	mu.Lock()
	finished = true
	wasRunning := running
	mu.Unlock()
	if wasRunning {
		if err := <-done; err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return ErrLeaderElectionLost
}

func (m *Manager) runControllers(ctx context.Context) error {
	log := m.cfg.Log
	factory := informers.NewSharedInformerFactory(m.client, m.cfg.ResyncPeriod)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	cc := Context{
		Client:    m.client,
		Metadata:  m.meta,
		Informers: factory,
		Recorder: func(component string) record.EventRecorder {
			return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
		},
		Log:                               log,
		ClusterCIDR:                       m.cfg.ClusterCIDR,
		NodeCIDRMaskSize:                  m.cfg.NodeCIDRMaskSize,
		NodeMonitorGracePeriod:            m.cfg.NodeMonitorGracePeriod,
		CronJobClockSpeed:                 m.cfg.CronJobClockSpeed,
		RESTConfig:                        m.rest,
		HorizontalPodAutoscalerSyncPeriod: m.cfg.HorizontalPodAutoscalerSyncPeriod,
		SigningDuration:                   m.cfg.ClusterSigningDuration,
	}
	if m.cfg.ClusterSigningCertFile != "" {
		ca, err := pki.LoadCA(m.cfg.ClusterSigningCertFile, m.cfg.ClusterSigningKeyFile)
		if err != nil {
			return fmt.Errorf("--cluster-signing-cert-file: %w", err)
		}
		cc.SigningCA = ca
	}
	if m.cfg.RootCAFile != "" {
		ca, err := os.ReadFile(m.cfg.RootCAFile)
		if err != nil {
			return fmt.Errorf("--root-ca-file: %w", err)
		}
		cc.RootCA = ca
	}
	if m.cfg.ServiceAccountPrivateKeyFile != "" {
		key, err := satoken.LoadSigningKey(m.cfg.ServiceAccountPrivateKeyFile)
		if err != nil {
			return fmt.Errorf("--service-account-private-key-file: %w", err)
		}
		// The issuer is never written: legacy tokens always carry satoken.LegacyIssuer.
		signer, err := satoken.NewSigner(satoken.LegacyIssuer, key)
		if err != nil {
			return fmt.Errorf("--service-account-private-key-file: %w", err)
		}
		cc.ServiceAccountTokenSigner = signer
	}
	type running struct {
		name string
		c    Controller
	}
	var ctrls []running
	for _, name := range KnownControllers() {
		if !m.cfg.Enabled(name) {
			continue
		}
		c, err := constructors[name](cc)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		if c == nil { // not applicable with this configuration
			log.Info("controller skipped", "controller", name)
			continue
		}
		ctrls = append(ctrls, running{name, c})
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	var wg sync.WaitGroup
	for _, r := range ctrls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Info("starting controller", "controller", r.name)
			r.c.Run(ctx, m.cfg.Workers)
		}()
	}
	m.once.Do(func() { close(m.ready) })
	wg.Wait()
	return nil
}

// KnownControllers lists every registered controller name, sorted.
func KnownControllers() []string {
	names := make([]string, 0, len(constructors))
	for n := range constructors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultControllers lists the controllers that "*" selects.
func DefaultControllers() []string {
	return slices.DeleteFunc(KnownControllers(), func(n string) bool { return disabledByDefault[n] })
}
