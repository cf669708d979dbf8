package kubelet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/kubelet/prober"
	"github.com/nanokube/nanokube/internal/kubelet/volume"
)

// startContainer pulls the image, creates and starts container c in the pod's sandbox and
// runs its postStart hook. Failures are recorded as the container's waiting reason and as
// events, the way `kubectl describe` shows them.
func (k *Kubelet) startContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, rt *podRuntime, sandboxID string,
	hostPaths map[string]string, withIPs *v1.Pod) error {
	ref := containerRef(pod, c)
	imageRef, err := k.ensureImage(ctx, pod, c)
	if err != nil {
		return err
	}
	startFailed := func(reason string, err error) error {
		k.reasons.set(pod.UID, c.Name, reason, err.Error())
		k.recorder.Eventf(ref, v1.EventTypeWarning, "Failed", "Error: %v", err)
		k.backoff.pull.next(backoffKey(pod.UID, "start/"+c.Name), time.Now())
		return err
	}
	cfg, err := k.containerConfig(ctx, withIPs, c, rt.nextAttempt(c.Name), hostPaths, imageRef)
	if err != nil {
		return startFailed("CreateContainerConfigError", err)
	}
	sbCfg, err := k.sandboxConfig(pod, rt.sandboxes[0].Metadata.Attempt)
	if err != nil {
		return startFailed("CreateContainerConfigError", err)
	}
	id, err := k.runtime.CreateContainer(ctx, sandboxID, cfg, sbCfg)
	if err != nil {
		return startFailed("CreateContainerError", err)
	}
	k.recorder.Eventf(ref, v1.EventTypeNormal, "Created", "Created container %s", c.Name)
	if err := k.runtime.StartContainer(ctx, id); err != nil {
		_ = k.runtime.RemoveContainer(ctx, id)
		return startFailed("RunContainerError", err)
	}
	k.recorder.Eventf(ref, v1.EventTypeNormal, "Started", "Started container %s", c.Name)
	k.reasons.clear(pod.UID, c.Name)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if err := prober.RunHook(ctx, k.runtime, c.Lifecycle.PostStart, pod, c, sandboxIPOf(withIPs), id); err != nil {
			k.recorder.Eventf(ref, v1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %v", err)
			k.killContainer(ctx, pod, c, id, gracePeriod(pod), "FailedPostStartHook")
			return err
		}
	}
	return nil
}

func sandboxIPOf(pod *v1.Pod) string { return pod.Status.PodIP }

