package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/container"
	"github.com/nanokube/nanokube/internal/runtime/errdefs"
	"github.com/nanokube/nanokube/internal/runtime/network"
)

// sandbox is one pod sandbox. Fields other than mu-guarded state are fixed at creation.
type sandbox struct {
	ID         string   `json:"id"`
	Config     []byte   `json:"config"` // PodSandboxConfig, protobuf
	CreatedAt  int64    `json:"createdAt"`
	Namespaces []string `json:"namespaces"` // kinds pinned under ns/
	IPs        []string `json:"ips,omitempty"`
	Stopped    bool     `json:"stopped,omitempty"`
	Cgroup     string   `json:"cgroup"`
	OwnCgroup  bool     `json:"ownCgroup,omitempty"`
	Handler    string   `json:"handler,omitempty"`
	// PodInitPid is the pid 1 of the pod's shared pid namespace (NamespaceMode POD).
	PodInitPid int `json:"podInitPid,omitempty"`

	dir    string
	config *runtimeapi.PodSandboxConfig
	mu     sync.Mutex // serialises lifecycle calls on this sandbox
}

func (s *sandbox) nsPath(kind string) string {
	for _, k := range s.Namespaces {
		if k == kind {
			return filepath.Join(s.dir, "ns", kind)
		}
	}
	return ""
}

// pidNSPath is the pod's shared pid namespace, "" when it has none (or its init is gone).
func (s *sandbox) pidNSPath() string {
	if !container.PodInitAlive(s.PodInitPid, s.dir) {
		return ""
	}
	return fmt.Sprintf("/proc/%d/ns/pid", s.PodInitPid)
}

func (s *sandbox) save() error { return writeJSON(filepath.Join(s.dir, "sandbox.json"), s) }

func (s *sandbox) attachment() network.Attachment {
	md := s.config.GetMetadata()
	a := network.Attachment{ID: s.ID, NetNS: s.nsPath(network.NetNS), Namespace: md.GetNamespace(), Name: md.GetName(), UID: md.GetUid()}
	for _, p := range s.config.GetPortMappings() {
		if p.GetHostPort() <= 0 {
			continue
		}
		proto := strings.ToLower(p.GetProtocol().String())
		a.Ports = append(a.Ports, network.PortMapping{HostPort: p.GetHostPort(), ContainerPort: p.GetContainerPort(), Protocol: proto, HostIP: p.GetHostIp()})
	}
	return a
}

func sandboxName(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

// RunPodSandbox creates the pod's namespaces, network and files. On error nothing remains.
func (r *Runtime) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" {
		return nil, fmt.Errorf("sandbox metadata needs a name and a namespace: %w", errdefs.ErrInvalidArgument)
	}
	if h := req.GetRuntimeHandler(); h != "" && h != "runc" {
		return nil, fmt.Errorf("runtime handler %q: %w", h, errdefs.ErrNotFound)
	}
	name := sandboxName(md)
	s := &sandbox{ID: newID(), CreatedAt: time.Now().UnixNano(), config: cfg, Handler: req.GetRuntimeHandler()}
	s.dir = filepath.Join(r.cfg.Root, "sandboxes", s.ID)
	var err error
	if s.Config, err = proto.Marshal(cfg); err != nil {
		return nil, err
	}
	r.mu.Lock()
	for _, o := range r.sandboxes {
		if sandboxName(o.config.GetMetadata()) == name {
			r.mu.Unlock()
			return nil, fmt.Errorf("sandbox name %q is reserved for %s: %w", name, o.ID, errdefs.ErrAlreadyExists)
		}
	}
	// Reserve the name while the slow part runs.
	r.sandboxes[s.ID] = s
	r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := r.setupSandbox(ctx, s); err != nil {
		r.teardownSandbox(context.WithoutCancel(ctx), s)
		_ = os.RemoveAll(s.dir)
		r.mu.Lock()
		delete(r.sandboxes, s.ID)
		r.mu.Unlock()
		return nil, err
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: s.ID}, nil
}

