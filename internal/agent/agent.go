// Package agent assembles a node: the container runtime, then the kubelet driving it over
// CRI, then the pod network (routes to the other nodes' pod CIDRs, masquerade of traffic
// leaving the cluster CIDR) and the service proxy, each started once what it needs is ready.
// `nanokube server` runs one in-process unless --disable-agent; `nanokube agent` runs one on
// another machine after Join has obtained the node's credentials with a join token (see
// join.go), and RenewClientCertificate keeps them fresh.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/nanokube/nanokube/internal/kubelet"
	"github.com/nanokube/nanokube/internal/proxy"
	"github.com/nanokube/nanokube/internal/runtime"
)

// Config configures a node agent.
type Config struct {
	// DataDir holds the runtime's state (DataDir/runtime) and the kubelet's (DataDir/kubelet).
	DataDir string
	// RESTConfig reaches the API server with the node's credentials.
	RESTConfig *rest.Config
	// ProxyRESTConfig, if set, is the service proxy's own identity (system:kube-proxy);
	// otherwise the proxy uses the node's, which the default policy grants
	// system:node-proxier to.
	ProxyRESTConfig *rest.Config
	// NodeName, NodeIP, ClusterDNS, ClusterDomain, Labels: see kubelet.Config.
	NodeName      string
	NodeIP        string
	ClusterDNS    []string
	ClusterDomain string
	Labels        map[string]string
	// KubeletAddress is where the kubelet API listens (default NodeIP:10250).
	KubeletAddress string
	// KubeletCert serves the kubelet API; ClientCA authenticates its clients.
	KubeletCert *tls.Certificate
	ClientCA    *x509.CertPool
	// PodLogsDir holds container logs (default /var/log/pods).
	PodLogsDir string
	// RegistryConfig is the runtime's registry mirrors file, if any.
	RegistryConfig string
	// CNIBridge names the pod bridge (default nk0).
	CNIBridge string
	// CgroupRoot is the parent of the pods' QoS cgroups (default /kubepods).
	CgroupRoot string
	// ClusterCIDR is the pod network. When set, the agent routes to other nodes' pod CIDRs
	// and masquerades only pod traffic leaving it (see podNetwork); the service proxy
	// masquerades ClusterIP traffic from outside it. Empty: the CNI bridge masquerades all
	// pod traffic leaving the node's pod CIDR, and no routes are kept.
	ClusterCIDR string
	// Progress, if set, is told each start step as it completes.
	Progress func(step string)
	Log      *slog.Logger
}

// Run starts the runtime, the kubelet and the proxy and blocks until ctx is done or one of
// them fails. onReady (may be nil) is called once all are ready. Containers keep
// running after Run returns.
func Run(ctx context.Context, cfg Config, onReady func(*kubelet.Kubelet)) error {
	if os.Geteuid() != 0 {
		return errors.New("the node agent needs root (namespaces, mounts, cgroups, runc): run as root, or with --disable-agent for a control plane only")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	// The agent's parts tag their own logs; the agent's own messages say they are its.
	log := cfg.Log.With("component", "agent")
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	rt, err := runtime.New(runtime.Config{
		Root: filepath.Join(dir, "runtime"), Socket: filepath.Join(dir, "runtime", "cri.sock"),
		RegistryConfig: cfg.RegistryConfig, CNIBridge: cfg.CNIBridge, NoMasquerade: cfg.ClusterCIDR != "",
		Logger: cfg.Log.With("component", "runtime"),
	})
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 4)
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
			cancel()
		})
	}
	progress := func(string) {}
	if cfg.Progress != nil {
		progress = cfg.Progress
	}
	log.Info("starting container runtime")
	run("runtime", rt.Run)
	select {
	case <-rt.Ready():
		progress("container runtime ready")
	case <-ctx.Done():
		return first(errc, ctx.Err())
	}
	log.Info("starting kubelet")
	kl, err := kubelet.New(ctx, kubelet.Config{
		NodeName: cfg.NodeName, NodeIP: cfg.NodeIP, RootDir: filepath.Join(dir, "kubelet"), PodLogsDir: cfg.PodLogsDir,
		RuntimeEndpoint: "unix://" + filepath.Join(dir, "runtime", "cri.sock"),
		ClusterDNS:      cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain, Labels: cfg.Labels,
		CgroupRoot: cfg.CgroupRoot, Address: cfg.KubeletAddress, TLSCert: cfg.KubeletCert, ClientCA: cfg.ClientCA,
		Logger: cfg.Log.With("component", "kubelet"),
	}, client)
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	run("kubelet", kl.Run)
	select {
	case <-kl.Ready():
		progress("kubelet ready: node " + kl.NodeName() + " registered")
	case <-ctx.Done():
		return first(errc, ctx.Err())
	}
	if cfg.ClusterCIDR != "" {
		pn, err := newPodNetwork(kl.NodeName(), cfg.ClusterCIDR, client, cfg.Log.With("component", "podnet"))
		if err != nil {
			return fmt.Errorf("pod network: %w", err)
		}
		run("pod network", pn.Run)
	}
	log.Info("starting service proxy")
	proxyClient := client
	if cfg.ProxyRESTConfig != nil {
		if proxyClient, err = kubernetes.NewForConfig(cfg.ProxyRESTConfig); err != nil {
			return fmt.Errorf("proxy client: %w", err)
		}
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: proxyClient.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	px, err := proxy.New(proxy.Config{NodeName: kl.NodeName(), NodeIPs: []string{kl.NodeIP()}, ClusterCIDR: cfg.ClusterCIDR,
		Log: cfg.Log.With("component", "proxy")}, proxyClient,
		broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kube-proxy", Host: kl.NodeName()}))
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	run("proxy", px.Run)
	select {
	case <-px.Ready():
		progress("service proxy ready")
		if onReady != nil {
			onReady(kl)
		}
	case <-ctx.Done():
		return first(errc, ctx.Err())
	}
	<-ctx.Done()
	return first(errc, ctx.Err())
}

func first(errc <-chan error, def error) error {
	select {
	case err := <-errc:
		return err
	default:
		return def
	}
}
