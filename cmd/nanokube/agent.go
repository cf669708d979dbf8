package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nanokube/nanokube/internal/agent"
	"github.com/nanokube/nanokube/internal/datadir"
	"github.com/nanokube/nanokube/internal/kubelet"
)

// newAgentCommand is `nanokube agent`: a node (runtime, kubelet, service proxy) that joins a
// server with its join token, then runs with the credentials the server issued it.
func newAgentCommand() *cobra.Command {
	var cfg agent.Config
	var server, token, tokenFile, logLevel string
	var labels []string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Join this machine to a cluster as a node (kubelet, service proxy, container runtime)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("the node agent needs root (namespaces, mounts, cgroups, runc)")
			}
			if token == "" && tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				token = strings.TrimSpace(string(b))
			}
			if cfg.NodeName == "" {
				h, err := os.Hostname()
				if err != nil {
					return err
				}
				cfg.NodeName = strings.ToLower(h)
			}
			if cfg.NodeIP == "" {
				if cfg.NodeIP, err = kubelet.DefaultNodeIP(); err != nil {
					return fmt.Errorf("no --node-ip and no default route to take one from: %w", err)
				}
			}
			dir, err := filepath.Abs(cfg.DataDir)
			if err != nil {
				return err
			}
			if err := datadir.Check(dir, "agent"); err != nil {
				return err
			}
			kubeletAddr := cfg.KubeletAddress
			if kubeletAddr == "" {
				kubeletAddr = net.JoinHostPort(cfg.NodeIP, "10250")
			}
			if l, err := net.Listen("tcp", kubeletAddr); err != nil {
				return fmt.Errorf("the kubelet cannot listen on %s (%v): stop what uses it (another kubelet or agent?) or choose --kubelet-address", kubeletAddr, err)
			} else {
				l.Close()
			}
			join := agent.JoinConfig{Server: server, Token: token, DataDir: dir,
				NodeName: cfg.NodeName, NodeIPs: []string{cfg.NodeIP}, Log: log.With("component", "join")}
			creds, err := agent.Join(cmd.Context(), join)
			if err != nil {
				return err
			}
			go agent.RenewClientCertificate(cmd.Context(), join, creds)
			if err := datadir.Mark(dir, "agent"); err != nil {
				return err
			}
			cfg.DataDir = dir
			cfg.RESTConfig = creds.RESTConfig
			cfg.RESTConfig.ContentType = "application/vnd.kubernetes.protobuf"
			cfg.RESTConfig.QPS, cfg.RESTConfig.Burst = 50, 100
			cfg.KubeletCert, cfg.ClientCA = &creds.KubeletCert, creds.ClientCA
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				cfg.Labels[k] = v
			}
			cfg.Log = log
			cfg.Progress = progressPrinter()
			return agent.Run(cmd.Context(), cfg, func(k *kubelet.Kubelet) {
				fmt.Printf("node %s (%s) joined %s and is ready; its kubeconfig is %s\n", k.NodeName(), k.NodeIP(), server, creds.Kubeconfig)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&server, "server", "", "URL of the API server, https://HOST:PORT (required)")
	fs.StringVar(&token, "token", "", "join token: the server's DATA_DIR/node-token (needed the first time only)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the join token")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/nanokube-agent", "directory for the node's credentials, images and containers")
	fs.StringVar(&cfg.NodeName, "node-name", "", "name of the node (default: the hostname)")
	fs.StringVar(&cfg.NodeIP, "node-ip", "", "address of the node (default: the default route's)")
	fs.StringVar(&cfg.KubeletAddress, "kubelet-address", "", "where the kubelet API listens (default NODE-IP:10250)")
	fs.StringVar(&cfg.PodLogsDir, "pod-logs-dir", "/var/log/pods", "directory of container logs")
	fs.StringVar(&cfg.CgroupRoot, "cgroup-root", "/kubepods", "cgroup parent of the pods' QoS cgroups")
	fs.StringSliceVar(&cfg.ClusterDNS, "cluster-dns", []string{"10.96.0.10"}, "DNS server addresses of ClusterFirst pods")
	fs.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "the cluster's pod network (as the server's --cluster-cidr)")
	fs.StringSliceVar(&labels, "node-labels", nil, "labels to add to the node, key=value")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	_ = cmd.MarkFlagRequired("server")
	return cmd
}
