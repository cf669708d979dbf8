// Command kubelet measures pod startup on one real node: the time from the API create of a
// pod to the pod being Running as seen through a watch (p50, p99 over -pods pods, the image
// already on the node), pods per second to Running, and the resident memory and CPU of the
// kubelet and the runtime at idle with those pods running.
//
// The control plane (`nanokube server --disable-agent`), `nanokube runtime` and
// `nanokube kubelet` run as separate processes so each one's figures can be read, all in a
// network namespace made here with no route out. The measuring client runs in that
// namespace too (this program re-executed through nsenter). Everything is stopped by PID and
// removed at the end.
//
//	go run ./bench/kubelet [-pods 100] [-write]
//
// NANOKUBE_BIN names the nanokube binary (make bench sets it); otherwise it is built.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/bench/internal/perfdoc"
	"github.com/nanokube/nanokube/bench/internal/procstat"
	"github.com/nanokube/nanokube/internal/nodecleanup"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

const (
	benchImage = "bench.local/nanokube/sleep:1"
	nodeIP     = "10.124.0.1"
	nodeName   = "bench-node"
)

func main() {
	pods := flag.Int("pods", 100, "pods to start on the node")
	rate := flag.Int("rate", 2, "pods per second created for the latency figures (keep it under the node's throughput, or the figures measure the queue)")
	write := flag.Bool("write", false, "record the figures in -doc")
	doc := flag.String("doc", "docs/performance.md", "file -write updates")
	measureOnly := flag.String("measure", "", "internal: measure against this kubeconfig (run inside the namespace)")
	flag.Parse()
	log.SetFlags(0)
	if *measureOnly != "" {
		if err := measure(*measureOnly, *pods, *rate); err != nil {
			log.Fatal(err)
		}
		return
	}
	if os.Getuid() != 0 {
		log.Fatal("bench/kubelet needs root (network namespaces, mounts, cgroups, runc)")
	}
	res, err := run(*pods, *rate)
	if err != nil {
		log.Fatal(err)
	}
	table := res.render()
	fmt.Print("\n" + table)
	if *write {
		host, _ := os.Hostname()
		body := fmt.Sprintf("Measured %s on %s (%d CPUs) by `go run ./bench/kubelet`.\n\n%s",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), table)
		if err := perfdoc.WriteSection(*doc, "Kubelet", body); err != nil {
			log.Fatal(err)
		}
	}
}

// startup is what the measuring client reports.
type startup struct {
	Latencies []time.Duration // create to Running, per pod
	Elapsed   time.Duration   // first create to last Running
}

type result struct {
	startup
	pods, rate             int
	kubeletRSS, runtimeRSS int64
	kubeletPSS, runtimePSS int64 // the binary's pages shared out with the shims and the server
	shimRSS, shimPSS       int64 // RSS counts the shared binary in every shim; PSS shares it out
	shims                  int
	kubeletCPU, runtimeCPU float64 // cores, at idle
}

func (r result) pct(p float64) time.Duration {
	l := append([]time.Duration(nil), r.Latencies...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	if len(l) == 0 {
		return 0
	}
	return l[int(float64(len(l)-1)*p)]
}

func (r result) render() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	p50, p99 := r.pct(0.5), r.pct(0.99)
	together := r.kubeletRSS + r.runtimeRSS
	var b strings.Builder
	fmt.Fprintf(&b, "One node, image present, API create to Running seen by a watch: latency over %d pods created at %d/s; "+
		"throughput over %d more created at once; memory and CPU with those %d running, idle.\n\n", r.pods, r.rate, r.pods, r.pods)
	fmt.Fprintf(&b, "| measure | result | goal |\n| --- | --- | --- |\n")
	fmt.Fprintf(&b, "| startup p50 | %s | <= 300 ms: %s |\n", ms(p50), verdict(p50 <= 300*time.Millisecond))
	fmt.Fprintf(&b, "| startup p99 | %s (%.2fx Kubernetes' 5 s SLO) | <= 1 s: %s |\n", ms(p99), float64(p99)/float64(5*time.Second), verdict(p99 <= time.Second))
	fmt.Fprintf(&b, "| pods to Running, created at once | %.1f pods/s (%d in %s) | - |\n", float64(r.pods)/r.Elapsed.Seconds(), r.pods, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "| kubelet + runtime RSS, idle, %d pods | %s (kubelet %s, runtime %s) | <= 100 MiB: %s |\n", r.pods, mib(together), mib(r.kubeletRSS), mib(r.runtimeRSS), verdict(together <= 100<<20))
	fmt.Fprintf(&b, "| kubelet + runtime PSS, idle, %d pods | %s (kubelet %s, runtime %s) | - |\n", r.pods, mib(r.kubeletPSS+r.runtimePSS), mib(r.kubeletPSS), mib(r.runtimePSS))
	fmt.Fprintf(&b, "| per-container shims | PSS %s in %d processes (%s each; RSS %s each) | - |\n", mib(r.shimPSS), r.shims,
		mib(r.shimPSS/int64(max(r.shims, 1))), mib(r.shimRSS/int64(max(r.shims, 1))))
	fmt.Fprintf(&b, "| kubelet + runtime CPU, idle | %.1f%% of a core (kubelet %.1f%%, runtime %.1f%%) | - |\n", 100*(r.kubeletCPU+r.runtimeCPU), 100*r.kubeletCPU, 100*r.runtimeCPU)
	return b.String()
}