func (r *Runtime) setupSandbox(ctx context.Context, s *sandbox) error {
	cfg := s.config
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	hostNet := nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE
	if !hostNet {
		s.Namespaces = append(s.Namespaces, network.NetNS, network.UTSNS)
	}
	if nsOpts.GetIpc() != runtimeapi.NamespaceMode_NODE {
		s.Namespaces = append(s.Namespaces, network.IPCNS)
	}
	if err := os.MkdirAll(s.dir, 0o711); err != nil {
		return err
	}
	hostname := cfg.GetHostname()
	if hostNet {
		hostname, _ = os.Hostname()
	}
	if hostname == "" {
		hostname = cfg.GetMetadata().GetName()
	}
	// The kernel takes at most 64 bytes; Kubernetes truncates pod hostnames to 63.
	if len(hostname) > 63 {
		hostname = strings.TrimRight(hostname[:63], "-.")
	}
	if err := network.CreateNamespaces(filepath.Join(s.dir, "ns"), s.Namespaces, hostname); err != nil {
		return fmt.Errorf("sandbox namespaces: %w", err)
	}
	s.Cgroup = cfg.GetLinux().GetCgroupParent()
	if s.Cgroup == "" {
		s.Cgroup, s.OwnCgroup = "/nanokube/"+s.ID, true
	}
	if err := s.save(); err != nil {
		return err
	}
	if nsOpts.GetPid() == runtimeapi.NamespaceMode_POD {
		pid, err := container.StartPodInit(r.shim, s.dir)
		if err != nil {
			return err
		}
		s.PodInitPid = pid
		if err := s.save(); err != nil {
			return err
		}
	}
	if !hostNet {
		ips, err := r.cni.Setup(ctx, s.attachment())
		if err != nil {
			return fmt.Errorf("sandbox network: %w", err)
		}
		s.IPs = ips
	}
	if err := writeSandboxFiles(s, hostname, hostNet); err != nil {
		return err
	}
	return s.save()
}

