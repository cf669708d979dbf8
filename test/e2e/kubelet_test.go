package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// webDeployment is two busybox httpd pods labelled app=web answering /index.html with
// "hello-from-<pod name>" on their port "http" (8080).
const webDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: ` + testImage + `
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && echo started && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
`

// A Deployment of real containers: rollout, logs, exec exit codes, port-forward and cp.
func TestNodeDeployment(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	nkIn(t, webDeployment, "-n", ns, "apply", "-f", "-")
	nk(t, "-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")
	pods := strings.Fields(nk(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(pods) != 2 {
		t.Fatalf("pods = %v, want 2", pods)
	}
	pod := pods[0]
	out := nk(t, "-n", ns, "get", "pods", "-o", "wide")
	mustContain(t, out, "1/1", "Running", nodeName)

	mustContain(t, nk(t, "-n", ns, "logs", pod), "started")
	mustContain(t, nk(t, "-n", ns, "exec", pod, "--", "cat", "/www/index.html"), "hello-from-"+pod)
	_, _, err := nkRun(nil, "-n", ns, "exec", pod, "--", "sh", "-c", "exit 7")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Errorf("kubectl exec of 'exit 7' = %v, want exit code 7", err)
	}
	mustContain(t, nkIn(t, "from-stdin\n", "-n", ns, "exec", "-i", pod, "--", "cat"), "from-stdin")

	// port-forward, fetched from inside the node's network namespace.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pf := nodeKubectlCmd(ctx, "-n", ns, "port-forward", "pod/"+pod, "18080:8080")
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = pf.Wait() }()
	waitFor(t, "port-forward to answer", 30*time.Second, func() (string, bool) {
		out, err := exec.Command("nsenter", "--net=/var/run/netns/"+node.netns, "busybox", "wget", "-qO-", "http://127.0.0.1:18080/index.html").CombinedOutput()
		return string(out), err == nil && strings.Contains(string(out), "hello-from-"+pod)
	})

	// cp both ways (kubectl runs tar in the container).
	local := filepath.Join(t.TempDir(), "index.html")
	nk(t, "-n", ns, "cp", pod+":/www/index.html", local)
	if b, _ := os.ReadFile(local); !strings.Contains(string(b), "hello-from-"+pod) {
		t.Errorf("kubectl cp from the pod copied %q", b)
	}
	if err := os.WriteFile(local, []byte("copied-in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nk(t, "-n", ns, "cp", local, pod+":/www/in.html")
	mustContain(t, nk(t, "-n", ns, "exec", pod, "--", "cat", "/www/in.html"), "copied-in")

	// The kubelet's own API through the API server's node proxy.
	mustContain(t, nk(t, "get", "--raw", "/api/v1/nodes/"+nodeName+"/proxy/stats/summary"), `"nodeName":"`+nodeName+`"`, `"name":"`+pod+`"`)
	mustContain(t, nk(t, "get", "--raw", "/api/v1/nodes/"+nodeName+"/proxy/metrics"), "kubelet_running_pods")
}

// logs -f follows a container to its end; a pod that completes is Succeeded.
func TestNodeLogsFollowAndCompletion(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	nk(t, "-n", ns, "run", "counter", "--image", testImage, "--restart=Never", "--", "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 1; done")
	waitJSONPath(t, ns, "pod/counter", "{.status.phase}", 60*time.Second, func(s string) bool { return s == "Running" || s == "Succeeded" })
	out := nk(t, "-n", ns, "logs", "-f", "counter")
	mustContain(t, out, "line1", "line2", "line3")
	waitJSONPath(t, ns, "pod/counter", "{.status.phase}", 30*time.Second, equals("Succeeded"))
	if r := jsonpath(ns, "pod/counter", "{.status.containerStatuses[0].state.terminated.reason}"); r != "Completed" {
		t.Errorf("terminated reason = %q, want Completed", r)
	}
	mustContain(t, nk(t, "-n", ns, "get", "pod", "counter"), "Completed")

	// kubectl run -i --rm attaches to the container, then deletes the pod.
	mustContain(t, nk(t, "-n", ns, "run", "once", "-i", "--rm", "--restart=Never", "--image", testImage, "--", "sh", "-c", "sleep 1; echo attached-output"),
		"attached-output")

	// Graceful deletion: the container exits on SIGTERM and the pod goes at once.
	nk(t, "-n", ns, "run", "sleeper", "--image", testImage, "--", "sh", "-c", `trap "exit 0" TERM; while true; do sleep 1; done`)
	waitJSONPath(t, ns, "pod/sleeper", "{.status.phase}", 60*time.Second, equals("Running"))
	start := time.Now()
	nk(t, "-n", ns, "delete", "pod", "sleeper", "--timeout=60s")
	t.Logf("graceful delete took %s", time.Since(start).Round(time.Millisecond))
}

// A crashing container backs off, keeps its last state, and its previous logs.
func TestNodeCrashLoop(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	nk(t, "-n", ns, "run", "crasher", "--image", testImage, "--", "sh", "-c", "echo boom; exit 1")
	waitJSONPath(t, ns, "pod/crasher", "{.status.containerStatuses[0].state.waiting.reason}", 60*time.Second, equals("CrashLoopBackOff"))
	if code := jsonpath(ns, "pod/crasher", "{.status.containerStatuses[0].lastState.terminated.exitCode}"); code != "1" {
		t.Errorf("lastState exit code = %q, want 1", code)
	}
	if r := jsonpath(ns, "pod/crasher", "{.status.containerStatuses[0].lastState.terminated.reason}"); r != "Error" {
		t.Errorf("lastState reason = %q, want Error", r)
	}
	mustContain(t, nk(t, "-n", ns, "get", "pod", "crasher"), "CrashLoopBackOff")
	mustContain(t, nk(t, "-n", ns, "logs", "crasher", "--previous"), "boom")
	mustContain(t, nk(t, "-n", ns, "describe", "pod", "crasher"), "Back-off restarting failed container crasher")
}

// Readiness follows its probe; a failing liveness probe restarts the container.
func TestNodeProbes(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	nkIn(t, `
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: `+testImage+`
    command: ["sh", "-c", "touch /tmp/healthy /tmp/ready; trap 'exit 0' TERM; while true; do sleep 1; done"]
    readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1, failureThreshold: 1}
    livenessProbe: {exec: {command: [test, -f, /tmp/healthy]}, periodSeconds: 1, failureThreshold: 2}
