package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nanokube/nanokube/internal/kubelet"
)

// newKubeletCommand is `nanokube kubelet`: the node agent alone, against any CRI runtime.
func newKubeletCommand() *cobra.Command {
	var cfg kubelet.Config
	var kubeconfig, logLevel, certFile, keyFile, clientCAFile string
	var labels []string
	cmd := &cobra.Command{
		Use:   "kubelet",
		Short: "Run the kubelet alone: register a node and run its pods through a CRI runtime",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = log.With("component", "kubelet")
			client, err := kubeClientFromFile(kubeconfig, 50, 100)
			if err != nil {
				return err
			}
			if certFile != "" || keyFile != "" {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("--tls-cert-file/--tls-private-key-file: %w", err)
				}
				cfg.TLSCert = &cert
			}
			if clientCAFile != "" {
				pem, err := os.ReadFile(clientCAFile)
				if err != nil {
					return fmt.Errorf("--client-ca-file: %w", err)
				}
				cfg.ClientCA = x509.NewCertPool()
				if !cfg.ClientCA.AppendCertsFromPEM(pem) {
					return fmt.Errorf("--client-ca-file %s holds no PEM certificate", clientCAFile)
				}
			}
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				cfg.Labels[k] = v
			}
			k, err := kubelet.New(cmd.Context(), cfg, client)
			if err != nil {
				return err
			}
			return k.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server (required)")
	fs.StringVar(&cfg.NodeName, "node-name", "", "name of the node (default: the hostname)")
	fs.StringVar(&cfg.NodeIP, "node-ip", "", "address of the node (default: the default route's)")
	fs.StringVar(&cfg.RootDir, "root-dir", "/var/lib/nanokube/kubelet", "directory for pod volumes and files")
	fs.StringVar(&cfg.PodLogsDir, "pod-logs-dir", "/var/log/pods", "directory of container logs")
	fs.StringVar(&cfg.RuntimeEndpoint, "runtime-endpoint", "unix:///run/nanokube/runtime.sock", "CRI endpoint of the container runtime")
	fs.StringSliceVar(&cfg.ClusterDNS, "cluster-dns", nil, "DNS server addresses of ClusterFirst pods")
	fs.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	fs.IntVar(&cfg.MaxPods, "max-pods", 110, "how many pods the node runs at most")
	fs.StringVar(&cfg.CgroupRoot, "cgroup-root", "/kubepods", "cgroup parent of the pods' QoS cgroups")
	fs.StringVar(&cfg.Address, "address", "", "where the kubelet API listens (default NODE-IP:10250)")
	fs.StringVar(&certFile, "tls-cert-file", "", "serving certificate of the kubelet API (default: self-signed)")
	fs.StringVar(&keyFile, "tls-private-key-file", "", "key of --tls-cert-file")
	fs.StringVar(&clientCAFile, "client-ca-file", "", "CA whose client certificates may use the kubelet API")
	fs.StringSliceVar(&labels, "node-labels", nil, "labels to add to the node, key=value")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	_ = cmd.MarkFlagRequired("kubeconfig")
	return cmd
}