func writeSandboxFiles(s *sandbox, hostname string, hostNet bool) error {
	if err := os.WriteFile(filepath.Join(s.dir, "hostname"), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if hostNet {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
		}
	} else if len(s.IPs) > 0 {
		hosts += s.IPs[0] + "\t" + hostname + "\n"
	}
	if err := os.WriteFile(filepath.Join(s.dir, "hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	dns := s.config.GetDnsConfig()
	var resolv []byte
	if dns == nil || hostNet && len(dns.GetServers()) == 0 {
		resolv, _ = os.ReadFile("/etc/resolv.conf")
	} else {
		var b strings.Builder
		if len(dns.GetSearches()) > 0 {
			fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
		}
		for _, ns := range dns.GetServers() {
			fmt.Fprintf(&b, "nameserver %s\n", ns)
		}
		if len(dns.GetOptions()) > 0 {
			fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
		}
		resolv = []byte(b.String())
	}
	return os.WriteFile(filepath.Join(s.dir, "resolv.conf"), resolv, 0o644)
}

// teardownSandbox undoes the network and namespaces; safe on half-set-up sandboxes.
func (r *Runtime) teardownSandbox(ctx context.Context, s *sandbox) error {
	var errs []error
	if err := container.StopPodInit(ctx, s.PodInitPid, s.dir); err != nil {
		errs = append(errs, err)
	}
	if p := s.nsPath(network.NetNS); p != "" {
		if err := r.cni.Teardown(ctx, s.attachment()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := network.RemoveNamespaces(filepath.Join(s.dir, "ns"), s.Namespaces); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// StopPodSandbox kills the pod's containers and takes its network down. Idempotent.
func (r *Runtime) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	s, err := r.getSandbox(req.GetPodSandboxId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.StopPodSandboxResponse{}, nil // CRI: stopping a missing sandbox succeeds
	}
	if err != nil {
		return nil, err
	}
	if err := r.stopSandbox(ctx, s); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (r *Runtime) stopSandbox(ctx context.Context, s *sandbox) error {
	for _, c := range r.sandboxContainers(s.ID) {
		if err := r.stopContainer(ctx, c, 0); err != nil {
			return fmt.Errorf("stop container %s: %w", c.ID, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Stopped {
		return nil
	}
	if err := container.StopPodInit(ctx, s.PodInitPid, s.dir); err != nil {
		return err
	}
	if p := s.nsPath(network.NetNS); p != "" {
		if err := r.cni.Teardown(ctx, s.attachment()); err != nil {
			return fmt.Errorf("sandbox network teardown: %w", err)
		}
	}
	s.Stopped = true
	return s.save()
}

// RemovePodSandbox removes the sandbox and everything it owned. Removing a missing sandbox
// succeeds.
func (r *Runtime) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	s, err := r.getSandbox(req.GetPodSandboxId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := r.stopSandbox(ctx, s); err != nil {
		return nil, err
	}
	for _, c := range r.sandboxContainers(s.ID) {
		if err := r.removeContainer(ctx, c); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := container.StopPodInit(ctx, s.PodInitPid, s.dir); err != nil {
		return nil, err
	}
	if err := network.RemoveNamespaces(filepath.Join(s.dir, "ns"), s.Namespaces); err != nil {
		return nil, err
	}
	if s.OwnCgroup {
		removeCgroup(s.Cgroup)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return nil, err
	}
	r.mu.Lock()
	delete(r.sandboxes, s.ID)
	r.mu.Unlock()
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// removeCgroup removes a cgroupfs directory (and its now-empty parents up to /nanokube)
// from every v1 hierarchy and the unified one.
func removeCgroup(path string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		roots = []string{"/sys/fs/cgroup"}
	}
	for _, root := range roots {
		_ = os.Remove(filepath.Join(root, path))
	}
}

func (r *Runtime) sandboxContainers(id string) []*ctr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*ctr
	for _, c := range r.containers {
		if c.SandboxID == id {
			out = append(out, c)
		}
	}
	return out
}

// PodSandboxStatus implements CRI.
func (r *Runtime) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	s, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st := r.sandboxStatus(s)
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": fmt.Sprintf(`{"dir":%q,"netns":%q,"cgroup":%q}`, s.dir, s.nsPath(network.NetNS), s.Cgroup)}
	}
	for _, c := range r.sandboxContainers(s.ID) {
		resp.ContainersStatuses = append(resp.ContainersStatuses, r.containerStatus(c))
	}
	return resp, nil
}

func (r *Runtime) sandboxStatus(s *sandbox) *runtimeapi.PodSandboxStatus {
	s.mu.Lock()
	stopped, ips := s.Stopped, s.IPs
	s.mu.Unlock()
	state := runtimeapi.PodSandboxState_SANDBOX_READY
	if stopped {
		state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	}
	st := &runtimeapi.PodSandboxStatus{
		Id: s.ID, Metadata: s.config.GetMetadata(), State: state, CreatedAt: s.CreatedAt,
		Labels: s.config.GetLabels(), Annotations: s.config.GetAnnotations(), RuntimeHandler: s.Handler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: s.config.GetLinux().GetSecurityContext().GetNamespaceOptions()}},
	}
	if len(ips) > 0 && !stopped {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: ips[0]}
		for _, ip := range ips[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	} else {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{}
	}
	return st
}

// ListPodSandbox implements CRI.
func (r *Runtime) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	r.mu.Lock()
	all := make([]*sandbox, 0, len(r.sandboxes))
	for _, s := range r.sandboxes {
		all = append(all, s)
	}
	r.mu.Unlock()
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, s := range all {
		// ID and labels first: they never change, and the status waits for a sandbox
		// still being set up, which must not hold up a list that filters it out.
		if f.GetId() != "" && !strings.HasPrefix(s.ID, f.GetId()) {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), s.config.GetLabels()) {
			continue
		}
		st := r.sandboxStatus(s)
		if f.GetState() != nil && f.GetState().GetState() != st.State {
			continue
		}
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{
			Id: s.ID, Metadata: st.Metadata, State: st.State, CreatedAt: s.CreatedAt,
			Labels: st.Labels, Annotations: st.Annotations, RuntimeHandler: s.Handler,
		})
	}
	return resp, nil
}

func matchLabels(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
