package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanokube/nanokube/internal/multinode"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

// The multi-node cluster: `nanokube server` and two `nanokube agent`s that join it with the
// server's join token, each node in a network namespace of its own on one bridge, with no
// route out (internal/multinode). It runs once for the tests below, in order, because node
// loss changes it.
func TestMultiNode(t *testing.T) {
	dir := filepath.Join(cluster.dir, "multinode")
	ctx := context.Background()
	mc := upMultiNode(t, multinode.Config{Name: fmt.Sprintf("nkmn%d", os.Getpid()%10000), Dir: dir, Agents: 2,
		ServerArgs: []string{"--node-monitor-grace-period", "20s"}})
	k := func(t *testing.T, args ...string) string {
		t.Helper()
		return mcKubectl(t, mc, "", args...)
	}
	kIn := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		return mcKubectl(t, mc, stdin, args...)
	}

	t.Run("join", func(t *testing.T) {
		// Every node is Ready, with its own pod CIDR, and the agents hold certificates the
		// cluster issued through CertificateSigningRequests.
		waitFor(t, "three Ready nodes", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
			return out, strings.Count(out, "=True") == 3
		})
		cidrs := strings.Fields(k(t, "get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"))
		if len(cidrs) != 3 || cidrs[0] == cidrs[1] || cidrs[1] == cidrs[2] || cidrs[0] == cidrs[2] {
			t.Errorf("pod CIDRs %v, want three different ones", cidrs)
		}
		csrs := k(t, "get", "csr")
		if n := strings.Count(csrs, "Approved,Issued"); n != 4 {
			t.Errorf("%d issued CSRs, want 4 (a client and a serving certificate per agent):\n%s", n, csrs)
		}
		mustContain(t, csrs, "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving", "system:bootstrap:", "system:node:node-1")
		// The agent talks to the API server as its node.
		kc := filepath.Join(mc.Nodes[1].DataDir, "kubelet.kubeconfig")
		out, err := multinode.Command(ctx, mc.ClientNetns, "kubectl", "--kubeconfig", kc, "--cache-dir", filepath.Join(dir, "kc1"), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "system:node:node-1" {
			t.Errorf("agent identity: %v: %s", err, out)
		}
	})

	t.Run("pod network and services", func(t *testing.T) {
		// A DaemonSet puts one web pod on every node; pods reach each other across nodes
		// directly, and a ClusterIP and a NodePort reach all three.
		kIn(t, `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: `+testImage+`
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
`, "apply", "-f", "-")
		k(t, "rollout", "status", "daemonset/web", "--timeout=120s")
		out := k(t, "get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP}{"\n"}{end}`)
		podIPs := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				podIPs[f[0]] = f[1]
			}
		}
		if len(podIPs) != 3 {
			t.Fatalf("web pods by node: %v, want one on each of 3 nodes", podIPs)
		}
		k(t, "run", "client", "--image", testImage, "--overrides", `{"spec":{"nodeName":"node-1"}}`, "--", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done")
		waitFor(t, "the client pod to run", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "pod", "client", "-o", "jsonpath={.status.phase}")
			return out, out == "Running"
		})
		for nodeName, ip := range podIPs {
			waitFor(t, "pod on "+nodeName+" from node-1", 30*time.Second, func() (string, bool) {
				out, errOut, _ := mcRun(mc, "", "exec", "client", "--", "sh", "-c", httpGet(ip, "8080"))
				return out + errOut, strings.Contains(out, "hello-from-")
			})
		}
		clusterIP := strings.TrimSpace(k(t, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"))
		seen := map[string]bool{}
		waitFor(t, "all three backends through the ClusterIP", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "exec", "client", "--", "sh", "-c", httpGet(clusterIP, "80"))
			if i := strings.Index(out, "hello-from-"); i >= 0 {
				seen[strings.TrimSpace(out[i:])] = true
			}
			return strings.Join(keys(seen), ","), len(seen) == 3
		})
		// Session affinity pins the client to one backend.
		k(t, "patch", "service", "web", "-p", `{"spec":{"sessionAffinity":"ClientIP"}}`)
		waitFor(t, "ten requests in a row answered by one backend", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "exec", "client", "--", "sh", "-c", "for i in 0 1 2 3 4 5 6 7 8 9; do "+httpGet(clusterIP, "80")+"; done")
			got := map[string]bool{}
			for _, l := range strings.Fields(out) {
				if strings.HasPrefix(l, "hello-from-") {
					got[l] = true
				}
			}
			return out, len(got) == 1 && strings.Count(out, "hello-from-") == 10
		})
		k(t, "patch", "service", "web", "-p", `{"spec":{"sessionAffinity":"None"}}`)
		// A backend that stops being ready stops getting traffic.
		pods := strings.Fields(k(t, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))
		k(t, "exec", pods[0], "--", "rm", "/www/index.html")
		waitFor(t, pods[0]+" to leave the service", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "exec", "client", "--", "sh", "-c", "for i in 0 1 2 3 4 5 6 7 8 9; do "+httpGet(clusterIP, "80")+"; done")
			return out, strings.Count(out, "hello-from-") == 10 && !strings.Contains(out, "hello-from-"+pods[0])
		})
		k(t, "exec", pods[0], "--", "sh", "-c", "echo hello-from-$(hostname) > /www/index.html")
		port := strings.TrimSpace(k(t, "get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"))
		for _, n := range mc.Nodes {
			waitFor(t, "the NodePort on "+n.Name+" from the host side", 30*time.Second, func() (string, bool) {
				out, _ := multinode.Command(ctx, mc.ClientNetns, "sh", "-c", strings.Replace(httpGet(n.IP, port), "| nc", "| busybox nc", 1)).CombinedOutput()
				return string(out), strings.Contains(string(out), "hello-from-")
			})
		}
	})

	t.Run("bad joins", func(t *testing.T) {
		// A wrong token and a live node's name are refused with a one-line error, and the
		// agent writes nothing.
		good, err := os.ReadFile(filepath.Join(mc.Nodes[0].DataDir, "node-token"))
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSpace(string(good))
		wrong := tok[:len(tok)-4] + "zzzz"
		if wrong == tok {
			wrong = tok[:len(tok)-4] + "yyyy"
		}
		for _, tc := range []struct {
			name, token, node, want string
		}{
			{"wrong token", wrong, "node-9", "refused the join token"},
			{"live node's name", tok, "node-2", "is registered and alive"},
			{"garbage token", "hello", "node-9", "join token has the form"},
		} {
			d := filepath.Join(dir, "bad-"+strings.ReplaceAll(tc.name, " ", "-"))
			cmd := multinode.Command(ctx, mc.ClientNetns, cluster.bin, "agent", "--server", mc.JoinURL, "--token", tc.token,
				"--data-dir", d, "--node-name", tc.node, "--node-ip", mc.ClientIP)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil {
				t.Errorf("%s: agent succeeded", tc.name)
				continue
			}
			msg := strings.TrimSpace(stderr.String())
			lines := strings.Split(msg, "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, tc.want) {
				t.Errorf("%s: last line %q, want it to say %q", tc.name, last, tc.want)
			}
			if _, err := os.Stat(filepath.Join(d, "kubelet.kubeconfig")); err == nil {
				t.Errorf("%s: the agent wrote its kubeconfig", tc.name)
			}
		}
	})

	t.Run("node loss", func(t *testing.T) {
		// node-2's agent is killed: the node goes NotReady, its pods are recreated on the
		// other nodes within the toleration the pods set, and the Service answers throughout.
		kIn(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 3
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: app}}}
      containers:
      - name: web
        image: `+testImage+`
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  selector: {app: app}
  ports: [{port: 80, targetPort: http}]
