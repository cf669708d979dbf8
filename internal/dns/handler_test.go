package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// Fixtures: a small cluster of Services and EndpointSlices.

func service(ns, name string, mutate func(*corev1.Service)) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
	}
	mutate(svc)
	return svc
}

func clusterIP(ips ...string) func(*corev1.Service) {
	return func(svc *corev1.Service) { svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ips[0], ips }
}

func ports(svc *corev1.Service, ps ...corev1.ServicePort) { svc.Spec.Ports = ps }

type endpoint struct {
	ip, hostname string
	notReady     bool
}

func slice(ns, name, svc string, family discoveryv1.AddressType, portName string, port int32, eps ...endpoint) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: family,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		ep := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(!e.notReady)}}
		if e.hostname != "" {
			ep.Hostname = ptr.To(e.hostname)
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s
}

func fixtures() []runtime.Object {
	headless := func(svc *corev1.Service) {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
		ports(svc, corev1.ServicePort{Name: "mysql", Port: 3306, Protocol: corev1.ProtocolTCP})
	}
	external := func(target string) func(*corev1.Service) {
		return func(svc *corev1.Service) {
			svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeExternalName, target
			ports(svc, corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP})
		}
	}
	return []runtime.Object{
		service("default", "kubernetes", func(svc *corev1.Service) {
			clusterIP("10.96.0.1")(svc)
			ports(svc, corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP})
		}),
		service("ns1", "web", func(svc *corev1.Service) {
			clusterIP("10.96.0.20", "fd00:10:96::20")(svc)
			ports(svc,
				corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
				corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP})
		}),
		service("ns1", "db", headless),
		slice("ns1", "db-a", "db", discoveryv1.AddressTypeIPv4, "mysql", 3306,
			endpoint{ip: "10.1.0.5", hostname: "db-0"},
			endpoint{ip: "10.1.0.6", hostname: "db-1"},
			endpoint{ip: "10.1.0.7", hostname: "db-2", notReady: true},
			endpoint{ip: "10.1.0.8"}),
		// db-1 moving between slices appears twice for a while.
		slice("ns1", "db-b", "db", discoveryv1.AddressTypeIPv4, "mysql", 3306,
			endpoint{ip: "10.1.0.6", hostname: "db-1"}),
		slice("ns1", "db-c", "db", discoveryv1.AddressTypeIPv6, "mysql", 3306,
			endpoint{ip: "fd00::8"}),
		service("ns1", "empty", headless),
		service("ns1", "ext", external("Example.COM")),
		service("ns1", "alias", external("web.ns1.svc.cluster.local")),
		service("ns1", "dangling", external("nope.ns1.svc.cluster.local")),
		service("ns1", "loop", external("loop.ns1.svc.cluster.local")),
	}
}

// stubForward answers example.org A and says NXDOMAIN to everything else, as an upstream.
func stubForward(_ context.Context, r *dns.Msg) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	if strings.EqualFold(q.Name, "example.org.") && q.Qtype == dns.TypeA {
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(192, 0, 2, 1)}}
	} else {
		m.Rcode = dns.RcodeNameError
	}
	return m, nil
}

// newTestServer returns a Server whose caches hold objs and synced, and whose upstream is
// stubForward.
func newTestServer(t testing.TB, objs ...runtime.Object) (*Server, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	s, err := New(Config{Address: "127.0.0.1:0", Upstreams: []string{"192.0.2.53"},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, client)
	if err != nil {
		t.Fatal(err)
	}
	s.forward = stubForward
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		s.cache.wait()
	})
	if err := s.cache.start(ctx); err != nil {
		t.Fatal(err)
	}
	return s, client
}

