package main

import (
	"os"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/nanokube/nanokube/internal/proxy"
)

func newProxyCommand() *cobra.Command {
	var cfg proxy.Config
	var kubeconfig, logLevel string
	var qps float32
	var burst int
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the service proxy (nftables) alone against an API server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			client, err := kubeClientFromFile(kubeconfig, qps, burst)
			if err != nil {
				return err
			}
			if cfg.NodeName == "" {
				if cfg.NodeName, err = os.Hostname(); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			broadcaster := record.NewBroadcaster(record.WithContext(ctx))
			broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
			defer broadcaster.Shutdown()
			recorder := broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "nanokube-proxy", Host: cfg.NodeName})

			cfg.Log = log.With("component", "proxy")
			p, err := proxy.New(cfg, client, recorder)
			if err != nil {
				return err
			}
			return p.Run(ctx)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server (required)")
	fs.StringVar(&cfg.NodeName, "node-name", "", "name of this node, for the Local traffic policies (default: the hostname)")
	fs.StringSliceVar(&cfg.NodeIPs, "node-ip", nil, "IPv4 addresses NodePorts answer on (default: every local address but 127.0.0.0/8)")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "", "pod network; ClusterIP traffic from outside it is masqueraded")
	fs.StringVar(&cfg.TableName, "table", proxy.DefaultTableName, "nftables table (family ip) owned by the proxy")
	fs.DurationVar(&cfg.SyncPeriod, "sync-period", proxy.DefaultSyncPeriod, "interval of full rewrites of the table")
	fs.DurationVar(&cfg.MinSyncInterval, "min-sync-period", proxy.DefaultMinSyncInterval, "least time between two syncs")
	fs.Float32Var(&qps, "kube-api-qps", 50, "queries per second to the API server")
	fs.IntVar(&burst, "kube-api-burst", 100, "burst of queries to the API server")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	_ = cmd.MarkFlagRequired("kubeconfig")
	return cmd
}