`, "apply", "-f", "-")
		k(t, "rollout", "status", "deployment/app", "--timeout=120s")
		nodesOf := func() string {
			out, _, _ := mcRun(mc, "", "get", "pods", "-l", "app=app", "--field-selector", "status.phase=Running", "-o", "jsonpath={.items[*].spec.nodeName}")
			return out
		}
		if !strings.Contains(nodesOf(), "node-2") {
			t.Fatalf("no app pod on node-2 before the loss: %s", nodesOf())
		}
		clusterIP := strings.TrimSpace(k(t, "get", "service", "app", "-o", "jsonpath={.spec.clusterIP}"))
		// The client keeps asking through the Service from node-1 while node-2 goes away.
		probeCtx, stopProbe := context.WithCancel(ctx)
		probes := make(chan [2]int, 1)
		go func() {
			ok, failed := 0, 0
			for probeCtx.Err() == nil {
				// One request may land on a dead endpoint before the node is declared lost;
				// a client retrying three times must always get through.
				cmd := `for i in 1 2 3; do ` + httpGet(clusterIP, "80") + ` | grep -q hello-from- && exit 0; done; exit 1`
				if _, _, err := mcRun(mc, "", "exec", "client", "--", "sh", "-c", cmd); err == nil {
					ok++
				} else {
					failed++
				}
				time.Sleep(200 * time.Millisecond)
			}
			probes <- [2]int{ok, failed}
		}()
		mc.StopNode(mc.Nodes[2], true)
		waitFor(t, "node-2 NotReady", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "node", "node-2", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			return out, out != "True"
		})
		// The pod on node-2 stays Terminating while its node is away, as in Kubernetes; its
		// replacement runs elsewhere.
		waitFor(t, "three ready app pods off node-2", 120*time.Second, func() (string, bool) {
			ready, _, _ := mcRun(mc, "", "get", "deployment", "app", "-o", "jsonpath={.status.readyReplicas}")
			out, _, _ := mcRun(mc, "", "get", "pods", "-l", "app=app", "-o",
				`jsonpath={range .items[?(@.metadata.deletionTimestamp)]}gone:{.spec.nodeName} {end}{range .items[*]}{.spec.nodeName} {end}`)
			live := 0
			for _, n := range strings.Fields(out) {
				if n == "node-0" || n == "node-1" {
					live++
				}
			}
			live -= strings.Count(out, "gone:node-0") + strings.Count(out, "gone:node-1")
			return out + " ready=" + ready, ready == "3" && live == 3
		})
		stopProbe()
		res := <-probes
		t.Logf("service probes during the node loss: %d answered, %d failed", res[0], res[1])
		if res[1] > 0 {
			t.Errorf("the Service failed %d of %d retried requests while node-2 was lost", res[1], res[0]+res[1])
		}

		// The agent restarts on its data dir without a token: it rejoins as node-2.
		if err := mc.StartNode(ctx, mc.Nodes[2]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "node-2 Ready again", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "node", "node-2", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			return out, out == "True"
		})
	})

	t.Run("control plane crash during a rollout", func(t *testing.T) {
		// kill -9 of the server (etcd, API server, controllers, and node-0's agent) in the
		// middle of a rolling update: after a restart on its data dir the rollout completes,
		// nothing is lost or duplicated, and the DaemonSet's running containers were never
		// restarted.
		containers := func() string {
			return k(t, "get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].containerID}/{.status.containerStatuses[0].restartCount} {end}`)
		}
		before := containers()
		k(t, "set", "env", "deployment/app", "VERSION=2")
		mc.StopNode(mc.Nodes[0], true)
		if err := mc.StartNode(ctx, mc.Nodes[0]); err != nil {
			t.Fatal(err)
		}
		k(t, "rollout", "status", "deployment/app", "--timeout=180s")
		if rs := strings.Fields(k(t, "get", "replicasets", "-l", "app=app", "-o", "jsonpath={.items[*].metadata.name}")); len(rs) != 2 {
			t.Errorf("replica sets after the rollout: %v, want the old and the new one", rs)
		}
		waitFor(t, "exactly three live app pods, all of the new template", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "pods", "-l", "app=app", "-o",
				`jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.spec.containers[0].env[0].value} {end}`)
			return out, strings.Count(out, "|2") == 3 && len(strings.Fields(out)) == 3
		})
		if after := containers(); after != before {
			t.Errorf("DaemonSet containers changed over the crash:\nbefore %s\nafter  %s", before, after)
		}
		if n := len(strings.Fields(k(t, "get", "deployments", "-o", "jsonpath={.items[*].metadata.name}"))); n != 1 {
			t.Errorf("%d deployments, want 1", n)
		}
		waitFor(t, "three Ready nodes after the restart", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "nodes", "-o", `jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {end}`)
			return out, strings.Count(out, "True") == 3
		})
	})
}

