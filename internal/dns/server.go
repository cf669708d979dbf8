package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/kubernetes"
)

// Config configures a Server.
type Config struct {
	// Address is where to listen for UDP and TCP, e.g. "10.96.0.10:53" or "127.0.0.1:0".
	// Required. With port 0 both transports share the port chosen for UDP.
	Address string
	// ClusterDomain is the zone answered from the cache; default "cluster.local".
	ClusterDomain string
	// Upstreams ("ip:port", or "ip" for port 53) answer every other name, tried in order.
	// Default: the nameservers of /etc/resolv.conf, less those that are this server itself.
	Upstreams []string
	// TTL of every answer and of negative answers (the SOA minimum); default 5 seconds.
	TTL uint32
	// Log; default slog.Default().
	Log *slog.Logger
}

// Server is the cluster DNS server. See the package documentation.
type Server struct {
	cfg        Config
	zone       string // ClusterDomain, lower case, fully qualified
	zoneLabels int
	upstreams  []string
	log        *slog.Logger
	cache      *serviceCache
	// forward answers a name outside the zone; tests replace it.
	forward func(ctx context.Context, r *dns.Msg) (*dns.Msg, error)
	// baseCtx bounds forwarded queries; Run sets it before serving.
	baseCtx context.Context

	ready chan struct{}
	addr  net.Addr
}

// resolvConf is where the default upstreams come from.
var resolvConf = "/etc/resolv.conf"

const (
	// forwardTimeout bounds one forwarded query over all upstreams, below the 5 s a stub
	// resolver waits before it retries.
	forwardTimeout = 4 * time.Second
	// attemptTimeout bounds one exchange with one upstream.
	attemptTimeout = 2 * time.Second
)

// New checks cfg and returns a Server; Run starts it.
func New(cfg Config, client kubernetes.Interface) (*Server, error) {
	var errs []error
	if client == nil {
		errs = append(errs, errors.New("a Kubernetes client is required"))
	}
	if cfg.Address == "" {
		errs = append(errs, errors.New("an address is required"))
	} else if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		errs = append(errs, fmt.Errorf("address: %w", err))
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	zone := dns.Fqdn(strings.ToLower(cfg.ClusterDomain))
	if n, ok := dns.IsDomainName(zone); !ok || n == 0 {
		errs = append(errs, fmt.Errorf("cluster domain %q is not a domain name", cfg.ClusterDomain))
	}
	var upstreams []string
	for _, u := range cfg.Upstreams {
		addr, err := parseUpstream(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		upstreams = append(upstreams, addr.String())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.Upstreams) == 0 {
		upstreams = hostUpstreams(resolvConf, cfg.Address, cfg.Log)
	}
	c, err := newServiceCache(client)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		zone:       zone,
		zoneLabels: dns.CountLabel(zone),
		upstreams:  upstreams,
		log:        cfg.Log,
		cache:      c,
		baseCtx:    context.Background(),
		ready:      make(chan struct{}),
	}
	s.forward = s.forwardUpstreams
	return s, nil
}

// Ready is closed once the caches synced and both sockets listen.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the UDP address the server listens on (TCP listens on the same); valid after Ready.
func (s *Server) Addr() net.Addr { return s.addr }