// sandboxConfig is the CRI config of the pod's sandbox.
func (k *Kubelet) sandboxConfig(pod *v1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	labels := map[string]string{}
	for key, val := range pod.Labels {
		labels[key] = val
	}
	labels[labelPodName], labels[labelPodNamespace], labels[labelPodUID] = pod.Name, pod.Namespace, string(pod.UID)
	annotations := map[string]string{}
	for key, val := range pod.Annotations {
		annotations[key] = val
	}
	annotations[annotationGracePeriod] = strconv.FormatInt(gracePeriod(pod), 10)
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		LogDirectory: filepath.Join(k.cfg.PodLogsDir, podLogDirName(pod.Namespace, pod.Name, pod.UID)),
		Labels:       labels,
		Annotations:  annotations,
		DnsConfig:    k.dnsConfig(pod),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: k.cgroupParent(pod),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaceOptions(pod),
				Privileged:       anyPrivileged(pod),
			},
		},
	}
	if !pod.Spec.HostNetwork {
		cfg.Hostname = podHostname(pod)
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		lsc := cfg.Linux.SecurityContext
		if sc.RunAsUser != nil {
			lsc.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
		}
		if sc.RunAsGroup != nil {
			lsc.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
		}
		lsc.SupplementalGroups = sc.SupplementalGroups
		if len(sc.Sysctls) > 0 {
			cfg.Linux.Sysctls = map[string]string{}
			for _, s := range sc.Sysctls {
				cfg.Linux.Sysctls[s.Name] = s.Value
			}
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{
				Protocol: protocol(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
		}
	}
	return cfg, nil
}

func protocol(p v1.Protocol) runtimeapi.Protocol {
	switch p {
	case v1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case v1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

func podHostname(pod *v1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

func namespaceOptions(pod *v1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}

func anyPrivileged(pod *v1.Pod) bool {
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				return true
			}
		}
	}
	return false
}

// cgroupParent places the pod under its QoS class' cgroup, as the kubelet's cgroupfs driver
// does: <root>/pod<uid> for Guaranteed, <root>/burstable|besteffort/pod<uid> otherwise.
func (k *Kubelet) cgroupParent(pod *v1.Pod) string {
	switch pod.Status.QOSClass {
	case v1.PodQOSGuaranteed:
		return k.cfg.CgroupRoot + "/pod" + string(pod.UID)
	case v1.PodQOSBurstable:
		return k.cfg.CgroupRoot + "/burstable/pod" + string(pod.UID)
	}
	return k.cfg.CgroupRoot + "/besteffort/pod" + string(pod.UID)
}

// containerConfig is the CRI config of container c; pod carries the IPs the sandbox got.
func (k *Kubelet) containerConfig(ctx context.Context, pod *v1.Pod, c *v1.Container, attempt uint32,
	hostPaths map[string]string, imageRef string) (*runtimeapi.ContainerConfig, error) {
	env, err := k.containerEnv(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	lookup := envLookup(env)
	command := make([]string, len(c.Command))
	for i, s := range c.Command {
		command[i] = expand(s, lookup)
	}
	args := make([]string, len(c.Args))
	for i, s := range c.Args {
		args[i] = expand(s, lookup)
	}
	mounts, err := volume.Mounts(c, hostPaths)
	if err != nil {
		return nil, err
	}
	podDir := filepath.Join(k.cfg.RootDir, "pods", string(pod.UID))
	if !pod.Spec.HostNetwork {
		hosts, err := k.writeHostsFile(pod, podDir)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: hosts})
	}
	annotations := map[string]string{
		annotationRestartCount: itoa(attempt),
		annotationImage:        c.Image,
	}
	if c.TerminationMessagePath != "" {
		f, err := terminationLogFile(podDir, c.Name)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: f})
		annotations[annotationTermination] = c.TerminationMessagePath
		annotations[annotationTerminationLog] = f
	}
	security, err := k.securityContext(ctx, pod, c, imageRef)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:    &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: c.Image},
		Command:  command, Args: args, WorkingDir: c.WorkingDir, Envs: env, Mounts: mounts,
		Labels: map[string]string{
			labelPodName: pod.Name, labelPodNamespace: pod.Namespace, labelPodUID: string(pod.UID), labelContainerName: c.Name,
		},
		Annotations: annotations,
		LogPath:     filepath.Join(c.Name, itoa(attempt)+".log"),
		Stdin:       c.Stdin, StdinOnce: c.StdinOnce, Tty: c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       k.resources(pod, c),
			SecurityContext: security,
		},
	}, nil
}

func terminationLogFile(podDir, container string) (string, error) {
	dir := filepath.Join(podDir, "containers", container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	f := filepath.Join(dir, hex.EncodeToString(b))
	if err := os.WriteFile(f, nil, 0o666); err != nil {
		return "", err
	}
	return f, os.Chmod(f, 0o666)
}

// resources maps requests and limits to cgroup settings the way the kubelet does.
func (k *Kubelet) resources(pod *v1.Pod, c *v1.Container) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{CpuShares: 2}
	if q, ok := c.Resources.Requests[v1.ResourceCPU]; ok {
		r.CpuShares = max(q.MilliValue()*1024/1000, 2)
	} else if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		r.CpuShares = max(q.MilliValue()*1024/1000, 2)
	}
	if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		r.CpuPeriod = 100000
		r.CpuQuota = max(q.MilliValue()*100000/1000, 1000)
	}
	if q, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		// No swap beyond the limit: the container is OOM-killed at it, as Kubernetes' NoSwap.
		r.MemoryLimitInBytes, r.MemorySwapLimitInBytes = q.Value(), q.Value()
	}
	switch pod.Status.QOSClass {
	case v1.PodQOSGuaranteed:
		r.OomScoreAdj = -997
	case v1.PodQOSBestEffort, "":
		r.OomScoreAdj = 1000
	default:
		capacity := int64(meminfo()["MemTotal"])
		req := c.Resources.Requests.Memory().Value()
		adj := int64(1000)
		if capacity > 0 {
			adj = 1000 - 1000*req/capacity
		}
		r.OomScoreAdj = min(max(adj, 2), 999)
	}
	return r
}