// rrs renders records as "owner TYPE rdata", without TTL and class, sorted.
func rrs(records []dns.RR) []string {
	var out []string
	for _, rr := range records {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		f := strings.Fields(rr.String())
		out = append(out, f[0]+" "+strings.Join(f[3:], " "))
	}
	slices.Sort(out)
	return out
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func TestAnswers(t *testing.T) {
	s, _ := newTestServer(t, fixtures()...)
	const (
		noerror = dns.RcodeSuccess
		nx      = dns.RcodeNameError
	)
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answer  []string
		extra   []string
		soa     bool // an SOA in the authority section
		notAuth bool // forwarded: not authoritative
	}{
		// ClusterIP Services.
		{name: "kubernetes.default.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"kubernetes.default.svc.cluster.local. A 10.96.0.1"}},
		{name: "web.ns1.svc.cluster.local.", qtype: dns.TypeAAAA,
			answer: []string{"web.ns1.svc.cluster.local. AAAA fd00:10:96::20"}},
		{name: "web.ns1.svc.cluster.local.", qtype: dns.TypeANY,
			answer: []string{"web.ns1.svc.cluster.local. A 10.96.0.20", "web.ns1.svc.cluster.local. AAAA fd00:10:96::20"}},
		{name: "Web.NS1.svc.Cluster.Local.", qtype: dns.TypeA,
			answer: []string{"Web.NS1.svc.Cluster.Local. A 10.96.0.20"}},
		{name: "web.ns1.svc.cluster.local.", qtype: dns.TypeMX, soa: true},
		{name: "kubernetes.default.svc.cluster.local.", qtype: dns.TypeAAAA, soa: true},
		{name: "nope.ns1.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},
		{name: "web.nope.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},
		// The search path of a pod in "default" with ndots:5.
		{name: "kubernetes.default.svc.cluster.local.default.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},
		{name: "kubernetes.default.default.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},
		{name: "kubernetes.default.svc.cluster.local.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},

		// Headless Services.
		{name: "db.ns1.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"db.ns1.svc.cluster.local. A 10.1.0.5", "db.ns1.svc.cluster.local. A 10.1.0.6", "db.ns1.svc.cluster.local. A 10.1.0.8"}},
		{name: "db.ns1.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"db.ns1.svc.cluster.local. AAAA fd00::8"}},
		{name: "db-0.db.ns1.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"db-0.db.ns1.svc.cluster.local. A 10.1.0.5"}},
		{name: "db-1.db.ns1.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"db-1.db.ns1.svc.cluster.local. A 10.1.0.6"}},
		{name: "db-0.db.ns1.svc.cluster.local.", qtype: dns.TypeAAAA, soa: true},
		{name: "db-2.db.ns1.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true}, // not ready
		{name: "10-1-0-8.db.ns1.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"10-1-0-8.db.ns1.svc.cluster.local. A 10.1.0.8"}},
		{name: "fd00--8.db.ns1.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"fd00--8.db.ns1.svc.cluster.local. AAAA fd00::8"}},
		{name: "10-1-0-5.db.ns1.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true}, // named db-0
		{name: "db-0.web.ns1.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},    // not headless
		{name: "empty.ns1.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},

		// SRV.
		{name: "_https._tcp.kubernetes.default.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_https._tcp.kubernetes.default.svc.cluster.local. SRV 0 100 443 kubernetes.default.svc.cluster.local."},
			extra:  []string{"kubernetes.default.svc.cluster.local. A 10.96.0.1"}},
		{name: "_dns._udp.web.ns1.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_dns._udp.web.ns1.svc.cluster.local. SRV 0 100 53 web.ns1.svc.cluster.local."},
			extra:  []string{"web.ns1.svc.cluster.local. A 10.96.0.20", "web.ns1.svc.cluster.local. AAAA fd00:10:96::20"}},
		{name: "_mysql._tcp.db.ns1.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{
				"_mysql._tcp.db.ns1.svc.cluster.local. SRV 0 25 3306 10-1-0-8.db.ns1.svc.cluster.local.",
				"_mysql._tcp.db.ns1.svc.cluster.local. SRV 0 25 3306 db-0.db.ns1.svc.cluster.local.",
				"_mysql._tcp.db.ns1.svc.cluster.local. SRV 0 25 3306 db-1.db.ns1.svc.cluster.local.",
				"_mysql._tcp.db.ns1.svc.cluster.local. SRV 0 25 3306 fd00--8.db.ns1.svc.cluster.local.",
			},
			extra: []string{
				"10-1-0-8.db.ns1.svc.cluster.local. A 10.1.0.8",
				"db-0.db.ns1.svc.cluster.local. A 10.1.0.5",
				"db-1.db.ns1.svc.cluster.local. A 10.1.0.6",
				"fd00--8.db.ns1.svc.cluster.local. AAAA fd00::8",
			}},
		{name: "_http._tcp.ext.ns1.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.ext.ns1.svc.cluster.local. SRV 0 100 80 example.com."}},
		{name: "_http._udp.web.ns1.svc.cluster.local.", qtype: dns.TypeSRV, rcode: nx, soa: true},
		{name: "_nope._tcp.web.ns1.svc.cluster.local.", qtype: dns.TypeSRV, rcode: nx, soa: true},
		{name: "http.tcp.web.ns1.svc.cluster.local.", qtype: dns.TypeSRV, rcode: nx, soa: true},
		{name: "_http._tcp.web.ns1.svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "_tcp.web.ns1.svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "_sctp.web.ns1.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},

		// ExternalName Services.
		{name: "ext.ns1.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"ext.ns1.svc.cluster.local. CNAME example.com."}},
		{name: "ext.ns1.svc.cluster.local.", qtype: dns.TypeCNAME, answer: []string{"ext.ns1.svc.cluster.local. CNAME example.com."}},
		{name: "alias.ns1.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"alias.ns1.svc.cluster.local. CNAME web.ns1.svc.cluster.local.", "web.ns1.svc.cluster.local. A 10.96.0.20"}},
		{name: "alias.ns1.svc.cluster.local.", qtype: dns.TypeMX, soa: true,
			answer: []string{"alias.ns1.svc.cluster.local. CNAME web.ns1.svc.cluster.local."}},
		{name: "dangling.ns1.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true,
			answer: []string{"dangling.ns1.svc.cluster.local. CNAME nope.ns1.svc.cluster.local."}},

		// Pods, "insecure": any dashed IP.
		{name: "10-2-3-4.ns1.pod.cluster.local.", qtype: dns.TypeA, answer: []string{"10-2-3-4.ns1.pod.cluster.local. A 10.2.3.4"}},
		{name: "10-2-3-4.ns1.pod.cluster.local.", qtype: dns.TypeAAAA, soa: true},
		{name: "fd00--1.ns1.pod.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"fd00--1.ns1.pod.cluster.local. AAAA fd00::1"}},
		{name: "10-2-3-444.ns1.pod.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},
		{name: "x.10-2-3-4.ns1.pod.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},

		// The zone's structure.
		{name: "cluster.local.", qtype: dns.TypeSOA,
			answer: []string{"cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"}},
		{name: "cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "ns1.svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "nope.svc.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},
		{name: "ns1.pod.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "nope.cluster.local.", qtype: dns.TypeA, rcode: nx, soa: true},
		{name: "dns-version.cluster.local.", qtype: dns.TypeTXT, answer: []string{`dns-version.cluster.local. TXT "1.1.0"`}},

		// Reverse lookups.
		{name: "1.0.96.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"1.0.96.10.in-addr.arpa. PTR kubernetes.default.svc.cluster.local."}},
		{name: "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: dns.TypePTR,
			answer: []string{"0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. PTR web.ns1.svc.cluster.local."}},
		{name: "5.0.1.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"5.0.1.10.in-addr.arpa. PTR db-0.db.ns1.svc.cluster.local."}},
		{name: "8.0.1.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"8.0.1.10.in-addr.arpa. PTR 10-1-0-8.db.ns1.svc.cluster.local."}},
		{name: "7.0.1.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: nx, notAuth: true}, // not ready: forwarded
		{name: "9.9.9.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: nx, notAuth: true},

		// Everything else is forwarded.
		{name: "example.org.", qtype: dns.TypeA, answer: []string{"example.org. A 192.0.2.1"}, notAuth: true},
		{name: "kubernetes.default.", qtype: dns.TypeA, rcode: nx, notAuth: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.name, dns.TypeToString[tt.qtype]), func(t *testing.T) {
			r := query(tt.name, tt.qtype)
			m := s.respond(t.Context(), r, false)
			if m == nil {
				t.Fatal("no reply")
			}
			if m.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
			}
			if m.Id != r.Id || !m.Response || len(m.Question) != 1 || m.Question[0].Name != tt.name {
				t.Errorf("reply header/question do not match the query: %v", m)
			}
			if m.Authoritative == tt.notAuth {
				t.Errorf("authoritative = %v, want %v", m.Authoritative, !tt.notAuth)
			}
			serial := fmt.Sprint(s.cache.serial.Load())
			var answer []string
			for _, a := range rrs(m.Answer) {
				answer = append(answer, strings.Replace(a, " "+serial+" ", " SERIAL ", 1))
			}
			if want := sorted(tt.answer); !slices.Equal(answer, want) {
				t.Errorf("answer:\n got %q\nwant %q", answer, want)
			}
			if got, want := rrs(m.Extra), sorted(tt.extra); !slices.Equal(got, want) {
				t.Errorf("extra:\n got %q\nwant %q", got, want)
			}
			wantNs := []string(nil)
			if tt.soa {
				wantNs = []string{"cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"}
			}
			var ns []string
			for _, a := range rrs(m.Ns) {
				ns = append(ns, strings.Replace(a, " "+serial+" ", " SERIAL ", 1))
			}
			if !slices.Equal(ns, wantNs) {
				t.Errorf("authority:\n got %q\nwant %q", ns, wantNs)
			}
			for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Ns...) {
				if !tt.notAuth && rr.Header().Ttl != 5 {
					t.Errorf("TTL of %v = %d, want 5", rr, rr.Header().Ttl)
				}
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestCNAMELoopEnds(t *testing.T) {
	s, _ := newTestServer(t, fixtures()...)
	m := s.respond(t.Context(), query("loop.ns1.svc.cluster.local.", dns.TypeA), false)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != maxCNAMEChain+1 {
		t.Fatalf("rcode %s, %d answers; want NOERROR and a chain of %d CNAMEs", dns.RcodeToString[m.Rcode], len(m.Answer), maxCNAMEChain+1)
	}
}

func TestMalformedQueries(t *testing.T) {
	s, _ := newTestServer(t, fixtures()...)
	twoQuestions := query("web.ns1.svc.cluster.local.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	noQuestion := query("web.ns1.svc.cluster.local.", dns.TypeA)
	noQuestion.Question = nil
	update := query("cluster.local.", dns.TypeSOA)
	update.Opcode = dns.OpcodeUpdate
	response := query("web.ns1.svc.cluster.local.", dns.TypeA)
	response.Response = true
	badVersion := query("web.ns1.svc.cluster.local.", dns.TypeA)
	badVersion.SetEdns0(4096, false)
	badVersion.IsEdns0().SetVersion(1)
	twoOPT := query("web.ns1.svc.cluster.local.", dns.TypeA)
	twoOPT.SetEdns0(4096, false)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	chaos := query("web.ns1.svc.cluster.local.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	axfr := query("cluster.local.", dns.TypeAXFR)

	for _, tt := range []struct {
		name  string
		msg   *dns.Msg
		rcode int // -1: no reply
	}{
		{"two questions", twoQuestions, dns.RcodeFormatError},
		{"no question", noQuestion, dns.RcodeFormatError},
		{"update", update, dns.RcodeNotImplemented},
		{"response", response, -1},
		{"EDNS version 1", badVersion, dns.RcodeBadVers},
		{"two OPT records", twoOPT, dns.RcodeFormatError},
		{"CHAOS class in the zone", chaos, dns.RcodeRefused},
		{"zone transfer", axfr, dns.RcodeRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := s.respond(t.Context(), tt.msg, true)
			if tt.rcode < 0 {
				if m != nil {
					t.Fatalf("replied %v, want no reply", m)
				}
				return
			}
			// Through the wire format, as a client sees it.
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			got := new(dns.Msg)
			if err := got.Unpack(b); err != nil {
				t.Fatal(err)
			}
			if got.Rcode != tt.rcode || got.Id != tt.msg.Id || !got.Response {
				t.Fatalf("reply %v, want rcode %s", got, dns.RcodeToString[tt.rcode])
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	var eps []endpoint
	for i := range 200 {
		eps = append(eps, endpoint{ip: fmt.Sprintf("10.3.%d.%d", i/250, i%250+1)})
	}
	big := service("ns1", "big", func(svc *corev1.Service) { svc.Spec.ClusterIP = corev1.ClusterIPNone })
	s, _ := newTestServer(t, big, slice("ns1", "big-a", "big", discoveryv1.AddressTypeIPv4, "p", 1, eps...))

	for _, tt := range []struct {
		name    string
		udp     bool
		edns    uint16
		size    int
		answers int // -1: fewer than 200
	}{
		{"UDP without EDNS", true, 0, dns.MinMsgSize, -1},
		{"UDP with EDNS 1232", true, 1232, 1232, -1},
		{"UDP with EDNS 65000", true, 65000, 65000, 200},
		{"TCP", false, 0, dns.MaxMsgSize, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := query("big.ns1.svc.cluster.local.", dns.TypeA)
			if tt.edns != 0 {
				r.SetEdns0(tt.edns, false)
			}
			m := s.respond(t.Context(), r, tt.udp)
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > tt.size {
				t.Errorf("reply of %d bytes, limit %d", len(b), tt.size)
			}
			if tt.answers < 0 {
				if !m.Truncated || len(m.Answer) >= 200 {
					t.Errorf("truncated=%v with %d answers, want TC and fewer than 200", m.Truncated, len(m.Answer))
				}
			} else if m.Truncated || len(m.Answer) != tt.answers {
				t.Errorf("truncated=%v with %d answers, want %d", m.Truncated, len(m.Answer), tt.answers)
			}
		})
	}
}

func TestReverseIP(t *testing.T) {
	for name, want := range map[string]string{
		"1.0.96.10.in-addr.arpa.":       "10.96.0.1",
		"255.255.255.255.in-addr.arpa.": "255.255.255.255",
		"01.0.96.10.in-addr.arpa.":      "",
		"256.0.96.10.in-addr.arpa.":     "",
		"0.96.10.in-addr.arpa.":         "",
		"1.1.0.96.10.in-addr.arpa.":     "",
		"in-addr.arpa.":                 "",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.": "::1",
		"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.": "4321:0:1:2:3:4:567:89ab",
		"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.": "",
		"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.":  "",
	} {
		ip, ok := reverseIP(name)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != want {
			t.Errorf("reverseIP(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestIsSelf(t *testing.T) {
	for _, tt := range []struct {
		upstream, listen string
		want             bool
	}{
		{"127.0.0.53:53", "127.0.0.53:53", true},
		{"127.0.0.53:53", "0.0.0.0:53", true},
		{"127.0.0.53:53", ":53", true},
		{"127.0.0.53:53", "127.0.0.1:53", false},
		{"127.0.0.53:53", "10.96.0.10:53", false},
		{"127.0.0.53:53", "0.0.0.0:5353", false},
		{"10.0.0.2:53", "10.96.0.10:53", false},
	} {
		ap, err := parseUpstream(tt.upstream)
		if err != nil {
			t.Fatal(err)
		}
		if got := isSelf(ap, tt.listen); got != tt.want {
			t.Errorf("isSelf(%s, %s) = %v, want %v", tt.upstream, tt.listen, got, tt.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	client := fake.NewClientset()
	for _, cfg := range []Config{
		{},
		{Address: "nope"},
		{Address: "127.0.0.1:0", ClusterDomain: "bad..domain"},
		{Address: "127.0.0.1:0", Upstreams: []string{"dns.google"}},
	} {
		if _, err := New(cfg, client); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := New(Config{Address: "127.0.0.1:0"}, nil); err == nil {
		t.Error("New without a client succeeded")
	}
}
