package kubelet

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/component-helpers/apimachinery/lease"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// nodeLeaseNamespace holds the nodes' heartbeat Leases.
const nodeLeaseNamespace = "kube-node-lease"

// Eviction-style thresholds under which the node reports pressure.
const (
	memoryPressureBytes  = 100 << 20
	diskPressurePercent  = 10
	pidPressureRemaining = 1000
)

// registerNode creates the Node, or takes over an existing one of the same name (a
// restarted kubelet), and posts a first status.
func (k *Kubelet) registerNode(ctx context.Context) error {
	return wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		want := k.initialNode()
		want.Status = k.nodeStatus(ctx, nil)
		_, err := k.client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			// Read back first: others label a new Node at once (the server marks its
			// own as control plane), and an update of the created copy would conflict.
			err = k.updateNodeStatus(ctx, true)
		}
		if err != nil {
			k.log.Warn("registering node", "node", k.cfg.NodeName, "err", err)
			return false, nil
		}
		k.log.Info("node registered", "node", k.cfg.NodeName)
		return true, nil
	})
}

func (k *Kubelet) initialNode() *v1.Node {
	labels := map[string]string{
		v1.LabelHostname: k.cfg.NodeName,
		v1.LabelOSStable: runtime.GOOS, v1.LabelArchStable: runtime.GOARCH,
		"beta.kubernetes.io/os": runtime.GOOS, "beta.kubernetes.io/arch": runtime.GOARCH,
	}
	for key, val := range k.cfg.Labels {
		labels[key] = val
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Labels: labels,
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
		Spec: v1.NodeSpec{Taints: k.cfg.Taints},
	}
}

// nodeStatusLoop posts the node status when it changed, checking every StatusInterval,
// and at least once a minute so the status' heartbeat times stay fresh.
func (k *Kubelet) nodeStatusLoop(ctx context.Context) {
	last := time.Now()
	t := time.NewTicker(k.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		force := time.Since(last) > time.Minute
		if err := k.updateNodeStatus(ctx, force); err != nil {
			k.log.Warn("updating node status", "err", err)
			continue
		}
		if force {
			last = time.Now()
		}
	}
}

