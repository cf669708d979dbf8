// Command cluster measures the whole single-node cluster a user gets from `make run`: the
// time from `nanokube server` start to the node Ready and to the quickstart's demo Service
// answering (kubectl apply of examples/demo.yaml, rollout, first HTTP answer through the
// ClusterIP), the memory of everything the server runs (the server process and every shim,
// pod-init and container process it started) idle and with -pods pods, and the size of the
// binary.
//
// The server runs as `make run` starts it (fsync on, its own agent), in a network namespace
// made here with no route out; the measuring side is this program re-executed inside that
// namespace through nsenter, so it reaches the ClusterIP as a process on the node does.
// Everything is stopped by PID and removed at the end, also on failure.
//
//	go run ./bench/cluster [-pods 100] [-write]
//
// Run from the repository root: the demo image is built by hack/demo-image and the demo is
// applied from examples/demo.yaml. NANOKUBE_BIN names the nanokube binary (make bench sets
// it); otherwise it is built.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/bench/internal/perfdoc"
	"github.com/nanokube/nanokube/bench/internal/procstat"
	"github.com/nanokube/nanokube/internal/nodecleanup"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

const (
	nodeName   = "bench-node"
	nodeIP     = "10.125.0.1"
	sleepImage = "bench.local/sleep:1"
	// serviceCIDR is the server's default --service-cluster-ip-range.
	serviceCIDR = "10.96.0.0/12"
	// goalIdle is the goal for the idle cluster; k3s documents about 1.4-1.6 GB for
	// a server with a workload.
	goalIdle = 150 << 20
)

func main() {
	pods := flag.Int("pods", 100, "replicas of the sleeping Deployment for the loaded memory figure")
	step := flag.Int("step", 10, "pods added at a time when scaling the sleeping Deployment up")
	settle := flag.Duration("settle", 20*time.Second, "idle time before each memory reading")
	write := flag.Bool("write", false, "record the figures in -doc")
	doc := flag.String("doc", "docs/performance.md", "file -write updates")
	demo := flag.String("demo", "examples/demo.yaml", "the quickstart's manifest")
	noFsync := flag.Bool("no-fsync", false, "run etcd without fsync (--etcd-unsafe-no-fsync), unlike `make run`")
	inside := flag.String("inside", "", "internal: measure with this work directory (run inside the namespace)")
	flag.Parse()
	log.SetFlags(0)
	if *inside != "" {
		res, err := measure(*inside, *demo, *pods, *step, *settle, *noFsync)
		if err != nil {
			log.Fatal(err)
		}
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			log.Fatal(err)
		}
		return
	}
	if os.Getuid() != 0 {
		log.Fatal("bench/cluster needs root (network namespaces, mounts, cgroups, runc)")
	}
	res, err := run(*demo, *pods, *step, *settle, *noFsync)
	if err != nil {
		log.Fatal(err)
	}
	table := res.render()
	fmt.Print("\n" + table)
	if *write {
		body := fmt.Sprintf("Measured %s on a 2-core VM (%d CPUs) by `go run ./bench/cluster` (part of `make bench`).\n\n%s",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), table)
		if err := perfdoc.WriteSection(*doc, "Cluster", body); err != nil {
			log.Fatal(err)
		}
	}
}

// memory is one reading over the cluster's processes.
type memory struct {
	RSS, PSS             int64 // summed over every process
	ServerRSS, ServerPSS int64 // the server process alone
	Procs                int   // the server included
	Pods                 int
}

