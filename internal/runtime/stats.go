package runtime

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/network"
)

// Stats come from cgroupfs: v1 controllers under /sys/fs/cgroup/<controller>/<path>, or the
// unified v2 tree when the machine has only that. A cgroup that is gone (the container has
// exited and was deleted) reads as zero usage.

const cgroupRoot = "/sys/fs/cgroup"

func cgroupV2Only() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

func readUint(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

// readKeyed parses "key value" lines (memory.stat, cpu.stat).
func readKeyed(path string) map[string]uint64 {
	out := map[string]uint64{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// cpuSample is a cumulative CPU reading, kept to derive a rate at the next one.
type cpuSample struct {
	at    int64
	usage uint64
}

type cpuRates struct {
	mu   sync.Mutex
	last map[string]cpuSample
}

// rate records usage for key and returns the nanocores used since the previous reading.
func (c *cpuRates) rate(key string, at int64, usage uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	prev, ok := c.last[key]
	c.last[key] = cpuSample{at, usage}
	if !ok || at <= prev.at || usage < prev.usage {
		return 0
	}
	return uint64(float64(usage-prev.usage) / float64(at-prev.at) * 1e9)
}

func (c *cpuRates) forget(key string) {
	c.mu.Lock()
	delete(c.last, key)
	c.mu.Unlock()
}

// cgroupCPU returns cumulative CPU time in nanoseconds.
func cgroupCPU(path string) (uint64, bool) {
	if cgroupV2Only() {
		st := readKeyed(filepath.Join(cgroupRoot, path, "cpu.stat"))
		u, ok := st["usage_usec"]
		return u * 1000, ok
	}
	return readUint(filepath.Join(cgroupRoot, "cpuacct", path, "cpuacct.usage"))
}

func cgroupMemory(path string, now int64) *runtimeapi.MemoryUsage {
	m := &runtimeapi.MemoryUsage{Timestamp: now}
	var usage, limit, inactive, rss, faults, majFaults uint64
	if cgroupV2Only() {
		dir := filepath.Join(cgroupRoot, path)
		usage, _ = readUint(filepath.Join(dir, "memory.current"))
		limit, _ = readUint(filepath.Join(dir, "memory.max"))
		st := readKeyed(filepath.Join(dir, "memory.stat"))
		inactive, rss, faults, majFaults = st["inactive_file"], st["anon"], st["pgfault"], st["pgmajfault"]
	} else {
		dir := filepath.Join(cgroupRoot, "memory", path)
		var ok bool
		if usage, ok = readUint(filepath.Join(dir, "memory.usage_in_bytes")); !ok {
			return m
		}
		limit, _ = readUint(filepath.Join(dir, "memory.limit_in_bytes"))
		st := readKeyed(filepath.Join(dir, "memory.stat"))
		inactive, rss, faults, majFaults = st["total_inactive_file"], st["total_rss"], st["total_pgfault"], st["total_pgmajfault"]
	}
	ws := usage
	if inactive < ws {
		ws -= inactive
	} else {
		ws = 0
	}
	m.UsageBytes = &runtimeapi.UInt64Value{Value: usage}
	m.WorkingSetBytes = &runtimeapi.UInt64Value{Value: ws}
	m.RssBytes = &runtimeapi.UInt64Value{Value: rss}
	m.PageFaults = &runtimeapi.UInt64Value{Value: faults}
	m.MajorPageFaults = &runtimeapi.UInt64Value{Value: majFaults}
	// An unlimited v1 cgroup reports a huge page-aligned number; no limit, no "available".
	if limit > 0 && limit < 1<<62 {
		avail := uint64(0)
		if limit > ws {
			avail = limit - ws
		}
		m.AvailableBytes = &runtimeapi.UInt64Value{Value: avail}
	}
	return m
}

func cgroupProcesses(path string) uint64 {
	if cgroupV2Only() {
		n, _ := readUint(filepath.Join(cgroupRoot, path, "pids.current"))
		return n
	}
	n, _ := readUint(filepath.Join(cgroupRoot, "pids", path, "pids.current"))
	return n
}

// dirUsage sums the bytes and inodes under dir without following symlinks or mounts.
func dirUsage(dir string) (bytesUsed, inodes uint64) {
	var root unix.Stat_t
	if unix.Lstat(dir, &root) != nil {
		return 0, 0
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		if st.Dev != root.Dev {
			return filepath.SkipDir
		}
		inodes++
		bytesUsed += uint64(st.Blocks) * 512
		return nil
	})
	return bytesUsed, inodes
}

func (r *Runtime) containerCgroup(c *ctr) string {
	s, err := r.getSandbox(c.SandboxID)
	if err != nil {
		return ""
	}
	return s.Cgroup + "/" + c.ID
}

func (r *Runtime) containerStats(c *ctr) *runtimeapi.ContainerStats {
	now := time.Now().UnixNano()
	st := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: c.ID, Metadata: c.config.GetMetadata(), Labels: c.config.GetLabels(), Annotations: c.config.GetAnnotations(),
		},
		Cpu:    &runtimeapi.CpuUsage{Timestamp: now},
		Memory: &runtimeapi.MemoryUsage{Timestamp: now},
	}
	if cg := r.containerCgroup(c); cg != "" {
		if usage, ok := cgroupCPU(cg); ok {
			st.Cpu.UsageCoreNanoSeconds = &runtimeapi.UInt64Value{Value: usage}
			st.Cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: r.cpu.rate(c.ID, now, usage)}
		}
		st.Memory = cgroupMemory(cg, now)
	}
	used, inodes := dirUsage(filepath.Join(c.dir, "upper"))
	st.WritableLayer = &runtimeapi.FilesystemUsage{
		Timestamp: now, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: filepath.Join(r.cfg.Root, "containers")},
		UsedBytes: &runtimeapi.UInt64Value{Value: used}, InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}
	return st
}

