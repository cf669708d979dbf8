package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The tests in this file build a small node out of network namespaces they create and delete
// themselves, and never touch the host's own namespace or ruleset:
//
//	netns node: br0 10.200.0.1/24, route 10.96.0.0/16 dev br0, the nanokube-proxy table
//	  ├─ veth ─ netns pod1: eth0 10.200.0.11, TCP :8080 and UDP :8081 answer "pod1"
//	  └─ veth ─ netns pod2: eth0 10.200.0.12, same, answering "pod2"
//
// The Proxier runs in this process and programs the node namespace over netlink
// (Config.NetworkNamespace). Servers and clients are goroutines whose sockets are made
// on an OS thread moved into the right namespace.

const (
	nodeIP  = "10.200.0.1"
	pod1IP  = "10.200.0.11"
	pod2IP  = "10.200.0.12"
	podCIDR = "10.200.0.0/16"
)

// testNode is the namespaces of one test.
type testNode struct {
	node string // path of the node namespace
	pods map[string]string
}

func requireNetns(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create network namespaces and program nftables")
	}
	for _, bin := range []string{"nft", "ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Skipf("needs %s: %v", bin, err)
		}
	}
}

func run(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a network namespace that is deleted when the test ends.
func newNetns(tb testing.TB, name string) string {
	tb.Helper()
	name = fmt.Sprintf("nkproxy-%d-%s", os.Getpid(), name)
	run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run(tb, "ip", "-n", name, "link", "set", "lo", "up")
	return "/run/netns/" + name
}

func newTestNode(tb testing.TB, pods map[string]string) *testNode {
	tb.Helper()
	requireNetns(tb)
	n := &testNode{pods: map[string]string{}}
	n.node = newNetns(tb, "node")
	nodeName := filepath.Base(n.node)
	run(tb, "ip", "-n", nodeName, "link", "add", "br0", "type", "bridge")
	run(tb, "ip", "-n", nodeName, "addr", "add", nodeIP+"/24", "dev", "br0")
	run(tb, "ip", "-n", nodeName, "link", "set", "br0", "up")
	run(tb, "ip", "-n", nodeName, "route", "add", "10.96.0.0/16", "dev", "br0")
	// Pods reach Services through the node: it routes (this namespace's setting only).
	run(tb, "ip", "netns", "exec", nodeName, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	i := 0
	for pod, ip := range pods {
		i++
		path := newNetns(tb, pod)
		veth := fmt.Sprintf("veth%d", i)
		// The pair is made inside the node namespace: the host's links are never touched.
		run(tb, "ip", "-n", nodeName, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", filepath.Base(path))
		run(tb, "ip", "-n", nodeName, "link", "set", veth, "master", "br0", "up")
		// As the bridge CNI plugin's hairpinMode: with br_netfilter a pod's packets DNATed
		// back to itself leave through the bridge port they came in by.
		run(tb, "ip", "-n", nodeName, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
		run(tb, "ip", "-n", filepath.Base(path), "addr", "add", ip+"/24", "dev", "eth0")
		run(tb, "ip", "-n", filepath.Base(path), "link", "set", "eth0", "up")
		run(tb, "ip", "-n", filepath.Base(path), "route", "add", "default", "via", nodeIP)
		n.pods[pod] = path
	}
	return n
}

// inNetns runs f on an OS thread moved into the namespace at path; the thread is thrown away
// afterwards (the goroutine exits still locked), so no other goroutine ever runs there.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// serve answers with name on TCP :8080 and UDP :8081 inside the namespace at path.
func serve(tb testing.TB, path, name string) {
	tb.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := inNetns(path, func() error {
		var err error
		if ln, err = net.Listen("tcp4", ":8080"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", ":8081")
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name+"\n"), addr)
		}
	}()
}

// ask connects from the node namespace to addr and returns the backend's name.
func (n *testNode) ask(network, addr string) (string, error) {
	var c net.Conn
	err := inNetns(n.node, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, 2*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if network == "udp4" {
		if _, err := c.Write([]byte("hi")); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// tally asks count times and counts the answers.
func (n *testNode) tally(t *testing.T, network, addr string, count int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range count {
		name, err := n.ask(network, addr)
		if err != nil {
			t.Fatalf("%s %s: %v", network, addr, err)
		}
		got[name]++
	}
	return got
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyInNetns runs the Services through the kernel twice: in one table, and spread
// over eight (one Service each at most), where every table's base chains see every packet.
func TestProxyInNetns(t *testing.T) {
	for _, perTable := range []int{0, 1} {
		t.Run(fmt.Sprintf("servicesPerTable=%d", perTable), func(t *testing.T) { testProxyInNetns(t, perTable) })
	}
}

func testProxyInNetns(t *testing.T, servicesPerTable int) {
	n := newTestNode(t, map[string]string{"pod1": pod1IP, "pod2": pod2IP})
	serve(t, n.pods["pod1"], "pod1")
	serve(t, n.pods["pod2"], "pod2")

	tcp := []slicePort{{"http", v1.ProtocolTCP, 8080}}
	udp := []slicePort{{"echo", v1.ProtocolUDP, 8081}}
	both := func(opts ...epOpt) []discovery.Endpoint {
		return []discovery.Endpoint{ep(pod1IP, append(opts, onNode("node"))...), ep(pod2IP, append(opts, onNode("node"))...)}
	}
	client := fake.NewClientset(
		service("default", "web", "10.96.0.10", port("http", v1.ProtocolTCP, 80, 8080), nodePort(30080)),
		slice("default", "web", "web-1", tcp, both()...),
		service("default", "sticky", "10.96.0.11", port("http", v1.ProtocolTCP, 80, 8080), affinity(300)),
		slice("default", "sticky", "sticky-1", tcp, both()...),
		service("default", "empty", "10.96.0.12", port("http", v1.ProtocolTCP, 80, 8080)),
		service("default", "echo", "10.96.0.13", port("echo", v1.ProtocolUDP, 53, 8081)),
		slice("default", "echo", "echo-1", udp, both()...),
		service("default", "self", "10.96.0.14", port("http", v1.ProtocolTCP, 80, 8080)),
		slice("default", "self", "self-1", tcp, ep(pod1IP, onNode("node"))),
	)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := New(Config{NodeName: "node", NodeIPs: []string{nodeIP}, ClusterCIDR: podCIDR, NetworkNamespace: n.node,
		ServicesPerTable: servicesPerTable, Log: log}, client, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("Run ended before Ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not Ready after 30s")
	}

	t.Run("ClusterIP spreads over both endpoints", func(t *testing.T) {
		got := n.tally(t, "tcp4", "10.96.0.10:80", 200)
		if got["pod1"] < 50 || got["pod2"] < 50 {
			t.Errorf("200 connections went %v; want both endpoints well used", got)
		}
	})
	t.Run("ClientIP affinity pins to one endpoint", func(t *testing.T) {
		got := n.tally(t, "tcp4", "10.96.0.11:80", 30)
		if len(got) != 1 {
			t.Errorf("30 connections from one client went %v; want one endpoint", got)
		}
	})
	t.Run("NodePort on the node address", func(t *testing.T) {
		got := n.tally(t, "tcp4", nodeIP+":30080", 40)
		if got["pod1"]+got["pod2"] != 40 || len(got) != 2 {
			t.Errorf("40 NodePort connections went %v", got)
		}
	})
	t.Run("UDP", func(t *testing.T) {
		got := n.tally(t, "udp4", "10.96.0.13:53", 40)
		if got["pod1"]+got["pod2"] != 40 || len(got) != 2 {
			t.Errorf("40 UDP exchanges went %v", got)
		}
	})
	t.Run("hairpin: a pod reaches itself through its Service", func(t *testing.T) {
		// Without masquerading pod1 would answer itself from its own address, not the
		// Service's, and the connection would never be established.
		for range 5 {
			var c net.Conn
			err := inNetns(n.pods["pod1"], func() error {
				var err error
				c, err = net.DialTimeout("tcp4", "10.96.0.14:80", 2*time.Second)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil || strings.TrimSpace(line) != "pod1" {
				t.Fatalf("got %q, %v; want pod1", line, err)
			}
		}
	})
	t.Run("no endpoints is refused at once", func(t *testing.T) {
		start := time.Now()
		_, err := n.ask("tcp4", "10.96.0.12:80")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("got %v, want connection refused", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refusal took %v", d)
		}
	})
	t.Run("endpoint not ready stops getting traffic", func(t *testing.T) {
		s := slice("default", "web", "web-1", tcp, ep(pod1IP, onNode("node")), ep(pod2IP, onNode("node"), notReady))
		if _, err := client.DiscoveryV1().EndpointSlices("default").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "traffic only to pod1", func() error {
			if got := n.tally(t, "tcp4", "10.96.0.10:80", 30); got["pod1"] != 30 {
				return fmt.Errorf("30 connections went %v", got)
			}
			return nil
		})
	})
	t.Run("UDP flows of a removed endpoint are forgotten", func(t *testing.T) {
		// One client socket, so every datagram has the same 5-tuple: conntrack keeps
		// sending it to the endpoint it picked first unless the proxy deletes the entry.
		var c net.Conn
		if err := inNetns(n.node, func() error {
			var err error
			c, err = net.Dial("udp4", "10.96.0.13:53")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		exchange := func() (string, error) {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("hi")); err != nil {
				return "", err
			}
			buf := make([]byte, 64)
			k, err := c.Read(buf)
			return strings.TrimSpace(string(buf[:k])), err
		}
		first, err := exchange()
		if err != nil {
			t.Fatal(err)
		}
		keep, keepIP := "pod1", pod1IP
		if first == "pod1" {
			keep, keepIP = "pod2", pod2IP
		}
		s := slice("default", "echo", "echo-1", udp, ep(keepIP, onNode("node")))
		if _, err := client.DiscoveryV1().EndpointSlices("default").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The removed pod still answers: only a deleted conntrack entry moves the flow.
		eventually(t, "the flow moves to "+keep, func() error {
			if got, err := exchange(); err != nil || got != keep {
				return fmt.Errorf("got %q, %v", got, err)
			}
			return nil
		})
	})
	t.Run("endpoints added to an empty service", func(t *testing.T) {
		s := slice("default", "empty", "empty-1", tcp, ep(pod2IP, onNode("node")))
		if _, err := client.DiscoveryV1().EndpointSlices("default").Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "empty service now served by pod2", func() error {
			name, err := n.ask("tcp4", "10.96.0.12:80")
			if err != nil || name != "pod2" {
				return fmt.Errorf("got %q, %v", name, err)
			}
			return nil
		})
	})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// BenchmarkFullSync measures one full sync of N Services × 10 endpoints into a real table in a
// test network namespace:
//
//	go test ./internal/proxy/ -run '^$' -bench FullSync -benchtime 1x
func BenchmarkFullSync(b *testing.B) {
	for _, size := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d/endpoints=10", size), func(b *testing.B) {
			requireNetns(b)
			n := &testNode{node: newNetns(b, "bench")}
			svcs, sl := SyntheticServices(size, 10)
			w := newWorld()
			for _, s := range svcs {
				w.put(b, s)
			}
			for _, s := range sl {
				w.put(b, s)
			}
			p, err := New(Config{NodeName: "node-0", ClusterCIDR: "10.128.0.0/10", TableName: "bench", NetworkNamespace: n.node}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			w.attach(p)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				p.needFull = true
				if err := p.sync(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestNetlinkMatchesText programs the same full sync into two namespaces of its own: over
// netlink, and as the nft text of the same transaction through `nft -f`. The tables must
// list the same: the kernel expressions of every rule are what its text says.
func TestNetlinkMatchesText(t *testing.T) {
	requireNetns(t)
	w := newWorld()
	w.put(t, cluster()...)
	ctx := context.Background()

	wireNS := newNetns(t, "wire")
	cfg := testConfig()
	cfg.NetworkNamespace = wireNS
	p := newProxier(cfg, nil, nil, netlinkTables{netns: wireNS})
	w.attach(p)
	if err := p.sync(ctx); err != nil {
		t.Fatal(err)
	}

	textNS := newNetns(t, "text")
	textProxier, nft, _ := newTestProxier(testConfig(), w)
	if err := textProxier.sync(ctx); err != nil {
		t.Fatal(err)
	}
	load := exec.Command("nsenter", "--net="+textNS, "nft", "-f", "-")
	load.Stdin = strings.NewReader(nft.last())
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}

	list := func(ns string) string {
		out, err := exec.Command("nsenter", "--net="+ns, "nft", "list", "table", "ip", cfg.TableName).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v\n%s", err, out)
		}
		// The table's comment is knftables' alone; elements are listed in hash order.
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "comment") {
				continue
			}
			lines = append(lines, strings.Split(strings.Trim(l, "\t {}=,"), ", ")...)
		}
		return sortedLines(strings.Join(lines, "\n"))
	}
	if got, want := list(wireNS), list(textNS); got != want {
		t.Errorf("netlink table differs from nft -f of the same transaction:\n--- netlink\n%s\n--- nft -f\n%s", got, want)
	}
}

// TestNetlinkBackendIsAtomic checks, in a namespace of its own, that a batch the kernel
// rejects changes nothing and names the operation at fault, and that Check never changes
// anything: the bisection of a failing full sync relies on both.
func TestNetlinkBackendIsAtomic(t *testing.T) {
	requireNetns(t)
	ns := newNetns(t, "atomic")
	nt := netlinkTables{netns: ns}
	b := nt.table("atomic")
	ctx := context.Background()
	tx := func(target string) *transaction {
		tx := &transaction{}
		tx.addTable()
		tx.addChain("a")
		tx.addChain("b")
		tx.addRule("a", newRule().verdict("goto "+target).build())
		return tx
	}
	tables := func() []string {
		all, err := nt.list(ctx, func(name string) bool { return name == "atomic" })
		if err != nil {
			t.Fatal(err)
		}
		return append(all["atomic"].chains, all["atomic"].sets...)
	}

	err := b.Run(ctx, tx("missing"))
	if err == nil {
		t.Fatal("a goto to a missing chain was accepted")
	}
	if !strings.Contains(err.Error(), "add rule a goto missing") {
		t.Errorf("error %q does not name the rejected operation", err)
	}
	if got := tables(); len(got) != 0 {
		t.Errorf("a rejected batch left %v behind", got)
	}
	if err := b.Check(ctx, tx("missing")); err == nil {
		t.Error("Check accepted a goto to a missing chain")
	}
	if err := b.Check(ctx, tx("b")); err != nil {
		t.Errorf("Check of a valid batch: %v", err)
	}
	if got := tables(); len(got) != 0 {
		t.Errorf("Check left %v behind", got)
	}
	if err := b.Run(ctx, tx("b")); err != nil {
		t.Fatal(err)
	}
	if got := tables(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("after Run the table holds %v, want chains a and b", got)
	}
}