// result is what the measuring side reports.
type result struct {
	APIReady, NodeReady       time.Duration // from the server's exec
	DemoAnswer                time.Duration // from the server's exec to the first HTTP answer
	ApplyToAnswer             time.Duration // from kubectl apply to the first HTTP answer
	DemoRollout               time.Duration // from kubectl apply to the Deployment's 2 pods available
	Fresh, Idle, Demo, Loaded memory
	LoadedRollout             time.Duration // from the Deployment's create to all its pods available
	Step                      int           // pods added per scale-up step
	Settle                    time.Duration
	NoFsync                   bool
	BinarySize                int64
	DemoResponse              string
	// ViaPod and ViaClusterIP are new-connection HTTP request latencies (p50, p99) from
	// the node to a demo pod directly and through the Service's ClusterIP.
	ViaPod, ViaClusterIP [2]time.Duration
	Requests             int
	// Load is /proc/loadavg's 1-minute figure at the start and at each memory reading: the
	// machine is shared, and the times mean little when it was busy.
	Load []string
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
	mem := func(m memory) string {
		return fmt.Sprintf("RSS %s, PSS %s (server %s RSS / %s PSS; processes: %d)", mib(m.RSS), mib(m.PSS),
			mib(m.ServerRSS), mib(m.ServerPSS), m.Procs)
	}
	var b strings.Builder
	how := "as `make run` starts it (embedded etcd with fsync, control plane, agent)"
	if r.NoFsync {
		how = "as `make run` starts it (control plane, agent) but with `--etcd-unsafe-no-fsync`"
	}
	fmt.Fprintf(&b, "`nanokube server` %s, on a fresh data directory, in a network namespace; memory summed over the server "+
		"and every shim, pod-init and container process it started, read after %s of idle.\n\n", how, r.Settle)
	fmt.Fprintf(&b, "| measure | result | goal |\n| --- | --- | --- |\n")
	fmt.Fprintf(&b, "| start to API ready (`ready at` printed) | %s | - |\n", ms(r.APIReady))
	fmt.Fprintf(&b, "| start to node Ready | %s | - |\n", ms(r.NodeReady))
	fmt.Fprintf(&b, "| start to demo Service answering (node Ready + apply to first HTTP answer via the ClusterIP; the apply followed the fresh idle reading) | %s (apply to answer %s; to 2/2 available %s) | - |\n",
		ms(r.DemoAnswer), ms(r.ApplyToAnswer), ms(r.DemoRollout))
	fmt.Fprintf(&b, "| HTTP request on a new connection from the node, p50 / p99 (%d each): straight to a pod | %s / %s | - |\n",
		r.Requests, usec(r.ViaPod[0]), usec(r.ViaPod[1]))
	fmt.Fprintf(&b, "| the same through the Service's ClusterIP (nftables DNAT) | %s / %s | ratio to the pod: %.2fx / %.2fx |\n",
		usec(r.ViaClusterIP[0]), usec(r.ViaClusterIP[1]), float64(r.ViaClusterIP[0])/float64(r.ViaPod[0]), float64(r.ViaClusterIP[1])/float64(r.ViaPod[1]))
	fmt.Fprintf(&b, "| memory idle, freshly started, no pods | %s | RSS <= 150 MiB: %.2fx, %s |\n", mem(r.Fresh), float64(r.Fresh.RSS)/goalIdle, verdict(r.Fresh.RSS <= goalIdle))
	fmt.Fprintf(&b, "| memory idle again after the demo was deleted | %s | RSS <= 150 MiB: %.2fx, %s |\n", mem(r.Idle), float64(r.Idle.RSS)/goalIdle, verdict(r.Idle.RSS <= goalIdle))
	fmt.Fprintf(&b, "| memory with the demo (%d pods) | %s | - |\n", r.Demo.Pods, mem(r.Demo))
	fmt.Fprintf(&b, "| memory with %d sleeping pods | %s | - (k3s documents about 1.4-1.6 GB with a workload: PSS is %.2fx of 1.5 GB) |\n",
		r.Loaded.Pods, mem(r.Loaded), float64(r.Loaded.PSS)/1.5e9)
	fmt.Fprintf(&b, "| 0 to %d pods available, scaled up %d at a time | %s | - |\n", r.Loaded.Pods, r.Step, r.LoadedRollout.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "| size of bin/nanokube (-trimpath -s -w) | %s | - |\n", mib(r.BinarySize))
	fmt.Fprintf(&b, "\nRSS counts the pages processes share (every shim runs one program) once per process; "+
		"PSS shares them out, so its sum is the memory the cluster really holds. The second idle reading follows the demo's deletion: a Go heap grown by work goes back to the system only gradually. The demo answered %q. "+
		"Load average (1 min) at the start and at the four memory readings: %s (2 CPUs; other jobs shared the machine).\n",
		strings.TrimSpace(r.DemoResponse), strings.Join(r.Load, ", "))
	return b.String()
}

