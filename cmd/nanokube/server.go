package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/nanokube/nanokube/internal/server"
)

func bindControlPlaneFlags(fs *pflag.FlagSet, cfg *server.Config) {
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/nanokube", "directory for etcd data, certificates and kubeconfigs")
	fs.StringVar(&cfg.BindAddress, "bind-address", "0.0.0.0", "IP address the API server listens on")
	fs.IntVar(&cfg.SecurePort, "secure-port", 6443, "HTTPS port of the API server (0 picks a free port)")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "IP address the cluster reaches the API server at (default: the bind address or the host's first IPv4 address)")
	fs.StringSliceVar(&cfg.EtcdServers, "etcd-servers", nil, "external etcd endpoints (comma-separated); when empty an embedded etcd member runs in --data-dir")
	fs.StringSliceVar(&cfg.EtcdListenClientURLs, "etcd-listen-client-urls", nil, "client URLs of the embedded etcd (default: a unix socket in --data-dir)")
	fs.StringSliceVar(&cfg.EtcdListenPeerURLs, "etcd-listen-peer-urls", nil, "peer URLs of the embedded etcd (default: a unix socket in --data-dir)")
	fs.StringVar(&cfg.ServiceClusterIPRange, "service-cluster-ip-range", "10.96.0.0/12", "CIDR that Service cluster IPs are allocated from")
	fs.StringVar(&cfg.ServiceNodePortRange, "service-node-port-range", "30000-32767", "port range that NodePorts are allocated from")
	fs.StringVar(&cfg.TokenAuthFile, "token-auth-file", "", "static bearer token file (token,user,uid,\"group1,group2\"); default: --data-dir/tokens.csv")
	fs.StringVar(&cfg.AuthorizationMode, "authorization-mode", "Node,RBAC", "how the API server authorizes requests: a comma list of Node, RBAC and AlwaysAllow, asked in order (members of system:masters may always do everything)")
	fs.StringVar(&cfg.ServiceAccountIssuer, "service-account-issuer", "https://kubernetes.default.svc.cluster.local", "issuer (iss) of service-account tokens")
	fs.StringVar(&cfg.ServiceAccountSigningKeyFile, "service-account-signing-key-file", "", "PEM private key (RSA or ECDSA) service-account tokens are signed with (default: --data-dir/pki/sa.key, created if missing)")
	fs.StringSliceVar(&cfg.ServiceAccountKeyFiles, "service-account-key-file", nil, "further PEM files of public keys that verify service-account tokens (keys being rotated out)")
	fs.StringSliceVar(&cfg.APIAudiences, "api-audiences", nil, "audiences a token must be meant for to authenticate to the API server (default: the issuer)")
	fs.DurationVar(&cfg.ServiceAccountMaxTokenExpiration, "service-account-max-token-expiration", 0, "longest lifetime of an issued service-account token (0: as requested)")
	fs.StringVar(&cfg.ServiceAccountJWKSURI, "service-account-jwks-uri", "", "jwks_uri of the issuer's OIDC discovery document (default: https://<advertise address>:<port>/openid/v1/jwks)")
	fs.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra host names or IPs for the serving certificate")
	fs.DurationVar(&cfg.MetricResolution, "metric-resolution", 15*time.Second, "how often kubelets are scraped for the resource metrics API (metrics.k8s.io), as metrics-server's flag")
	fs.BoolVar(&cfg.UnsafeNoFsync, "etcd-unsafe-no-fsync", false, "skip etcd fsyncs (faster, loses data on power failure; for tests)")
	fs.StringVar(&cfg.EncryptionProviderConfig, "encryption-provider-config", "", "EncryptionConfiguration file (apiserver.config.k8s.io/v1): resources encrypted at rest in etcd with aescbc, aesgcm or secretbox")
	fs.StringVar(&cfg.AuditPolicyFile, "audit-policy-file", "", "audit Policy file (audit.k8s.io/v1): which requests the audit log records, and at which level")
	fs.StringVar(&cfg.AuditLogPath, "audit-log-path", "", "file audit events are appended to as JSON lines (\"-\": stdout); needs --audit-policy-file")
	fs.IntVar(&cfg.AuditLogMaxSize, "audit-log-maxsize", 0, "rotate the audit log file when it reaches this many megabytes (0: never)")
	fs.IntVar(&cfg.AuditLogMaxBackup, "audit-log-maxbackup", 0, "rotated audit log files to keep (0: all)")
}