// node is the processes and places of one benchmark run.
type node struct {
	work, netns, bin, cgroupRoot string
	server, rt, kubelet          *exec.Cmd
}

func run(pods, rate int) (res result, err error) {
	work, err := os.MkdirTemp("", "nkbench-kubelet")
	if err != nil {
		return res, err
	}
	n := &node{work: work, netns: fmt.Sprintf("nkbench-%d", os.Getpid()), cgroupRoot: fmt.Sprintf("/nkbench-%d", os.Getpid())}
	defer n.cleanup()
	if n.bin, err = binary(work); err != nil {
		return res, err
	}
	if err := n.start(); err != nil {
		return res, err
	}
	progress("measuring %d pods", pods)
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	cmd := n.inNetns(self, "-measure", filepath.Join(work, "data", "admin.kubeconfig"), "-pods", strconv.Itoa(pods), "-rate", strconv.Itoa(rate))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("measuring: %w", err)
	}
	if err := json.Unmarshal(out, &res.startup); err != nil {
		return res, fmt.Errorf("measuring output %q: %w", out, err)
	}
	res.pods, res.rate = pods, rate

	progress("idle for 10 s, then sampling CPU for 20 s")
	time.Sleep(10 * time.Second)
	k0, r0 := procstat.CPUTime(n.kubelet.Process.Pid), procstat.CPUTime(n.rt.Process.Pid)
	time.Sleep(20 * time.Second)
	res.kubeletCPU = (procstat.CPUTime(n.kubelet.Process.Pid) - k0).Seconds() / 20
	res.runtimeCPU = (procstat.CPUTime(n.rt.Process.Pid) - r0).Seconds() / 20
	res.kubeletRSS, res.runtimeRSS = procstat.RSS(n.kubelet.Process.Pid), procstat.RSS(n.rt.Process.Pid)
	res.kubeletPSS, res.runtimePSS = procstat.PSS(n.kubelet.Process.Pid), procstat.PSS(n.rt.Process.Pid)
	for _, pid := range n.shims() {
		res.shimRSS += procstat.RSS(pid)
		res.shimPSS += procstat.PSS(pid)
		res.shims++
	}
	return res, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/kubelet: "+format+"\n", args...)
}

func binary(work string) (string, error) {
	if b := os.Getenv("NANOKUBE_BIN"); b != "" {
		return filepath.Abs(b)
	}
	bin := filepath.Join(work, "nanokube")
	build := exec.Command("go", "build", "-o", bin, "./cmd/nanokube")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return bin, build.Run()
}

func (n *node) inNetns(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + n.netns}, args...)...)
}

func (n *node) start() error {
	for _, args := range [][]string{
		{"netns", "add", n.netns},
		{"-n", n.netns, "link", "set", "lo", "up"},
		{"-n", n.netns, "link", "add", "nkbhost0", "type", "bridge"},
		{"-n", n.netns, "addr", "add", nodeIP + "/24", "dev", "nkbhost0"},
		{"-n", n.netns, "link", "set", "nkbhost0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	rtRoot := filepath.Join(n.work, "runtime")
	if err := os.MkdirAll(filepath.Join(rtRoot, "images"), 0o755); err != nil {
		return err
	}
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"sleep", "2147483647"}})
	if err != nil {
		return err
	}
	if err := testimage.WriteDockerArchive(filepath.Join(rtRoot, "images", "bench.tar"), benchImage, img); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(n.work, "components.log"))
	if err != nil {
		return err
	}

	progress("starting the control plane")
	data := filepath.Join(n.work, "data")
	n.server = n.inNetns(n.bin, "server", "--data-dir", data, "--secure-port", "6443", "--bind-address", nodeIP,
		"--advertise-address", nodeIP, "--disable-agent", "--etcd-unsafe-no-fsync")
	n.server.Stderr = logf
	stdout, err := n.server.StdoutPipe()
	if err != nil {
		return err
	}
	if err := n.server.Start(); err != nil {
		return err
	}
	if err := waitLine(stdout, regexp.MustCompile(`ready at https://`), 90*time.Second); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}

	progress("starting the runtime and the kubelet")
	sock := filepath.Join(rtRoot, "cri.sock")
	n.rt = n.inNetns(n.bin, "runtime", "--root", rtRoot, "--socket", sock, "--cni-bridge", "nkb0")
	n.rt.Stdout, n.rt.Stderr = logf, logf
	if err := n.rt.Start(); err != nil {
		return err
	}
	if err := waitFile(sock, 30*time.Second); err != nil {
		return err
	}
	n.kubelet = n.inNetns(n.bin, "kubelet", "--kubeconfig", filepath.Join(data, "admin.kubeconfig"),
		"--node-name", nodeName, "--node-ip", nodeIP, "--address", nodeIP+":10250",
		"--root-dir", filepath.Join(n.work, "kubelet"), "--pod-logs-dir", filepath.Join(n.work, "logs"),
		"--runtime-endpoint", "unix://"+sock, "--client-ca-file", filepath.Join(data, "pki", "ca.crt"),
		"--cgroup-root", n.cgroupRoot)
	n.kubelet.Stdout, n.kubelet.Stderr = logf, logf
	return n.kubelet.Start()
}

