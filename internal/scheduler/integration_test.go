package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/hollow"
	"github.com/nanokube/nanokube/internal/scheduler"
)

type env struct {
	t      *testing.T
	c      *apitest.Cluster
	client kubernetes.Interface
	nodes  *hollow.Nodes
}

// start runs a control plane, hollow nodes and a scheduler; setup, if given, runs before the
// scheduler starts.
func start(t *testing.T, nodes hollow.Config, setup ...func(*env)) *env {
	t.Helper()
	c := apitest.Start(t, apitest.Options{})
	e := &env{t: t, c: c, client: c.Client}
	nodes.Client, nodes.LeaseInterval = c.Client, -1
	hn, err := hollow.New(nodes)
	if err != nil {
		t.Fatal(err)
	}
	e.nodes = hn
	e.run(hn.Run, hn.Ready())
	for _, f := range setup {
		f(e)
	}
	s, err := scheduler.New(scheduler.Config{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	e.run(s.Run, s.Ready())
	return e
}

func (e *env) run(run func(context.Context) error, ready <-chan struct{}) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		e.t.Fatalf("stopped: %v", err)
	case <-time.After(60 * time.Second):
		e.t.Fatal("not ready after 60s")
	}
}

type podOpt func(*v1.Pod)

func cpu(q string) podOpt {
	return func(p *v1.Pod) {
		p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse(q)}
	}
}

func (e *env) createPod(name string, opts ...podOpt) *v1.Pod {
	e.t.Helper()
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "test"}},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "nginx"}}},
	}
	for _, o := range opts {
		o(pod)
	}
	created, err := e.client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return created
}

func (e *env) poll(what string, cond func() bool) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		e.t.Fatalf("timed out waiting: %s", what)
	}
}

func (e *env) pod(name string) *v1.Pod {
	p, err := e.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) waitBound(names ...string) map[string]string {
	e.t.Helper()
	where := map[string]string{}
	for _, n := range names {
		e.poll(n+" bound", func() bool {
			p := e.pod(n)
			where[n] = p.Spec.NodeName
			return p.Spec.NodeName != ""
		})
	}
	return where
}

// waitUnschedulable waits for PodScheduled=False and returns its message.
func (e *env) waitUnschedulable(name string) string {
	e.t.Helper()
	var msg string
	e.poll(name+" unschedulable", func() bool {
		for _, c := range e.pod(name).Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == "Unschedulable" && c.Message != "" {
				msg = c.Message
				return true
			}
		}
		return false
	})
	return msg
}

func (e *env) events(name string) []v1.Event {
	list, err := e.client.CoreV1().Events("default").List(context.Background(),
		metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		e.t.Fatal(err)
	}
	return list.Items
}

func (e *env) waitEvent(pod, reason, msg string) {
	e.t.Helper()
	e.poll(fmt.Sprintf("%s event %q on %s", reason, msg, pod), func() bool {
		for _, ev := range e.events(pod) {
			if ev.Reason == reason && strings.Contains(ev.Message, msg) {
				return true
			}
		}
		return false
	})
}

func TestPodsAreBoundWithEvents(t *testing.T) {
	e := start(t, hollow.Config{Count: 3})
	var names []string
	for i := range 30 {
		names = append(names, fmt.Sprintf("p%d", i))
		e.createPod(names[i])
	}
	where := e.waitBound(names...)
	perNode := map[string]int{}
	for _, n := range where {
		perNode[n]++
	}
	if len(perNode) != 3 {
		t.Errorf("pods should spread over the 3 nodes: %v", perNode)
	}
	e.waitEvent("p0", "Scheduled", "Successfully assigned default/p0 to "+where["p0"])
	ev := e.events("p0")[0]
	if ev.Type != v1.EventTypeNormal || ev.Source.Component != "default-scheduler" && ev.ReportingController != "default-scheduler" {
		t.Errorf("event: %+v", ev)
	}
	// The hollow node then runs it.
	e.poll("p0 running", func() bool { return e.pod("p0").Status.Phase == v1.PodRunning })
}

