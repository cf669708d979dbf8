package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/container"
	"github.com/nanokube/nanokube/internal/runtime/errdefs"
	"github.com/nanokube/nanokube/internal/runtime/image"
	"github.com/nanokube/nanokube/internal/runtime/network"
)

// Name and version reported by Version.
const (
	Name    = "nanokube"
	Version = "0.1.0"
)

// Runtime is the CRI server. Create it with New and serve with Run.
type Runtime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	cfg    Config
	log    *slog.Logger
	images *image.Store
	cni    *network.CNI
	runc   container.Runc
	shim   string // the shim program (see Config.ShimProgram)
	stream *streamServer
	minOOM int
	cpu    cpuRates // last CPU readings, for usage rates

	mu         sync.Mutex
	sandboxes  map[string]*sandbox
	containers map[string]*ctr

	ready chan struct{}
}

// New validates cfg, prepares Root and recovers sandboxes, containers and images from it.
func New(cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("runtime config: %w", err)
	}
	for _, d := range []string{"sandboxes", "containers", "runc", "images", "cni"} {
		if err := os.MkdirAll(filepath.Join(cfg.Root, d), 0o711); err != nil {
			return nil, err
		}
	}
	reg, err := image.LoadRegistryConfig(cfg.RegistryConfig)
	if err != nil {
		return nil, err
	}
	store, err := image.Open(filepath.Join(cfg.Root, "image"), reg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	cni, err := network.NewCNI(network.CNIConfig{
		BinDir: cfg.CNIBinDir, ConfDir: cfg.CNIConfDir, StateDir: filepath.Join(cfg.Root, "cni"),
		Bridge: cfg.CNIBridge, Masquerade: !cfg.NoMasquerade,
	})
	if err != nil {
		return nil, err
	}
	shimProg, err := shimProgram(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	if cfg.PodCIDR != "" {
		if err := cni.WritePodCIDR(cfg.PodCIDR); err != nil {
			return nil, fmt.Errorf("pod CIDR: %w", err)
		}
	}
	r := &Runtime{
		cfg: cfg, log: cfg.Logger, images: store, cni: cni,
		runc:       container.Runc{Binary: cfg.Runc, Root: filepath.Join(cfg.Root, "runc")},
		shim:       shimProg,
		minOOM:     ownOOMScoreAdj(),
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*ctr{},
		ready:      make(chan struct{}),
	}
	if err := r.recover(); err != nil {
		return nil, err
	}
	return r, nil
}

// Ready is closed once Run serves the socket.
func (r *Runtime) Ready() <-chan struct{} { return r.ready }

// StreamURL is the base address of the streaming server (valid after Ready).
func (r *Runtime) StreamURL() string { return r.stream.baseURL() }

// Run imports ROOT/images tarballs, serves CRI on the socket and streaming on its address
// until ctx is done. A cancelled ctx is a clean exit (nil).
func (r *Runtime) Run(ctx context.Context) error {
	if _, err := r.images.ImportDir(ctx, filepath.Join(r.cfg.Root, "images")); err != nil {
		r.log.Warn("importing image tarballs", "err", err)
	}
	if err := os.MkdirAll(filepath.Dir(r.cfg.Socket), 0o755); err != nil {
		return err
	}
	if err := os.Remove(r.cfg.Socket); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.Listen("unix", r.cfg.Socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", r.cfg.Socket, err)
	}
	defer os.Remove(r.cfg.Socket)
	sl, err := net.Listen("tcp", r.cfg.StreamAddress)
	if err != nil {
		l.Close()
		return fmt.Errorf("streaming server listen on %s: %w", r.cfg.StreamAddress, err)
	}
	r.stream = newStreamServer(r, sl)
	srv := grpc.NewServer(grpc.UnaryInterceptor(r.intercept), grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	runtimeapi.RegisterRuntimeServiceServer(srv, r)
	runtimeapi.RegisterImageServiceServer(srv, r)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	go func() { errc <- r.stream.serve() }()
	close(r.ready)
	r.log.Info("runtime serving", "socket", r.cfg.Socket, "stream", r.stream.baseURL())
	select {
	case <-ctx.Done():
		r.stream.close()
		srv.Stop()
		return nil
	case err := <-errc:
		r.stream.close()
		srv.Stop()
		return err
	}
}

// slowCall is how long a CRI call may take before it is logged.
const slowCall = 500 * time.Millisecond

func (r *Runtime) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	if took := time.Since(start); took > slowCall {
		r.log.Warn("slow CRI call", "method", info.FullMethod, "took", took.Round(time.Millisecond), "err", err)
	}
	if err != nil {
		r.log.Debug("cri call failed", "method", info.FullMethod, "err", err)
		return nil, errdefs.ToGRPC(err)
	}
	return resp, nil
}

func ownOOMScoreAdj() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Version implements CRI.
func (r *Runtime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: Name, RuntimeVersion: Version, RuntimeApiVersion: "v1"}, nil
}

// Status implements CRI.
func (r *Runtime) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if err := r.cni.Ready(); err != nil {
		netCond.Status, netCond.Reason, netCond.Message = false, "NetworkPluginNotReady", err.Error()
	}
	resp := &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true}, netCond,
	}}}
	resp.RuntimeHandlers = []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{}}}
	if req.GetVerbose() {
		b, _ := json.Marshal(map[string]any{"root": r.cfg.Root, "cniConfDir": r.cfg.CNIConfDir, "stream": r.stream.baseURL()})
		resp.Info = map[string]string{"config": string(b)}
	}
	return resp, nil
}

// UpdateRuntimeConfig writes the CNI config for the pod CIDR the kubelet hands over.
func (r *Runtime) UpdateRuntimeConfig(_ context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	// A dual-stack list: the bridge config takes the first family.
	cidr, _, _ = strings.Cut(cidr, ",")
	if err := r.cni.WritePodCIDR(cidr); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// RuntimeConfig implements CRI: this runtime drives cgroups through cgroupfs.
func (r *Runtime) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

var errNoSandbox = errors.New("no such pod sandbox")

func (r *Runtime) getSandbox(id string) (*sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == "" {
		return nil, fmt.Errorf("pod sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	if s, ok := r.sandboxes[id]; ok {
		return s, nil
	}
	var found *sandbox
	for sid, s := range r.sandboxes {
		if strings.HasPrefix(sid, id) {
			if found != nil {
				return nil, fmt.Errorf("pod sandbox id prefix %q is ambiguous: %w", id, errdefs.ErrInvalidArgument)
			}
			found = s
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w %q: %w", errNoSandbox, id, errdefs.ErrNotFound)
	}
	return found, nil
}

func (r *Runtime) getContainer(id string) (*ctr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == "" {
		return nil, fmt.Errorf("container id is empty: %w", errdefs.ErrInvalidArgument)
	}
	if c, ok := r.containers[id]; ok {
		return c, nil
	}
	var found *ctr
	for cid, c := range r.containers {
		if strings.HasPrefix(cid, id) {
			if found != nil {
				return nil, fmt.Errorf("container id prefix %q is ambiguous: %w", id, errdefs.ErrInvalidArgument)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no such container %q: %w", id, errdefs.ErrNotFound)
	}
	return found, nil
}
