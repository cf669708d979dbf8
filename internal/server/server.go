// Package server assembles the control plane: embedded (or external) etcd, then the API
// server, each started once what it needs is ready. Later components (scheduler, controller
// manager, node agent) join here, in the same order-and-gate style.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nanokube/nanokube/internal/apiserver"
	"github.com/nanokube/nanokube/internal/apiserver/registry/builtin"
	"github.com/nanokube/nanokube/internal/etcd"
	"github.com/nanokube/nanokube/internal/pki"
	"github.com/nanokube/nanokube/internal/storage"
)

// Config configures the control plane.
type Config struct {
	// DataDir holds etcd's data (unless EtcdServers is set), the PKI and the kubeconfigs.
	DataDir string
	// BindAddress and SecurePort are where the API server listens (port 0: any free port).
	BindAddress      string
	SecurePort       int
	AdvertiseAddress string
	// EtcdServers selects an external etcd cluster instead of the embedded member, whose
	// listeners EtcdListenClientURLs and EtcdListenPeerURLs set.
	EtcdServers          []string
	EtcdListenClientURLs []string
	EtcdListenPeerURLs   []string
	// UnsafeNoFsync skips etcd's fsyncs (tests and benchmarks only).
	UnsafeNoFsync bool
	// ServiceClusterIPRange and ServiceNodePortRange are the Service address ranges.
	ServiceClusterIPRange string
	ServiceNodePortRange  string
	// TokenAuthFile is a static token file (token,user,uid,"groups"); empty means
	// DataDir/tokens.csv, created with one admin token if missing.
	TokenAuthFile string
	// TLSSANs are extra names and IPs for the serving certificate.
	TLSSANs []string
	// CompactionInterval and EventCapacity tune the API server's etcd compaction and watch
	// cache history (zero: the defaults).
	CompactionInterval time.Duration
	EventCapacity      int
	// DisableAgent runs no node agent on this machine.
	DisableAgent bool
	Log          *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if c.SecurePort < 0 || c.SecurePort > 65535 {
		errs = append(errs, fmt.Errorf("--secure-port %d is out of range 0-65535", c.SecurePort))
	}
	if c.BindAddress != "" && net.ParseIP(c.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("--bind-address %q is not an IP address", c.BindAddress))
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return errors.Join(errs...)
}

// Ready describes a running control plane.
type Ready struct {
	URL        string // https://127.0.0.1:6443
	Kubeconfig string // DataDir/admin.kubeconfig
	Token      string // an admin bearer token
}

// Run starts the control plane and blocks until ctx is done. onReady is called once the API
// server answers /readyz.
func Run(ctx context.Context, cfg Config, onReady func(Ready)) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.Log
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if cfg.ServiceClusterIPRange == "" {
		cfg.ServiceClusterIPRange = "10.96.0.0/12"
	}
	bundle, err := pki.Ensure(filepath.Join(dir, "pki"), pki.Options{ServiceCIDR: cfg.ServiceClusterIPRange, ExtraSANs: cfg.TLSSANs})
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	tokenFile := cfg.TokenAuthFile
	var token string
	if tokenFile == "" {
		tokenFile = filepath.Join(dir, "tokens.csv")
		if token, err = pki.EnsureTokenFile(tokenFile); err != nil {
			return fmt.Errorf("token file: %w", err)
		}
	}
	tokens, err := pki.LoadTokenFile(tokenFile)
	if err != nil {
		return err
	}

	log.Info("starting etcd", "external", len(cfg.EtcdServers) > 0)
	store, err := etcd.Start(ctx, etcd.Config{DataDir: dir, Servers: cfg.EtcdServers,
		ListenClientURLs: cfg.EtcdListenClientURLs, ListenPeerURLs: cfg.EtcdListenPeerURLs, UnsafeNoFsync: cfg.UnsafeNoFsync,
		Log: log.With("component", "etcd")})
	if err != nil {
		return err
	}
	defer store.Close()

	codec := apiserver.StorageCodec()
	api, err := apiserver.New(apiserver.Config{
		BindAddress: cfg.BindAddress, SecurePort: cfg.SecurePort, AdvertiseAddress: cfg.AdvertiseAddress,
		ServingCert: bundle.Serving, ClientCAs: bundle.CAPool, Tokens: tokens,
		Store:     storage.New(store.Client, codec, codec),
		Resources: builtin.Resources(), ServiceClusterIPRange: cfg.ServiceClusterIPRange,
		ServiceNodePortRange: cfg.ServiceNodePortRange, Log: log.With("component", "apiserver"),
		CompactionInterval: cfg.CompactionInterval, EventCapacity: cfg.EventCapacity,
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	log.Info("starting API server")
	go func() { errc <- api.Run(runCtx) }()
	select {
	case <-api.Ready():
	case err := <-errc:
		return err
	case err := <-store.Err():
		return fmt.Errorf("etcd: %w", err)
	}

	host := "127.0.0.1"
	if cfg.BindAddress != "" && cfg.BindAddress != "0.0.0.0" && cfg.BindAddress != "::" {
		host = cfg.BindAddress
	}
	port := api.Addr().(*net.TCPAddr).Port
	url := "https://" + net.JoinHostPort(host, strconv.Itoa(port))
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := pki.WriteKubeconfig(kubeconfig, url, bundle.CA.CertPEM, bundle.Admin); err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	if onReady != nil {
		onReady(Ready{URL: url, Kubeconfig: kubeconfig, Token: token})
	}

	select {
	case err := <-errc:
		if errors.Is(err, context.Canceled) {
			return ctx.Err()
		}
		return err
	case err := <-store.Err():
		cancel()
		<-errc
		return fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		select {
		case <-errc:
		case <-time.After(10 * time.Second):
			log.Warn("API server did not stop within 10s")
		}
		return ctx.Err()
	}
}
