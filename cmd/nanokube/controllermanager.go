package main

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokube/nanokube/internal/controllermanager"
)

func newControllerManagerCommand() *cobra.Command {
	var cfg controllermanager.Config
	var logLevel, clusterCIDR string
	cmd := &cobra.Command{
		Use:   "controller-manager",
		Short: "Run the controllers (ReplicaSet, Deployment, garbage collector, namespace, ...) against an API server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Log = log.With("component", "controller-manager")
			if clusterCIDR != "" {
				p, err := netip.ParsePrefix(clusterCIDR)
				if err != nil {
					return fmt.Errorf("--cluster-cidr: %w", err)
				}
				cfg.ClusterCIDR = p.Masked()
			}
			m, err := controllermanager.New(cfg)
			if err != nil {
				return err
			}
			return m.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file of the API server (required)")
	fs.BoolVar(&cfg.LeaderElect, "leader-elect", false, "act only while holding the Lease kube-system/kube-controller-manager")
	fs.StringVar(&cfg.LeaseNamespace, "leader-elect-resource-namespace", "kube-system", "namespace of the leader election Lease")
	fs.StringVar(&cfg.LeaseName, "leader-elect-resource-name", "kube-controller-manager", "name of the leader election Lease")
	fs.DurationVar(&cfg.LeaseDuration, "leader-elect-lease-duration", 0, "leader election lease duration (default 15s)")
	fs.DurationVar(&cfg.RenewDeadline, "leader-elect-renew-deadline", 0, "leader election renew deadline (default 10s)")
	fs.DurationVar(&cfg.RetryPeriod, "leader-elect-retry-period", 0, "leader election retry period (default 2s)")
	fs.StringSliceVar(&cfg.Controllers, "controllers", []string{"*"}, "controllers to run: '*' runs those on by default, 'foo' turns one on, '-foo' turns one off; known: "+
		strings.Join(controllermanager.KnownControllers(), ", "))
	fs.IntVar(&cfg.Workers, "concurrent-syncs", 5, "workers per controller")
	fs.StringVar(&clusterCIDR, "cluster-cidr", "", "pod network that node IPAM allocates node pod CIDRs from")
	fs.IntVar(&cfg.NodeCIDRMaskSize, "node-cidr-mask-size", 24, "prefix length of each node's pod CIDR")
	fs.Float64Var(&cfg.CronJobClockSpeed, "cronjob-clock-speed", 1, "run CronJob schedules this many times faster than real time (for tests and demos)")
	fs.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", 0, "how long a node may be silent before it is marked Unknown (default 40s)")
	fs.DurationVar(&cfg.HorizontalPodAutoscalerSyncPeriod, "horizontal-pod-autoscaler-sync-period", 15*time.Second, "how often each horizontal pod autoscaler is evaluated")
	fs.StringVar(&cfg.ClusterSigningCertFile, "cluster-signing-cert-file", "", "CA certificate the csrsigning controller issues node certificates with (PEM)")
	fs.StringVar(&cfg.ClusterSigningKeyFile, "cluster-signing-key-file", "", "key of --cluster-signing-cert-file (PEM)")
	fs.DurationVar(&cfg.ClusterSigningDuration, "cluster-signing-duration", 0, "longest lifetime of issued certificates (default 8760h)")
	fs.StringVar(&cfg.RootCAFile, "root-ca-file", "", "CA bundle published in every namespace as the kube-root-ca.crt ConfigMap, for pods to verify the API server (PEM)")
	fs.StringVar(&cfg.ServiceAccountPrivateKeyFile, "service-account-private-key-file", "", "key (PEM, RSA or ECDSA) the tokens of kubernetes.io/service-account-token Secrets are signed with: the API server's --service-account-signing-key-file (empty: such Secrets are not filled)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
