// Package multinode runs a cluster of several nodes on one machine, for tests and for trying
// nanokube out: one `nanokube server` and N `nanokube agent`s, each node in its own network
// namespace, the namespaces joined by a bridge that lives in a namespace of its own, with no
// route out. A client namespace on the same bridge stands for "the host side" (NodePort
// traffic from outside the nodes). Down tears everything down: processes, containers,
// mounts, cgroups and namespaces, even after a failed Up. With Config.ControlPlaneOnly the
// server runs without its own agent (`--disable-agent`), as a control-plane machine would.
//
// Addresses: the nodes are 10.124.0.1 (the server, node-0) to 10.124.0.N+1; the client is
// 10.124.0.200. AddNode joins one more agent to a running cluster, with the next address. Namespace names start with Config.Name, so two clusters with different
// names can run at once.
package multinode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/nanokube/nanokube/internal/nodecleanup"
)

// Config describes a cluster.
type Config struct {
	// Name prefixes the network namespaces and cgroups ("nkmn" if empty); at most 8 chars.
	Name string
	// Bin is the nanokube binary.
	Bin string
	// Dir holds every node's data dir, logs and the admin kubeconfig.
	Dir string
	// Agents is the number of nodes besides the server's own.
	Agents int
	// ServerArgs and AgentArgs are extra flags.
	ServerArgs, AgentArgs []string
	// ControlPlaneOnly runs the server with --disable-agent: node-0 holds the control plane
	// (and the cluster DNS) but is no node, and pods run on the agents only.
	ControlPlaneOnly bool
	// Images, if set, is called with each node's image import directory before the node
	// starts (the runtime imports the archives it finds there).
	Images func(dir string) error
	// Timeout bounds each node's start (0: 2 minutes).
	Timeout time.Duration
}

// Node is one node of the cluster.
type Node struct {
	Name, IP, Netns, DataDir, CgroupRoot string
	// RuntimeDir is where the node's container runtime keeps its state.
	RuntimeDir string
	Server     bool
	proc       *Process
}

// Cluster is a running cluster.
type Cluster struct {
	cfg        Config
	Nodes      []*Node // Nodes[0] runs the server
	Kubeconfig string
	// ClientNetns is the namespace standing for the host side.
	ClientNetns, ClientIP string
	switchNetns           string
	JoinURL               string
}

const subnet = "10.124.0."

var readyLine = regexp.MustCompile(`ready at https://`)
var agentReadyLine = regexp.MustCompile(`joined .* and is ready`)

