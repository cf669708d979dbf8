package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/internal/hollow"
)

func newHollowNodesCommand() *cobra.Command {
	var cfg hollow.Config
	var kubeconfig, logLevel string
	cmd := &cobra.Command{
		Use:   "hollow-nodes",
		Short: "Run simulated nodes (no containers) against an API server, for scale tests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			client, err := kubeClientFromFile(kubeconfig, 1000, 2000)
			if err != nil {
				return err
			}
			cfg.Client, cfg.Log = client, log
			nodes, err := hollow.New(cfg)
			if err != nil {
				return err
			}
			return nodes.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server (required)")
	fs.IntVar(&cfg.Count, "count", 1, "number of simulated nodes")
	fs.StringVar(&cfg.NamePrefix, "name-prefix", "hollow-", "node names are this prefix and a number")
	fs.StringVar(&cfg.CPU, "cpu", "32", "CPU capacity of each node")
	fs.StringVar(&cfg.Memory, "memory", "256Gi", "memory capacity of each node")
	fs.IntVar(&cfg.Pods, "max-pods", 110, "pod capacity of each node")
	fs.StringToStringVar(&cfg.Labels, "node-labels", nil, "extra labels on every node (k=v,...)")
	fs.IntVar(&cfg.Zones, "zones", 0, "spread nodes over this many topology.kubernetes.io/zone values")
	fs.DurationVar(&cfg.LeaseInterval, "lease-interval", 10*time.Second, "how often each node renews its Lease (negative: never)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	_ = cmd.MarkFlagRequired("kubeconfig")
	return cmd
}

// kubeClientFromFile builds a protobuf client from a kubeconfig file.
func kubeClientFromFile(path string, qps float32, burst int) (kubernetes.Interface, error) {
	cfg, err := restConfigFromFile(path, qps, burst)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func restConfigFromFile(path string, qps float32, burst int) (*rest.Config, error) {
	if path == "" {
		return nil, errors.New("--kubeconfig is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.QPS, cfg.Burst = qps, burst
	return cfg, nil
}
