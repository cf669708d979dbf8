// Package server assembles the control plane: embedded (or external) etcd, then the API
// server, each started once what it needs is ready. Later components (scheduler, controller
// manager, node agent) join here, in the same order-and-gate style.
package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/internal/agent"
	"github.com/nanokube/nanokube/internal/apiserver"
	"github.com/nanokube/nanokube/internal/apiserver/registry/builtin"
	"github.com/nanokube/nanokube/internal/apiserver/satoken"
	"github.com/nanokube/nanokube/internal/audit"
	"github.com/nanokube/nanokube/internal/controllermanager"
	"github.com/nanokube/nanokube/internal/datadir"
	"github.com/nanokube/nanokube/internal/dns"
	"github.com/nanokube/nanokube/internal/etcd"
	"github.com/nanokube/nanokube/internal/kubelet"
	"github.com/nanokube/nanokube/internal/pki"
	"github.com/nanokube/nanokube/internal/scheduler"
	"github.com/nanokube/nanokube/internal/storage"
	"github.com/nanokube/nanokube/internal/storage/encryption"
)

// Config configures the control plane.
type Config struct {
	// DataDir holds etcd's data (unless EtcdServers is set), the PKI and the kubeconfigs.
	DataDir string
	// BindAddress and SecurePort are where the API server listens (port 0: any free port).
	BindAddress      string
	SecurePort       int
	AdvertiseAddress string
	// EtcdServers selects an external etcd cluster instead of the embedded member, whose
	// listeners EtcdListenClientURLs and EtcdListenPeerURLs set.
	EtcdServers          []string
	EtcdListenClientURLs []string
	EtcdListenPeerURLs   []string
	// UnsafeNoFsync skips etcd's fsyncs (tests and benchmarks only).
	UnsafeNoFsync bool
	// ServiceClusterIPRange and ServiceNodePortRange are the Service address ranges.
	ServiceClusterIPRange string
	ServiceNodePortRange  string
	// TokenAuthFile is a static token file (token,user,uid,"groups"); empty means
	// DataDir/tokens.csv, created with one admin token if missing.
	TokenAuthFile string
	// ServiceAccountIssuer, ServiceAccountSigningKeyFile, ServiceAccountKeyFiles, APIAudiences,
	// ServiceAccountMaxTokenExpiration and ServiceAccountJWKSURI are kube-apiserver's
	// service-account token flags. Without a signing key file, DataDir/pki/sa.key is used,
	// created if missing.
	ServiceAccountIssuer             string
	ServiceAccountSigningKeyFile     string
	ServiceAccountKeyFiles           []string
	APIAudiences                     []string
	ServiceAccountMaxTokenExpiration time.Duration
	ServiceAccountJWKSURI            string
	// AuthorizationMode is the API server's --authorization-mode: a comma list of Node, RBAC
	// and AlwaysAllow (default Node,RBAC).
	AuthorizationMode string
	// TLSSANs are extra names and IPs for the serving certificate.
	TLSSANs []string
	// CompactionInterval and EventCapacity tune the API server's etcd compaction and watch
	// cache history (zero: the defaults).
	CompactionInterval time.Duration
	EventCapacity      int
	// MetricResolution is how often the API server scrapes kubelets for the resource
	// metrics API, metrics.k8s.io (zero: 15s, metrics-server's default).
	MetricResolution time.Duration
	// ClusterCIDR is the pod network node IPAM cuts per-node pod CIDRs from.
	ClusterCIDR string
	// NodeMonitorGracePeriod is how long a node may be silent before it is marked Unknown
	// and tainted (zero: 40s).
	NodeMonitorGracePeriod time.Duration
	// CronJobClockSpeed speeds up the CronJob controller's clock (tests and demos).
	CronJobClockSpeed float64
	// HorizontalPodAutoscalerSyncPeriod is how often each autoscaler is evaluated (zero: 15s).
	HorizontalPodAutoscalerSyncPeriod time.Duration
	// DisableScheduler and DisableControllerManager leave those components to be run
	// elsewhere (`nanokube scheduler`, `nanokube controller-manager`).
	DisableScheduler         bool
	DisableControllerManager bool
	// DisableAgent runs no node agent on this machine. The cluster DNS still runs, at the
	// address agents join at (see clusterDNSHost).
	DisableAgent bool
	// DisableDNS runs no cluster DNS (`nanokube apiserver`, the API server alone).
	DisableDNS bool
	// NodeName and NodeIP identify this machine's node (defaults: the hostname, and the
	// advertise address or the default route's address).
	NodeName string
	NodeIP   string
	// KubeletAddress is where the node's kubelet API listens (default NodeIP:10250).
	KubeletAddress string
	// PodLogsDir holds container logs (default /var/log/pods).
	PodLogsDir string
	// CgroupRoot is the parent of the pods' QoS cgroups (default /kubepods).
	CgroupRoot string
	// Progress, if set, is told each start step as it completes ("etcd ready"), for a
	// person watching the start.
	Progress func(step string)
	Log      *slog.Logger
	// EncryptionProviderConfig is kube-apiserver's --encryption-provider-config: an
	// EncryptionConfiguration file whose resources are encrypted at rest in etcd.
	EncryptionProviderConfig string
	// AuditPolicyFile and AuditLogPath turn on the audit log (--audit-policy-file,
	// --audit-log-path; "-" is stdout); AuditLogMaxSize (MB) and AuditLogMaxBackup rotate it.
	AuditPolicyFile   string
	AuditLogPath      string
	AuditLogMaxSize   int
	AuditLogMaxBackup int
}

