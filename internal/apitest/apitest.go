// Package apitest starts a real control plane (embedded etcd and the API server on a free
// port) inside a test, for integration tests of anything that talks to the API.
package apitest

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/internal/server"
)

// Cluster is a running control plane.
type Cluster struct {
	t       testing.TB
	Dir     string
	Config  *rest.Config // admin, protobuf content type like client-go's typed clients
	Client  kubernetes.Interface
	Kubecfg string
	opts    Options
	port    int // kept across restarts so that clients keep working
	cancel  context.CancelFunc
	done    chan error
}

// Options tune the control plane.
type Options struct {
	CompactionInterval time.Duration
	EventCapacity      int
	Dir                string // reuse a data directory (restart tests); default t.TempDir()
	// Controllers runs the scheduler and controller manager too; by default the API server
	// and etcd run alone, so that tests see raw API semantics and start their own controllers.
	Controllers bool
	// EncryptionProviderConfig, AuditPolicyFile and AuditLogPath are the API server flags of
	// the same names; change them between Restarts to rotate keys.
	EncryptionProviderConfig string
	AuditPolicyFile          string
	AuditLogPath             string
}

// Start starts a control plane; it is stopped when the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts, Dir: opts.Dir}
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	c.start()
	t.Cleanup(c.Stop)
	return c
}

func (c *Cluster) start() {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan error, 1)
	ready := make(chan server.Ready, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("NANOKUBE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := server.Config{DataDir: c.Dir, BindAddress: "127.0.0.1", SecurePort: c.port, UnsafeNoFsync: true,
		CompactionInterval: c.opts.CompactionInterval, EventCapacity: c.opts.EventCapacity, DisableAgent: true, Log: log,
		AdvertiseAddress: "127.0.0.1", DisableScheduler: !c.opts.Controllers, DisableControllerManager: !c.opts.Controllers}
	cfg.EncryptionProviderConfig = c.opts.EncryptionProviderConfig
	cfg.AuditPolicyFile, cfg.AuditLogPath = c.opts.AuditPolicyFile, c.opts.AuditLogPath
	if cfg.CompactionInterval == 0 {
		cfg.CompactionInterval = -1
	}
	go func() { c.done <- server.Run(ctx, cfg, func(r server.Ready) { ready <- r }) }()
	select {
	case r := <-ready:
		c.Kubecfg = r.Kubeconfig
		u, _ := url.Parse(r.URL)
		c.port, _ = strconv.Atoi(u.Port())
	case err := <-c.done:
		cancel()
		c.cancel = nil
		c.t.Fatalf("control plane did not start: %v", err)
	case <-time.After(60 * time.Second):
		c.Stop()
		c.t.Fatal("control plane did not become ready within 60s")
	}
	cfgs, err := clientcmd.BuildConfigFromFlags("", c.Kubecfg)
	if err != nil {
		c.t.Fatal(err)
	}
	cfgs.ContentType = "application/vnd.kubernetes.protobuf"
	cfgs.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfgs.QPS, cfgs.Burst = -1, 0
	c.Config = cfgs
	c.Client = kubernetes.NewForConfigOrDie(cfgs)
}

// Stop stops the control plane (idempotent).
func (c *Cluster) Stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.t.Errorf("control plane did not stop within 30s")
	}
	c.cancel = nil
}

// Restart stops and starts the control plane on the same data directory and port.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.Stop()
	c.start()
}

// RestartWith restarts the control plane with new options (the data directory is kept).
func (c *Cluster) RestartWith(opts Options) {
	c.t.Helper()
	c.Stop()
	opts.Dir = c.Dir
	c.opts = opts
	c.start()
}