// Up starts the cluster: the network, the server, then the agents, and returns once every
// node has said it is ready. On error the caller must still call Down.
func Up(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Name == "" {
		cfg.Name = "nkmn"
	}
	if len(cfg.Name) > 8 {
		return nil, fmt.Errorf("multinode: name %q is longer than 8 characters", cfg.Name)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	c := &Cluster{cfg: cfg, ClientNetns: cfg.Name + "-client", ClientIP: subnet + "200", switchNetns: cfg.Name + "-sw",
		Kubeconfig: filepath.Join(cfg.Dir, "node-0", "admin.kubeconfig")}
	for i := 0; i <= cfg.Agents; i++ {
		c.Nodes = append(c.Nodes, c.newNode(i))
	}
	c.JoinURL = "https://" + c.Nodes[0].IP + ":6443"
	if err := c.network(); err != nil {
		return c, err
	}
	for _, n := range c.Nodes {
		if err := c.stageImages(n); err != nil {
			return c, err
		}
	}
	if err := c.StartNode(ctx, c.Nodes[0]); err != nil {
		return c, err
	}
	for _, n := range c.Nodes[1:] {
		if err := c.StartNode(ctx, n); err != nil {
			return c, err
		}
	}
	return c, nil
}

// newNode describes the i-th node (0 is the server's) without making anything.
func (c *Cluster) newNode(i int) *Node {
	n := &Node{Name: fmt.Sprintf("node-%d", i), IP: fmt.Sprintf("%s%d", subnet, i+1), Netns: fmt.Sprintf("%s-n%d", c.cfg.Name, i),
		DataDir: filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d", i)), CgroupRoot: fmt.Sprintf("/%s-n%d", c.cfg.Name, i), Server: i == 0}
	n.RuntimeDir = filepath.Join(n.DataDir, "runtime")
	if n.Server {
		n.RuntimeDir = filepath.Join(n.DataDir, "agent", "runtime")
	}
	return n
}

// stageImages puts the configured image archives where the node's runtime imports them.
func (c *Cluster) stageImages(n *Node) error {
	if n.Server && c.cfg.ControlPlaneOnly {
		return nil // no runtime
	}
	dir := filepath.Join(n.RuntimeDir, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if c.cfg.Images != nil {
		return c.cfg.Images(dir)
	}
	return nil
}

// AddNode joins one more agent to the running cluster, as a machine added later would: it
// makes the node's namespace on the bridge, stages the images, starts the agent and waits
// until it is ready. The node is appended to Nodes before anything is made, so Down removes
// it even if AddNode fails.
func (c *Cluster) AddNode(ctx context.Context) (*Node, error) {
	if len(c.Nodes)+1 >= 200 { // 10.124.0.200 is the client's
		return nil, fmt.Errorf("multinode: no address left for another node")
	}
	i := len(c.Nodes)
	n := c.newNode(i)
	c.Nodes = append(c.Nodes, n)
	if err := c.runIP(c.attach(n.Netns, n.IP, fmt.Sprintf("p%d", i))); err != nil {
		return n, err
	}
	if err := c.stageImages(n); err != nil {
		return n, err
	}
	return n, c.StartNode(ctx, n)
}

// network makes the switch, node and client namespaces and wires them to the bridge.
func (c *Cluster) network() error {
	cmds := [][]string{
		{"netns", "add", c.switchNetns},
		{"-n", c.switchNetns, "link", "add", "br0", "type", "bridge"},
		{"-n", c.switchNetns, "link", "set", "br0", "up"},
	}
	for i, n := range c.Nodes {
		cmds = append(cmds, c.attach(n.Netns, n.IP, fmt.Sprintf("p%d", i))...)
	}
	cmds = append(cmds, c.attach(c.ClientNetns, c.ClientIP, "pclient")...)
	return c.runIP(cmds)
}

// attach returns the ip commands that make netns and wire it to the bridge through port.
func (c *Cluster) attach(netns, ip, port string) [][]string {
	return [][]string{
		{"netns", "add", netns},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", c.switchNetns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns},
		{"-n", c.switchNetns, "link", "set", port, "master", "br0", "up"},
		{"-n", netns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"-n", netns, "link", "set", "eth0", "up"},
	}
}

// runIP runs ip with each argument list in turn, stopping at the first failure.
func (c *Cluster) runIP(cmds [][]string) error {
	for _, args := range cmds {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// StartNode starts (or restarts) a node's process and waits until it is ready.
func (c *Cluster) StartNode(ctx context.Context, n *Node) error {
	var args []string
	ready := agentReadyLine
	common := []string{"--node-name", n.Name, "--node-ip", n.IP, "--pod-logs-dir", filepath.Join(n.DataDir, "pod-logs"),
		"--cgroup-root", n.CgroupRoot}
	if n.Server {
		ready = readyLine
		args = append([]string{"server", "--data-dir", n.DataDir, "--bind-address", n.IP, "--advertise-address", n.IP,
			"--secure-port", "6443", "--etcd-unsafe-no-fsync"}, common...)
		if c.cfg.ControlPlaneOnly {
			args = append(args, "--disable-agent")
		}
		args = append(args, c.cfg.ServerArgs...)
	} else {
		args = append([]string{"agent", "--server", c.JoinURL, "--token-file", filepath.Join(c.Nodes[0].DataDir, "node-token"),
			"--data-dir", n.DataDir}, common...)
		args = append(args, c.cfg.AgentArgs...)
	}
	p, err := StartProcess(n.Name, n.Netns, filepath.Join(c.cfg.Dir, n.Name+".log"), append([]string{c.cfg.Bin}, args...)...)
	if err != nil {
		return err
	}
	n.proc = p
	return p.WaitLog(ctx, ready, c.cfg.Timeout)
}

// StopNode ends a node's process, gracefully or with SIGKILL; its containers keep running.
func (c *Cluster) StopNode(n *Node, kill bool) {
	n.proc.Stop(kill)
	n.proc = nil
}

// Running reports whether the node's process runs.
func (n *Node) Running() bool { return n.proc != nil }

// Log returns what the node's process has logged since it started.
func (n *Node) Log() string {
	if n.proc == nil {
		return ""
	}
	return n.proc.Output()
}

// SetLink cuts (up=false) or restores a node's link to the bridge, as a pulled cable would.
func (c *Cluster) SetLink(n *Node, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	for i, m := range c.Nodes {
		if m == n {
			out, err := exec.Command("ip", "-n", c.switchNetns, "link", "set", fmt.Sprintf("p%d", i), state).CombinedOutput()
			if err != nil {
				return fmt.Errorf("link %s: %v: %s", state, err, out)
			}
			return nil
		}
	}
	return fmt.Errorf("multinode: %s is not a node of this cluster", n.Name)
}

// Command is a command run inside a namespace (the client's or a node's).
func Command(ctx context.Context, netns string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/var/run/netns/" + netns, name}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECTL_KUBERC=false")
	return cmd
}

// Kubectl is kubectl against the cluster, run from the client namespace.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--kubeconfig", c.Kubeconfig, "--cache-dir", filepath.Join(c.cfg.Dir, "kubectl-cache")}, args...)
	return Command(ctx, c.ClientNetns, "kubectl", full...)
}

// Down stops every node, removes their containers through their runtimes, and deletes the
// mounts, cgroups and namespaces Up made. It is safe on a partly started cluster.
func (c *Cluster) Down() error {
	var errs []error
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		n := c.Nodes[i]
		if n.proc != nil {
			c.StopNode(n, false)
		}
	}
	for _, n := range c.Nodes {
		if err := c.removePods(n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
		}
		nodecleanup.Unmount(n.DataDir)
		nodecleanup.RemoveCgroupsEverywhere(n.CgroupRoot)
	}
	for _, ns := range append(c.netnsNames(), c.ClientNetns, c.switchNetns) {
		if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", ns, err, out))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) netnsNames() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Netns)
	}
	return out
}

// removePods removes every sandbox of the node through nanokube's runtime started alone on
// the node's runtime state.
func (c *Cluster) removePods(n *Node) error {
	if _, err := os.Stat(n.RuntimeDir); err != nil {
		return nil
	}
	if _, err := os.Stat("/var/run/netns/" + n.Netns); err != nil {
		return nil
	}
	sock := filepath.Join(n.RuntimeDir, "cri.sock")
	cmd := Command(context.Background(), n.Netns, c.cfg.Bin, "runtime", "--root", n.RuntimeDir, "--socket", sock)
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := nodecleanup.RemoveSandboxes(ctx, sock)
	return err
}

// Process is a process run inside a network namespace, its stdout and stderr appended to a
// log file. The e2e node harness uses it too.
type Process struct {
	name   string
	cmd    *exec.Cmd
	logf   *os.File
	offset int64 // the log's size when the process started: its own lines follow
	exited chan struct{}
}

// StartProcess starts argv (program first) in netns, appending its output to logPath.
func StartProcess(name, netns, logPath string, argv ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := logf.Stat()
	if err != nil {
		logf.Close()
		return nil, err
	}
	// nsenter without --fork execs the command: the process started is the command itself.
	cmd := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + netns}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logf: logf, offset: st.Size(), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Output is what the process has logged since it started.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.logf.Name())
	if int64(len(b)) > p.offset {
		return string(b[p.offset:])
	}
	return ""
}

// Exited is closed once the process has exited; State then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// State is the exited process's state (nil while it runs).
func (p *Process) State() *os.ProcessState { return p.cmd.ProcessState }

// WaitLog polls the process's output until it matches ready; it fails early if the process
// exits, with the output's end.
func (p *Process) WaitLog(ctx context.Context, ready *regexp.Regexp, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out := p.Output()
		if ready.MatchString(out) {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited (%v) before it was ready; its log:\n%s", p.name, p.cmd.ProcessState, tail(out, 4000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s; its log:\n%s", p.name, timeout, tail(out, 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the process, gracefully or with SIGKILL, and waits for it (SIGKILL after 30 s).
func (p *Process) Stop(kill bool) {
	if p == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.logf.Close()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
