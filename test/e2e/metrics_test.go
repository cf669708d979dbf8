package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

const busyPod = `
apiVersion: v1
kind: Pod
metadata: {name: busy, labels: {app: busy}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: burn
    image: ` + testImage + `
    command: ["sh", "-c", "while :; do :; done"]
    resources: {requests: {cpu: 100m}, limits: {cpu: 500m}}
`

// kubectl top works with nothing installed: the API server scrapes the kubelet's
// /stats/summary itself and serves metrics.k8s.io, so a busy pod's CPU shows up.
func TestNodeTopPods(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	nkIn(t, busyPod, "-n", ns, "apply", "-f", "-")
	nk(t, "-n", ns, "wait", "--for=condition=Ready", "pod/busy", "--timeout=90s")

	// Metrics need two scrapes of the pod (15s apart) for a rate; until then kubectl says so.
	out := waitFor(t, "kubectl top to show the busy pod burning CPU", 120*time.Second, func() (string, bool) {
		out, errOut, err := nkRun(nil, "-n", ns, "top", "pod", "busy", "--no-headers")
		if err != nil {
			return errOut, false
		}
		f := strings.Fields(out)
		if len(f) < 3 || !strings.HasSuffix(f[1], "m") {
			return out, false
		}
		milli, err := strconv.Atoi(strings.TrimSuffix(f[1], "m"))
		return out, err == nil && milli >= 100
	})
	t.Logf("kubectl top pod: %s", out)
	mustContain(t, nk(t, "-n", ns, "top", "pod", "--containers"), "busy", "burn")
	mustContain(t, nk(t, "top", "node"), nodeName, "CPU(cores)")
	mustContain(t, nk(t, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/"+ns+"/pods/busy"), `"kind":"PodMetrics"`, `"name":"burn"`)
}
