package apiserver

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"

	"github.com/nanokube/nanokube/internal/apiserver/authz"
	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/apiserver/resourcemetrics"
	"github.com/nanokube/nanokube/internal/apiserver/satoken"
	"github.com/nanokube/nanokube/internal/audit"
	"github.com/nanokube/nanokube/internal/pki"
	"github.com/nanokube/nanokube/internal/storage"
)

// Config configures the API server.
type Config struct {
	// BindAddress and SecurePort are where HTTPS is served; port 0 picks a free port.
	BindAddress string
	SecurePort  int
	// AdvertiseAddress is the IP the kubernetes Service's endpoints point at; empty picks the
	// bind address or the host's first non-loopback IPv4 address.
	AdvertiseAddress string
	// TLS: the serving certificate, and the CA that signs client certificates.
	ServingCert tls.Certificate
	ClientCAs   *x509.CertPool
	// Tokens authenticates bearer tokens; nil disables token authentication.
	Tokens TokenAuthenticator
	// ServiceAccountIssuer is the "iss" of service-account tokens, and the API server's
	// audience unless APIAudiences are given. Empty means https://kubernetes.default.svc.cluster.local.
	ServiceAccountIssuer string
	// ServiceAccountSigningKey signs the tokens of the TokenRequest API; nil leaves
	// serviceaccounts/token unserved.
	ServiceAccountSigningKey crypto.Signer
	// ServiceAccountKeys verify service-account tokens (the signing key's public half is
	// always among them); with neither, service-account tokens are not accepted.
	ServiceAccountKeys []crypto.PublicKey
	// APIAudiences are the audiences a token must be meant for to authenticate here.
	APIAudiences []string
	// ServiceAccountJWKSURI overrides the jwks_uri of the OIDC discovery document
	// (kube-apiserver's --service-account-jwks-uri); empty means this server's own
	// https://<advertise address>:<port>/openid/v1/jwks.
	ServiceAccountJWKSURI string
	// ServiceAccountMaxTokenExpiration caps the lifetime of issued tokens; 0 means no cap.
	ServiceAccountMaxTokenExpiration time.Duration
	// Store is the etcd-backed store every resource lives in.
	Store *storage.Store
	// Resources are the resources to serve (registry/builtin.Resources()).
	Resources []*registry.Resource
	// ServiceClusterIPRange and ServiceNodePortRange allocate Service addresses and ports.
	ServiceClusterIPRange string // "10.96.0.0/12"
	ServiceNodePortRange  string // "30000-32767"
	// CompactionInterval compacts etcd history; 0 means 5 minutes, negative disables it.
	CompactionInterval time.Duration
	// EventCapacity is the number of recent events each watch cache keeps.
	EventCapacity int
	// KubeletClientCert authenticates the API server to kubelets (logs, exec, port-forward).
	KubeletClientCert *tls.Certificate
	// MetricResolution is how often kubelets are scraped for the resource metrics API
	// (metrics.k8s.io); 0 means 15s.
	MetricResolution time.Duration
	// Authorization is kube-apiserver's --authorization-mode: a comma list of Node, RBAC and
	// AlwaysAllow, asked in that order ("Node,RBAC" by default). Members of system:masters
	// are allowed everything in any mode.
	Authorization string
	Log           *slog.Logger

	// Encryption chooses the transformer (encryption at rest) of each resource's values;
	// nil stores every value as it is. See internal/storage/encryption.
	Encryption Encryption
	// AuditPolicy selects the requests AuditLog records, and how much of each; both nil
	// records nothing. See internal/audit.
	AuditPolicy *audit.Policy
	AuditLog    AuditWriter
}

// Encryption maps a resource to the transformer of its stored values (nil: none).
type Encryption interface {
	TransformerFor(gr schema.GroupResource) storage.Transformer
}

// TokenAuthenticator maps a bearer token to a user.
type TokenAuthenticator interface {
	Authenticate(token string) (pki.UserInfo, bool)
}

