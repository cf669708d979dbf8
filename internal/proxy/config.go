package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults of Config.
const (
	DefaultTableName       = "nanokube-proxy"
	DefaultSyncPeriod      = time.Minute
	DefaultMinSyncInterval = 10 * time.Millisecond
	// DefaultServicesPerTable keeps a commit that changes one Service at about 5 ms of
	// kernel time (kernel 6.18; see doc.go).
	DefaultServicesPerTable = 1000
)

// Config is what a Proxier needs to know about its node.
type Config struct {
	// Programmed, if set, is called after each transaction the kernel accepted, with the
	// keys (serviceKey) of the Services it wrote: kube-proxy's network-programming latency
	// is measured from it.
	Programmed func(services []string)
	// Synced, if set, is called after each sync that wrote to the kernel, with whether it
	// rewrote every table and how long it took from its start to its last commit (kube-proxy's
	// sync_full_proxy_rules_duration and sync_partial_proxy_rules_duration). An incremental
	// sync reports once per table it changed.
	Synced func(full bool, elapsed time.Duration)
	// NodeName selects the endpoints that count as local for the Local traffic policies.
	NodeName string
	// NodeIPs are the IPv4 addresses NodePorts answer on; empty means every local address
	// but 127.0.0.0/8 (kube-proxy's nftables mode never serves NodePorts on localhost).
	NodeIPs []string
	// ClusterCIDR is the pod network: ClusterIP traffic from outside it is masqueraded.
	// Empty: only hairpin and NodePort traffic is masqueraded.
	ClusterCIDR string
	// TableName is the nftables table (family ip) the proxy owns; default "nanokube-proxy".
	// With more Services than ServicesPerTable it also owns TableName-1, TableName-2, ...
	TableName string
	// ServicesPerTable is how many Services a table holds at most before they are spread over
	// twice as many tables (up to 64); default 1000. The kernel revalidates a whole table on
	// a commit that changes a Service's rules, so smaller tables make changes faster, while
	// each table's base chains add a few lookups to every new connection.
	ServicesPerTable int
	// SyncPeriod is the interval of full rewrites, the safety net against drift; default 1m.
	SyncPeriod time.Duration
	// MinSyncInterval is the least time between two syncs, which coalesces bursts of
	// changes into one transaction; default 10ms.
	MinSyncInterval time.Duration
	// NetworkNamespace is the path of the network namespace (e.g. /run/netns/x) whose
	// nftables the proxy programs; empty means the process's own.
	NetworkNamespace string
	// Log receives the proxy's logs; nil discards them.
	Log *slog.Logger
}

// withDefaults returns cfg with its zero fields defaulted, or an error if a field is invalid.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.NodeName == "" {
		return cfg, errors.New("proxy: NodeName is required")
	}
	for _, s := range cfg.NodeIPs {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return cfg, fmt.Errorf("proxy: node IP %q is not an IPv4 address", s)
		}
		if a.IsLoopback() {
			return cfg, fmt.Errorf("proxy: node IP %q: NodePorts are not served on localhost", s)
		}
	}
	if cfg.ClusterCIDR != "" {
		p, err := netip.ParsePrefix(cfg.ClusterCIDR)
		if err != nil || !p.Addr().Is4() {
			return cfg, fmt.Errorf("proxy: cluster CIDR %q is not an IPv4 prefix", cfg.ClusterCIDR)
		}
		cfg.ClusterCIDR = p.Masked().String()
	}
	if cfg.TableName == "" {
		cfg.TableName = DefaultTableName
	}
	if cfg.ServicesPerTable <= 0 {
		cfg.ServicesPerTable = DefaultServicesPerTable
	}
	if cfg.SyncPeriod <= 0 {
		cfg.SyncPeriod = DefaultSyncPeriod
	}
	if cfg.MinSyncInterval <= 0 {
		cfg.MinSyncInterval = DefaultMinSyncInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}