// updateNodeStatus writes the node's status if it differs from the stored one (ignoring
// heartbeat times) or force is set.
func (k *Kubelet) updateNodeStatus(ctx context.Context, force bool) error {
	for range 5 {
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		status := k.nodeStatus(ctx, node)
		if !force && sameNodeStatus(node.Status, status) {
			return nil
		}
		node.Status = status
		if _, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("node %s status: too many conflicts", k.cfg.NodeName)
}

func sameNodeStatus(a, b v1.NodeStatus) bool {
	a, b = *a.DeepCopy(), *b.DeepCopy()
	for _, s := range []*v1.NodeStatus{&a, &b} {
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

// nodeStatus computes the node's status now; old (may be nil) gives the transition times
// to keep.
func (k *Kubelet) nodeStatus(ctx context.Context, old *v1.Node) v1.NodeStatus {
	capacity := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		v1.ResourcePods:   *resource.NewQuantity(int64(k.cfg.MaxPods), resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(int64(meminfo()["MemTotal"]), resource.BinarySI),
	}
	var fs unix.Statfs_t
	if unix.Statfs(k.cfg.RootDir, &fs) == nil {
		capacity[v1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	hostname, _ := os.Hostname()
	st := v1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: k.cfg.NodeIP},
			{Type: v1.NodeHostName, Address: k.cfg.NodeName},
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(k.apiPort())}},
		NodeInfo:        k.nodeInfo(ctx, hostname),
		Images:          k.nodeImages(ctx),
	}
	now := metav1.Now()
	cond := func(t v1.NodeConditionType, pressure bool, okReason, okMsg, badReason, badMsg string) v1.NodeCondition {
		c := v1.NodeCondition{Type: t, Status: v1.ConditionFalse, Reason: okReason, Message: okMsg, LastHeartbeatTime: now, LastTransitionTime: now}
		if pressure {
			c.Status, c.Reason, c.Message = v1.ConditionTrue, badReason, badMsg
		}
		return c
	}
	mem := meminfo()
	diskLow := fs.Blocks > 0 && fs.Bavail*100/fs.Blocks < diskPressurePercent
	readyErr := k.runtimeReady(ctx)
	ready := cond(v1.NodeReady, readyErr == nil, "KubeletNotReady", "", "KubeletReady", "kubelet is posting ready status")
	if readyErr != nil {
		ready.Message = readyErr.Error()
	}
	st.Conditions = []v1.NodeCondition{
		cond(v1.NodeMemoryPressure, mem["MemAvailable"] < memoryPressureBytes, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
		cond(v1.NodeDiskPressure, diskLow, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"),
		cond(v1.NodePIDPressure, pidsRemaining() < pidPressureRemaining, "KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
		ready,
	}
	if old != nil {
		for i, c := range st.Conditions {
			for _, o := range old.Status.Conditions {
				if o.Type == c.Type && o.Status == c.Status {
					st.Conditions[i].LastTransitionTime = o.LastTransitionTime
				}
			}
		}
	}
	return st
}

// runtimeReady reports why the node cannot run pods, if it cannot: the runtime is down,
// or its network is not ready (no pod CIDR yet).
func (k *Kubelet) runtimeReady(ctx context.Context) error {
	st, err := k.runtime.Status(ctx, false)
	if err != nil {
		return fmt.Errorf("container runtime is down: %v", err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if !c.Status {
			return fmt.Errorf("container runtime %s is not ready: %s: %s", strings.ToLower(c.Type), c.Reason, c.Message)
		}
	}
	return nil
}

func (k *Kubelet) apiPort() int {
	if k.api == nil || k.api.Addr() == nil {
		return 0
	}
	return k.api.Addr().(*net.TCPAddr).Port
}

func (k *Kubelet) nodeInfo(ctx context.Context, hostname string) v1.NodeSystemInfo {
	info := v1.NodeSystemInfo{
		MachineID: readTrim("/etc/machine-id"), SystemUUID: readTrim("/sys/class/dmi/id/product_uuid"),
		BootID: readTrim("/proc/sys/kernel/random/boot_id"), KernelVersion: readTrim("/proc/sys/kernel/osrelease"),
		OSImage: osImage(), OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
		KubeletVersion: Version,
	}
	if info.SystemUUID == "" {
		info.SystemUUID = info.MachineID
	}
	if v, err := k.runtime.Version(ctx, "v1"); err == nil {
		info.ContainerRuntimeVersion = v.RuntimeName + "://" + v.RuntimeVersion
	}
	return info
}

// nodeImages lists the largest images on the node, as the kubelet reports them (at most 50).
func (k *Kubelet) nodeImages(ctx context.Context) []v1.ContainerImage {
	imgs, err := k.images.ListImages(ctx, nil)
	if err != nil {
		return nil
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Size > imgs[j].Size })
	var out []v1.ContainerImage
	for _, img := range imgs[:min(len(imgs), 50)] {
		names := append(append([]string{}, img.RepoDigests...), img.RepoTags...)
		if len(names) == 0 {
			continue
		}
		out = append(out, v1.ContainerImage{Names: names, SizeBytes: int64(img.Size)})
	}
	return out
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func osImage() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// meminfo reads /proc/meminfo in bytes.
func meminfo() map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		key, rest, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(fields[0], 10, 64)
		if len(fields) > 1 && fields[1] == "kB" {
			n <<= 10
		}
		out[key] = n
	}
	return out
}

func pidsRemaining() int {
	max, err := strconv.Atoi(readTrim("/proc/sys/kernel/pid_max"))
	if err != nil {
		return pidPressureRemaining
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return pidPressureRemaining
	}
	return max - len(entries)
}

// renewLease keeps the node's Lease in kube-node-lease fresh, owned by the Node.
func (k *Kubelet) renewLease(ctx context.Context) {
	setOwner := func(l *coordinationv1.Lease) error {
		if len(l.OwnerReferences) > 0 {
			return nil
		}
		node, err := k.nodeLister.Get(k.cfg.NodeName)
		if err != nil {
			return nil // the next renewal sets it
		}
		l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		return nil
	}
	duration := int32(4 * k.cfg.LeaseInterval / time.Second)
	lease.NewController(clock.RealClock{}, k.client, k.cfg.NodeName, max(duration, 1), nil, k.cfg.LeaseInterval,
		k.cfg.NodeName, nodeLeaseNamespace, setOwner).Run(ctx)
}

// nodeChanged hands a newly assigned pod CIDR to the runtime, which configures pod
// networking from it.
func (k *Kubelet) nodeChanged(ctx context.Context, node *v1.Node) {
	if node.Spec.PodCIDR == "" {
		return
	}
	k.mu.Lock()
	same := k.podCIDR == node.Spec.PodCIDR
	k.mu.Unlock()
	if same {
		return
	}
	cidrs := strings.Join(append([]string{node.Spec.PodCIDR}, without(node.Spec.PodCIDRs, node.Spec.PodCIDR)...), ",")
	if err := k.runtime.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidrs}}); err != nil {
		k.log.Error("handing the pod CIDR to the runtime", "cidr", cidrs, "err", err)
		return
	}
	k.mu.Lock()
	k.podCIDR = node.Spec.PodCIDR
	k.mu.Unlock()
	k.log.Info("pod CIDR handed to the runtime", "cidr", cidrs)
	go func() {
		if err := k.updateNodeStatus(ctx, false); err != nil {
			k.log.Warn("updating node status", "err", err)
		}
	}()
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// selfSignedCert makes a serving certificate for the kubelet API when none is configured.
func selfSignedCert(nodeName, nodeIP string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: nodeName + "@" + strconv.FormatInt(time.Now().Unix(), 10)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{nodeName},
	}
	if ip := net.ParseIP(nodeIP); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