func (c *Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("a store is required"))
	}
	if len(c.Resources) == 0 {
		errs = append(errs, errors.New("no resources to serve"))
	}
	if c.SecurePort < 0 || c.SecurePort > 65535 {
		errs = append(errs, fmt.Errorf("secure port %d is out of range", c.SecurePort))
	}
	if len(c.ServingCert.Certificate) == 0 {
		errs = append(errs, errors.New("a serving certificate is required"))
	}
	if c.ServiceClusterIPRange == "" {
		c.ServiceClusterIPRange = "10.96.0.0/12"
	}
	if c.ServiceNodePortRange == "" {
		c.ServiceNodePortRange = "30000-32767"
	}
	if c.BindAddress == "" {
		c.BindAddress = "0.0.0.0"
	}
	if c.CompactionInterval == 0 {
		c.CompactionInterval = 5 * time.Minute
	}
	if c.Authorization == "" {
		c.Authorization = DefaultAuthorizationModes
	}
	if c.ServiceAccountIssuer == "" {
		c.ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	}
	if len(c.APIAudiences) == 0 {
		c.APIAudiences = []string{c.ServiceAccountIssuer}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return errors.Join(errs...)
}

// Server is the Kubernetes API server.
type Server struct {
	cfg       Config
	codecs    *codecs
	log       *slog.Logger
	resources map[schema.GroupVersionResource]*resourceStore
	byKind    map[schema.GroupVersionKind]*resourceStore
	discovery *discovery
	ips       *ipAllocator
	ports     *portAllocator
	metrics   *metrics
	openapi   http.Handler
	// resourceMetrics serves metrics.k8s.io from scraped kubelet summaries.
	resourceMetrics *resourcemetrics.Metrics
	// typeConverter knows the structure of every built-in type, for server-side apply.
	typeConverter managedfields.TypeConverter
	// authorizer decides every authenticated request; rbac is its RBAC part (nil with
	// AlwaysAllow), which also resolves role references for escalation checks.
	authorizer authz.Authorizer
	rbac       *authz.RBAC
	// nodeGraph is the Node authorizer's graph (nil without the Node mode).
	nodeGraph *authz.NodeGraph

	ready chan struct{}
	// saSigner issues service-account tokens (nil: no TokenRequest API); saVerifier checks
	// them (nil: not accepted); apiAudiences are the audiences this server accepts.
	saSigner     *satoken.Signer
	saVerifier   *satoken.Verifier
	apiAudiences []string
	// oidc is what OIDC discovery serves (nil: not served, see oidcdiscovery.go).
	oidc     *oidcDiscovery
	addrMu   sync.Mutex
	addr     net.Addr
	shutdown chan struct{}
}

