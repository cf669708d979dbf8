package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// upstream is a real DNS server on loopback standing in for the node's resolver. It
// answers example.org A, and big.example.org TXT with more than fits a plain UDP reply.
type upstream struct {
	addr    string
	tcpSeen atomic.Int32
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		_, udp := w.RemoteAddr().(*net.UDPAddr)
		if !udp {
			u.tcpSeen.Add(1)
		}
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 60}
		switch {
		case q.Name == "example.org." && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(192, 0, 2, 1)})
		case q.Name == "big.example.org." && q.Qtype == dns.TypeTXT:
			for i := range 40 {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{fmt.Sprintf("record %02d of a long answer", i)}})
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		if udp {
			m.Truncate(dns.MinMsgSize)
		}
		_ = w.WriteMsg(m)
	})
	pc, l, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u
}

// startServer runs a Server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, upstreams []string, objs ...runtime.Object) (*Server, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	s, err := New(Config{Address: "127.0.0.1:0", Upstreams: upstreams,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server not ready after 30s")
	}
	return s, client
}

func ask(t *testing.T, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	m, _, err := c.Exchange(query(name, qtype), addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return m
}

func TestServerOverSockets(t *testing.T) {
	up := startUpstream(t)
	s, _ := startServer(t, []string{up.addr}, fixtures()...)
	addr := s.Addr().String()

	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range []struct {
			name   string
			qtype  uint16
			rcode  int
			answer []string
			soa    bool
		}{
			{name: "kubernetes.default.svc.cluster.local.", qtype: dns.TypeA,
				answer: []string{"kubernetes.default.svc.cluster.local. A 10.96.0.1"}},
			{name: "web.ns1.svc.cluster.local.", qtype: dns.TypeAAAA,
				answer: []string{"web.ns1.svc.cluster.local. AAAA fd00:10:96::20"}},
			{name: "_https._tcp.kubernetes.default.svc.cluster.local.", qtype: dns.TypeSRV,
				answer: []string{"_https._tcp.kubernetes.default.svc.cluster.local. SRV 0 100 443 kubernetes.default.svc.cluster.local."}},
			{name: "1.0.96.10.in-addr.arpa.", qtype: dns.TypePTR,
				answer: []string{"1.0.96.10.in-addr.arpa. PTR kubernetes.default.svc.cluster.local."}},
			{name: "ext.ns1.svc.cluster.local.", qtype: dns.TypeA,
				answer: []string{"ext.ns1.svc.cluster.local. CNAME example.com."}},
			{name: "db.ns1.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
				"db.ns1.svc.cluster.local. A 10.1.0.5", "db.ns1.svc.cluster.local. A 10.1.0.6", "db.ns1.svc.cluster.local. A 10.1.0.8"}},
			{name: "db-1.db.ns1.svc.cluster.local.", qtype: dns.TypeA,
				answer: []string{"db-1.db.ns1.svc.cluster.local. A 10.1.0.6"}},
			{name: "nope.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
			{name: "example.org.", qtype: dns.TypeA, answer: []string{"example.org. A 192.0.2.1"}},
			{name: "nope.example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		} {
			t.Run(network+"/"+tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
				m := ask(t, network, addr, tt.name, tt.qtype)
				if m.Rcode != tt.rcode {
					t.Errorf("rcode = %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
				}
				if got, want := rrs(m.Answer), sorted(tt.answer); !slices.Equal(got, want) {
					t.Errorf("answer:\n got %q\nwant %q", got, want)
				}
				if hasSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA; hasSOA != tt.soa {
					t.Errorf("authority %v, want an SOA: %v", m.Ns, tt.soa)
				}
			})
		}
	}

	t.Run("forwarding retries over TCP when truncated", func(t *testing.T) {
		before := up.tcpSeen.Load()
		m := ask(t, "tcp", addr, "big.example.org.", dns.TypeTXT)
		if m.Rcode != dns.RcodeSuccess || m.Truncated || len(m.Answer) != 40 {
			t.Fatalf("rcode %s, truncated %v, %d answers; want all 40", dns.RcodeToString[m.Rcode], m.Truncated, len(m.Answer))
		}
		if up.tcpSeen.Load() == before {
			t.Error("the upstream saw no TCP query")
		}
		// A UDP client without EDNS gets what fits and TC, and retries over TCP itself.
		m = ask(t, "udp", addr, "big.example.org.", dns.TypeTXT)
		if !m.Truncated || len(m.Answer) >= 40 {
			t.Fatalf("over UDP: truncated %v with %d answers; want TC", m.Truncated, len(m.Answer))
		}
	})
}

func TestServerFailsWithoutUpstream(t *testing.T) {
	// A UDP port nobody listens on: the exchange fails at once with "connection refused".
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	s, _ := startServer(t, []string{dead}, fixtures()...)
	m := ask(t, "udp", s.Addr().String(), "example.org.", dns.TypeA)
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode = %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	// The cluster domain still answers.
	m = ask(t, "udp", s.Addr().String(), "kubernetes.default.svc.cluster.local.", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("cluster answer %v", m)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		<-tick.C
	}
}

func TestCacheFollowsTheAPI(t *testing.T) {
	s, client := startServer(t, nil)
	addr := s.Addr().String()
	const name = "late.ns2.svc.cluster.local."
	resolves := func(want int, ips ...string) func() error {
		return func() error {
			m := ask(t, "udp", addr, name, dns.TypeA)
			var got []string
			for _, rr := range m.Answer {
				if a, ok := rr.(*dns.A); ok {
					got = append(got, a.A.String())
				}
			}
			if m.Rcode != want || !slices.Equal(got, ips) {
				return fmt.Errorf("rcode %s, addresses %v; want %s %v", dns.RcodeToString[m.Rcode], got, dns.RcodeToString[want], ips)
			}
			return nil
		}
	}
	eventually(t, "before the Service exists", resolves(dns.RcodeNameError))

	ctx := t.Context()
	svc := service("ns2", "late", clusterIP("10.96.7.7"))
	if _, err := client.CoreV1().Services("ns2").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "after create", resolves(dns.RcodeSuccess, "10.96.7.7"))

	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.7.8", []string{"10.96.7.8"}
	if _, err := client.CoreV1().Services("ns2").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "after update", resolves(dns.RcodeSuccess, "10.96.7.8"))

	if err := client.CoreV1().Services("ns2").Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "after delete", resolves(dns.RcodeNameError))

	// A headless Service resolves once its endpoints are ready.
	headless := service("ns2", "late", func(svc *corev1.Service) { svc.Spec.ClusterIP = corev1.ClusterIPNone })
	if _, err := client.CoreV1().Services("ns2").Create(ctx, headless, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eps := slice("ns2", "late-x", "late", "IPv4", "p", 80, endpoint{ip: "10.4.0.1"})
	if _, err := client.DiscoveryV1().EndpointSlices("ns2").Create(ctx, eps, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "headless with an endpoint", resolves(dns.RcodeSuccess, "10.4.0.1"))
}

func TestRunFailsOnBusyAddress(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := New(Config{Address: l.LocalAddr().String(), Upstreams: []string{"192.0.2.53"}}, fake.NewClientset())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(t.Context()); err == nil {
		t.Fatalf("Run on a busy address = %v, want an error", err)
	}
}