`, "-n", ns, "apply", "-f", "-")
	ready := `{.status.conditions[?(@.type=="Ready")].status}`
	waitJSONPath(t, ns, "pod/probed", ready, 60*time.Second, equals("True"))
	nk(t, "-n", ns, "exec", "probed", "--", "rm", "/tmp/ready")
	waitJSONPath(t, ns, "pod/probed", ready, 30*time.Second, equals("False"))
	nk(t, "-n", ns, "exec", "probed", "--", "touch", "/tmp/ready")
	waitJSONPath(t, ns, "pod/probed", ready, 30*time.Second, equals("True"))

	nk(t, "-n", ns, "exec", "probed", "--", "rm", "/tmp/healthy")
	waitJSONPath(t, ns, "pod/probed", "{.status.containerStatuses[0].restartCount}", 60*time.Second, equals("1"))
	waitJSONPath(t, ns, "pod/probed", ready, 30*time.Second, equals("True"))
	mustContain(t, nk(t, "-n", ns, "describe", "pod", "probed"), "Liveness probe failed", "failed liveness probe, will be restarted")
}

// Every volume type and env source is visible inside the container; configMap updates
// reach a running pod.
func TestNodeVolumesAndEnv(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	hostDir := filepath.Join(node.dir, "hostpath-"+ns)
	nkIn(t, `
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: hello, mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: vols, labels: {tier: backend}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: `+testImage+`
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    resources: {limits: {memory: 64Mi}}
    env:
    - {name: PLAIN, value: plain-value}
    - {name: EXPANDED, value: "$(PLAIN)-expanded"}
    - {name: FROM_CM, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: FROM_SECRET, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    envFrom:
    - {prefix: CM_, configMapRef: {name: cfg}}
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: creds, mountPath: /etc/creds}
    - {name: info, mountPath: /etc/info}
    - {name: scratch, mountPath: /scratch}
    - {name: mem, mountPath: /mem}
    - {name: host, mountPath: /host}
    - {name: all, mountPath: /etc/all}
  volumes:
  - {name: cfg, configMap: {name: cfg}}
  - {name: creds, secret: {secretName: creds}}
  - {name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
  - {name: scratch, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory}}
  - {name: host, hostPath: {path: `+hostDir+`, type: DirectoryOrCreate}}
  - name: all
    projected:
      sources:
      - configMap: {name: cfg, items: [{key: mode, path: mode}]}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