// New builds the API server; Run starts it.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("apiserver config: %w", err)
	}
	s := &Server{
		cfg: cfg, codecs: newCodecs(), log: cfg.Log,
		resources: map[schema.GroupVersionResource]*resourceStore{},
		byKind:    map[schema.GroupVersionKind]*resourceStore{},
		ready:     make(chan struct{}), shutdown: make(chan struct{}),
		metrics: newMetrics(),
	}
	s.typeConverter = applyconfigurations.NewTypeConverter(s.codecs.scheme)
	if err := registerSharedStorageConversions(s.codecs.scheme, cfg.Resources); err != nil {
		return nil, err
	}
	for _, res := range cfg.Resources {
		rs, err := newResourceStore(s, res)
		if err != nil {
			return nil, err
		}
		s.resources[res.GroupVersionResource()] = rs
		s.byKind[res.GroupVersionKind()] = rs
	}
	// One watch cache per key space: resources that share another's storage share its cache.
	for _, rs := range s.resources {
		if rs.res.SharedStorage == nil {
			rs.cache = storage.NewCacher(cfg.Store, rs.prefix, cfg.EventCapacity, s.log)
		}
	}
	for _, rs := range s.resources {
		if sh := rs.res.SharedStorage; sh != nil {
			owner := s.resources[sh.Resource]
			if owner == nil || owner.res.SharedStorage != nil {
				return nil, fmt.Errorf("resource %s shares the storage of %s, which is not served", rs.gr, sh.Resource)
			}
			rs.prefix, rs.cache = owner.prefix, owner.cache
		}
	}
	if err := s.newServiceAccountTokens(); err != nil {
		return nil, err
	}
	s.newOIDCDiscovery()
	if cfg.Encryption != nil {
		for _, rs := range s.resources {
			if rs.res.SharedStorage == nil {
				cfg.Store.SetTransformer(rs.prefix, cfg.Encryption.TransformerFor(rs.gr))
			}
		}
	}
	var err error
	if s.ips, err = newIPAllocator(cfg.Store, cfg.ServiceClusterIPRange); err != nil {
		return nil, err
	}
	if s.ports, err = newPortAllocator(cfg.Store, cfg.ServiceNodePortRange); err != nil {
		return nil, err
	}
	if s.resourceMetrics, err = s.newResourceMetrics(); err != nil {
		return nil, err
	}
	metricsGV, metricsResources := resourcemetrics.APIResources()
	s.discovery = newDiscovery(cfg.Resources, append(reviewGroupVersions(), extraGroupVersion{metricsGV, metricsResources})...)
	if err := s.newAuthorizer(); err != nil {
		return nil, err
	}
	if s.openapi, err = newOpenAPI(cfg.Resources); err != nil {
		return nil, err
	}
	return s, nil
}

// Ready is closed once the server serves requests and its caches are loaded.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on, once Ready.
func (s *Server) Addr() net.Addr {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return s.addr
}

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.BindAddress, fmt.Sprint(s.cfg.SecurePort)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.addrMu.Lock()
	s.addr = ln.Addr()
	s.addrMu.Unlock()

	var wg sync.WaitGroup
	for _, rs := range s.resources {
		if rs.res.SharedStorage == nil {
			wg.Add(1)
			go func() { defer wg.Done(); rs.cache.Run(ctx) }()
		}
	}
	if s.nodeGraph != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.runNodeGraph(ctx) }()
	}
	if s.cfg.CompactionInterval > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.cfg.Store.RunCompactor(ctx, s.cfg.CompactionInterval, s.log) }()
	}

	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{s.cfg.ServingCert},
			// Verified by authenticate, as kube-apiserver does: a certificate of another CA
			// is a 401 Status, not a failed handshake the client cannot explain.
			ClientAuth: tls.RequestClientCert,
			ClientCAs:  s.cfg.ClientCAs,
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()

	if err := s.bootstrap(ctx); err != nil {
		cancel()
		_ = srv.Close()
		wg.Wait()
		return fmt.Errorf("bootstrap: %w", err)
	}
	close(s.ready)
	wg.Add(1)
	go func() { defer wg.Done(); s.resourceMetrics.Run(ctx) }()
	s.log.Info("API server ready", "address", ln.Addr().String())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		cancel()
		wg.Wait()
		return err
	}
	close(s.shutdown)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	_ = srv.Close()
	wg.Wait()
	return ctx.Err()
}

