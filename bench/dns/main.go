// Command dns measures the cluster DNS server (internal/dns): queries per second for a
// Service name (an A record from the watch-fed cache) with -services Services in the cache,
// against a baseline measured in the same run: a miekg/dns server on the same loopback that
// answers every query with one fixed A record and no lookup at all. Both are driven by the
// same -clients concurrent UDP clients for -duration each.
//
// The Services and EndpointSlices reach the DNS server through a fake clientset: the API
// server is not what is measured here.
//
//	go run ./bench/dns [-services 1000] [-clients 8] [-duration 3s] [-write]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nanokube/nanokube/bench/internal/perfdoc"
	nkdns "github.com/nanokube/nanokube/internal/dns"
)

func main() {
	services := flag.Int("services", 1000, "Services in the DNS server's cache")
	clients := flag.Int("clients", 8, "concurrent UDP clients")
	duration := flag.Duration("duration", 3*time.Second, "how long each server is queried")
	write := flag.Bool("write", false, "record the figures in -doc")
	doc := flag.String("doc", "docs/performance.md", "file -write updates")
	flag.Parse()
	log.SetFlags(0)

	objs := make([]k8sruntime.Object, 0, *services)
	for i := range *services {
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i)},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, 1+i%250),
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := nkdns.New(nkdns.Config{Address: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, fake.NewClientset(objs...))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := srv.Run(ctx); err != nil {
			log.Fatal(err)
		}
	}()
	<-srv.Ready()
	name := fmt.Sprintf("svc-%d.bench.svc.cluster.local.", *services/2)
	// Wait until the cache holds the Services: the answer must be a real one.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if r, err := query(srv.Addr().String(), name); err == nil && len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("the DNS server never answered for a Service")
		}
		time.Sleep(50 * time.Millisecond)
	}

	base, err := baselineServer()
	if err != nil {
		log.Fatal(err)
	}
	defer base.Shutdown()

	ours := qps(srv.Addr().String(), name, *clients, *duration)
	theirs := qps(base.PacketConn.LocalAddr().String(), name, *clients, *duration)
	table := fmt.Sprintf("| server | queries/s | ratio |\n| --- | --- | --- |\n"+
		"| baseline: fixed answer, no lookup | %.0f | 1.00 |\n| cluster DNS, %d Services cached | %.0f | %.2f |\n",
		theirs, *services, ours, ours/theirs)
	fmt.Print("\n" + table)
	if *write {
		host, _ := os.Hostname()
		body := fmt.Sprintf("Measured %s on %s (%d CPUs) by `go run ./bench/dns` (%d UDP clients, %s each, A query for a Service).\n\n%s",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), *clients, *duration, table)
		if err := perfdoc.WriteSection(*doc, "Cluster DNS", body); err != nil {
			log.Fatal(err)
		}
	}
}

func query(addr, name string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// qps drives addr with clients concurrent connections for d and returns answered queries/s.
func qps(addr, name string, clients int, d time.Duration) float64 {
	var answered atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range clients {
		wg.Go(func() {
			conn, err := dns.Dial("udp", addr)
			if err != nil {
				log.Fatal(err)
			}
			defer conn.Close()
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			for time.Now().Before(stop) {
				_ = conn.SetDeadline(time.Now().Add(time.Second))
				if err := conn.WriteMsg(m); err != nil {
					continue
				}
				if r, err := conn.ReadMsg(); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
					answered.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(answered.Load()) / d.Seconds()
}

func baselineServer() (*dns.Server, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A: net.ParseIP("10.96.0.1")}}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	return srv, nil
}
