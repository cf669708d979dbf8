package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/nanokube/nanokube/internal/nodecleanup"
	"github.com/nanokube/nanokube/internal/pki"
	"github.com/nanokube/nanokube/internal/runtime/testimage"
)

// The node cluster with NANOKUBE_E2E_RUNTIME=containerd: containerd 1.6 (its own config,
// root, state and socket under the node's directory) and `nanokube kubelet` driving its CRI
// plugin, beside the control plane, all in the node's network namespace. The kubelet issue
// asks that the TestNode suite pass against containerd's CRI as against nanokube's runtime.

// containerdNode is what the harness made for containerd.
type containerdNode struct {
	dir      string // config, root, state, CNI files, image archives
	sock     string
	runcRoot string
	proc     *nodeProcess
	// proxy is `nanokube proxy`: with it pods reach Services (the kubernetes Service
	// included), as beside any kubelet.
	proxy *nodeProcess
	// kubepods records which controllers had a /kubepods cgroup before the node started:
	// `nanokube kubelet` has no --cgroup-root, so its pods go under /kubepods, and cleanup
	// may remove that cgroup only where this run made it.
	kubepods map[string]bool
}

const (
	// pauseImage is containerd's sandbox_image. Its shell exits on SIGTERM, which a bare
	// `sleep` as PID 1 ignores.
	pauseImage = "nanokube.test/pause:1"
	// cniNetwork names the pods' network; its bridge differs from nanokube's nk0.
	cniNetwork = "nke2e-containerd"
	cniBridge  = "nkcd0"
)

// containerdBooted is containerd's log line once every plugin, CRI included, serves.
var (
	containerdBooted = regexp.MustCompile(`containerd successfully booted`)
	kubeletReady     = regexp.MustCompile(`msg="kubelet ready"`)
)

// startContainerdNode starts containerd with the test images, the control plane and the
// kubelet, and waits for the node to be Ready.
func startContainerdNode(busybox v1.Image) error {
	c := &containerdNode{dir: filepath.Join(node.dir, "containerd"), kubepods: map[string]bool{}}
	c.sock = filepath.Join(c.dir, "containerd.sock")
	c.runcRoot = filepath.Join(c.dir, "runc")
	controllers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, ctrl := range controllers {
		if _, err := os.Stat(filepath.Join(ctrl, "kubepods")); err == nil {
			c.kubepods[ctrl] = true
		}
	}
	node.containerd = c
	if err := c.writeConfig(); err != nil {
		return err
	}
	p, err := startNodeProcess("containerd", "node-containerd.log", "containerd",
		"--config", filepath.Join(c.dir, "config.toml"), "--root", filepath.Join(c.dir, "root"),
		"--state", filepath.Join(c.dir, "state"), "--address", c.sock)
	if err != nil {
		return err
	}
	c.proc = p
	if err := p.WaitLog(context.Background(), containerdBooted, 60*time.Second); err != nil {
		return err
	}
	pause, err := testimage.Build(testimage.Spec{
		Entrypoint: []string{"sh", "-c", `trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done`},
	})
	if err != nil {
		return err
	}
	for tag, img := range map[string]v1.Image{testImage: busybox, pauseImage: pause} {
		if err := c.importImage(tag, img); err != nil {
			return err
		}
	}
	if err := startNodeServer("--disable-agent"); err != nil {
		return err
	}
	if err := writeKubeletCert(); err != nil {
		return err
	}
	if c.proxy, err = startNodeProcess("proxy", "node-proxy.log", cluster.bin, "proxy",
		"--kubeconfig", node.kubeconfig, "--node-name", nodeName, "--node-ip", nodeIP, "--cluster-cidr", "10.244.0.0/16"); err != nil {
		return err
	}
	return runNodeServer()
}

