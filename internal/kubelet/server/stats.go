package server

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	kubelettypes "k8s.io/kubelet/pkg/types"
)

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.summary(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, sum)
}

// cpuSample is a cumulative CPU reading kept to derive a rate from the next one.
type cpuSample struct {
	at    int64 // unix nanoseconds
	usage uint64
}

// summary builds the node's and its running pods' stats. Pods are the ready sandboxes (the
// newest per pod UID); their containers the running ones.
func (s *Server) summary(ctx context.Context) (*statsv1alpha1.Summary, error) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	// This round's CPU samples replace the last round's, so those of what is gone are dropped.
	seen := map[string]cpuSample{}

	rt := s.host.Runtime()
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		return nil, err
	}
	sandboxStats, err := rt.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{})
	if err != nil {
		return nil, err
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return nil, err
	}
	containerStats, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
	if err != nil {
		return nil, err
	}

	newest := map[string]*runtimeapi.PodSandbox{} // by pod UID
	for _, sb := range sandboxes {
		uid := sb.GetMetadata().GetUid()
		if old, ok := newest[uid]; !ok || sb.CreatedAt > old.CreatedAt {
			newest[uid] = sb
		}
	}
	sbStats := map[string]*runtimeapi.PodSandboxStats{}
	for _, st := range sandboxStats {
		sbStats[st.GetAttributes().GetId()] = st
	}
	cStats := map[string]*runtimeapi.ContainerStats{}
	for _, st := range containerStats {
		cStats[st.GetAttributes().GetId()] = st
	}
	byPod := map[string][]*runtimeapi.Container{} // by sandbox ID
	for _, c := range containers {
		byPod[c.PodSandboxId] = append(byPod[c.PodSandboxId], c)
	}

	sum := &statsv1alpha1.Summary{Node: s.nodeStats(seen), Pods: []statsv1alpha1.PodStats{}}
	for _, sb := range sandboxes {
		if newest[sb.GetMetadata().GetUid()] != sb {
			continue
		}
		md := sb.GetMetadata()
		ps := statsv1alpha1.PodStats{
			PodRef:     statsv1alpha1.PodReference{Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid()},
			StartTime:  metav1.NewTime(time.Unix(0, sb.CreatedAt)),
			Containers: []statsv1alpha1.ContainerStats{},
		}
		if lin := sbStats[sb.Id].GetLinux(); lin != nil {
			ps.CPU = s.cpuStats(seen, "pod/"+sb.Id, lin.Cpu)
			ps.Memory = memoryStats(lin.Memory)
			ps.Network = networkStats(lin.Network)
			if n := lin.GetProcess().GetProcessCount(); n != nil {
				ps.ProcessStats = &statsv1alpha1.ProcessStats{ProcessCount: ptr(n.Value)}
			}
		}
		for _, c := range byPod[sb.Id] {
			name := c.GetLabels()[kubelettypes.KubernetesContainerNameLabel]
			if name == "" {
				name = c.GetMetadata().GetName()
			}
			cs := statsv1alpha1.ContainerStats{Name: name, StartTime: metav1.NewTime(time.Unix(0, c.CreatedAt))}
			if st := cStats[c.Id]; st != nil {
				cs.CPU = s.cpuStats(seen, c.Id, st.Cpu)
				cs.Memory = memoryStats(st.Memory)
				cs.Rootfs = fsUsage(st.WritableLayer)
			}
			ps.Containers = append(ps.Containers, cs)
		}
		sum.Pods = append(sum.Pods, ps)
	}
	s.cpu = seen
	return sum, nil
}

// rate records a cumulative CPU sample under key and returns the nanocores used since the
// previous round's sample, or nil without one.
func (s *Server) rate(seen map[string]cpuSample, key string, at int64, usage uint64) *uint64 {
	seen[key] = cpuSample{at, usage}
	prev, ok := s.cpu[key]
	if !ok || at <= prev.at || usage < prev.usage {
		return nil
	}
	return ptr(uint64(float64(usage-prev.usage) / float64(at-prev.at) * 1e9))
}

func (s *Server) cpuStats(seen map[string]cpuSample, key string, c *runtimeapi.CpuUsage) *statsv1alpha1.CPUStats {
	if c == nil {
		return nil
	}
	st := &statsv1alpha1.CPUStats{Time: metav1.NewTime(time.Unix(0, c.Timestamp))}
	if u := c.UsageCoreNanoSeconds; u != nil {
		st.UsageCoreNanoSeconds = ptr(u.Value)
		st.UsageNanoCores = s.rate(seen, key, c.Timestamp, u.Value)
	}
	return st
}

