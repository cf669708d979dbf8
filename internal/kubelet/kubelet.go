package kubelet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	criclient "k8s.io/cri-client/pkg"

	"github.com/nanokube/nanokube/internal/kubelet/prober"
	"github.com/nanokube/nanokube/internal/kubelet/server"
	"github.com/nanokube/nanokube/internal/kubelet/volume"
)

// Version is the kubelet version the node reports.
const Version = "v1.32.0+nanokube"

// Config configures a Kubelet.
type Config struct {
	// NodeName names the Node object; default the hostname.
	NodeName string
	// RootDir holds pod volumes and per-pod files (pods/<uid>/...). Required, absolute.
	RootDir string
	// PodLogsDir holds container logs as <ns>_<pod>_<uid>/<container>/<attempt>.log;
	// default /var/log/pods.
	PodLogsDir string
	// RuntimeEndpoint is the CRI socket, e.g. unix:///run/nanokube/runtime.sock. Required.
	RuntimeEndpoint string
	// NodeIP is the address the node reports and the kubelet API listens on; default the
	// address of the interface that holds the default route.
	NodeIP string
	// ClusterDNS are the DNS servers of ClusterFirst pods; ClusterDomain their domain
	// (default cluster.local).
	ClusterDNS    []string
	ClusterDomain string
	// MaxPods is the node's pod capacity (default 110).
	MaxPods int
	// Labels and Taints are applied to the Node when it registers.
	Labels map[string]string
	Taints []v1.Taint
	// CgroupRoot is the parent of the QoS cgroups (default /kubepods).
	CgroupRoot string
	// Address is where the kubelet API listens (default NodeIP:10250; port 0 picks one).
	Address string
	// TLSCert serves the kubelet API; if empty, a self-signed certificate is made.
	TLSCert *tls.Certificate
	// ClientCA authenticates clients of the kubelet API (the API server's kubelet client
	// certificate); nil lets no client in but /healthz.
	ClientCA *x509.CertPool
	// StatusInterval is how often the node status is checked and posted when changed, and
	// LeaseInterval how often the Lease is renewed (default 10s each).
	StatusInterval time.Duration
	LeaseInterval  time.Duration
	// LocalPathDir is where the local-path provisioner's volumes live on this node (default
	// /var/lib/nanokube/storage); the kubelet removes the directories of deleted volumes.
	LocalPathDir string
	Logger       *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			errs = append(errs, fmt.Errorf("node name: %w", err))
		}
		c.NodeName = strings.ToLower(h)
	}
	if c.RootDir == "" || !filepath.IsAbs(c.RootDir) {
		errs = append(errs, fmt.Errorf("--root-dir %q must be an absolute path", c.RootDir))
	}
	if c.PodLogsDir == "" {
		c.PodLogsDir = "/var/log/pods"
	}
	if c.RuntimeEndpoint == "" {
		errs = append(errs, errors.New("--runtime-endpoint is required"))
	}
	if c.NodeIP == "" {
		ip, err := defaultRouteIP()
		if err != nil {
			errs = append(errs, fmt.Errorf("--node-ip not given and no default-route address: %w", err))
		}
		c.NodeIP = ip
	} else if _, err := netip.ParseAddr(c.NodeIP); err != nil {
		errs = append(errs, fmt.Errorf("--node-ip %q: %v", c.NodeIP, err))
	}
	for _, s := range c.ClusterDNS {
		if _, err := netip.ParseAddr(s); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-dns %q: %v", s, err))
		}
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	if c.MaxPods < 0 {
		errs = append(errs, fmt.Errorf("--max-pods %d must be positive", c.MaxPods))
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/kubepods"
	}
	if c.LocalPathDir == "" {
		c.LocalPathDir = volume.DefaultLocalPathDir
	} else if !filepath.IsAbs(c.LocalPathDir) {
		errs = append(errs, fmt.Errorf("local-path directory %q must be an absolute path", c.LocalPathDir))
	}
	if c.Address == "" {
		c.Address = net.JoinHostPort(c.NodeIP, "10250")
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.LeaseInterval == 0 {
		c.LeaseInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, errors.Join(errs...)
}

// DefaultNodeIP is the address a node reports when none is configured: see defaultRouteIP.
func DefaultNodeIP() (string, error) { return defaultRouteIP() }

// NodeName is the node's name.
func (k *Kubelet) NodeName() string { return k.cfg.NodeName }

// NodeIP is the address the node reports.
func (k *Kubelet) NodeIP() string { return k.cfg.NodeIP }

// defaultRouteIP returns the source address of the route towards a public address (no
// packet is sent), or the first global unicast address when there is no default route.
func defaultRouteIP() (string, error) {
	if c, err := net.Dial("udp", "192.0.2.1:9"); err == nil {
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("no usable address")
}

// Kubelet is one node agent.
type Kubelet struct {
	cfg     Config
	client  kubernetes.Interface
	log     *slog.Logger
	runtime internalapi.RuntimeService
	images  internalapi.ImageManagerService
	// imageRecords is what image garbage collection knows of each image; housekeeping owns it.
	imageRecords map[string]imageRecord
	recorder     record.EventRecorder
	volumes      *volume.Manager
	objects      *objectCache // configMaps and secrets the pods read
	probes       *prober.Manager
	api          *server.Server
	status       *statusManager
	backoff      *backoffs

	informers  informers.SharedInformerFactory
	podLister  corelisters.PodLister
	svcLister  corelisters.ServiceLister
	nodeLister corelisters.NodeLister

	mu      sync.Mutex
	pods    map[types.UID]*v1.Pod // pods bound to the node, latest seen
	workers map[types.UID]*podWorker
	ready   chan struct{}
	// podCIDR last handed to the runtime; criName is the runtime's name.
	podCIDR string
	criName string
	// reasons holds why a container is waiting (ErrImagePull, CrashLoopBackOff, ...) by
	// pod UID and container name, for the status.
	reasons *reasonCache
	// exited caches the CRI status of exited containers, which never changes.
	exited sync.Map // container ID → *runtimeapi.ContainerStatus
}

// New checks cfg and connects to the runtime; Run starts the work.
func New(ctx context.Context, cfg Config, client kubernetes.Interface) (*Kubelet, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(cfg.RootDir, "pods"), cfg.PodLogsDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	rs, err := criclient.NewRemoteRuntimeServiceBuilder().WithEndpoint(cfg.RuntimeEndpoint).
		WithConnectionTimeout(2 * time.Minute).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime %s: %w", cfg.RuntimeEndpoint, err)
	}
	is, err := criclient.NewRemoteImageServiceBuilder().WithEndpoint(cfg.RuntimeEndpoint).
		WithConnectionTimeout(2 * time.Minute).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("image service %s: %w", cfg.RuntimeEndpoint, err)
	}
	k := &Kubelet{
		cfg: cfg, client: client, log: cfg.Logger, runtime: rs, images: is,
		pods: map[types.UID]*v1.Pod{}, workers: map[types.UID]*podWorker{},
		ready: make(chan struct{}), reasons: newReasonCache(), backoff: newBackoffs(),
	}
	k.objects = newObjectCache(client)
	k.volumes = volume.NewManager(filepath.Join(cfg.RootDir, "pods"), k.getter(), k.log.With("part", "volumes"))
	k.status = newStatusManager(client, k.log)
	return k, nil
}