// ContainerStats implements CRI.
func (r *Runtime) ContainerStats(_ context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: r.containerStats(c)}, nil
}

// ListContainerStats implements CRI.
func (r *Runtime) ListContainerStats(_ context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListContainerStatsResponse{}
	for _, c := range r.matchingContainers(f.GetId(), f.GetPodSandboxId(), f.GetLabelSelector()) {
		resp.Stats = append(resp.Stats, r.containerStats(c))
	}
	return resp, nil
}

func (r *Runtime) sandboxStats(s *sandbox) *runtimeapi.PodSandboxStats {
	now := time.Now().UnixNano()
	lin := &runtimeapi.LinuxPodSandboxStats{
		Cpu:     &runtimeapi.CpuUsage{Timestamp: now},
		Memory:  cgroupMemory(s.Cgroup, now),
		Process: &runtimeapi.ProcessUsage{Timestamp: now, ProcessCount: &runtimeapi.UInt64Value{Value: cgroupProcesses(s.Cgroup)}},
	}
	if usage, ok := cgroupCPU(s.Cgroup); ok {
		lin.Cpu.UsageCoreNanoSeconds = &runtimeapi.UInt64Value{Value: usage}
		lin.Cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: r.cpu.rate("sandbox/"+s.ID, now, usage)}
	}
	if ns := s.nsPath(network.NetNS); ns != "" {
		if ifaces, err := netnsInterfaces(ns); err == nil {
			lin.Network = &runtimeapi.NetworkUsage{Timestamp: now}
			for _, i := range ifaces {
				i.Name = strings.TrimSpace(i.Name)
				if i.Name == "lo" {
					continue
				}
				if lin.Network.DefaultInterface == nil || i.Name == "eth0" {
					lin.Network.DefaultInterface = i
				}
				lin.Network.Interfaces = append(lin.Network.Interfaces, i)
			}
		}
	}
	for _, c := range r.sandboxContainers(s.ID) {
		lin.Containers = append(lin.Containers, r.containerStats(c))
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: s.ID, Metadata: s.config.GetMetadata(), Labels: s.config.GetLabels(), Annotations: s.config.GetAnnotations(),
		},
		Linux: lin,
	}
}

// netnsInterfaces reads /proc/net/dev as seen from the network namespace at nsPath, on a
// thread that entered it and is then retired.
func netnsInterfaces(nsPath string) ([]*runtimeapi.NetworkInterfaceUsage, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		ch <- result{b, err}
	}()
	res := <-ch
	if res.err != nil {
		return nil, res.err
	}
	var out []*runtimeapi.NetworkInterfaceUsage
	for _, line := range strings.Split(string(res.b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 12 {
			continue
		}
		n := func(i int) *runtimeapi.UInt64Value {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			return &runtimeapi.UInt64Value{Value: v}
		}
		out = append(out, &runtimeapi.NetworkInterfaceUsage{Name: strings.TrimSpace(name), RxBytes: n(0), RxErrors: n(2), TxBytes: n(8), TxErrors: n(10)})
	}
	return out, nil
}

// PodSandboxStats implements CRI.
func (r *Runtime) PodSandboxStats(_ context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	s, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: r.sandboxStats(s)}, nil
}

// ListPodSandboxStats implements CRI.
func (r *Runtime) ListPodSandboxStats(_ context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	r.mu.Lock()
	all := make([]*sandbox, 0, len(r.sandboxes))
	for _, s := range r.sandboxes {
		all = append(all, s)
	}
	r.mu.Unlock()
	resp := &runtimeapi.ListPodSandboxStatsResponse{}
	for _, s := range all {
		if f.GetId() != "" && !strings.HasPrefix(s.ID, f.GetId()) {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), s.config.GetLabels()) {
			continue
		}
		resp.Stats = append(resp.Stats, r.sandboxStats(s))
	}
	return resp, nil
}