// needNodeTools skips when the machine cannot run containers.
func needNodeTools(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("multi-node tests need root (network namespaces, mounts, cgroups, runc)")
	}
	for _, bin := range []string{"runc", "nsenter", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: run hack/install-deps.sh", bin)
		}
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", testimage.BusyboxPath} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is missing: run hack/install-deps.sh", p)
		}
	}
}

// upMultiNode starts a multi-node cluster (internal/multinode) of cfg with the busybox test
// image on every node, and tears it down when the test ends, showing the nodes' logs if the
// test failed. cfg.Bin and cfg.Images are filled in; cfg.Dir defaults to a directory named
// after cfg.Name. It skips when the machine cannot run nodes.
func upMultiNode(t *testing.T, cfg multinode.Config) *multinode.Cluster {
	t.Helper()
	needNodeTools(t)
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"sh"}, StopSignal: "SIGTERM"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bin = cluster.bin
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(cluster.dir, cfg.Name)
	}
	cfg.Images = func(d string) error {
		return testimage.WriteDockerArchive(filepath.Join(d, "busybox.tar"), testImage, img)
	}
	mc, err := multinode.Up(context.Background(), cfg)
	if mc == nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			// What the API saw: each pod's node, phase and conditions, then recent events.
			pods, _, _ := mcRun(mc, "", "get", "pods", "-A", "-o", `jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} on {.spec.nodeName}: {.status.phase} {range .status.conditions[*]}{.type}={.status}@{.lastTransitionTime} {end}{range .status.containerStatuses[*]}[{.name} ready={.ready} restarts={.restartCount} {.state}]{end}{"\n"}{end}`)
			t.Logf("pods:\n%s", pods)
			events, _, _ := mcRun(mc, "", "get", "events", "-A", "--sort-by=.lastTimestamp")
			t.Logf("events:\n%s", tail(events, 3000))
			for _, n := range mc.Nodes {
				t.Logf("log of %s:\n%s", n.Name, tail(n.Log(), 3000))
			}
		}
		if err := mc.Down(); err != nil {
			t.Errorf("tear down: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// mcKubectl runs kubectl against the multi-node cluster, with stdin unless it is empty, and
// returns its output; it fails the test on error.
func mcKubectl(t *testing.T, mc *multinode.Cluster, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := mcRun(mc, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// mcRun runs kubectl against the multi-node cluster from its client namespace. Its deadline
// is only a backstop, past the longest --timeout a test gives kubectl (180 s).
func mcRun(mc *multinode.Cluster, stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second)
	defer cancel()
	cmd := mc.Kubectl(ctx, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}