// getter reads the objects pods refer to.
func (k *Kubelet) getter() apiGetter { return apiGetter{client: k.client, objects: k.objects} }

// Ready is closed once the node is registered and the pod informer has synced.
func (k *Kubelet) Ready() <-chan struct{} { return k.ready }

// APIAddress is where the kubelet API listens; valid once Ready.
func (k *Kubelet) APIAddress() net.Addr { return k.api.Addr() }

// Run registers the node and manages its pods until ctx ends. Running containers are left
// running when it returns.
func (k *Kubelet) Run(ctx context.Context) error {
	defer k.runtime.Close(context.Background())
	defer k.images.Close(context.Background())

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	k.recorder = broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: k.cfg.NodeName})
	k.probes = prober.NewManager(k.runtime, k.recorder, k.kick)
	defer k.probes.Stop()

	cert := k.cfg.TLSCert
	if cert == nil {
		c, err := selfSignedCert(k.cfg.NodeName, k.cfg.NodeIP)
		if err != nil {
			return err
		}
		cert = &c
	}
	api, err := server.New(server.Config{Address: k.cfg.Address, TLSCert: *cert, ClientCA: k.cfg.ClientCA,
		NodeName: k.cfg.NodeName, Logger: k.log.With("part", "api")}, k)
	if err != nil {
		return err
	}
	k.api = api

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 1)
	wg.Go(func() {
		if err := api.Run(ctx); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("kubelet API: %w", err)
			cancel()
		}
	})
	select {
	case <-api.Ready():
	case <-ctx.Done():
		return firstErr(errc, ctx.Err())
	}

	if err := k.registerNode(ctx); err != nil {
		return err
	}
	k.informers = informers.NewSharedInformerFactoryWithOptions(k.client, 0)
	podInf := informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.nodeName=" + k.cfg.NodeName
		})).Core().V1().Pods()
	k.podLister = podInf.Lister()
	k.svcLister = k.informers.Core().V1().Services().Lister()
	nodeInf := informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "metadata.name=" + k.cfg.NodeName
		})).Core().V1().Nodes()
	k.nodeLister = nodeInf.Lister()
	podReg, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.podChanged(ctx, obj.(*v1.Pod)) },
		UpdateFunc: func(_, obj any) { k.podChanged(ctx, obj.(*v1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*v1.Pod); ok {
				k.podDeleted(ctx, pod)
			}
		},
	})
	if err != nil {
		return err
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.nodeChanged(ctx, obj.(*v1.Node)) },
		UpdateFunc: func(_, obj any) { k.nodeChanged(ctx, obj.(*v1.Node)) },
	}); err != nil {
		return err
	}
	k.informers.Start(ctx.Done())
	go podInf.Informer().Run(ctx.Done())
	go nodeInf.Informer().Run(ctx.Done())
	defer k.informers.Shutdown()
	defer k.objects.stop()
	if !cache.WaitForCacheSync(ctx.Done(), podInf.Informer().HasSynced, nodeInf.Informer().HasSynced,
		k.informers.Core().V1().Services().Informer().HasSynced, podReg.HasSynced) {
		return firstErr(errc, ctx.Err())
	}

	wg.Go(func() { k.status.run(ctx) })
	wg.Go(func() { k.nodeStatusLoop(ctx) })
	wg.Go(func() { k.renewLease(ctx) })
	wg.Go(func() { k.relist(ctx) })
	wg.Go(func() { k.housekeeping(ctx) })
	close(k.ready)
	k.log.Info("kubelet ready", "node", k.cfg.NodeName, "api", api.Addr().String())
	<-ctx.Done()
	k.stopWorkers()
	return firstErr(errc, nil)
}