// Run watches Services and EndpointSlices and serves DNS over UDP and TCP until ctx ends,
// then returns nil. It returns an error if it cannot listen or a transport fails. Run may be
// called once.
func (s *Server) Run(ctx context.Context) error {
	pc, l, err := listen(s.cfg.Address)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		s.cache.wait()
	}()
	if err := s.cache.start(ctx); err != nil {
		pc.Close()
		l.Close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	s.baseCtx = ctx
	handler := dns.HandlerFunc(s.serveDNS)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	servers := []*dns.Server{
		// Queries are small, but leave room for EDNS options and a TSIG.
		{PacketConn: pc, Handler: handler, NotifyStartedFunc: notify, UDPSize: 4096},
		{Listener: l, Handler: handler, NotifyStartedFunc: notify,
			ReadTimeout: 10 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }},
	}
	served := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { served <- srv.ActivateAndServe() }()
	}
	for range servers {
		select {
		case <-started:
		case err := <-served:
			// The other transport may be starting: let it come up, then stop it.
			for _, srv := range servers {
				_ = srv.Shutdown()
			}
			pc.Close()
			l.Close()
			return fmt.Errorf("dns: serve: %w", err)
		}
	}
	s.addr = pc.LocalAddr()
	close(s.ready)
	s.log.Info("dns server listening", "address", s.addr.String(), "zone", s.zone, "upstreams", s.upstreams)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-served:
		runErr = fmt.Errorf("dns: serve: %w", err)
	}
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	for _, srv := range servers {
		_ = srv.ShutdownContext(shutdownCtx)
	}
	return runErr
}

// listen opens UDP and TCP on the same address. Port 0 picks a UDP port and then asks TCP for
// the same one, trying again if another process holds it for TCP.
func listen(address string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(address)
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", address)
		if err != nil {
			return nil, nil, err
		}
		tcpAddr := address
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		l, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) || attempt == 10 {
			return nil, nil, err
		}
	}
}

// forwardUpstreams asks the upstreams in turn, over UDP and again over TCP when the answer is
// truncated, and returns the first answer.
func (s *Server) forwardUpstreams(ctx context.Context, r *dns.Msg) (*dns.Msg, error) {
	if len(s.upstreams) == 0 {
		return nil, errors.New("no upstream nameservers")
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	req := r.Copy()
	req.Id = dns.Id() // not the client's: an upstream answer must match our question
	var errs []error
	for _, upstream := range s.upstreams {
		resp, err := exchange(ctx, req, upstream)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", upstream, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func exchange(ctx context.Context, req *dns.Msg, upstream string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: attemptTimeout}
	resp, _, err := c.ExchangeContext(ctx, req, upstream)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, req, upstream)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, req.Question[0].Name) ||
		resp.Question[0].Qtype != req.Question[0].Qtype {
		return nil, errors.New("answer does not match the question")
	}
	return resp, nil
}

func parseUpstream(s string) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(ip, 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("upstream %q: want ip:port", s)
	}
	return ap, nil
}

// hostUpstreams reads the nameservers of a resolv.conf, leaving out any that is this server:
// forwarding to ourselves would loop until the query times out.
func hostUpstreams(path, listenAddress string, log *slog.Logger) []string {
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		log.Warn("dns: no upstream nameservers: names outside the cluster domain will fail", "err", err)
		return nil
	}
	var out []string
	for _, server := range conf.Servers {
		addr, err := parseUpstream(net.JoinHostPort(server, conf.Port))
		if err != nil {
			continue
		}
		if isSelf(addr, listenAddress) {
			log.Info("dns: skipping upstream that is this server", "upstream", addr.String())
			continue
		}
		out = append(out, addr.String())
	}
	if len(out) == 0 {
		log.Warn("dns: no usable upstream nameservers in " + path)
	}
	return out
}

// isSelf reports whether a query sent to upstream would reach a server listening on
// listenAddress.
func isSelf(upstream netip.AddrPort, listenAddress string) bool {
	host, port, err := net.SplitHostPort(listenAddress)
	if err != nil || port != fmt.Sprint(upstream.Port()) {
		return false
	}
	ip := upstream.Addr().Unmap()
	if host == "" {
		return ip.IsLoopback() || isLocal(ip)
	}
	listen, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	listen = listen.Unmap()
	if listen.IsUnspecified() {
		return ip.IsLoopback() || isLocal(ip)
	}
	return listen == ip
}

// isLocal reports whether ip belongs to one of this host's interfaces.
func isLocal(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok {
			if local, ok := netip.AddrFromSlice(p.IP); ok && local.Unmap() == ip {
				return true
			}
		}
	}
	return false
}
