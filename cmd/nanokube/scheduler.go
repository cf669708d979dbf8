package main

import (
	"github.com/spf13/cobra"

	"github.com/nanokube/nanokube/internal/scheduler"
)

func newSchedulerCommand() *cobra.Command {
	var cfg scheduler.Config
	var kubeconfig, logLevel string
	var qps float32
	var burst int
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Run the scheduler alone against an API server",
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
			cfg.Log = log.With("component", "scheduler")
			s, err := scheduler.New(cfg, client)
			if err != nil {
				return err
			}
			return s.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server (required)")
	fs.BoolVar(&cfg.LeaderElect, "leader-elect", false, "schedule only while holding the leader Lease")
	fs.StringVar(&cfg.LeaseNamespace, "leader-elect-resource-namespace", "kube-system", "namespace of the leader Lease")
	fs.StringVar(&cfg.LeaseName, "leader-elect-resource-name", "kube-scheduler", "name of the leader Lease")
	fs.DurationVar(&cfg.LeaseDuration, "leader-elect-lease-duration", 0, "leader Lease duration (default 15s)")
	fs.DurationVar(&cfg.RenewDeadline, "leader-elect-renew-deadline", 0, "leader renew deadline (default 10s)")
	fs.DurationVar(&cfg.RetryPeriod, "leader-elect-retry-period", 0, "leader election retry period (default 2s)")
	fs.StringVar(&cfg.SchedulerName, "scheduler-name", scheduler.DefaultSchedulerName, "schedule pods with this spec.schedulerName")
	fs.IntVar(&cfg.PercentageOfNodesToScore, "percentage-of-nodes-to-score", 0, "percentage of nodes to look for feasible ones in (0: adaptive)")
	fs.IntVar(&cfg.BindWorkers, "bind-workers", 64, "bindings in flight at most")
	fs.Float32Var(&qps, "kube-api-qps", 5000, "queries per second to the API server")
	fs.IntVar(&burst, "kube-api-burst", 10000, "burst of queries to the API server")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	_ = cmd.MarkFlagRequired("kubeconfig")
	return cmd
}