func (c *Config) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if c.SecurePort < 0 || c.SecurePort > 65535 {
		errs = append(errs, fmt.Errorf("--secure-port %d is out of range 0-65535", c.SecurePort))
	}
	if c.BindAddress != "" && net.ParseIP(c.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("--bind-address %q is not an IP address", c.BindAddress))
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.244.0.0/16"
	}
	if _, err := netip.ParsePrefix(c.ClusterCIDR); err != nil {
		errs = append(errs, fmt.Errorf("--cluster-cidr %q: %v", c.ClusterCIDR, err))
	}
	if _, err := apiserver.ParseAuthorizationModes(c.AuthorizationMode); err != nil {
		errs = append(errs, fmt.Errorf("--%w", err))
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return errors.Join(errs...)
}

// Ready describes a running control plane.
type Ready struct {
	URL        string // https://127.0.0.1:6443
	Kubeconfig string // DataDir/admin.kubeconfig
	Token      string // an admin bearer token
	// JoinURL, JoinToken and JoinTokenFile are what `nanokube agent` joins with.
	JoinURL, JoinToken, JoinTokenFile string
}

// Run starts the control plane and blocks until ctx is done. onReady is called once the API
// server answers /readyz.
func Run(ctx context.Context, cfg Config, onReady func(Ready)) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.Log
	warnNodesUnauthorized(cfg)
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	// Refuse what would fail later before anything is written.
	if err := datadir.Check(dir, "server"); err != nil {
		return err
	}
	var encryptionConfig *encryption.Config
	if cfg.EncryptionProviderConfig != "" {
		if encryptionConfig, err = encryption.LoadFile(cfg.EncryptionProviderConfig); err != nil {
			return fmt.Errorf("--encryption-provider-config: %w", err)
		}
	}
	var auditPolicy *audit.Policy
	switch {
	case cfg.AuditPolicyFile != "" && cfg.AuditLogPath == "":
		return fmt.Errorf("--audit-policy-file %s needs --audit-log-path", cfg.AuditPolicyFile)
	case cfg.AuditPolicyFile != "":
		if auditPolicy, err = audit.LoadPolicyFile(cfg.AuditPolicyFile); err != nil {
			return fmt.Errorf("--audit-policy-file: %w", err)
		}
	}
	if err := portFree(cfg.BindAddress, cfg.SecurePort, "--secure-port"); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := datadir.Mark(dir, "server"); err != nil {
		return err
	}
	if cfg.ServiceClusterIPRange == "" {
		cfg.ServiceClusterIPRange = "10.96.0.0/12"
	}
	// Clients reach the API server at its bind and advertise addresses: both belong in the
	// serving certificate.
	sans := append([]string{}, cfg.TLSSANs...)
	// Agents on other machines reach the API server at this node's address.
	node, nodeErr := resolveNode(cfg)
	if nodeErr == nil {
		sans = append(sans, node.ip)
	}
	for _, a := range []string{cfg.BindAddress, cfg.AdvertiseAddress} {
		if a != "" && a != "0.0.0.0" && a != "::" {
			sans = append(sans, a)
		}
	}
	bundle, err := pki.Ensure(filepath.Join(dir, "pki"), pki.Options{ServiceCIDR: cfg.ServiceClusterIPRange, ExtraSANs: sans})
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	tokenFile := cfg.TokenAuthFile
	var token string
	if tokenFile == "" {
		tokenFile = filepath.Join(dir, "tokens.csv")
		if token, err = pki.EnsureTokenFile(tokenFile); err != nil {
			return fmt.Errorf("token file: %w", err)
		}
	}
	tokens, err := pki.LoadTokenFile(tokenFile)
	if err != nil {
		return err
	}

	progress := func(string) {}
	if cfg.Progress != nil {
		progress = cfg.Progress
	}
	log.Info("starting etcd", "external", len(cfg.EtcdServers) > 0)
	store, err := etcd.Start(ctx, etcd.Config{DataDir: dir, Servers: cfg.EtcdServers,
		ListenClientURLs: cfg.EtcdListenClientURLs, ListenPeerURLs: cfg.EtcdListenPeerURLs, UnsafeNoFsync: cfg.UnsafeNoFsync,
		Log: log.With("component", "etcd")})
	if err != nil {
		return err
	}
	defer store.Close()

	// The API server authenticates to kubelets with a certificate of the cluster CA, which
	// kubelets trust for clients.
	kubeletClientPEM, kubeletClientKey, err := pki.IssueClientCert(bundle.CA, "kube-apiserver-kubelet-client", []string{"system:masters"}, 365*24*time.Hour)
	if err != nil {
		return err
	}
	kubeletClient, err := tls.X509KeyPair(kubeletClientPEM, kubeletClientKey)
	if err != nil {
		return err
	}

	saKey, saKeys, err := serviceAccountKeys(cfg, bundle.Dir)
	if err != nil {
		return err
	}
	var auditLog *audit.Log
	if auditPolicy != nil {
		auditLog, err = audit.OpenLog(audit.LogOptions{Path: cfg.AuditLogPath, MaxSizeMB: cfg.AuditLogMaxSize, MaxBackups: cfg.AuditLogMaxBackup})
		if err != nil {
			return fmt.Errorf("--audit-log-path: %w", err)
		}
		defer auditLog.Close()
	}

	codec := apiserver.StorageCodec()
	api, err := apiserver.New(apiserver.Config{
		KubeletClientCert: &kubeletClient,
		BindAddress:       cfg.BindAddress, SecurePort: cfg.SecurePort, AdvertiseAddress: cfg.AdvertiseAddress,
		ServingCert: bundle.Serving, ClientCAs: bundle.CAPool, Tokens: tokens,
		Store:     storage.New(store.Client, codec, codec),
		Resources: builtin.Resources(), ServiceClusterIPRange: cfg.ServiceClusterIPRange,
		ServiceNodePortRange: cfg.ServiceNodePortRange, Log: log.With("component", "apiserver"),
		CompactionInterval: cfg.CompactionInterval, EventCapacity: cfg.EventCapacity,
		MetricResolution:     cfg.MetricResolution,
		Authorization:        cfg.AuthorizationMode,
		ServiceAccountIssuer: cfg.ServiceAccountIssuer, ServiceAccountSigningKey: saKey, ServiceAccountKeys: saKeys, ServiceAccountJWKSURI: cfg.ServiceAccountJWKSURI,
		APIAudiences: cfg.APIAudiences, ServiceAccountMaxTokenExpiration: cfg.ServiceAccountMaxTokenExpiration,
		Encryption: encryptionOrNil(encryptionConfig), AuditPolicy: auditPolicy, AuditLog: auditWriterOrNil(auditLog),
	})
	if err != nil {
		return err
	}
	// Components run until ctx is done or one of them fails; either way all are stopped and
	// waited for before etcd closes.
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	start := func(name string, run func(context.Context) error) {
		log.Info("starting " + name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	stop := func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			log.Warn("components did not stop within 15s")
		}
	}
	defer stop()

	progress("etcd ready")
	start("API server", api.Run)
	select {
	case <-api.Ready():
		progress("API server ready")
	case err := <-errc:
		return err
	case err := <-store.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}

	host := "127.0.0.1"
	if cfg.BindAddress != "" && cfg.BindAddress != "0.0.0.0" && cfg.BindAddress != "::" {
		host = cfg.BindAddress
	}
	port := api.Addr().(*net.TCPAddr).Port
	url := "https://" + net.JoinHostPort(host, strconv.Itoa(port))
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := pki.WriteKubeconfig(kubeconfig, url, bundle.CA.CertPEM, bundle.Admin); err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	adminConfig, err := inProcessConfig(kubeconfig, 100, 200)
	if err != nil {
		return err
	}
	adminClient := kubernetes.NewForConfigOrDie(adminConfig)
	joinToken, err := ensureJoinToken(ctx, adminClient, dir, bundle.CA)
	if err != nil {
		return err
	}
	nodeName := ""
	if !cfg.DisableAgent && nodeErr == nil {
		nodeName = node.name
	}
	identities, err := writeComponentKubeconfigs(dir, url, bundle, nodeName)
	if err != nil {
		return err
	}
	if err := startControllers(cfg, identities, bundle, start); err != nil {
		return err
	}
	if !cfg.DisableControllerManager || !cfg.DisableScheduler {
		progress("controller manager and scheduler started")
	}
	if nodeErr != nil && !cfg.DisableAgent {
		return nodeErr
	}
	dnsIP, err := clusterDNSIP(cfg.ServiceClusterIPRange)
	if err != nil {
		return err
	}
	// Every node's service proxy carries queries to the kube-dns ClusterIP to the cluster
	// DNS here: on this machine's node with the agent, else where agents join.
	if dnsHost, why := clusterDNSHost(cfg, node, nodeErr); dnsHost != "" {
		if err := startDNS(cfg, identities.dns, adminClient, dnsHost, dnsIP, start); err != nil {
			return err
		}
		progress("cluster DNS started")
	} else if why != "" {
		log.Info("no cluster DNS: " + why)
	}
	if !cfg.DisableAgent {
		ready := make(chan struct{})
		if err := startAgent(cfg, dir, identities, bundle, node, dnsIP, start, ready, progress); err != nil {
			return err
		}
		start("control-plane node label", func(ctx context.Context) error {
			return labelControlPlaneNode(ctx, adminClient, node.name)
		})
		select {
		case <-ready:
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if onReady != nil {
		joinHost := cfg.AdvertiseAddress
		if joinHost == "" && nodeErr == nil {
			joinHost = node.ip
		}
		if joinHost == "" {
			joinHost = host
		}
		onReady(Ready{URL: url, Kubeconfig: kubeconfig, Token: token, JoinToken: joinToken,
			JoinTokenFile: filepath.Join(dir, "node-token"), JoinURL: "https://" + net.JoinHostPort(joinHost, strconv.Itoa(port))})
	}

	select {
	case err := <-errc:
		return err
	case err := <-store.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serviceAccountKeys loads the key service-account tokens are signed with and the further
// keys they are verified with.
func serviceAccountKeys(cfg Config, pkiDir string) (crypto.Signer, []crypto.PublicKey, error) {
	file := serviceAccountSigningKeyFile(cfg, pkiDir)
	var key crypto.Signer
	var err error
	if cfg.ServiceAccountSigningKeyFile == "" {
		key, err = satoken.EnsureSigningKey(file)
	} else {
		key, err = satoken.LoadSigningKey(file)
	}
	if err != nil {
		return nil, nil, err
	}
	keys, err := satoken.LoadPublicKeys(cfg.ServiceAccountKeyFiles)
	if err != nil {
		return nil, nil, err
	}
	return key, keys, nil
}

// serviceAccountSigningKeyFile is the key the API server signs service-account tokens with;
// the controller manager signs the legacy tokens of token Secrets with the same one.
func serviceAccountSigningKeyFile(cfg Config, pkiDir string) string {
	if cfg.ServiceAccountSigningKeyFile != "" {
		return cfg.ServiceAccountSigningKeyFile
	}
	return filepath.Join(pkiDir, "sa.key")
}

// startAgent starts this machine's node agent (runtime and kubelet) with a kubelet serving
// certificate from the cluster CA, and closes ready once the kubelet is ready.
func startAgent(cfg Config, dir string, identities componentKubeconfigs, bundle *pki.Bundle, node nodeIdentity, dnsIP string,
	start func(string, func(context.Context) error), ready chan struct{}, progress func(string)) error {
	restConfig, err := inProcessConfig(identities.kubelet, 500, 1000)
	if err != nil {
		return err
	}
	proxyConfig, err := inProcessConfig(identities.proxy, 500, 1000)
	if err != nil {
		return err
	}
	sans := []string{node.name, "localhost", "127.0.0.1", node.ip}
	certPEM, keyPEM, err := pki.IssueServingCert(bundle.CA, node.name, sans, 365*24*time.Hour)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	acfg := agent.Config{
		DataDir: filepath.Join(dir, "agent"), RESTConfig: restConfig, ProxyRESTConfig: proxyConfig, NodeName: node.name, NodeIP: node.ip,
		ClusterDNS: []string{dnsIP}, ClusterCIDR: cfg.ClusterCIDR,
		KubeletAddress: cfg.KubeletAddress, KubeletCert: &cert, ClientCA: bundle.CAPool, PodLogsDir: cfg.PodLogsDir, CgroupRoot: cfg.CgroupRoot,
		Progress: progress,
		Log:      cfg.Log, // the agent tags each of its parts' logs
	}
	var once sync.Once
	start("node agent", func(ctx context.Context) error {
		return agent.Run(ctx, acfg, func(*kubelet.Kubelet) { once.Do(func() { close(ready) }) })
	})
	return nil
}

// nodeIdentity is this machine's node name and address.
type nodeIdentity struct{ name, ip string }

// resolveNode names this machine's node: --node-name or the hostname, and --node-ip, the
// advertise address or the default route's address.
func resolveNode(cfg Config) (nodeIdentity, error) {
	n := nodeIdentity{name: cfg.NodeName, ip: cfg.NodeIP}
	if n.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return n, err
		}
		n.name = strings.ToLower(h)
	}
	if n.ip == "" {
		n.ip = cfg.AdvertiseAddress
	}
	if n.ip == "" {
		ip, err := kubelet.DefaultNodeIP()
		if err != nil {
			return n, fmt.Errorf("no --node-ip and no default route to take one from: %w", err)
		}
		n.ip = ip
	}
	return n, nil
}

// inProcessConfig is a client configuration for a component of this process.
func inProcessConfig(kubeconfig string, qps float32, burst int) (*rest.Config, error) {
	c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.QPS, c.Burst = qps, burst
	return c, nil
}

// startDNS runs the cluster DNS server on host, port 53, as the user system:kube-dns (its
// kubeconfig), and publishes it with the server's admin client as the kube-dns Service at
// dnsIP once it serves.
//
// With the agent, a DNS server that cannot listen ends the server, as it always has: the
// node's pods would resolve nothing. Without one it is a warning: the DNS is an addition to
// a control plane that starts without it (port 53 may belong to the machine's own resolver,
// or to another server started on the same address), so the control plane keeps running.
func startDNS(cfg Config, kubeconfig string, admin kubernetes.Interface, host, dnsIP string, start func(string, func(context.Context) error)) error {
	restConfig, err := inProcessConfig(kubeconfig, 100, 200)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	srv, err := dns.New(dns.Config{Address: hostPort(host, 53), Log: cfg.Log.With("component", "dns")}, client)
	if err != nil {
		return err
	}
	start("cluster DNS", func(ctx context.Context) error {
		err := srv.Run(ctx)
		select {
		case <-srv.Ready():
		default:
			if err != nil && cfg.DisableAgent {
				cfg.Log.Warn("no cluster DNS: pods on agents will not resolve cluster names until it can listen and the server restarts",
					"address", hostPort(host, 53), "err", err)
				return nil
			}
		}
		return err
	})
	start("kube-dns service", func(ctx context.Context) error {
		select {
		case <-srv.Ready():
		case <-ctx.Done():
			return nil
		}
		return wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
			if err := ensureKubeDNS(ctx, admin, dnsIP, host); err != nil {
				cfg.Log.Warn("publishing cluster DNS", "err", err)
				return false, nil
			}
			return true, nil
		})
	})
	return nil
}

