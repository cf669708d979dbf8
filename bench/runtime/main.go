// Command runtime benchmarks nanokube's container runtime against containerd (Debian's
// containerd 1.6 with its CRI plugin), both driven over CRI the same way:
//
//   - start latency: RunPodSandbox + CreateContainer + StartContainer, one pod after another,
//     p50 and p99 over -pods pods;
//   - memory per running container: the runtime process's RSS growth while the pods run,
//     plus the RSS of every per-pod or per-container process it added (nanokube's shims and,
//     for containerd, its shims and pause containers), divided by the number of pods.
//
// Both runtimes get the same busybox image, imported from one tarball; containerd also gets
// its sandbox image (a "pause" built from the same busybox) imported with `ctr`. Each runs on
// its own root, state, socket, bridge and pod subnet; pods use a loopback-only bridge without
// masquerading. Everything is stopped by PID and removed at the end.
//
//	go run ./bench/runtime [-pods 100] [-runtimes nanokube,containerd]
//
// NANOKUBE_BIN names the nanokube binary (make bench sets it); otherwise it is built.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/bench/internal/procstat"
	"github.com/nanokube/nanokube/internal/nodecleanup"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

const (
	benchImage = "bench.local/nanokube/sleep:1"
	pauseImage = "registry.k8s.io/pause:3.6"
	pauseSleep = "2147483646"
)

type result struct {
	name        string
	latencies   []time.Duration
	runtimeRSS  int64 // growth of the runtime process, bytes
	helperRSS   int64 // shims and pause processes, bytes
	helperPSS   int64 // the same, with shared pages divided among the processes mapping them
	helperCount int
	pods        int
}

func (r result) pct(p float64) time.Duration {
	l := append([]time.Duration(nil), r.latencies...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	if len(l) == 0 {
		return 0
	}
	i := int(float64(len(l)-1) * p)
	return l[i]
}

func (r result) memPerContainer() float64 {
	return float64(r.runtimeRSS+r.helperRSS) / float64(r.pods)
}

func main() {
	pods := flag.Int("pods", 100, "pods (one container each) per runtime")
	which := flag.String("runtimes", "nanokube,containerd", "runtimes to measure")
	flag.Parse()
	log.SetFlags(0)
	if os.Getuid() != 0 {
		log.Fatal("bench/runtime needs root (namespaces, mounts, runc)")
	}
	work, err := os.MkdirTemp("", "nkbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	img, err := testimage.Build(testimage.Spec{Cmd: []string{"sleep", "2147483647"}})
	if err != nil {
		log.Fatal(err)
	}
	imageTar := filepath.Join(work, "image.tar")
	if err := testimage.WriteDockerArchive(imageTar, benchImage, img); err != nil {
		log.Fatal(err)
	}
	var results []result
	for _, name := range strings.Split(*which, ",") {
		var r result
		var err error
		switch name {
		case "nanokube":
			r, err = benchNanokube(work, imageTar, *pods)
		case "containerd":
			r, err = benchContainerd(work, imageTar, *pods)
		default:
			err = fmt.Errorf("unknown runtime %q", name)
		}
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		results = append(results, r)
	}
	report(results)
}

func report(rs []result) {
	fmt.Printf("\nContainer runtime: %d pods of one container each, started one after another\n\n", rs[0].pods)
	fmt.Printf("| runtime | start p50 | start p99 | runtime RSS growth | shims/pause RSS (procs) | shims/pause PSS | memory per container |\n")
	fmt.Printf("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rs {
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.1f MiB | %.1f MiB (%d) | %.1f MiB | %.2f MiB |\n", r.name,
			ms(r.pct(0.5)), ms(r.pct(0.99)), mib(r.runtimeRSS), mib(r.helperRSS), r.helperCount, mib(r.helperPSS), r.memPerContainer()/(1<<20))
	}
	if len(rs) == 2 {
		a, b := rs[0], rs[1]
		fmt.Printf("\n%s / %s: start p50 %.2fx, p99 %.2fx (goal <= 0.5x); memory per container %.2fx (goal <= 1x)\n",
			a.name, b.name, ms(a.pct(0.5))/ms(b.pct(0.5)), ms(a.pct(0.99))/ms(b.pct(0.99)), a.memPerContainer()/b.memPerContainer())
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b int64) float64        { return float64(b) / (1 << 20) }

// runtimeUnderTest is a started runtime: its socket, its process, and how to find the
// helper processes it started.
type runtimeUnderTest struct {
	name    string
	socket  string
	cmd     *exec.Cmd
	helpers func() []int
	cgroup  string
}

func benchNanokube(work, imageTar string, pods int) (result, error) {
	bin := os.Getenv("NANOKUBE_BIN")
	if bin == "" {
		bin = filepath.Join(work, "nanokube-bin")
		build := exec.Command("go", "build", "-o", bin, "./cmd/nanokube")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return result{}, fmt.Errorf("build nanokube: %w", err)
		}
	}
	dir := filepath.Join(work, "nanokube")
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "images"), 0o755); err != nil {
		return result{}, err
	}
	if err := os.Link(imageTar, filepath.Join(root, "images", "bench.tar")); err != nil {
		return result{}, err
	}
	bridge := fmt.Sprintf("nkbn%d", rand.Intn(1000))
	sock := filepath.Join(dir, "cri.sock")
	cmd := exec.Command(bin, "runtime", "--root", root, "--socket", sock, "--cni-bridge", bridge,
		"--pod-cidr", "10.91.0.0/24", "--no-masquerade")
	logf, _ := os.Create(filepath.Join(dir, "runtime.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	rt := &runtimeUnderTest{name: "nanokube", socket: sock, cmd: cmd, cgroup: "/nkbench-nanokube",
		helpers: func() []int { return procsWithEnv("NANOKUBE_RUNTIME_SHIM=" + root + "/") }}
	defer func() {
		stop(rt)
		nodecleanup.Unmount(dir)
		_ = exec.Command("ip", "link", "del", bridge).Run()
	}()
	return measure(rt, pods)
}