func memoryStats(m *runtimeapi.MemoryUsage) *statsv1alpha1.MemoryStats {
	if m == nil {
		return nil
	}
	val := func(v *runtimeapi.UInt64Value) *uint64 {
		if v == nil {
			return nil
		}
		return ptr(v.Value)
	}
	return &statsv1alpha1.MemoryStats{
		Time:            metav1.NewTime(time.Unix(0, m.Timestamp)),
		AvailableBytes:  val(m.AvailableBytes),
		UsageBytes:      val(m.UsageBytes),
		WorkingSetBytes: val(m.WorkingSetBytes),
		RSSBytes:        val(m.RssBytes),
		PageFaults:      val(m.PageFaults),
		MajorPageFaults: val(m.MajorPageFaults),
	}
}

func networkStats(n *runtimeapi.NetworkUsage) *statsv1alpha1.NetworkStats {
	if n == nil {
		return nil
	}
	iface := func(i *runtimeapi.NetworkInterfaceUsage) statsv1alpha1.InterfaceStats {
		return statsv1alpha1.InterfaceStats{Name: i.Name, RxBytes: ptr(i.GetRxBytes().GetValue()), RxErrors: ptr(i.GetRxErrors().GetValue()),
			TxBytes: ptr(i.GetTxBytes().GetValue()), TxErrors: ptr(i.GetTxErrors().GetValue())}
	}
	st := &statsv1alpha1.NetworkStats{Time: metav1.NewTime(time.Unix(0, n.Timestamp))}
	if n.DefaultInterface != nil {
		st.InterfaceStats = iface(n.DefaultInterface)
	}
	for _, i := range n.Interfaces {
		st.Interfaces = append(st.Interfaces, iface(i))
	}
	return st
}

func fsUsage(f *runtimeapi.FilesystemUsage) *statsv1alpha1.FsStats {
	if f == nil {
		return nil
	}
	st := &statsv1alpha1.FsStats{Time: metav1.NewTime(time.Unix(0, f.Timestamp))}
	if f.UsedBytes != nil {
		st.UsedBytes = ptr(f.UsedBytes.Value)
	}
	if f.InodesUsed != nil {
		st.InodesUsed = ptr(f.InodesUsed.Value)
	}
	return st
}

// nodeStats reads the machine's CPU and memory from /proc and its root filesystem with
// statfs; a figure that cannot be read is left out.
func (s *Server) nodeStats(seen map[string]cpuSample) statsv1alpha1.NodeStats {
	now := time.Now()
	ns := statsv1alpha1.NodeStats{NodeName: s.cfg.NodeName}
	if cpu, boot, ok := readProcStat(); ok {
		ns.StartTime = metav1.NewTime(boot)
		ns.CPU = &statsv1alpha1.CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: ptr(cpu),
			UsageNanoCores: s.rate(seen, "node", now.UnixNano(), cpu)}
	}
	if mem, ok := readMeminfo(); ok {
		usage := mem["MemTotal"] - mem["MemFree"]
		ws := usage - min(usage, mem["Inactive(file)"])
		// As the kubelet's eviction signal memory.available: capacity minus working set.
		ns.Memory = &statsv1alpha1.MemoryStats{Time: metav1.NewTime(now), UsageBytes: ptr(usage),
			WorkingSetBytes: ptr(ws), AvailableBytes: ptr(mem["MemTotal"] - ws), RSSBytes: ptr(mem["AnonPages"])}
	}
	var fs unix.Statfs_t
	if unix.Statfs("/", &fs) == nil {
		bs := uint64(fs.Bsize)
		ns.Fs = &statsv1alpha1.FsStats{Time: metav1.NewTime(now),
			CapacityBytes: ptr(fs.Blocks * bs), AvailableBytes: ptr(fs.Bavail * bs), UsedBytes: ptr((fs.Blocks - fs.Bfree) * bs),
			Inodes: ptr(fs.Files), InodesFree: ptr(fs.Ffree), InodesUsed: ptr(fs.Files - fs.Ffree)}
	}
	return ns
}

// userHZ is the unit of /proc/stat's CPU times, fixed at 100 by the kernel's ABI.
const userHZ = 100

// readProcStat returns the machine's cumulative busy CPU time in nanoseconds and its boot time.
func readProcStat() (busy uint64, boot time.Time, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, time.Time{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 9 && f[0] == "cpu":
			// user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				n, _ := strconv.ParseUint(f[i], 10, 64)
				busy += n
			}
			busy *= uint64(time.Second) / userHZ
			ok = true
		case len(f) == 2 && f[0] == "btime":
			if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				boot = time.Unix(n, 0)
			}
		}
	}
	return busy, boot, ok
}

// readMeminfo returns /proc/meminfo in bytes.
func readMeminfo() (map[string]uint64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, false
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out, out["MemTotal"] > 0
}

func ptr[T any](v T) *T { return &v }
