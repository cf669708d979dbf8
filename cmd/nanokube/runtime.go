package main

import (
	"github.com/spf13/cobra"

	"github.com/nanokube/nanokube/internal/runtime"
)

// newRuntimeCommand is `nanokube runtime`: the CRI server alone. Container shims are this
// binary re-executed (package internal/runtime/container intercepts them before main runs).
func newRuntimeCommand() *cobra.Command {
	var cfg runtime.Config
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "Run the container runtime: a CRI v1 server (images, runc containers, CNI pod networks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := runtime.New(cfg)
			if err != nil {
				return err
			}
			return rt.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Root, "root", "/var/lib/nanokube/runtime", "directory for images, containers and sandbox state")
	f.StringVar(&cfg.Socket, "socket", "/run/nanokube/runtime.sock", "unix socket the CRI services listen on")
	f.StringVar(&cfg.RegistryConfig, "registry-config", "", "YAML file of registry mirrors and per-host settings (plain HTTP, TLS, auth)")
	f.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "/usr/lib/cni", "directory of CNI plugin binaries")
	f.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "", "directory of CNI network configs (default ROOT/cni/net.d)")
	f.StringVar(&cfg.CNIBridge, "cni-bridge", "nk0", "bridge of the CNI config written from the pod CIDR")
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "pod CIDR for the CNI config written at start (otherwise the kubelet's UpdateRuntimeConfig sets it)")
	f.BoolVar(&cfg.NoMasquerade, "no-masquerade", false, "do not NAT pod traffic leaving the pod CIDR")
	f.StringVar(&cfg.Runc, "runc", "runc", "runc binary")
	f.StringVar(&cfg.StreamAddress, "stream-address", "127.0.0.1:0", "address of the exec/attach/port-forward streaming server")
	return cmd
}
