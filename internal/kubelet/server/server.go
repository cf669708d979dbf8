package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
)

// Host is what the server needs from the kubelet.
type Host interface {
	// Pods returns the pods bound to this node as the kubelet last saw them. The server
	// does not modify them.
	Pods() []*v1.Pod
	// Pod finds one by namespace/name (ok=false if the kubelet does not run it).
	Pod(namespace, name string) (*v1.Pod, bool)
	// Runtime is the CRI client.
	Runtime() internalapi.RuntimeService
}

// Config configures a Server.
type Config struct {
	// Address to listen on, e.g. "0.0.0.0:10250" or "127.0.0.1:0"; default "0.0.0.0:10250".
	Address string
	// TLSCert is the serving certificate. Required.
	TLSCert tls.Certificate
	// ClientCA authenticates client certificates signed by it; nil authenticates none.
	ClientCA *x509.CertPool
	// NodeName is reported in /stats/summary. Required.
	NodeName string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Server is the kubelet's HTTPS API. See the package documentation.
type Server struct {
	cfg     Config
	host    Host
	log     *slog.Logger
	srv     *http.Server
	metrics http.Handler
	ready   chan struct{}
	addr    net.Addr

	statsMu sync.Mutex // one summary at a time: it owns the CPU samples
	cpu     map[string]cpuSample

	mu      sync.Mutex
	streams map[net.Conn]struct{} // connections handed to a streaming proxy
}

// New checks cfg and returns a Server; Run starts it.
func New(cfg Config, host Host) (*Server, error) {
	var errs []error
	if host == nil {
		errs = append(errs, errors.New("a host is required"))
	}
	if len(cfg.TLSCert.Certificate) == 0 {
		errs = append(errs, errors.New("a serving certificate is required"))
	}
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("node name is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Address == "" {
		cfg.Address = "0.0.0.0:10250"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, host: host, log: cfg.Logger, ready: make(chan struct{}),
		cpu: map[string]cpuSample{}, streams: map[net.Conn]struct{}{}}
	s.metrics = promhttp.HandlerFor(s.newRegistry(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return s, nil
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on; valid after Ready.
func (s *Server) Addr() net.Addr { return s.addr }

type connKey struct{}

// Run serves until ctx is done, then ends every request and stream and returns. It returns
// an error only if the server could not listen or failed while serving.
func (s *Server) Run(ctx context.Context) error {
	tlsConfig := &tls.Config{
		Certificates: []tls.Certificate{s.cfg.TLSCert},
		MinVersion:   tls.VersionTLS12,
		// SPDY and WebSocket upgrades hijack an HTTP/1.1 connection; HTTP/2 has none.
		NextProtos: []string{"http/1.1"},
	}
	if s.cfg.ClientCA != nil {
		tlsConfig.ClientAuth, tlsConfig.ClientCAs = tls.VerifyClientCertIfGiven, s.cfg.ClientCA
	}
	l, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("kubelet server: %w", err)
	}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// Requests, log follows included, end with ctx.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
	}
	s.addr = l.Addr()
	close(s.ready)
	s.log.Info("kubelet server listening", "address", s.addr.String())

	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(tls.NewListener(l, tlsConfig)) }()
	select {
	case err := <-served:
		return fmt.Errorf("kubelet server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		_ = s.srv.Close()
	}
	// Shutdown forgets hijacked connections: end the streams here.
	s.mu.Lock()
	for c := range s.streams {
		c.Close()
	}
	s.mu.Unlock()
	<-served
	return nil
}

// routes is the handler tree: everything but /healthz needs an authenticated client.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pods", s.handlePods)
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.handleContainerLogs)
	for _, p := range []string{"/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, s.handleExec)
	}
	for _, p := range []string{"/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, s.handleAttach)
	}
	for _, p := range []string{"/portForward/{ns}/{pod}", "/portForward/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(p, s.handlePortForward)
	}
	mux.HandleFunc("GET /stats/summary", s.handleSummary)
	mux.Handle("GET /metrics", s.metrics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok"))
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) handlePods(w http.ResponseWriter, _ *http.Request) {
	list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: []v1.Pod{}}
	for _, p := range s.host.Pods() {
		list.Items = append(list.Items, *p)
	}
	writeJSON(w, &list)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// trackStream registers the request's connection as a stream for Run to close at shutdown;
// the returned func forgets it.
func (s *Server) trackStream(r *http.Request) func() {
	c, ok := r.Context().Value(connKey{}).(net.Conn)
	if !ok {
		return func() {}
	}
	s.mu.Lock()
	s.streams[c] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.streams, c)
		s.mu.Unlock()
	}
}