func usec(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

// latency times n sequential GETs of url, each on a new connection, and returns p50 and p99.
func latency(ctx context.Context, url string, n int) ([2]time.Duration, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var ds []time.Duration
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return [2]time.Duration{}, err
		}
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return [2]time.Duration{}, fmt.Errorf("GET %s: %w", url, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return [2]time.Duration{ds[len(ds)/2], ds[len(ds)*99/100]}, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/cluster: "+format+"\n", args...)
}

// node is the places of one run; the outer side makes and removes them.
type node struct {
	work, netns, cgroupRoot, bin string
}

func (n *node) dataDir() string    { return filepath.Join(n.work, "data") }
func (n *node) runtimeDir() string { return filepath.Join(n.dataDir(), "agent", "runtime") }

func (n *node) inNetns(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + n.netns}, args...)...)
}

// run prepares the namespace and the images, runs the measuring side inside the namespace
// and cleans up.
func run(demo string, pods, step int, settle time.Duration, noFsync bool) (res result, err error) {
	if _, err := os.Stat(demo); err != nil {
		return res, fmt.Errorf("%w (run from the repository root)", err)
	}
	work, err := os.MkdirTemp("", "nkbench-cluster")
	if err != nil {
		return res, err
	}
	n := &node{work: work, netns: fmt.Sprintf("nkbench-cl-%d", os.Getpid()), cgroupRoot: fmt.Sprintf("/nkbench-cl-%d", os.Getpid())}
	defer n.cleanup()
	if n.bin, err = binary(work); err != nil {
		return res, err
	}
	for _, args := range [][]string{
		{"netns", "add", n.netns},
		{"-n", n.netns, "link", "set", "lo", "up"},
		{"-n", n.netns, "link", "add", "nkchost0", "type", "bridge"},
		{"-n", n.netns, "addr", "add", nodeIP + "/24", "dev", "nkchost0"},
		{"-n", n.netns, "link", "set", "nkchost0", "up"},
		// A machine has a default route; this namespace has none, and without a route the
		// kernel fails a connect to a ClusterIP before the proxy's nat output chain can
		// rewrite it. This route stands in for the default one.
		{"-n", n.netns, "route", "add", serviceCIDR, "dev", "nkchost0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return res, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	progress("building the demo image and the sleeping image")
	images := filepath.Join(n.runtimeDir(), "images")
	build := exec.Command("go", "run", "./hack/demo-image", "-out", filepath.Join(images, "demo.tar"))
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return res, fmt.Errorf("hack/demo-image: %w", err)
	}
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"sleep", "2147483647"}})
	if err != nil {
		return res, err
	}
	if err := testimage.WriteDockerArchive(filepath.Join(images, "sleep.tar"), sleepImage, img); err != nil {
		return res, err
	}

	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	cmd := n.inNetns(self, "-inside", work, "-demo", demo, "-pods", strconv.Itoa(pods), "-step", strconv.Itoa(step), "-settle", settle.String(),
		"-no-fsync="+strconv.FormatBool(noFsync))
	cmd.Env = append(os.Environ(), "NANOKUBE_BIN="+n.bin, "NKBENCH_NETNS="+n.netns, "NKBENCH_CGROUP_ROOT="+n.cgroupRoot)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	// Ctrl-C (or SIGTERM) is passed on to the measuring side, which stops the server; this
	// side lives on to clean up.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	if err := cmd.Start(); err != nil {
		return res, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