func benchContainerd(work, imageTar string, pods int) (result, error) {
	for _, b := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(b); err != nil {
			return result{}, fmt.Errorf("%s not installed (hack/install-deps.sh installs Debian's containerd): %w", b, err)
		}
	}
	dir := filepath.Join(work, "containerd")
	netd := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(netd, 0o755); err != nil {
		return result{}, err
	}
	bridge := fmt.Sprintf("nkbc%d", rand.Intn(1000))
	conflist := fmt.Sprintf(`{"cniVersion":"0.4.0","name":"nkbench","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.92.0.0/24"}]],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`, bridge, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(netd, "10-nkbench.conflist"), []byte(conflist), 0o644); err != nil {
		return result{}, err
	}
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = %q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", pauseImage, netd)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return result{}, err
	}
	// Its own sleep length tells the pause processes from the containers' in the shims.
	pause, err := testimage.Build(testimage.Spec{Cmd: []string{"sleep", pauseSleep}})
	if err != nil {
		return result{}, err
	}
	pauseTar := filepath.Join(dir, "pause.tar")
	if err := testimage.WriteDockerArchive(pauseTar, pauseImage, pause); err != nil {
		return result{}, err
	}
	cmd := exec.Command("containerd", "--config", cfgPath, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--address", sock)
	logf, _ := os.Create(filepath.Join(dir, "containerd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	rt := &runtimeUnderTest{name: "containerd", socket: sock, cmd: cmd, cgroup: "/nkbench-containerd",
		helpers: func() []int {
			shims := procsWithCmdline("containerd-shim-runc-v2", sock)
			var out []int
			for _, p := range shims {
				out = append(out, p)
				out = append(out, pauseChildren(p)...)
			}
			return out
		}}
	defer func() {
		stop(rt)
		nodecleanup.Unmount(dir)
		_ = exec.Command("ip", "link", "del", bridge).Run()
	}()
	if err := waitSocket(sock, 20*time.Second); err != nil {
		return result{}, err
	}
	for _, tar := range []string{pauseTar, imageTar} {
		out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "import", tar).CombinedOutput()
		if err != nil {
			return result{}, fmt.Errorf("ctr images import %s: %v: %s", tar, err, out)
		}
	}
	return measure(rt, pods)
}

