package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localPathDir is where the local-path provisioner and the kubelet keep volumes (their
// default: the node cluster does not configure it).
const localPathDir = "/var/lib/nanokube/storage"

const webStatefulSet = `
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 3
  serviceName: web
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: ` + testImage + `
        command: ["sh", "-c", "[ -f /data/born ] || hostname > /data/born; trap 'exit 0' TERM; while true; do sleep 1; done"]
        readinessProbe: {exec: {command: ["test", "-f", "/data/born"]}, periodSeconds: 1}
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 64Mi}}
`

// A StatefulSet of real containers on local-path volumes: the pods come up in order with
// their own claims, a pod deleted and recreated finds the data its predecessor wrote, and
// deleting the claims deletes the volumes and, through the kubelet, their directories.
func TestNodeStatefulSetKeepsData(t *testing.T) {
	needNode(t)
	ns := nodeNamespace(t)
	var dirs []string
	t.Cleanup(func() {
		// The kubelet sweeps deleted volumes every 30 s; do not leave ours behind on failure.
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	})
	nkIn(t, webStatefulSet, "-n", ns, "apply", "-f", "-")
	nk(t, "-n", ns, "rollout", "status", "sts/web", "--timeout=120s")
	pods := strings.Fields(nk(t, "-n", ns, "get", "pods", "-l", "app=web", "-o",
		"jsonpath={range .items[*]}{.metadata.name}={.metadata.creationTimestamp} {end}"))
	if len(pods) != 3 {
		t.Fatalf("pods %v", pods)
	}
	claims := nk(t, "-n", ns, "get", "pvc", "-o", "jsonpath={range .items[*]}{.metadata.name}:{.status.phase}:{.spec.storageClassName}:{.spec.volumeName} {end}")
	for _, c := range strings.Fields(claims) {
		f := strings.Split(c, ":")
		if len(f) != 4 || f[1] != "Bound" || f[2] != "local-path" {
			t.Fatalf("claim %s in %s", c, claims)
		}
		dirs = append(dirs, filepath.Join(localPathDir, f[3]))
	}
	if len(dirs) != 3 {
		t.Fatalf("claims %s", claims)
	}
	// Each pod wrote its hostname into its own volume, which lives on the node's disk.
	for i, name := range []string{"web-0", "web-1", "web-2"} {
		mustContain(t, nk(t, "-n", ns, "exec", name, "--", "cat", "/data/born"), name)
		owner := ""
		for _, d := range dirs {
			if b, err := os.ReadFile(filepath.Join(d, "born")); err == nil && strings.TrimSpace(string(b)) == name {
				owner = d
			}
		}
		if owner == "" {
			t.Fatalf("no volume directory under %s holds %s's data (pod %d)", localPathDir, name, i)
		}
	}

	// web-1 is deleted: the StatefulSet recreates it, and it finds web-1's data, not new data.
	nk(t, "-n", ns, "exec", "web-1", "--", "sh", "-c", "echo kept > /data/extra")
	oldUID := nk(t, "-n", ns, "get", "pod", "web-1", "-o", "jsonpath={.metadata.uid}")
	nk(t, "-n", ns, "delete", "pod", "web-1", "--wait=true", "--timeout=60s")
	waitFor(t, "web-1 recreated and ready", 90*time.Second, func() (string, bool) {
		out, _, err := nkRun(nil, "-n", ns, "get", "pod", "web-1", "-o",
			`jsonpath={.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}`)
		f := strings.Fields(out)
		return out, err == nil && len(f) == 2 && f[0] != oldUID && f[1] == "True"
	})
	mustContain(t, nk(t, "-n", ns, "exec", "web-1", "--", "cat", "/data/born", "/data/extra"), "web-1", "kept")

	// Scaling to zero and deleting the claims deletes the volumes; the kubelet then removes
	// their directories.
	nk(t, "-n", ns, "scale", "sts/web", "--replicas=0")
	waitFor(t, "pods gone", 90*time.Second, func() (string, bool) {
		out := nk(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "name")
		return out, strings.TrimSpace(out) == ""
	})
	nk(t, "-n", ns, "delete", "pvc", "--all", "--wait=true", "--timeout=60s")
	waitFor(t, "volumes deleted", 60*time.Second, func() (string, bool) {
		out := nk(t, "get", "pv", "-o", "name")
		for _, d := range dirs {
			if strings.Contains(out, filepath.Base(d)) {
				return out, false
			}
		}
		return out, true
	})
	waitFor(t, "volume directories removed by the kubelet", 90*time.Second, func() (string, bool) {
		for _, d := range dirs {
			if _, err := os.Stat(d); err == nil {
				return d + " still there", false
			}
		}
		return "", true
	})
}
