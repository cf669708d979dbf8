package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nanokube/nanokube/internal/multinode"
)

// The workload controllers on a real multi-node cluster (issue 8): a DaemonSet follows a node
// joining, a Job runs its completions within its parallelism, a CronJob on a sped-up clock
// keeps its history limit, and a HorizontalPodAutoscaler scales a Deployment on the CPU the
// kubelets report. The cluster starts as a server and one agent; a third node joins during
// the DaemonSet part. The CronJob runs in the background from the start, so that its minutes
// pass while the other parts run.
func TestMultiNodeWorkloads(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("TestMultiNodeWorkloads took %s", time.Since(start).Round(time.Second)) })
	mc := upMultiNode(t, multinode.Config{Name: fmt.Sprintf("nkwl%d", os.Getpid()%10000), Agents: 1,
		ServerArgs: []string{
			// A CronJob minute lasts three seconds.
			"--cronjob-clock-speed", "20",
			"--horizontal-pod-autoscaler-sync-period", "2s",
			"--metric-resolution", "3s",
		}})
	k := func(t *testing.T, args ...string) string {
		t.Helper()
		return mcKubectl(t, mc, "", args...)
	}
	kIn := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		return mcKubectl(t, mc, stdin, args...)
	}
	ctx := context.Background()

	kIn(t, `
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/1 * * * *"
  successfulJobsHistoryLimit: 2
  failedJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - {name: tick, image: `+testImage+`, command: ["true"]}
`, "apply", "-f", "-")

	t.Run("daemonset follows a joining node", func(t *testing.T) {
		kIn(t, `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
      containers:
      - name: agent
        image: `+testImage+`
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
`, "apply", "-f", "-")
		k(t, "rollout", "status", "daemonset/agent", "--timeout=120s")
		if got := podsByNode(t, mc, "app=agent"); len(got) != 2 || got["node-0"] != 1 || got["node-1"] != 1 {
			t.Fatalf("DaemonSet pods by node %v, want one on node-0 and node-1", got)
		}
		n, err := mc.AddNode(ctx)
		if err != nil {
			t.Fatalf("add a node: %v", err)
		}
		waitFor(t, n.Name+" Ready", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "node", n.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			return out, out == "True"
		})
		// rollout status may see the old status before the controller counts the new node:
		// wait for the desired count first.
		waitFor(t, "the DaemonSet to want 3 pods", 30*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "daemonset", "agent", "-o", "jsonpath={.status.desiredNumberScheduled}")
			return out, out == "3"
		})
		k(t, "rollout", "status", "daemonset/agent", "--timeout=120s")
		if got := podsByNode(t, mc, "app=agent"); len(got) != 3 || got[n.Name] != 1 {
			t.Fatalf("DaemonSet pods by node %v, want one on each of 3 nodes", got)
		}
	})

	t.Run("job with parallelism", func(t *testing.T) {
		kIn(t, `
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 10
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - {name: work, image: `+testImage+`, command: ["sleep", "1"]}
`, "apply", "-f", "-")
		k(t, "wait", "--for=condition=complete", "job/batch", "--timeout=150s")
		if got := strings.TrimSpace(k(t, "get", "job", "batch", "-o", "jsonpath={.status.succeeded}")); got != "10" {
			t.Errorf("succeeded %q, want 10", got)
		}
		if table := k(t, "get", "job", "batch"); tableCell(table, "COMPLETIONS") != "10/10" {
			t.Errorf("COMPLETIONS is not 10/10:\n%s", table)
		}
		// The containers' run times (whole seconds) show how many ran at once. Truncation can
		// hide an overlap within one second but never invent one.
		out := k(t, "get", "pods", "-l", "batch.kubernetes.io/job-name=batch", "-o",
			`jsonpath={range .items[*]}{.status.containerStatuses[0].state.terminated.startedAt} {.status.containerStatuses[0].state.terminated.finishedAt}{"\n"}{end}`)
		runs, most := concurrency(t, out)
		if runs != 10 {
			t.Errorf("%d finished pods, want 10:\n%s", runs, out)
		}
		if most > 3 {
			t.Errorf("%d pods ran at once, want at most 3 (parallelism):\n%s", most, out)
		}
		t.Logf("at most %d of the Job's pods ran at once", most)
	})

	t.Run("cronjob keeps its history", func(t *testing.T) {
		created := func() (string, int) {
			out, _, _ := mcRun(mc, "", "get", "events", "--field-selector", "involvedObject.kind=CronJob,involvedObject.name=tick,reason=SuccessfulCreate",
				"-o", `jsonpath={range .items[*]}{.message}{"\n"}{end}`)
			return out, strings.Count(out, "Created job")
		}
		waitFor(t, "four scheduled runs", 90*time.Second, func() (string, bool) {
			out, n := created()
			return out, n >= 4
		})
		// Each finished run beyond the limit is deleted: once four have run, two complete
		// Jobs remain (a third may be running).
		waitFor(t, "two complete Jobs left", 60*time.Second, func() (string, bool) {
			out, _, _ := mcRun(mc, "", "get", "jobs", "-o",
				`jsonpath={range .items[?(@.metadata.ownerReferences[0].name=="tick")]}{.metadata.name}={.status.succeeded} {end}`)
			return out, strings.Count(out, "=1") == 2
		})
		out, _, _ := mcRun(mc, "", "get", "events", "--field-selector", "involvedObject.name=tick,reason=SuccessfulDelete", "-o", "name")
		if strings.TrimSpace(out) == "" {
			t.Errorf("no SuccessfulDelete event for the CronJob's old Jobs")
		}
		// LAST SCHEDULE is filled in. On the sped-up clock the scheduled times lie ahead of
		// the real one, so its age reads "<invalid>", as kubectl shows any future time.
		table := k(t, "get", "cronjob", "tick")
		mustContain(t, table, "LAST SCHEDULE")
		if last := tableCell(table, "LAST SCHEDULE"); last == "" || last == "<none>" || last == "<unknown>" {
			t.Errorf("LAST SCHEDULE %q:\n%s", last, table)
		}
		t.Logf("kubectl get cronjob:\n%s", table)
		// status.lastScheduleTime is the scheduled time of a Job the CronJob started.
		last, err := time.Parse(time.RFC3339, strings.TrimSpace(k(t, "get", "cronjob", "tick", "-o", "jsonpath={.status.lastScheduleTime}")))
		if err != nil {
			t.Fatalf("lastScheduleTime: %v", err)
		}
		scheduled := k(t, "get", "jobs", "-o", `jsonpath={.items[*].metadata.annotations.batch\.kubernetes\.io/cronjob-scheduled-timestamp}`)
		found := false
		for _, s := range strings.Fields(scheduled) {
			if at, err := time.Parse(time.RFC3339, s); err == nil && at.Equal(last) {
				found = true
			}
		}
		if !found {
			t.Errorf("lastScheduleTime %s is not the scheduled time of a Job (%s)", last, scheduled)
		}
		// Stop the schedule, then start a run by hand.
		k(t, "patch", "cronjob", "tick", "-p", `{"spec":{"suspend":true}}`)
		k(t, "create", "job", "--from=cronjob/tick", "manual")
		k(t, "wait", "--for=condition=complete", "job/manual", "--timeout=60s")
		if got := k(t, "get", "job", "manual", "-o", `jsonpath={.metadata.annotations.cronjob\.kubernetes\.io/instantiate}`); got != "manual" {
			t.Errorf("job/manual instantiate annotation %q, want manual", got)
		}
	})

	t.Run("hpa scales on cpu", func(t *testing.T) {
		// The container burns CPU until IDLE is set; its limit keeps the burn to 0.2 core,
		// twice its request.
		kIn(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: `+testImage+`
        command: ["sh", "-c", "trap 'exit 0' TERM; if [ -z \"$IDLE\" ]; then while :; do :; done; fi; while :; do sleep 1; done"]
        resources:
          requests: {cpu: 100m}
          limits: {cpu: 200m}
`, "apply", "-f", "-")
		k(t, "rollout", "status", "deployment/burn", "--timeout=120s")
		k(t, "autoscale", "deployment/burn", "--cpu-percent=50", "--min=1", "--max=3")
		k(t, "patch", "hpa.v2.autoscaling", "burn", "--type=merge", "-p", `{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":3}}}}`)
		hpa := func() (string, string) {
			out, _, _ := mcRun(mc, "", "get", "hpa.v2.autoscaling", "burn", "-o",
				`jsonpath={.status.desiredReplicas} {.status.currentMetrics[0].resource.current.averageUtilization}`)
			return out, strings.Fields(out + " ")[0]
		}
		up := waitFor(t, "the HPA to scale burn to 3", 90*time.Second, func() (string, bool) {
			out, desired := hpa()
			ready, _, _ := mcRun(mc, "", "get", "deployment", "burn", "-o", "jsonpath={.status.readyReplicas}")
			return out + " ready=" + ready, desired == "3" && ready == "3"
		})
		t.Logf("scaled up: desired replicas, CPU utilisation (%% of request): %s", up)
		table := k(t, "get", "hpa", "burn")
		if got := tableCell(table, "TARGETS"); !strings.HasPrefix(got, "cpu: ") || !strings.HasSuffix(got, "%/50%") {
			t.Errorf("TARGETS %q, want cpu: N%%/50%%:\n%s", got, table)
		}
		k(t, "set", "env", "deployment/burn", "IDLE=1")
		down := waitFor(t, "the HPA to scale burn back to 1", 120*time.Second, func() (string, bool) {
			out, desired := hpa()
			spec, _, _ := mcRun(mc, "", "get", "deployment", "burn", "-o", "jsonpath={.spec.replicas}")
			return out + " spec.replicas=" + spec, desired == "1" && spec == "1"
		})
		t.Logf("scaled down: %s", down)
		k(t, "rollout", "status", "deployment/burn", "--timeout=120s")
	})
}

// podsByNode counts the pods with the label selector by spec.nodeName.
func podsByNode(t *testing.T, mc *multinode.Cluster, selector string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, n := range strings.Fields(mcKubectl(t, mc, "", "get", "pods", "-l", selector, "-o", "jsonpath={.items[*].spec.nodeName}")) {
		got[n]++
	}
	return got
}

// concurrency reads lines of "startedAt finishedAt" (RFC 3339) and returns how many there
// are and the most intervals [start, finish) that overlap at any instant.
func concurrency(t *testing.T, lines string) (runs, most int) {
	t.Helper()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		from, err1 := time.Parse(time.RFC3339, f[0])
		to, err2 := time.Parse(time.RFC3339, f[1])
		if err1 != nil || err2 != nil {
			t.Fatalf("bad run times %q", l)
		}
		runs++
		edges = append(edges, edge{from, 1}, edge{to, -1})
	}
	// At one instant, finishes come before starts: [start, finish) is half open.
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].delta < edges[j].delta
	})
	cur := 0
	for _, e := range edges {
		cur += e.delta
		most = max(most, cur)
	}
	return runs, most
}

// tableCell returns the first row's cell under a column of kubectl's table output, whose
// cells may hold spaces (a CronJob's schedule does): a cell starts where its header does.
func tableCell(table, column string) string {
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) < 2 {
		return ""
	}
	header, row := lines[0], lines[1]
	from := strings.Index(header, column)
	if from < 0 || from >= len(row) {
		return ""
	}
	rest := header[from+len(column):]
	to := len(row)
	if next := len(rest) - len(strings.TrimLeft(rest, " ")); next < len(rest) {
		to = min(to, from+len(column)+next)
	}
	return strings.TrimSpace(row[from:to])
}
