package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nanokube/nanokube/internal/multinode"
)

// A control plane without its own agent (`nanokube server --disable-agent`) and one joined
// agent (issue 6): the server still runs the cluster DNS, as the user system:kube-dns, at the
// address agents join it at, and a pod on the agent resolves services by name through the
// kube-dns ClusterIP, before and after the server restarts.
func TestMultiNodeControlPlaneOnly(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("TestMultiNodeControlPlaneOnly took %s", time.Since(start).Round(time.Second)) })
	ctx := context.Background()
	mc := upMultiNode(t, multinode.Config{Name: fmt.Sprintf("nkcp%d", os.Getpid()%10000), Agents: 1, ControlPlaneOnly: true})
	k := func(t *testing.T, args ...string) string {
		t.Helper()
		return mcKubectl(t, mc, "", args...)
	}
	serverIP := mc.Nodes[0].IP

	t.Run("kube-dns points at the server", func(t *testing.T) {
		waitFor(t, "node-1 alone Ready", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
			return out, strings.TrimSpace(out) == "node-1=True"
		})
		if ip := k(t, "-n", "kube-system", "get", "service", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"); ip != "10.96.0.10" {
			t.Errorf("kube-dns ClusterIP %q, want 10.96.0.10", ip)
		}
		if got := k(t, "-n", "kube-system", "get", "endpointslice", "kube-dns-server", "-o", "jsonpath={.endpoints[*].addresses[*]}"); got != serverIP {
			t.Errorf("kube-dns endpoints %q, want the server's address %s", got, serverIP)
		}
	})

	t.Run("identity", func(t *testing.T) {
		kc := filepath.Join(mc.Nodes[0].DataDir, "kube-dns.kubeconfig")
		out, err := multinode.Command(ctx, mc.ClientNetns, "kubectl", "--kubeconfig", kc, "--cache-dir", t.TempDir(),
			"auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "system:kube-dns" {
			t.Errorf("the DNS server's identity: %v: %s", err, out)
		}
		// What the DNS server reads, and nothing else.
		for _, c := range []struct {
			verb, resource, want string
		}{
			{"list", "services", "yes"},
			{"watch", "services", "yes"},
			{"list", "endpointslices.discovery.k8s.io", "yes"},
			{"watch", "endpointslices.discovery.k8s.io", "yes"},
			{"list", "endpoints", "yes"},
			{"get", "secrets", "no"},
			{"list", "secrets", "no"},
			{"list", "pods", "no"},
			{"create", "services", "no"},
		} {
			// "yes", or "no" (exit status 1) perhaps followed by a reason.
			out, errOut, _ := mcRun(mc, "", "auth", "can-i", c.verb, c.resource, "--all-namespaces", "--as", "system:kube-dns")
			if got := strings.Fields(out + " ?")[0]; got != c.want {
				t.Errorf("can system:kube-dns %s %s: %q %s, want %s", c.verb, c.resource, got, errOut, c.want)
			}
		}
	})

	k(t, "create", "service", "clusterip", "named", "--tcp", "80:8080")
	namedIP := k(t, "get", "service", "named", "-o", "jsonpath={.spec.clusterIP}")
	k(t, "run", "client", "--image", testImage, "--", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done")
	waitFor(t, "the client pod to run on node-1", 60*time.Second, func() (string, bool) {
		out, _, _ := mcRun(mc, "", "get", "pod", "client", "-o", "jsonpath={.spec.nodeName} {.status.phase}")
		return out, out == "node-1 Running"
	})
	// busybox's nslookup walks the search path for names without a dot only, and fails when
	// any search domain misses: its status says nothing here, its answers do ("Address: IP"
	// after the name; the server's own line is "Address: 10.96.0.10:53"). kubernetes.default
	// is asked as a stub resolver's search path (ndots:5) finds it,
	// kubernetes.default.svc.cluster.local, and the bare "kubernetes" through the path.
	resolves := func(t *testing.T, name, ip string) {
		t.Helper()
		answer := regexp.MustCompile(`(?m)^Address:\s*` + regexp.QuoteMeta(ip) + `\s*$`)
		waitFor(t, name+" through the cluster DNS", 60*time.Second, func() (string, bool) {
			out, errOut, _ := mcRun(mc, "", "exec", "client", "--", "sh", "-c", "nslookup "+name+"; true")
			return out + errOut, answer.MatchString(out)
		})
	}
	t.Run("a pod on the agent resolves names", func(t *testing.T) {
		mustContain(t, k(t, "exec", "client", "--", "cat", "/etc/resolv.conf"), "nameserver 10.96.0.10")
		resolves(t, "kubernetes.default.svc.cluster.local", "10.96.0.1")
		resolves(t, "kubernetes", "10.96.0.1")
		resolves(t, "named", namedIP)
		resolves(t, "named.default.svc.cluster.local", namedIP)
	})

	t.Run("after a server restart", func(t *testing.T) {
		// The second start finds the kube-dns Service and EndpointSlice it made and serves
		// again; a new service is answered.
		mc.StopNode(mc.Nodes[0], false)
		if err := mc.StartNode(ctx, mc.Nodes[0]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the restarted server's DNS to listen", 30*time.Second, func() (string, bool) {
			log := mc.Nodes[0].Log()
			return tail(log, 2000), strings.Contains(log, "dns server listening") && !strings.Contains(log, "no cluster DNS")
		})
		k(t, "create", "service", "clusterip", "later", "--tcp", "80:8080")
		resolves(t, "later.default.svc.cluster.local", k(t, "get", "service", "later", "-o", "jsonpath={.spec.clusterIP}"))
		resolves(t, "kubernetes", "10.96.0.1")
	})
}