// startControllers starts the controller manager and the scheduler. They reach the API
// server as any client would: through client-go over HTTPS, each as its own user
// (system:kube-controller-manager, system:kube-scheduler).
func startControllers(cfg Config, identities componentKubeconfigs, bundle *pki.Bundle, start func(string, func(context.Context) error)) error {
	// In-process components talk to their own API server: client-side rate limits only slow
	// them (the scheduler makes a binding and an event per pod).
	restConfig, err := inProcessConfig(identities.controllerManager, 5000, 10000)
	if err != nil {
		return err
	}
	schedulerConfig, err := inProcessConfig(identities.scheduler, 5000, 10000)
	if err != nil {
		return err
	}
	if !cfg.DisableControllerManager {
		cidr, _ := netip.ParsePrefix(cfg.ClusterCIDR)
		cmCfg := controllermanager.Config{RESTConfig: restConfig, LeaderElect: true,
			ClusterCIDR: cidr, NodeMonitorGracePeriod: cfg.NodeMonitorGracePeriod,
			CronJobClockSpeed:                 cfg.CronJobClockSpeed,
			HorizontalPodAutoscalerSyncPeriod: cfg.HorizontalPodAutoscalerSyncPeriod,
			ClusterSigningCertFile:            bundle.CACertFile, ClusterSigningKeyFile: bundle.CAKeyFile,
			RootCAFile:                   bundle.CACertFile,
			ServiceAccountPrivateKeyFile: serviceAccountSigningKeyFile(cfg, bundle.Dir),
			Log:                          cfg.Log.With("component", "controller-manager")}
		if _, err := controllermanager.New(cmCfg); err != nil { // a bad configuration fails the start
			return err
		}
		// A lost Lease ends a standalone controller manager; in this process it campaigns
		// again, so one slow etcd moment does not take the whole server down.
		start("controller manager", func(ctx context.Context) error {
			for {
				cc := cmCfg
				cc.RESTConfig = rest.CopyConfig(restConfig)
				cm, err := controllermanager.New(cc)
				if err != nil {
					return err
				}
				if err := cm.Run(ctx); !errors.Is(err, controllermanager.ErrLeaderElectionLost) || ctx.Err() != nil {
					return err
				}
				cfg.Log.Warn("the controller manager lost its lease; campaigning again")
			}
		})
	}
	if !cfg.DisableScheduler {
		start("scheduler", func(ctx context.Context) error {
			for {
				client, err := kubernetes.NewForConfig(rest.CopyConfig(schedulerConfig))
				if err != nil {
					return err
				}
				sched, err := scheduler.New(scheduler.Config{LeaderElect: true, Log: cfg.Log.With("component", "scheduler")}, client)
				if err != nil {
					return err
				}
				if err := sched.Run(ctx); !errors.Is(err, scheduler.ErrLeadershipLost) || ctx.Err() != nil {
					return err
				}
				cfg.Log.Warn("the scheduler lost its lease; campaigning again")
			}
		})
	}
	return nil
}

// portFree fails with what to do when host:port cannot be listened on, so that a port in
// use is reported before anything is started or written.
func portFree(host string, port int, flag string) error {
	if port == 0 {
		return nil
	}
	if host == "" {
		host = "0.0.0.0"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			err = errno
		}
		return fmt.Errorf("cannot listen on %s port %d (%v): stop what uses it (another nanokube or kube-apiserver?) or choose another %s",
			host, port, err, flag)
	}
	return l.Close()
}

// encryptionOrNil and auditWriterOrNil keep a nil pointer from becoming a non-nil interface.
func encryptionOrNil(c *encryption.Config) apiserver.Encryption {
	if c == nil {
		return nil
	}
	return c
}

func auditWriterOrNil(l *audit.Log) apiserver.AuditWriter {
	if l == nil {
		return nil
	}
	return l
}
