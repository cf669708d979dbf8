package resourcemetrics

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Source is how the metrics API reads the cluster's nodes and pods (the API server's own
// storage). Returned objects are shared and must not be modified.
type Source interface {
	Nodes(ctx context.Context) ([]*corev1.Node, error)
	// Pods lists the pods of namespace ("" = all namespaces).
	Pods(ctx context.Context, namespace string) ([]*corev1.Pod, error)
}

// Config configures the metrics API.
type Config struct {
	Source Source
	// ClientCert authenticates the scraper to kubelets; nil sends no certificate.
	ClientCert *tls.Certificate
	// Resolution is the scrape interval (default 15s, metrics-server's).
	Resolution time.Duration
	// Timeout bounds one node's scrape (default: the resolution, at most 10s).
	Timeout time.Duration
	Log     *slog.Logger
}

// Metrics scrapes kubelets into a Store and serves the metrics.k8s.io API from it.
type Metrics struct {
	cfg    Config
	store  *Store
	client *http.Client
	log    *slog.Logger

	mu      sync.Mutex
	failing map[string]bool // nodes whose last scrape failed, to log each outage once
}

// maxConcurrentScrapes bounds the connections one scrape opens at a time.
const maxConcurrentScrapes = 32

// hollowAnnotation marks the simulated nodes of internal/hollow, which have no kubelet API.
const hollowAnnotation = "nanokube.io/hollow"

// New checks cfg and builds the scraper and handler.
func New(cfg Config) (*Metrics, error) {
	if cfg.Source == nil {
		return nil, errors.New("resource metrics: a source of nodes and pods is required")
	}
	if cfg.Resolution < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("resource metrics: resolution %v and timeout %v must not be negative", cfg.Resolution, cfg.Timeout)
	}
	if cfg.Resolution == 0 {
		cfg.Resolution = 15 * time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = min(cfg.Resolution, 10*time.Second)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// Kubelet serving certificates are self-signed until nodes get CA-signed ones (as for
	// logs and exec in the API server's node proxy).
	tlsConfig := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // see above
	if cfg.ClientCert != nil {
		tlsConfig.Certificates = []tls.Certificate{*cfg.ClientCert}
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * cfg.Resolution},
		Timeout:   cfg.Timeout,
	}
	return &Metrics{cfg: cfg, store: NewStore(cfg.Resolution), client: client, log: cfg.Log, failing: map[string]bool{}}, nil
}

// Store is the scraped data.
func (m *Metrics) Store() *Store { return m.store }

// Run scrapes at once and then every Resolution until ctx is done.
func (m *Metrics) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Resolution)
	defer t.Stop()
	for {
		m.Scrape(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Scrape fetches the summaries of every Ready node concurrently and replaces the store's
// contents with them. Failures are logged per node.
func (m *Metrics) Scrape(ctx context.Context) {
	nodes, err := m.cfg.Source.Nodes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("resource metrics: cannot list nodes", "err", err)
		}
		return
	}
	var mu sync.Mutex
	batch := map[string]*statsv1alpha1.Summary{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConcurrentScrapes)
	for _, node := range nodes {
		if !nodeReady(node) || node.Annotations[hollowAnnotation] == "true" {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sum, err := m.scrapeNode(ctx, node)
			if ctx.Err() != nil {
				return
			}
			m.noteResult(node.Name, err)
			if err != nil {
				return
			}
			mu.Lock()
			batch[node.Name] = sum
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	m.store.Replace(batch)
	known := map[string]bool{}
	for _, n := range nodes {
		known[n.Name] = true
	}
	m.mu.Lock()
	for name := range m.failing {
		if !known[name] {
			delete(m.failing, name) // a deleted node
		}
	}
	m.mu.Unlock()
}

// noteResult logs a node's scrape failure at warning level when an outage starts and at
// debug level while it lasts, so that a dead node does not flood the log every interval.
func (m *Metrics) noteResult(node string, err error) {
	m.mu.Lock()
	wasFailing := m.failing[node]
	if err != nil {
		m.failing[node] = true
	} else {
		delete(m.failing, node)
	}
	m.mu.Unlock()
	switch {
	case err != nil && !wasFailing:
		m.log.Warn("resource metrics: cannot scrape node, leaving it out", "node", node, "err", err)
	case err != nil:
		m.log.Debug("resource metrics: cannot scrape node, leaving it out", "node", node, "err", err)
	case wasFailing:
		m.log.Info("resource metrics: node scraped again", "node", node)
	}
}

func (m *Metrics) scrapeNode(ctx context.Context, node *corev1.Node) (*statsv1alpha1.Summary, error) {
	host, port := nodeAddress(node), node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if host == "" || port == 0 {
		return nil, errors.New("the node has no kubelet endpoint")
	}
	u := "https://" + net.JoinHostPort(host, strconv.Itoa(int(port))) + "/stats/summary?only_cpu_and_memory=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, body)
	}
	sum := &statsv1alpha1.Summary{}
	if err := json.Unmarshal(body, sum); err != nil {
		return nil, fmt.Errorf("GET %s: decoding the summary: %w", u, err)
	}
	return sum, nil
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeAddress picks the address the API server dials kubelets at, in the same preference
// order as its node proxy.
func nodeAddress(node *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t {
				return a.Address
			}
		}
	}
	return ""
}
