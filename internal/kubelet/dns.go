package kubelet

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostResolv is the node's own resolver configuration.
type hostResolv struct {
	servers, searches, options []string
}

func readHostResolv() hostResolv {
	var r hostResolv
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return r
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			r.servers = append(r.servers, fields[1])
		case "search", "domain":
			r.searches = fields[1:]
		case "options":
			r.options = append(r.options, fields[1:]...)
		}
	}
	return r
}

// dnsConfig is the pod's resolv.conf by its dnsPolicy: ClusterFirst uses the cluster DNS
// (falling back to the node's resolvers when none is configured or the pod uses the host
// network), Default the node's, None only the pod's dnsConfig, which every policy merges in.
func (k *Kubelet) dnsConfig(pod *v1.Pod) *runtimeapi.DNSConfig {
	host := readHostResolv()
	cfg := &runtimeapi.DNSConfig{}
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	if policy == v1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = v1.DNSDefault
	}
	if (policy == v1.DNSClusterFirst || policy == v1.DNSClusterFirstWithHostNet) && len(k.cfg.ClusterDNS) == 0 {
		policy = v1.DNSDefault
	}
	switch policy {
	case v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet:
		d := k.cfg.ClusterDomain
		cfg.Servers = k.cfg.ClusterDNS
		cfg.Searches = append([]string{pod.Namespace + ".svc." + d, "svc." + d, d}, host.searches...)
		cfg.Options = []string{"ndots:5"}
	case v1.DNSDefault:
		cfg.Servers, cfg.Searches, cfg.Options = host.servers, host.searches, host.options
	}
	if pc := pod.Spec.DNSConfig; pc != nil {
		for _, s := range pc.Nameservers {
			if !slices.Contains(cfg.Servers, s) {
				cfg.Servers = append(cfg.Servers, s)
			}
		}
		for _, s := range pc.Searches {
			if !slices.Contains(cfg.Searches, s) {
				cfg.Searches = append(cfg.Searches, s)
			}
		}
		for _, o := range pc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = slices.DeleteFunc(cfg.Options, func(x string) bool {
				name, _, _ := strings.Cut(x, ":")
				return name == o.Name
			})
			cfg.Options = append(cfg.Options, opt)
		}
	}
	cfg.Servers = cfg.Servers[:min(len(cfg.Servers), 3)]
	return cfg
}

// writeHostsFile writes the pod's managed /etc/hosts: localhost, the pod's own name (with
// its FQDN under a headless-service subdomain) and its hostAliases.
func (k *Kubelet) writeHostsFile(pod *v1.Pod, podDir string) (string, error) {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	hostname := podHostname(pod)
	for _, ip := range pod.Status.PodIPs {
		if pod.Spec.Subdomain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.%s\t%s\n", ip.IP, hostname, pod.Spec.Subdomain, pod.Namespace, k.cfg.ClusterDomain, hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip.IP, hostname)
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	if err := os.MkdirAll(podDir, 0o750); err != nil {
		return "", err
	}
	path := filepath.Join(podDir, "etc-hosts")
	if cur, err := os.ReadFile(path); err == nil && string(cur) == b.String() {
		return path, nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