wait:
	for {
		select {
		case err = <-waited:
			break wait
		case <-sigc:
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	if err != nil {
		// The work directory goes at cleanup: keep the server's log for the post-mortem.
		kept := filepath.Join(os.TempDir(), fmt.Sprintf("nkbench-cluster-%d-server.log", os.Getpid()))
		if b, rerr := os.ReadFile(filepath.Join(work, "server.log")); rerr == nil && os.WriteFile(kept, b, 0o644) == nil {
			return res, fmt.Errorf("measuring: %w (server log kept in %s)", err, kept)
		}
		return res, fmt.Errorf("measuring: %w", err)
	}
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		return res, fmt.Errorf("measuring output %q: %w", out.String(), err)
	}
	return res, nil
}

func binary(work string) (string, error) {
	if b := os.Getenv("NANOKUBE_BIN"); b != "" {
		return filepath.Abs(b)
	}
	bin := filepath.Join(work, "nanokube")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/nanokube")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return bin, build.Run()
}

// cleanup removes every sandbox through the runtime (started alone on the agent's state, in
// the namespace, as the server is gone by now), then the mounts, cgroups, namespace and
// files.
func (n *node) cleanup() {
	sock := filepath.Join(n.runtimeDir(), "cri.sock")
	if _, err := os.Stat(filepath.Join(n.runtimeDir(), "sandboxes")); err == nil && n.bin != "" {
		rt := n.inNetns(n.bin, "runtime", "--root", n.runtimeDir(), "--socket", sock)
		if logf, err := os.OpenFile(filepath.Join(n.work, "server.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			rt.Stdout, rt.Stderr = logf, logf
			defer logf.Close()
		}
		if err := rt.Start(); err == nil {
			if err := waitFile(sock, 30*time.Second); err != nil {
				progress("cleanup: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			if _, err := nodecleanup.RemoveSandboxes(ctx, sock); err != nil {
				progress("cleanup: %v", err)
			}
			cancel()
			stop(rt)
		}
	}
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
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
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

var readyLine = regexp.MustCompile(`ready at https://`)

// measure runs inside the namespace: it starts the server, times it to node Ready and to
// the demo answering, then reads the memory idle, with the demo and with pods sleeping
// pods. The server is stopped on return; its pods are left for the outer side's cleanup.
func measure(work, demo string, pods, step int, settle time.Duration, noFsync bool) (res result, err error) {
	n := &node{work: work, netns: os.Getenv("NKBENCH_NETNS"), cgroupRoot: os.Getenv("NKBENCH_CGROUP_ROOT"), bin: os.Getenv("NANOKUBE_BIN")}
	st, err := os.Stat(n.bin)
	if err != nil {
		return res, err
	}
	res.BinarySize, res.Settle, res.NoFsync = st.Size(), settle, noFsync
	logf, err := os.Create(filepath.Join(work, "server.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	kubeconfig := filepath.Join(n.dataDir(), "admin.kubeconfig")

	// The flags `make run` passes, plus the node's name and places kept inside the work
	// directory (pod logs, the pods' cgroup parent) so that nothing of the host's is touched.
	progress("starting the server")
	args := []string{"server", "--data-dir", n.dataDir(), "--secure-port", "6443",
		"--node-name", nodeName, "--pod-logs-dir", filepath.Join(work, "pod-logs"), "--cgroup-root", n.cgroupRoot}
	if noFsync {
		args = append(args, "--etcd-unsafe-no-fsync")
	}
	server := exec.Command(n.bin, args...)
	server.Stderr = logf
	// A pipe of our own rather than StdoutPipe: the ready line is read while another
	// goroutine waits for the process, which StdoutPipe does not allow.
	stdout, w, err := os.Pipe()
	if err != nil {
		return res, err
	}
	defer stdout.Close()
	server.Stdout = w
	res.Load = append(res.Load, loadAvg())
	start := time.Now()
	err = server.Start()
	w.Close()
	if err != nil {
		return res, err
	}
	// The server exiting ends the run at once, with its reason, instead of at a timeout.
	sigctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithCancelCause(sigctx)
	defer cancel(nil)
	exited := make(chan struct{})
	go func() {
		err := server.Wait()
		cancel(fmt.Errorf("the server exited (%v); its log: %s", err, logf.Name()))
		close(exited)
	}()
	defer func() {
		_ = server.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = server.Process.Kill()
			<-exited
		}
	}()
	ctx, cancelTimeout := context.WithTimeout(ctx, 20*time.Minute)
	defer cancelTimeout()
	apiReady := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if readyLine.MatchString(sc.Text()) {
				apiReady <- time.Now()
			}
		}
	}()
	select {
	case t := <-apiReady:
		res.APIReady = t.Sub(start)
	case <-ctx.Done():
		return res, context.Cause(ctx)
	case <-time.After(2 * time.Minute):
		return res, fmt.Errorf("server not ready within 2m")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return res, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return res, err
	}
	if err := poll(ctx, 10*time.Millisecond, func() bool {
		nd, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		return err == nil && nodeReady(nd)
	}); err != nil {
		return res, fmt.Errorf("node Ready: %w", err)
	}
	res.NodeReady = time.Since(start)

	// The cluster as it stands after a start, before any workload: what "idle" usually means.
	progress("reading memory of the freshly started cluster")
	if err := sleep(ctx, settle); err != nil {
		return res, err
	}
	res.Fresh = readMemory(server.Process.Pid, n)
	res.Load = append(res.Load, loadAvg())

	progress("applying %s", demo)
	applied := time.Now()
	kubectl := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(work, "kubectl-cache")}, args...)...)
		cmd.Env = append(os.Environ(), "KUBECTL_KUBERC=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := kubectl("apply", "-f", demo); err != nil {
		return res, err
	}
	svc, err := client.CoreV1().Services("default").Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		return res, err
	}
	httpc := &http.Client{Timeout: time.Second}
	if err := poll(ctx, 10*time.Millisecond, func() bool {
		resp, err := httpc.Get("http://" + svc.Spec.ClusterIP + "/")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.DemoResponse = string(body)
		return resp.StatusCode == http.StatusOK && strings.HasPrefix(res.DemoResponse, "hello from demo-")
	}); err != nil {
		return res, fmt.Errorf("demo answering: %w", err)
	}
	// The idle reading sat between node Ready and the apply: the start-to-answer figure is
	// node Ready plus apply-to-answer, as if the apply had followed at once.
	res.ApplyToAnswer = time.Since(applied)
	res.DemoAnswer = res.NodeReady + res.ApplyToAnswer
	if err := waitAvailable(ctx, client, "demo", 2); err != nil {
		return res, err
	}
	res.DemoRollout = time.Since(applied)

	progress("timing connections through the ClusterIP and straight to a pod")
	demoPods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=demo"})
	if err != nil || len(demoPods.Items) == 0 || demoPods.Items[0].Status.PodIP == "" {
		return res, fmt.Errorf("demo pods: %v", err)
	}
	const requests = 300
	res.Requests = requests
	if res.ViaPod, err = latency(ctx, "http://"+demoPods.Items[0].Status.PodIP+":8080/", requests); err != nil {
		return res, err
	}
	if res.ViaClusterIP, err = latency(ctx, "http://"+svc.Spec.ClusterIP+"/", requests); err != nil {
		return res, err
	}

	progress("reading memory with the demo, then idle without it")
	if err := sleep(ctx, settle); err != nil {
		return res, err
	}
	res.Demo = readMemory(server.Process.Pid, n)
	res.Load = append(res.Load, loadAvg())
	res.Demo.Pods = 2
	if err := kubectl("delete", "-f", demo, "--wait=true"); err != nil {
		return res, err
	}
	if err := waitNoPods(ctx, client); err != nil {
		return res, err
	}
	if err := sleep(ctx, settle); err != nil {
		return res, err
	}
	res.Idle = readMemory(server.Process.Pid, n)
	res.Load = append(res.Load, loadAvg())

	// Scaled up step by step: 100 sandboxes asked for at once overload a small machine
	// (minute-long RunPodSandbox calls, etcd timeouts) and the figure wanted here is the
	// memory with the pods running, not the burst.
	progress("starting %d sleeping pods, %d at a time", pods, step)
	created := time.Now()
	deployments := client.AppsV1().Deployments("default")
	if _, err := deployments.Create(ctx, sleepDeployment(int32(min(step, pods))), metav1.CreateOptions{}); err != nil {
		return res, err
	}
	for replicas := min(step, pods); ; replicas = min(replicas+step, pods) {
		patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
		if _, err := deployments.Patch(ctx, "sleep", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return res, err
		}
		if err := waitAvailable(ctx, client, "sleep", int32(replicas)); err != nil {
			return res, err
		}
		if replicas == pods {
			break
		}
	}
	res.LoadedRollout, res.Step = time.Since(created), step
	if err := sleep(ctx, settle); err != nil {
		return res, err
	}
	res.Loaded = readMemory(server.Process.Pid, n)
	res.Load = append(res.Load, loadAvg())
	res.Loaded.Pods = pods
	return res, nil
}

