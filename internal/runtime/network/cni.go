package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// ConfigFileName is the conflist this package writes from a pod CIDR.
const ConfigFileName = "10-nanokube.conflist"

// CNIConfig configures the CNI manager.
type CNIConfig struct {
	BinDir   string // plugin binaries (Debian: /usr/lib/cni)
	ConfDir  string // *.conf / *.conflist, first in name order wins
	StateDir string // result cache and host-local IPAM state
	// Bridge is the bridge the generated config attaches pods to.
	Bridge string
	// Masquerade makes the bridge plugin NAT pod traffic leaving the pod CIDR.
	Masquerade bool
}

// CNI runs CNI plugins for sandboxes.
type CNI struct {
	cfg  CNIConfig
	cni  *libcni.CNIConfig
	mu   sync.Mutex
	list *libcni.NetworkConfigList
	err  error
	lo   *libcni.NetworkConfigList
}

// NewCNI returns a manager; it loads whatever config ConfDir already holds.
func NewCNI(cfg CNIConfig) (*CNI, error) {
	for _, d := range []string{cfg.ConfDir, cfg.StateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	lo, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"cni-loopback","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		return nil, err
	}
	c := &CNI{cfg: cfg, cni: libcni.NewCNIConfigWithCacheDir([]string{cfg.BinDir}, filepath.Join(cfg.StateDir, "cache"), nil), lo: lo}
	c.Reload()
	return c, nil
}

// Reload reads the config directory again.
func (c *CNI) Reload() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list, c.err = nil, nil
	files, err := libcni.ConfFiles(c.cfg.ConfDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		c.err = err
		return
	}
	if len(files) == 0 {
		c.err = fmt.Errorf("no network config in %s", c.cfg.ConfDir)
		return
	}
	f := files[0]
	if filepath.Ext(f) == ".conflist" {
		c.list, c.err = libcni.ConfListFromFile(f)
		return
	}
	one, err := libcni.ConfFromFile(f)
	if err != nil {
		c.err = err
		return
	}
	c.list, c.err = libcni.ConfListFromConf(one)
}

// Ready reports whether a network config is loaded, and why not.
func (c *CNI) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// WritePodCIDR writes the bridge config for cidr (unless an operator's config file sorts
// before ours) and reloads.
func (c *CNI) WritePodCIDR(cidr string) error {
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("pod CIDR %q: %v: %w", cidr, err, errdefs.ErrInvalidArgument)
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "nanokube",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": c.cfg.Bridge, "isGateway": true, "ipMasq": c.cfg.Masquerade,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": ipnet.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(c.cfg.StateDir, "ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(c.cfg.ConfDir, ConfigFileName)
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		return err
	}
	c.Reload()
	return nil
}

// PortMapping is one host port of a sandbox.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Attachment names one sandbox's network attachment.
type Attachment struct {
	ID        string
	NetNS     string
	Namespace string
	Name      string
	UID       string
	Ports     []PortMapping
}

func (a Attachment) runtimeConf(ifname string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: a.ID, NetNS: a.NetNS, IfName: ifname,
		Args: [][2]string{
			{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", a.Namespace},
			{"K8S_POD_NAME", a.Name}, {"K8S_POD_INFRA_CONTAINER_ID", a.ID}, {"K8S_POD_UID", a.UID},
		},
	}
	if len(a.Ports) > 0 && ifname != "lo" {
		rt.CapabilityArgs = map[string]any{"portMappings": a.Ports}
	}
	return rt
}

// Setup brings up lo and eth0 in the attachment's namespace and returns the pod's IPs.
// On error it tears down what it set up.
func (c *CNI) Setup(ctx context.Context, a Attachment) ([]string, error) {
	c.mu.Lock()
	list, lerr := c.list, c.err
	c.mu.Unlock()
	if lerr != nil {
		return nil, fmt.Errorf("network not ready: %v: %w", lerr, errdefs.ErrFailedPrecondition)
	}
	if _, err := c.cni.AddNetworkList(ctx, c.lo, a.runtimeConf("lo")); err != nil {
		return nil, fmt.Errorf("cni loopback: %w", err)
	}
	res, err := c.cni.AddNetworkList(ctx, list, a.runtimeConf("eth0"))
	if err != nil {
		_ = c.Teardown(context.WithoutCancel(ctx), a)
		return nil, fmt.Errorf("cni %s add: %w", list.Name, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		_ = c.Teardown(context.WithoutCancel(ctx), a)
		return nil, fmt.Errorf("cni result: %w", err)
	}
	var ips []string
	for _, ip := range r.IPs {
		ips = append(ips, ip.Address.IP.String())
	}
	return ips, nil
}

// Teardown runs CNI DEL for the attachment. It succeeds when there is nothing to undo.
func (c *CNI) Teardown(ctx context.Context, a Attachment) error {
	c.mu.Lock()
	list := c.list
	c.mu.Unlock()
	var errs []error
	if a.NetNS != "" && !isNamespaceMount(a.NetNS) {
		// The namespace is gone (a reboot, or a mount namespace that ended): DEL without
		// one still releases the address and host-side rules, as CNI allows.
		a.NetNS = ""
	}
	if list != nil {
		// DEL needs the config ADD used; the cached one survives config changes.
		if cached, _, err := c.cni.GetNetworkListCachedConfig(list, a.runtimeConf("eth0")); err == nil && cached != nil {
			if l, err := libcni.ConfListFromBytes(cached); err == nil {
				list = l
			}
		}
		if err := c.cni.DelNetworkList(ctx, list, a.runtimeConf("eth0")); err != nil {
			errs = append(errs, fmt.Errorf("cni %s del: %w", list.Name, err))
		}
	}
	if a.NetNS != "" {
		if _, err := os.Stat(a.NetNS); err == nil {
			if err := c.cni.DelNetworkList(ctx, c.lo, a.runtimeConf("lo")); err != nil {
				errs = append(errs, fmt.Errorf("cni loopback del: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// isNamespaceMount reports whether path is a bind mount of a namespace (nsfs).
func isNamespaceMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
