package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// A Service's ClusterIP and NodePort reach its pods through the agent's nftables proxy, and
// pods resolve services through the cluster DNS at the kube-dns ClusterIP.
func TestServiceNetworking(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	nkIn(t, webDeployment+`
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 8080}]
`, "-n", ns, "apply", "-f", "-")
	nk(t, "-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")
	resolve := buildTestProgram(t, "resolve", ns)
	nkIn(t, `
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: `+testImage+`
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: bin, mountPath: /resolve}]
  volumes:
  - {name: bin, hostPath: {path: `+resolve+`, type: File}}
`, "-n", ns, "apply", "-f", "-")
	waitJSONPath(t, ns, "pod/client", "{.status.phase}", 60*time.Second, equals("Running"))

	// ClusterIP, from a pod: both backends answer over a few requests. (HTTP through nc and
	// names through nslookup: the static busybox's wget crashes in glibc's NSS in a
	// container without NSS libraries.)
	clusterIP := jsonpath(ns, "service/web", "{.spec.clusterIP}")
	seen := map[string]bool{}
	waitFor(t, "both backends through the ClusterIP", 60*time.Second, func() (string, bool) {
		out, errOut, _ := nkRun(nil, "-n", ns, "exec", "client", "--", "sh", "-c", httpGet(clusterIP, "80"))
		if i := strings.Index(out, "hello-from-"); i >= 0 {
			seen[strings.TrimSpace(out[i:])] = true
		}
		return strings.Join(keys(seen), ",") + " " + errOut, len(seen) == 2
	})

	// Cluster DNS at the kube-dns ClusterIP, through the pod's resolv.conf as a program's
	// resolver uses it (search path, ndots:5): a full name, a short one, the API server's
	// service by the name pods use, and a headless service's pods.
	resolv := nk(t, "-n", ns, "exec", "client", "--", "cat", "/etc/resolv.conf")
	mustContain(t, resolv, "nameserver 10.96.0.10", "search "+ns+".svc.cluster.local svc.cluster.local cluster.local", "ndots:5")
	podIPs := strings.Fields(nk(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}"))
	slices.Sort(podIPs)
	got := nk(t, "-n", ns, "exec", "client", "--", "/resolve", "web."+ns+".svc.cluster.local", "web", "kubernetes.default", "web-headless")
	want := strings.Join([]string{
		"web." + ns + ".svc.cluster.local " + clusterIP,
		"web " + clusterIP,
		"kubernetes.default 10.96.0.1",
		"web-headless " + strings.Join(podIPs, " "),
	}, "\n") + "\n"
	if got != want {
		t.Errorf("names resolved in the pod:\n%s\nwant:\n%s", got, want)
	}
	if _, errOut, err := nkRun(nil, "-n", ns, "exec", "client", "--", "/resolve", "missing."+ns+".svc.cluster.local"); err == nil || !strings.Contains(errOut, "no such host") {
		t.Errorf("a missing service resolved: err %v, stderr %q; want no such host", err, errOut)
	}

	// NodePort, from the node's own network namespace and from a pod.
	port := jsonpath(ns, "service/web", "{.spec.ports[0].nodePort}")
	waitFor(t, "the NodePort to answer", 30*time.Second, func() (string, bool) {
		out, err := exec.Command("nsenter", "--net=/var/run/netns/"+node.netns, "sh", "-c", strings.Replace(httpGet(nodeIP, port), "| nc", "| busybox nc", 1)).CombinedOutput()
		return string(out), err == nil && strings.Contains(string(out), "hello-from-")
	})

	mustContain(t, nk(t, "-n", ns, "exec", "client", "--", "sh", "-c", httpGet(nodeIP, port)), "hello-from-")

	// Scaled to zero, the service rejects at once instead of timing out.
	nk(t, "-n", ns, "scale", "deployment/web", "--replicas=0")
	waitFor(t, "connections to the empty service to be refused", 60*time.Second, func() (string, bool) {
		out, _, _ := nkRun(nil, "-n", ns, "exec", "client", "--", "sh", "-c", httpGet(clusterIP, "80")+" 2>&1; true")
		return out, strings.Contains(out, "refused") || strings.Contains(out, "unreachable")
	})
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// httpGet is a shell command fetching /index.html from host:port with busybox's nc.
func httpGet(host, port string) string {
	return `printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 ` + host + " " + port
}