func waitLine(r interface{ Read([]byte) (int, error) }, re *regexp.Regexp, d time.Duration) error {
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if re.MatchString(sc.Text()) {
				close(found)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-found:
		return nil
	case <-time.After(d):
		return fmt.Errorf("not ready within %s", d)
	}
}

func waitFile(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", path, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shims are this run's per-container processes (the embedded shim program, or the nanokube
// binary re-executed when none is embedded), told apart by the variable every shim carries
// with its bundle, under the runtime's root, in its environment.
func (n *node) shims() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && strings.Contains(string(env), "NANOKUBE_RUNTIME_SHIM=") && strings.Contains(string(env), n.work) {
			out = append(out, pid)
		}
	}
	return out
}

// cleanup stops the kubelet, removes every sandbox through the runtime, stops the runtime
// and the control plane, and removes mounts, cgroups and the namespace.
func (n *node) cleanup() {
	stop(n.kubelet)
	if n.rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := nodecleanup.RemoveSandboxes(ctx, filepath.Join(n.work, "runtime", "cri.sock"))
		cancel()
		if err != nil {
			progress("cleanup: %v", err)
		}
	}
	stop(n.rt)
	stop(n.server)
	nodecleanup.Unmount(n.work)
	nodecleanup.RemoveCgroupsEverywhere(n.cgroupRoot)
	_ = exec.Command("ip", "netns", "del", n.netns).Run()
	_ = os.RemoveAll(n.work)
}

func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// measure runs inside the node's network namespace: it waits for the node, starts one
// warm-up pod, then times pods to Running through a watch: created at a steady rate
// (latency), then all at once (throughput).
func measure(kubeconfig string, pods, rate int) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 500, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for {
		n, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil && nodeReady(n) {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node %s never became Ready", nodeName)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ns := "bench"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	// Pods need the namespace's default service account, which a controller creates.
	for {
		if _, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		return err
	}
	defer w.Stop()
	// The watch is read as it arrives, whatever the creating side is doing: a pod's time is
	// when its Running event came, not when the bench got round to it.
	var mu sync.Mutex
	running := map[string]time.Time{}
	go func() {
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*v1.Pod); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) && pod.Status.Phase == v1.PodRunning {
				mu.Lock()
				if _, seen := running[pod.Name]; !seen {
					running[pod.Name] = time.Now()
				}
				mu.Unlock()
			}
		}
	}()
	waitRunning := func(names map[string]bool) error {
		for ctx.Err() == nil {
			mu.Lock()
			left := 0
			for name := range names {
				if _, ok := running[name]; !ok {
					left++
				}
			}
			mu.Unlock()
			if left == 0 {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Errorf("pods not Running in time")
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, benchPod("warm-up"), metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := waitRunning(map[string]bool{"warm-up": true}); err != nil {
		return err
	}

	// Latency: pods created one after another at a steady rate, as Kubernetes' density
	// tests do, so a pod's time is its own and not the queue's.
	var s startup
	created := map[string]time.Time{}
	paced := map[string]bool{}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range pods {
		name := fmt.Sprintf("paced-%03d", i)
		created[name] = time.Now()
		paced[name] = true
		if _, err := client.CoreV1().Pods(ns).Create(ctx, benchPod(name), metav1.CreateOptions{}); err != nil {
			return err
		}
		<-tick.C
	}
	tick.Stop()
	names := maps.Clone(paced)
	if err := waitRunning(names); err != nil {
		return err
	}
	mu.Lock()
	for name := range paced {
		s.Latencies = append(s.Latencies, running[name].Sub(created[name]))
	}
	mu.Unlock()

	// Throughput: the same number of pods created at once, once the first ones are gone.
	grace := int64(0)
	if err := client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{}); err != nil {
		return err
	}
	for {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) == 0 {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	burst := map[string]bool{}
	for i := range pods {
		burst[fmt.Sprintf("burst-%03d", i)] = true
	}
	errc := make(chan error, pods)
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	first := time.Now()
	for name := range burst {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := client.CoreV1().Pods(ns).Create(ctx, benchPod(name), metav1.CreateOptions{}); err != nil {
				errc <- err
			}
		})
	}
	if err := waitRunning(maps.Clone(burst)); err != nil {
		return err
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	mu.Lock()
	for name := range burst {
		s.Elapsed = max(s.Elapsed, running[name].Sub(first))
	}
	mu.Unlock()
	return json.NewEncoder(os.Stdout).Encode(s)
}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func benchPod(name string) *v1.Pod {
	grace := int64(1)
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers:                    []v1.Container{{Name: "sleep", Image: benchImage, ImagePullPolicy: v1.PullIfNotPresent}},
		},
	}
}