func measure(rt *runtimeUnderTest, pods int) (result, error) {
	if err := waitSocket(rt.socket, 30*time.Second); err != nil {
		return result{}, err
	}
	conn, err := grpc.NewClient("unix://"+rt.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	rs, is := runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// The runtime is up when the image it imported is listed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: benchImage}})
		if err == nil && st.Image != nil {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("%s: image %s not available: %v", rt.name, benchImage, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One warm-up pod, removed, so both runtimes have loaded what a first pod needs.
	if _, err := startPod(ctx, rs, rt, "warmup"); err != nil {
		return result{}, fmt.Errorf("%s warm-up pod: %w", rt.name, err)
	}
	if err := removeAll(ctx, rs); err != nil {
		return result{}, err
	}
	time.Sleep(500 * time.Millisecond)
	base := procstat.RSS(rt.cmd.Process.Pid)
	res := result{name: rt.name, pods: pods}
	for i := 0; i < pods; i++ {
		d, err := startPod(ctx, rs, rt, fmt.Sprintf("p%d", i))
		if err != nil {
			return result{}, fmt.Errorf("%s pod %d: %w", rt.name, i, err)
		}
		res.latencies = append(res.latencies, d)
	}
	time.Sleep(time.Second)
	res.runtimeRSS = procstat.RSS(rt.cmd.Process.Pid) - base
	for _, p := range rt.helpers() {
		res.helperRSS += procstat.RSS(p)
		res.helperPSS += procstat.PSS(p)
		res.helperCount++
	}
	log.Printf("%s: %d pods started: p50 %v p99 %v", rt.name, pods, res.pct(0.5), res.pct(0.99))
	if err := removeAll(ctx, rs); err != nil {
		return result{}, err
	}
	return res, nil
}

func startPod(ctx context.Context, rs runtimeapi.RuntimeServiceClient, rt *runtimeUnderTest, name string) (time.Duration, error) {
	uid := "uid-" + name
	pc := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(filepath.Dir(rt.socket), "logs", uid),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: rt.cgroup + "/" + uid},
	}
	start := time.Now()
	sb, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pc})
	if err != nil {
		return 0, err
	}
	c, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: pc,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
			Image: &runtimeapi.ImageSpec{Image: benchImage}, LogPath: "sleep.log"}})
	if err != nil {
		return 0, err
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func removeAll(ctx context.Context, rs runtimeapi.RuntimeServiceClient) error {
	list, err := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	for _, s := range list.Items {
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			return err
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			return err
		}
	}
	return nil
}

// stop removes every pod, stops the runtime by its PID and removes its pod cgroups.
func stop(rt *runtimeUnderTest) {
	if conn, err := grpc.NewClient("unix://"+rt.socket, grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_ = removeAll(ctx, runtimeapi.NewRuntimeServiceClient(conn))
		cancel()
		conn.Close()
	}
	for _, p := range rt.helpers() {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	_ = rt.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = rt.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = rt.cmd.Process.Kill()
		<-done
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + rt.cgroup + "/*/*")
	more, _ := filepath.Glob("/sys/fs/cgroup/*" + rt.cgroup + "/*")
	top, _ := filepath.Glob("/sys/fs/cgroup/*" + rt.cgroup)
	for _, d := range append(append(dirs, more...), top...) {
		_ = os.Remove(d)
	}
}

func waitSocket(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("socket %s did not appear in %v", path, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allPids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func procsWithEnv(prefix string) []int {
	var out []int
	for _, p := range allPids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(b), "\x00") {
			if strings.HasPrefix(kv, prefix) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func procsWithCmdline(words ...string) []int {
	var out []int
	for _, p := range allPids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		all := true
		for _, w := range words {
			all = all && strings.Contains(cl, w)
		}
		if all {
			out = append(out, p)
		}
	}
	return out
}

// pauseChildren returns the pause processes among the children of a containerd shim.
func pauseChildren(pid int) []int {
	var out []int
	for _, p := range allPids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if strings.Contains(string(cl), pauseSleep) {
			out = append(out, p)
		}
	}
	return out
}