func newServerCommand() *cobra.Command {
	var cfg server.Config
	var logLevel string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (etcd, API server, scheduler, controller manager) on this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Log = log
			cfg.Progress = progressPrinter()
			return server.Run(cmd.Context(), cfg, printReady)
		},
	}
	bindControlPlaneFlags(cmd.Flags(), &cfg)
	cmd.Flags().StringVar(&cfg.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "pod network; each node gets a pod CIDR from it")
	cmd.Flags().DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "how long a node may be silent before it is marked Unknown and tainted")
	cmd.Flags().Float64Var(&cfg.CronJobClockSpeed, "cronjob-clock-speed", 1, "run CronJob schedules this many times faster than real time (for tests and demos)")
	cmd.Flags().DurationVar(&cfg.HorizontalPodAutoscalerSyncPeriod, "horizontal-pod-autoscaler-sync-period", 15*time.Second, "how often each horizontal pod autoscaler is evaluated")
	cmd.Flags().BoolVar(&cfg.DisableScheduler, "disable-scheduler", false, "do not run the scheduler in this process")
	cmd.Flags().BoolVar(&cfg.DisableControllerManager, "disable-controller-manager", false, "do not run the controller manager in this process")
	cmd.Flags().BoolVar(&cfg.DisableAgent, "disable-agent", false, "do not run a node agent (kubelet, proxy, runtime) on this machine; the cluster DNS still runs, at the address agents join at")
	cmd.Flags().StringVar(&cfg.NodeName, "node-name", "", "name of this machine's node (default: the hostname)")
	cmd.Flags().StringVar(&cfg.NodeIP, "node-ip", "", "address of this machine's node (default: the advertise address or the default route's)")
	cmd.Flags().StringVar(&cfg.KubeletAddress, "kubelet-address", "", "where the kubelet API listens (default NODE-IP:10250)")
	cmd.Flags().StringVar(&cfg.PodLogsDir, "pod-logs-dir", "/var/log/pods", "directory of container logs")
	cmd.Flags().StringVar(&cfg.CgroupRoot, "cgroup-root", "/kubepods", "cgroup parent of the pods' QoS cgroups")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func newAPIServerCommand() *cobra.Command {
	var cfg server.Config
	var logLevel string
	cmd := &cobra.Command{
		Use:   "apiserver",
		Short: "Run the API server alone (with embedded or external etcd)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Log = log
			cfg.DisableAgent, cfg.DisableScheduler, cfg.DisableControllerManager, cfg.DisableDNS = true, true, true, true
			return server.Run(cmd.Context(), cfg, printReady)
		},
	}
	bindControlPlaneFlags(cmd.Flags(), &cfg)
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// progressPrinter shows each start step on stdout as it completes, with the time since the
// command started, so that a person sees what is starting instead of a silent wait.
func progressPrinter() func(string) {
	start := time.Now()
	return func(step string) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(start).Seconds(), step)
	}
}

func printReady(r server.Ready) {
	fmt.Printf("nanokube API server is ready at %s\n\n  export KUBECONFIG=%s\n  kubectl get nodes\n\n", r.URL, r.Kubeconfig)
	fmt.Printf("Join another machine as a node (as root):\n\n  nanokube agent --server %s --token $(cat %s) --node-name NAME\n\n", r.JoinURL, r.JoinTokenFile)
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	// client-go's leader election and event broadcaster log through klog: into slog with them.
	klog.SetSlogLogger(log)
	return log, nil
}
