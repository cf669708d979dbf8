// Package etcd runs the embedded single-member etcd that nanokube stores its state in, or
// connects to an external etcd cluster. Either way the caller gets a *clientv3.Client.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Config selects embedded or external etcd.
type Config struct {
	// DataDir holds the embedded member's data (DataDir/etcd). Ignored with Servers.
	DataDir string
	// ListenClientURLs and ListenPeerURLs are the embedded member's listeners. Empty means a
	// unix socket in DataDir for clients and 127.0.0.1:0 for peers (no TCP port is taken).
	ListenClientURLs []string
	ListenPeerURLs   []string
	// Servers are the endpoints of an external etcd cluster; when set nothing is embedded.
	Servers []string
	// UnsafeNoFsync trades durability for speed (tests and benchmarks only).
	UnsafeNoFsync bool
	// Log receives the member's warnings and errors (nil: slog.Default()).
	Log *slog.Logger
}

// Etcd is a running store: an embedded member, or a connection to an external cluster.
type Etcd struct {
	Client *clientv3.Client
	member *embed.Etcd
}

// Start starts the embedded member (or dials the external cluster) and returns once it serves.
func Start(ctx context.Context, cfg Config) (*Etcd, error) {
	if len(cfg.Servers) > 0 {
		// Keepalives find a member that vanished without closing its connections (a lost
		// machine), so requests move to the other members instead of hanging on it.
		c, err := clientv3.New(clientv3.Config{Endpoints: cfg.Servers, DialTimeout: 5 * time.Second,
			DialKeepAliveTime: 30 * time.Second, DialKeepAliveTimeout: 10 * time.Second,
			Context: ctx, Logger: zap.NewNop()})
		if err != nil {
			return nil, fmt.Errorf("connect to etcd %v: %w", cfg.Servers, err)
		}
		// Any member that answers will do: a cluster that lost a member still has quorum.
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := anyMemberServes(sctx, c, cfg.Servers); err != nil {
			c.Close()
			return nil, err
		}
		return &Etcd{Client: c}, nil
	}
	if cfg.DataDir == "" {
		return nil, errors.New("etcd: a data directory is required for embedded etcd")
	}
	dir := filepath.Join(cfg.DataDir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = "nanokube"
	ec.Dir = dir
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapToSlog(log))
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	ec.QuotaBackendBytes = 8 << 30
	// A single local member elects itself: short ticks make that, and so start-up, quick.
	ec.TickMs, ec.ElectionMs = 10, 100
	clientURLs := cfg.ListenClientURLs
	if len(clientURLs) == 0 {
		clientURLs = []string{"unix://" + filepath.Join(dir, "client.sock")}
		_ = os.Remove(filepath.Join(dir, "client.sock"))
	}
	peerURLs := cfg.ListenPeerURLs
	if len(peerURLs) == 0 {
		peerURLs = []string{"unix://" + filepath.Join(dir, "peer.sock")}
		_ = os.Remove(filepath.Join(dir, "peer.sock"))
	}
	var err error
	if ec.ListenClientUrls, err = parseURLs(clientURLs); err != nil {
		return nil, err
	}
	ec.AdvertiseClientUrls = ec.ListenClientUrls
	if ec.ListenPeerUrls, err = parseURLs(peerURLs); err != nil {
		return nil, err
	}
	ec.AdvertisePeerUrls = ec.ListenPeerUrls
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)

	member, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-member.Server.ReadyNotify():
	case err := <-member.Err():
		member.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		member.Close()
		return nil, errors.New("embedded etcd did not become ready within 60s")
	case <-ctx.Done():
		member.Close()
		return nil, ctx.Err()
	}
	return &Etcd{Client: v3client.New(member.Server), member: member}, nil
}

// Err reports a fatal error of the embedded member; nil channel for external clusters.
func (e *Etcd) Err() <-chan error {
	if e.member == nil {
		return nil
	}
	return e.member.Err()
}

// Close closes the client and stops the embedded member.
func (e *Etcd) Close() {
	e.Client.Close()
	if e.member != nil {
		e.member.Close()
	}
}

// anyMemberServes returns nil once one of endpoints answers a status request, retrying the
// members in turn until ctx ends.
func anyMemberServes(ctx context.Context, c *clientv3.Client, endpoints []string) error {
	var errs []error
	for {
		for _, ep := range endpoints {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := c.Status(actx, ep)
			cancel()
			if err == nil {
				return nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no etcd member of %v is reachable: %w", endpoints, errors.Join(errs[len(errs)-len(endpoints):]...))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func parseURLs(ss []string) ([]url.URL, error) {
	out := make([]url.URL, 0, len(ss))
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("etcd listen URL %q: %w", s, err)
		}
		out = append(out, *u)
	}
	return out, nil
}