func (c *containerdNode) writeConfig() error {
	cni := filepath.Join(c.dir, "cni")
	if err := os.MkdirAll(filepath.Join(cni, "net.d"), 0o755); err != nil {
		return err
	}
	// containerd writes the node's CNI config from this template when the kubelet hands it
	// the pod CIDR (UpdateRuntimeConfig). Loopback needs no entry: containerd adds the
	// loopback plugin from bin_dir to every pod itself. Pods get a default route to the
	// bridge, as nanokube's runtime gives them, so Service IPs (10.96.0.1) are reachable;
	// the node's namespace has no route out, so nothing leaves the test's namespaces.
	template := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$r}}"}]{{end}}],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, cniNetwork, cniBridge, filepath.Join(cni, "ipam"))
	if err := os.WriteFile(filepath.Join(cni, "template.conflist"), []byte(template), 0o644); err != nil {
		return err
	}
	// restrict_oom_score_adj: this VM refuses negative OOM scores even to root.
	// netns_mounts_under_state_dir keeps the pods' network namespaces out of /var/run/netns.
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[6]q
    conf_template = %[7]q

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = %[8]q
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), c.sock, filepath.Join(c.dir, "opt"),
		pauseImage, filepath.Join(cni, "net.d"), filepath.Join(cni, "template.conflist"), c.runcRoot)
	return os.WriteFile(filepath.Join(c.dir, "config.toml"), []byte(config), 0o644)
}

// importImage puts img, tagged tag, in containerd's k8s.io namespace, where its CRI plugin
// looks for images.
func (c *containerdNode) importImage(tag string, img v1.Image) error {
	archive := filepath.Join(c.dir, "images", strings.NewReplacer("/", "_", ":", "_").Replace(tag)+".tar")
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return err
	}
	if err := testimage.WriteDockerArchive(archive, tag, img); err != nil {
		return err
	}
	if out, err := exec.Command("ctr", "--address", c.sock, "-n", "k8s.io", "images", "import", archive).CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import %s: %v: %s", archive, err, out)
	}
	out, err := exec.Command("ctr", "--address", c.sock, "-n", "k8s.io", "images", "list", "-q").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images list: %v: %s", err, out)
	}
	if !strings.Contains("\n"+string(out), "\n"+tag+"\n") {
		return fmt.Errorf("ctr images import %s: %s is not among containerd's images:\n%s", archive, tag, out)
	}
	return nil
}

// writeKubeletCert issues the kubelet's serving certificate from the cluster CA, as the
// server does for its own agent.
func writeKubeletCert() error {
	pkiDir := filepath.Join(node.dir, "pki")
	pair, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "ca.crt"), filepath.Join(pkiDir, "ca.key"))
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return errors.New("the cluster CA's key cannot sign")
	}
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := pki.IssueServingCert(&pki.CA{Cert: caCert, Key: signer, CertPEM: caPEM}, nodeName,
		[]string{nodeName, "localhost", "127.0.0.1", nodeIP}, 24*time.Hour)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(node.dir, "kubelet.key"), keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(node.dir, "kubelet.crt"), certPEM, 0o644)
}

// startKubelet runs `nanokube kubelet` against containerd and waits until it is ready.
func startKubelet() error {
	p, err := startNodeProcess("kubelet", "node-kubelet.log", cluster.bin, "kubelet",
		"--kubeconfig", node.kubeconfig, "--node-name", nodeName, "--node-ip", nodeIP, "--address", nodeIP+":10250",
		"--runtime-endpoint", "unix://"+node.containerd.sock,
		"--root-dir", filepath.Join(node.dir, "kubelet"), "--pod-logs-dir", filepath.Join(node.dir, "pod-logs"),
		"--tls-cert-file", filepath.Join(node.dir, "kubelet.crt"), "--tls-private-key-file", filepath.Join(node.dir, "kubelet.key"),
		"--client-ca-file", filepath.Join(node.dir, "pki", "ca.crt"))
	if err != nil {
		return err
	}
	node.kubelet = p
	return p.WaitLog(context.Background(), kubeletReady, 60*time.Second)
}