// loadAvg is the machine's 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// sleep waits d, or less if ctx ends (then its cause is returned).
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(d):
		return nil
	}
}

func poll(ctx context.Context, every time.Duration, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(every):
		}
	}
	return nil
}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func waitAvailable(ctx context.Context, client kubernetes.Interface, name string, replicas int32) error {
	var last string
	err := poll(ctx, 200*time.Millisecond, func() bool {
		d, err := client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%d/%d available", d.Status.AvailableReplicas, replicas)
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == replicas
	})
	if err != nil {
		return fmt.Errorf("deployment %s: %w (last: %s)", name, err, last)
	}
	return nil
}

func waitNoPods(ctx context.Context, client kubernetes.Interface) error {
	return poll(ctx, 200*time.Millisecond, func() bool {
		l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0 || apierrors.IsNotFound(err)
	})
}

func sleepDeployment(replicas int32) *appsv1.Deployment {
	grace := int64(1)
	labels := map[string]string{"app": "sleep"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sleep"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers:                    []v1.Container{{Name: "sleep", Image: sleepImage, ImagePullPolicy: v1.PullIfNotPresent}},
				},
			},
		},
	}
}

// readMemory sums RSS and PSS over the cluster's processes: the server, its descendants,
// and whatever it started that lives on outside its process tree — the shims and pod
// inits (each has a variable naming its bundle or sandbox directory, inside the work
// directory, in its environment) and the pods' processes (in cgroups under the run's
// cgroup root) with their descendants.
func readMemory(serverPid int, n *node) memory {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	roots := map[int]bool{serverPid: true}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: fields start after the last ')'.
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 {
				parent[pid], _ = strconv.Atoi(f[1])
			}
		}
		if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && strings.Contains(string(env), "="+n.work+"/") {
			roots[pid] = true
		}
		if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && strings.Contains(string(cg), ":"+n.cgroupRoot+"/") {
			roots[pid] = true
		}
	}
	// This program and its ancestors may name the work directory too (NANOKUBE_BIN).
	self := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !self[pid]; pid = parent[pid] {
		self[pid] = true
	}
	in := func(pid int) bool {
		if self[pid] {
			return false
		}
		for seen := 0; pid > 1 && seen < 64; seen++ {
			if roots[pid] {
				return true
			}
			pid = parent[pid]
		}
		return false
	}
	m := memory{ServerRSS: procstat.RSS(serverPid), ServerPSS: procstat.PSS(serverPid)}
	for pid := range parent {
		if !in(pid) {
			continue
		}
		m.RSS += procstat.RSS(pid)
		m.PSS += procstat.PSS(pid)
		m.Procs++
	}
	return m
}