func TestResourcesAndRetryOnNewNode(t *testing.T) {
	e := start(t, hollow.Config{Count: 3, CPU: "2"})
	for i := range 7 {
		e.createPod(fmt.Sprintf("p%d", i), cpu("1"))
	}
	bound := 0
	e.poll("6 pods bound", func() bool {
		pods, _ := e.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		bound = 0
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				bound++
			}
		}
		return bound == 6
	})
	pods, _ := e.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	var pending string
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" {
			pending = p.Name
		}
	}
	want := "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
	if msg := e.waitUnschedulable(pending); msg != want {
		t.Errorf("message:\n got %q\nwant %q", msg, want)
	}
	e.waitEvent(pending, "FailedScheduling", want)

	// A new node makes room.
	extra, err := hollow.New(hollow.Config{Client: e.client, Count: 1, NamePrefix: "extra-", CPU: "2", LeaseInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.run(extra.Run, extra.Ready())
	if got := e.waitBound(pending)[pending]; got != "extra-0" {
		t.Errorf("pending pod went to %s, want extra-0", got)
	}
}

func TestTaintsAndSelectors(t *testing.T) {
	ctx := context.Background()
	e := start(t, hollow.Config{Count: 3}, func(e *env) {
		for i := range 3 {
			n, err := e.client.CoreV1().Nodes().Get(ctx, fmt.Sprintf("hollow-%d", i), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if i < 2 {
				n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: "dedicated", Value: "gpu", Effect: v1.TaintEffectNoSchedule})
			} else {
				n.Spec.Unschedulable = true
			}
			if _, err := e.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	})

	e.createPod("plain")
	msg := e.waitUnschedulable("plain")
	want := "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
	if msg != want {
		t.Errorf("message:\n got %q\nwant %q", msg, want)
	}
	e.createPod("tolerant", func(p *v1.Pod) {
		p.Spec.Tolerations = []v1.Toleration{{Key: "dedicated", Operator: v1.TolerationOpEqual, Value: "gpu", Effect: v1.TaintEffectNoSchedule}}
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "hollow-1"}
	})
	if got := e.waitBound("tolerant")["tolerant"]; got != "hollow-1" {
		t.Errorf("tolerant pod on %s, want hollow-1", got)
	}
	// Uncordoning lets the plain pod in.
	n, _ := e.client.CoreV1().Nodes().Get(ctx, "hollow-2", metav1.GetOptions{})
	n.Spec.Unschedulable = false
	if _, err := e.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.waitBound("plain")["plain"]; got != "hollow-2" {
		t.Errorf("plain pod on %s, want hollow-2", got)
	}
}

func TestPodAntiAffinitySpreadsAndBlocks(t *testing.T) {
	e := start(t, hollow.Config{Count: 3})
	anti := func(p *v1.Pod) {
		p.Labels = map[string]string{"app": "db"}
		p.Spec.Affinity = &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				TopologyKey:   "kubernetes.io/hostname",
			}},
		}}
	}
	for i := range 4 {
		e.createPod(fmt.Sprintf("db%d", i), anti)
	}
	where := e.waitBound("db0", "db1", "db2")
	if where["db0"] == where["db1"] || where["db1"] == where["db2"] || where["db0"] == where["db2"] {
		t.Errorf("anti-affinity broken: %v", where)
	}
	msg := e.waitUnschedulable("db3")
	if !strings.HasPrefix(msg, "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.") {
		t.Errorf("message %q", msg)
	}
	// Pod affinity: follows db0.
	e.createPod("web", func(p *v1.Pod) {
		p.Spec.Affinity = &v1.Affinity{PodAffinity: &v1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				TopologyKey:   "kubernetes.io/hostname",
			}},
		}}
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": where["db0"]}
	})
	if got := e.waitBound("web")["web"]; got != where["db0"] {
		t.Errorf("web on %s, want %s", got, where["db0"])
	}
}

func TestPreemption(t *testing.T) {
	e := start(t, hollow.Config{Count: 2, CPU: "2"})
	ctx := context.Background()
	_, err := e.client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e.createPod(fmt.Sprintf("low%d", i), cpu("1"))
	}
	e.waitBound("low0", "low1", "low2", "low3")
	e.createPod("vip", cpu("2"), func(p *v1.Pod) { p.Spec.PriorityClassName = "high" })
	node := e.waitBound("vip")["vip"]
	e.waitEvent("vip", "Scheduled", "to "+node)
	// Both low pods on that node were evicted, with an event each.
	pods, _ := e.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		if p.Name != "vip" && p.Spec.NodeName == node {
			t.Errorf("pod %s still on %s", p.Name, node)
		}
	}
	if p := e.pod("vip"); p.Status.NominatedNodeName != node {
		t.Errorf("nominatedNodeName %q, want %s", p.Status.NominatedNodeName, node)
	}
	e.poll("a Preempted event", func() bool {
		list, _ := e.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=Preempted"})
		return len(list.Items) == 2
	})
}

func TestOtherSchedulerNameIsIgnored(t *testing.T) {
	e := start(t, hollow.Config{Count: 1})
	// Created first, "theirs" would be popped before "mine" if the scheduler took it.
	e.createPod("theirs", func(p *v1.Pod) { p.Spec.SchedulerName = "other-scheduler" })
	e.createPod("mine")
	e.waitBound("mine")
	if p := e.pod("theirs"); p.Spec.NodeName != "" || len(p.Status.Conditions) != 0 {
		t.Errorf("pod of another scheduler was touched: %+v", p.Status)
	}
}

func TestLeaderElection(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	e := &env{t: t, c: c, client: c.Client}
	hn, err := hollow.New(hollow.Config{Client: c.Client, Count: 1, LeaseInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.run(hn.Run, hn.Ready())
	cfg := scheduler.Config{LeaderElect: true, Identity: "first", LeaseDuration: 3 * time.Second,
		RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
	first, err := scheduler.New(cfg, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	e.run(first.Run, first.Ready())
	cfg.Identity = "second"
	second, err := scheduler.New(cfg, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	lease, err := c.Client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kube-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *lease.Spec.HolderIdentity != "first" {
		t.Errorf("holder %q, want first", *lease.Spec.HolderIdentity)
	}
	e.createPod("p")
	e.waitBound("p")
	select {
	case <-second.Ready():
		t.Error("the second scheduler leads while the first holds the lease")
	default:
	}
}