// stopContainerdNode stops the kubelet first (so it starts nothing more), removes every
// sandbox through containerd's CRI, then stops containerd and the control plane. Whatever
// containerd could not remove is then forced out: its containers through runc, its shims by
// PID, and the pods' cgroups.
func stopContainerdNode() {
	c := node.containerd
	stopNodeServer(false)
	if c == nil {
		node.server.Stop(false)
		return
	}
	if c.proxy != nil {
		c.proxy.Stop(false)
	}
	var podUIDs []string
	if c.proc != nil {
		select {
		case <-c.proc.Exited():
			fmt.Fprintf(os.Stderr, "e2e: node cleanup: containerd had exited (%v)\n", c.proc.State())
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			var err error
			podUIDs, err = nodecleanup.RemoveSandboxes(ctx, c.sock)
			cancel()
			if err != nil {
				fmt.Fprintln(os.Stderr, "e2e: node cleanup:", err)
			}
		}
		c.proc.Stop(false)
	}
	node.server.Stop(false)
	node.server = nil

	// Anything left behind (a cleanup that failed above): runc kills and deletes the
	// containers, then their shims, which outlive containerd, go, and so do the files shims
	// and CNI keep outside the node's directory.
	type task struct{ namespace, id string }
	var left []task
	runcRoots, _ := filepath.Glob(filepath.Join(c.runcRoot, "*")) // one per containerd namespace
	for _, root := range runcRoots {
		ids, _ := os.ReadDir(root)
		for _, id := range ids {
			left = append(left, task{filepath.Base(root), id.Name()})
			if out, err := exec.Command("runc", "--root", root, "delete", "--force", id.Name()).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: node cleanup: runc delete %s: %v: %s\n", id.Name(), err, out)
			}
		}
	}
	for _, pid := range shimsOf(c.sock) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, t := range left {
		// containerd 1.6 names a shim's socket after its containerd, namespace and task.
		sum := sha256.Sum256([]byte(c.sock + "/" + t.namespace + "/" + t.id))
		_ = os.Remove(filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:])))
		// libcni's result cache, which containerd does not move: <network>-<sandbox>-<ifname>.
		_ = os.Remove(filepath.Join("/var/lib/cni/results", cniNetwork+"-"+t.id+"-eth0"))
		_ = os.Remove(filepath.Join("/var/lib/cni/results", "cni-loopback-"+t.id+"-lo"))
	}

	// The kubelet removes a pod's cgroups when it tears the pod down; these are the pods it
	// did not get to.
	for _, dir := range []string{filepath.Join(node.dir, "kubelet", "pods"), filepath.Join(node.dir, "pod-logs")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			name := e.Name()
			if i := strings.LastIndex(name, "_"); i >= 0 { // pod logs: <ns>_<pod>_<uid>
				name = name[i+1:]
			}
			podUIDs = append(podUIDs, name)
		}
	}
	controllers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, ctrl := range controllers {
		kubepods := filepath.Join(ctrl, "kubepods")
		for _, uid := range podUIDs {
			if uid == "" {
				continue
			}
			for _, qos := range []string{"", "burstable", "besteffort"} {
				nodecleanup.RemoveCgroups(filepath.Join(kubepods, qos, "pod"+uid))
			}
		}
		if !c.kubepods[ctrl] {
			// Only if empty: a cgroup with children or processes stays.
			_ = unix.Rmdir(filepath.Join(kubepods, "burstable"))
			_ = unix.Rmdir(filepath.Join(kubepods, "besteffort"))
			_ = unix.Rmdir(kubepods)
		}
	}
}

// shimsOf returns the PIDs of the containerd shims serving the containerd at sock.
func shimsOf(sock string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(string(args[0])), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if string(args[i]) == "-address" && string(args[i+1]) == sock {
				var pid int
				if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid); err == nil {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}