`, "-n", ns, "apply", "-f", "-")
	waitJSONPath(t, ns, "pod/vols", "{.status.phase}", 60*time.Second, equals("Running"))
	podIP := jsonpath(ns, "pod/vols", "{.status.podIP}")
	env := nk(t, "-n", ns, "exec", "vols", "--", "env")
	mustContain(t, env, "PLAIN=plain-value", "EXPANDED=plain-value-expanded", "FROM_CM=hello", "FROM_SECRET=s3cret",
		"POD_NAME=vols", "POD_IP="+podIP, "MEM_MI=64", "CM_greeting=hello", "CM_mode=fast", "KUBERNETES_SERVICE_HOST=")
	files := nk(t, "-n", ns, "exec", "vols", "--", "sh", "-c",
		"cat /etc/cfg/greeting /etc/creds/password /etc/info/labels /etc/all/mode /etc/all/name; echo; "+
			"echo x > /scratch/f && echo x > /host/f && grep ' /mem ' /proc/mounts")
	mustContain(t, files, "hello", "s3cret", `tier="backend"`, "fast", "vols", "tmpfs")
	if _, err := os.Stat(filepath.Join(hostDir, "f")); err != nil {
		t.Errorf("file written to the hostPath volume is not on the host: %v", err)
	}

	nk(t, "-n", ns, "patch", "configmap", "cfg", "-p", `{"data":{"greeting":"bonjour"}}`)
	waitFor(t, "the configMap update to reach the pod", 60*time.Second, func() (string, bool) {
		out, _, _ := nkRun(nil, "-n", ns, "exec", "vols", "--", "cat", "/etc/cfg/greeting")
		return out, out == "bonjour"
	})
}

// Bad input shows as Kubernetes shows it, and the node keeps serving other pods.
func TestNodeBadInput(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	nkIn(t, `
apiVersion: v1
kind: Pod
metadata: {name: bad-image}
spec:
  containers: [{name: app, image: nanokube.test/missing:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: missing-config}
spec:
  containers:
  - name: app
    image: `+testImage+`
    env: [{name: X, valueFrom: {configMapKeyRef: {name: nope, key: x}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-command}
spec:
  containers: [{name: app, image: `+testImage+`, command: [/no/such/binary]}]
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: `+testImage+`
    command: ["sh", "-c", "a=xxxxxxxx; while :; do a=$a$a; done"]
    resources: {limits: {memory: 32Mi}}
`, "-n", ns, "apply", "-f", "-")
	reason := "{.status.containerStatuses[0].state.waiting.reason}"
	waitJSONPath(t, ns, "pod/bad-image", reason, 60*time.Second, equals("ImagePullBackOff"))
	mustContain(t, nk(t, "-n", ns, "describe", "pod", "bad-image"), `Failed to pull image "nanokube.test/missing:1"`, "Error: ErrImagePull")
	waitJSONPath(t, ns, "pod/missing-config", reason, 60*time.Second, equals("CreateContainerConfigError"))
	mustContain(t, nk(t, "-n", ns, "get", "pod", "missing-config"), "CreateContainerConfigError")
	waitJSONPath(t, ns, "pod/no-command", reason, 60*time.Second, func(s string) bool {
		return s == "CreateContainerError" || s == "RunContainerError"
	})
	waitJSONPath(t, ns, "pod/hog", "{.status.containerStatuses[0].state.terminated.reason}", 60*time.Second, equals("OOMKilled"))
	waitJSONPath(t, ns, "pod/hog", "{.status.phase}", 30*time.Second, equals("Failed"))
	mustContain(t, nk(t, "-n", ns, "get", "pod", "hog"), "OOMKilled")

	nk(t, "-n", ns, "run", "fine", "--image", testImage, "--", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done")
	waitJSONPath(t, ns, "pod/fine", "{.status.phase}", 60*time.Second, equals("Running"))
}

// kill -9 of the whole server (kubelet and runtime included) leaves containers running; the
// restarted kubelet adopts them without restarting them.
func TestNodeKubeletRestart(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	nk(t, "-n", ns, "run", "survivor", "--image", testImage, "--", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done")
	waitJSONPath(t, ns, "pod/survivor", `{.status.conditions[?(@.type=="Ready")].status}`, 60*time.Second, equals("True"))
	id := jsonpath(ns, "pod/survivor", "{.status.containerStatuses[0].containerID}")

	stopNodeServer(true)
	if err := runNodeServer(); err != nil {
		t.Fatal(err)
	}
	nk(t, "-n", ns, "exec", "survivor", "--", "true")
	time.Sleep(2 * time.Second) // let the kubelet's first syncs and the relist run
	if got := jsonpath(ns, "pod/survivor", "{.status.containerStatuses[0].containerID}"); got != id {
		t.Errorf("container ID after restart = %s, want %s (the container was restarted)", got, id)
	}
	if n := jsonpath(ns, "pod/survivor", "{.status.containerStatuses[0].restartCount}"); n != "0" {
		t.Errorf("restartCount after restart = %s, want 0", n)
	}
	nk(t, "-n", ns, "delete", "pod", "survivor", "--timeout=60s")
}