// Paths Kubernetes masks and makes read-only in unprivileged containers.
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// securityContext merges the pod's and the container's security contexts (the container's
// wins) into CRI terms, and enforces runAsNonRoot against the image's user.
func (k *Kubelet) securityContext(ctx context.Context, pod *v1.Pod, c *v1.Container, imageRef string) (*runtimeapi.LinuxContainerSecurityContext, error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &v1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &v1.SecurityContext{}
	}
	out := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions:   namespaceOptions(pod),
		SupplementalGroups: psc.SupplementalGroups,
		MaskedPaths:        defaultMaskedPaths,
		ReadonlyPaths:      defaultReadonlyPaths,
	}
	if psc.FSGroup != nil {
		out.SupplementalGroups = append(out.SupplementalGroups, *psc.FSGroup)
	}
	user, group, nonRoot := psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot
	if csc.RunAsUser != nil {
		user = csc.RunAsUser
	}
	if csc.RunAsGroup != nil {
		group = csc.RunAsGroup
	}
	if csc.RunAsNonRoot != nil {
		nonRoot = csc.RunAsNonRoot
	}
	if user != nil {
		out.RunAsUser = &runtimeapi.Int64Value{Value: *user}
	}
	if group != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *group}
	}
	if csc.Privileged != nil && *csc.Privileged {
		out.Privileged = true
		out.MaskedPaths, out.ReadonlyPaths = nil, nil
	}
	if csc.ProcMount != nil && *csc.ProcMount == v1.UnmaskedProcMount {
		out.MaskedPaths, out.ReadonlyPaths = nil, nil
	}
	if csc.ReadOnlyRootFilesystem != nil {
		out.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		out.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if caps := csc.Capabilities; caps != nil {
		out.Capabilities = &runtimeapi.Capability{}
		for _, a := range caps.Add {
			out.Capabilities.AddCapabilities = append(out.Capabilities.AddCapabilities, string(a))
		}
		for _, d := range caps.Drop {
			out.Capabilities.DropCapabilities = append(out.Capabilities.DropCapabilities, string(d))
		}
	}
	seccomp := psc.SeccompProfile
	if csc.SeccompProfile != nil {
		seccomp = csc.SeccompProfile
	}
	if seccomp != nil {
		switch seccomp.Type {
		case v1.SeccompProfileTypeRuntimeDefault:
			out.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		case v1.SeccompProfileTypeUnconfined:
			out.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
		case v1.SeccompProfileTypeLocalhost:
			if seccomp.LocalhostProfile != nil {
				out.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost,
					LocalhostRef: filepath.Join(k.cfg.RootDir, "seccomp", *seccomp.LocalhostProfile)}
			}
		}
	}
	if nonRoot != nil && *nonRoot {
		if err := k.verifyNonRoot(ctx, pod, c, user, imageRef); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (k *Kubelet) verifyNonRoot(ctx context.Context, pod *v1.Pod, c *v1.Container, user *int64, imageRef string) error {
	where := fmt.Sprintf("(pod: %q, container: %s)", pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")", c.Name)
	if user != nil {
		if *user == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy %s", where)
		}
		return nil
	}
	st, err := k.images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: imageRef}, false)
	if err != nil || st.GetImage() == nil {
		return fmt.Errorf("image %s: cannot verify the user is non-root: %v", c.Image, err)
	}
	img := st.GetImage()
	switch {
	case img.Uid != nil && img.Uid.Value == 0, img.Uid == nil && (img.Username == "" || img.Username == "root"):
		return fmt.Errorf("container has runAsNonRoot and image will run as root %s", where)
	case img.Uid == nil:
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root %s", img.Username, where)
	}
	return nil
}