// bootstrap waits for the caches and creates what every cluster has: the system namespaces
// and the kubernetes Service.
func (s *Server) bootstrap(ctx context.Context) error {
	for _, rs := range s.resources {
		select {
		case <-rs.cache.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := s.repairAllocations(ctx); err != nil {
		return err
	}
	if err := s.ensureSystemObjects(ctx); err != nil {
		return err
	}
	return s.ensureDefaultPolicy(ctx)
}

// Handler returns the full HTTP handler (authentication included).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.health)
	mux.HandleFunc("/livez", s.health)
	mux.HandleFunc("/readyz", s.health)
	mux.HandleFunc("/healthz/", s.health)
	mux.HandleFunc("/livez/", s.health)
	mux.HandleFunc("/readyz/", s.health)
	mux.HandleFunc("/version", s.version)
	if s.oidc != nil {
		mux.HandleFunc(oidcConfigPath, s.serveOIDCConfig)
		mux.HandleFunc(jwksPath, s.serveJWKS)
	}
	mux.Handle("/metrics", s.metrics.handler())
	mux.Handle("/openapi/", s.openapi)
	mux.HandleFunc("/api", s.discovery.serveAPI)
	mux.HandleFunc("/apis", s.discovery.serveAPIs)
	mux.HandleFunc("/api/", s.serveResource)
	mux.HandleFunc("/apis/", s.serveResource)
	mux.HandleFunc(resourcemetrics.Prefix, s.serveResourceMetrics)
	mux.HandleFunc(authorizationPrefix, s.serveReview)
	mux.HandleFunc(authenticationPrefix, s.serveReview)
	return s.recoverPanics(s.authenticate(s.auditRequests(s.metrics.instrument(s.authorize(mux)))))
}

// recoverPanics answers a handler panic with a 500 Status instead of a reset connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				s.codecs.writeError(w, r, fmt.Errorf("internal error: %v", v), schema.GroupResource{}, "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.ready:
	default:
		http.Error(w, "[-]informer-sync failed: not ready\nhealthz check failed", http.StatusInternalServerError)
		return
	}
	select {
	case <-s.shutdown:
		http.Error(w, "[-]shutdown failed: server is shutting down\nhealthz check failed", http.StatusInternalServerError)
		return
	default:
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Has("verbose") {
		fmt.Fprintf(w, "[+]ping ok\n[+]etcd ok\n[+]informer-sync ok\n%s check passed\n", strings.Trim(r.URL.Path, "/"))
		return
	}
	fmt.Fprint(w, "ok")
}

// anonymousUser is who a request without credentials is, to the audit log and where such
// requests are let through to authorization.
var anonymousUser = pki.UserInfo{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}

// authenticate admits requests with a client certificate signed by the cluster CA or a known
// bearer token; the health and version endpoints are public, as in Kubernetes.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cert, err := s.verifyClientCertificate(r.TLS.PeerCertificates)
			if err == nil {
				next.ServeHTTP(w, r.WithContext(withUser(r.Context(), pki.UserFromCertificate(cert))))
				return
			}
			s.log.Debug("rejected a client certificate", "subject", r.TLS.PeerCertificates[0].Subject.String(), "err", err)
		}
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			token := strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
			if u, _, ok := s.authenticateToken(r.Context(), token, s.apiAudiences); ok {
				next.ServeHTTP(w, r.WithContext(withUser(r.Context(), u)))
				return
			}
		}
		switch r.URL.Path {
		case "/healthz", "/livez", "/readyz", "/version":
			next.ServeHTTP(w, r)
			return
		case oidcConfigPath, jwksPath:
			// Anonymous, and up to RBAC, as kube-apiserver's anonymous authentication
			// leaves them: binding system:service-account-issuer-discovery to
			// system:unauthenticated publishes them.
			next.ServeHTTP(w, r.WithContext(withUser(r.Context(), anonymousUser)))
			return
		}
		s.auditFailedAuthentication(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.codecs.writeError(w, r, unauthorized(), schema.GroupResource{}, "")
		})).ServeHTTP(w, r)
	})
}

// verifyClientCertificate checks a client's chain (leaf first) against the client CAs for
// client authentication and returns the leaf.
func (s *Server) verifyClientCertificate(chain []*x509.Certificate) (*x509.Certificate, error) {
	if s.cfg.ClientCAs == nil {
		return nil, errors.New("client certificates are not accepted")
	}
	opts := x509.VerifyOptions{Roots: s.cfg.ClientCAs, Intermediates: x509.NewCertPool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return nil, err
	}
	return chain[0], nil
}

type userKey struct{}

// withUser records an authenticated user; every one carries system:authenticated.
func withUser(ctx context.Context, u pki.UserInfo) context.Context {
	return context.WithValue(ctx, userKey{}, authz.WithAuthenticated(u))
}

func userFrom(ctx context.Context) pki.UserInfo {
	u, _ := ctx.Value(userKey{}).(pki.UserInfo)
	return u
}