func firstErr(errc <-chan error, def error) error {
	select {
	case err := <-errc:
		return err
	default:
		return def
	}
}

// Pods implements server.Host.
func (k *Kubelet) Pods() []*v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*v1.Pod, 0, len(k.pods))
	for _, p := range k.pods {
		out = append(out, p)
	}
	return out
}

// Pod implements server.Host.
func (k *Kubelet) Pod(namespace, name string) (*v1.Pod, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pods {
		if p.Namespace == namespace && p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Runtime implements server.Host.
func (k *Kubelet) Runtime() internalapi.RuntimeService { return k.runtime }

// allocatable is what the node offers pods, for resourceFieldRef defaults.
func (k *Kubelet) allocatable() v1.ResourceList {
	if k.nodeLister != nil {
		if n, err := k.nodeLister.Get(k.cfg.NodeName); err == nil {
			return n.Status.Allocatable
		}
	}
	return nil
}

// podWithIPs is the pod with the status fields the kubelet knows before it posts them:
// the sandbox's IPs and the node's, for the downward API and /etc/hosts.
func (k *Kubelet) podWithIPs(pod *v1.Pod, sb *runtimeapi.PodSandboxStatus) *v1.Pod {
	p := pod.DeepCopy()
	p.Status.HostIP, p.Status.HostIPs = k.cfg.NodeIP, []v1.HostIP{{IP: k.cfg.NodeIP}}
	if ip := sandboxIP(sb); ip != "" {
		p.Status.PodIP, p.Status.PodIPs = ip, []v1.PodIP{{IP: ip}}
	} else if pod.Spec.HostNetwork {
		p.Status.PodIP, p.Status.PodIPs = k.cfg.NodeIP, []v1.PodIP{{IP: k.cfg.NodeIP}}
	}
	return p
}
