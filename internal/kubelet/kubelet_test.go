package kubelet

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "alpha", "B": "beta", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "alpha"},
		{"$(A)-$(B)", "alpha-beta"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$$", "$"},
		{"cost: $5", "cost: $5"},
		{"$(EMPTY)x", "x"},
		{"$(A", "$(A"},
		{"trailing $", "trailing $"},
	} {
		if got := expand(tc.in, lookup); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPodPhase(t *testing.T) {
	running := v1.ContainerStatus{State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}
	ok := v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0}}}
	failed := v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 2}}}
	waiting := v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	backoff := v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1}}}
	for _, tc := range []struct {
		name        string
		policy      v1.RestartPolicy
		statuses    []v1.ContainerStatus
		initialized bool
		initFailed  bool
		want        v1.PodPhase
	}{
		{"creating", v1.RestartPolicyAlways, []v1.ContainerStatus{waiting}, true, false, v1.PodPending},
		{"one running, one creating", v1.RestartPolicyAlways, []v1.ContainerStatus{running, waiting}, true, false, v1.PodPending},
		{"running", v1.RestartPolicyAlways, []v1.ContainerStatus{running, ok}, true, false, v1.PodRunning},
		{"crash looping", v1.RestartPolicyAlways, []v1.ContainerStatus{backoff}, true, false, v1.PodRunning},
		{"exited, will restart", v1.RestartPolicyAlways, []v1.ContainerStatus{ok}, true, false, v1.PodRunning},
		{"completed", v1.RestartPolicyNever, []v1.ContainerStatus{ok, ok}, true, false, v1.PodSucceeded},
		{"one failed", v1.RestartPolicyNever, []v1.ContainerStatus{ok, failed}, true, false, v1.PodFailed},
		{"on failure restarts", v1.RestartPolicyOnFailure, []v1.ContainerStatus{failed}, true, false, v1.PodRunning},
		{"on failure succeeded", v1.RestartPolicyOnFailure, []v1.ContainerStatus{ok}, true, false, v1.PodSucceeded},
		{"initializing", v1.RestartPolicyAlways, []v1.ContainerStatus{waiting}, false, false, v1.PodPending},
		{"init failed", v1.RestartPolicyNever, []v1.ContainerStatus{waiting}, false, true, v1.PodFailed},
	} {
		pod := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: tc.policy}}
		if got := podPhase(pod, v1.PodStatus{ContainerStatuses: tc.statuses}, tc.initialized, tc.initFailed); got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestRegistryHost(t *testing.T) {
	for image, want := range map[string]string{
		"busybox":                       "docker.io",
		"library/busybox:1":             "docker.io",
		"registry.example.com/app:1":    "registry.example.com",
		"localhost/app":                 "localhost",
		"127.0.0.1:5000/test/busybox:1": "127.0.0.1:5000",
	} {
		if got := registryHost(image); got != want {
			t.Errorf("registryHost(%q) = %q, want %q", image, got, want)
		}
	}
	for key, want := range map[string]string{
		"https://index.docker.io/v1/": "docker.io",
		"127.0.0.1:5000":              "127.0.0.1:5000",
		"http://reg.local/v2/":        "reg.local",
	} {
		if got := normalizeRegistry(key); got != want {
			t.Errorf("normalizeRegistry(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestDNSConfig(t *testing.T) {
	k := &Kubelet{cfg: Config{ClusterDNS: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"}}
	cfg := k.dnsConfig(pod)
	if !slices.Equal(cfg.Servers, []string{"10.96.0.10"}) || !slices.Equal(cfg.Options, []string{"ndots:5"}) ||
		len(cfg.Searches) < 3 || cfg.Searches[0] != "shop.svc.cluster.local" || cfg.Searches[2] != "cluster.local" {
		t.Errorf("ClusterFirst: %+v", cfg)
	}

	two := "2"
	pod.Spec.DNSPolicy = v1.DNSNone
	pod.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"example.com"},
		Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &two}}}
	cfg = k.dnsConfig(pod)
	if !slices.Equal(cfg.Servers, []string{"1.1.1.1"}) || !slices.Equal(cfg.Searches, []string{"example.com"}) || !slices.Equal(cfg.Options, []string{"ndots:2"}) {
		t.Errorf("None: %+v", cfg)
	}

	// Without cluster DNS, ClusterFirst falls back to the node's resolvers.
	k.cfg.ClusterDNS = nil
	pod.Spec.DNSPolicy, pod.Spec.DNSConfig = v1.DNSClusterFirst, nil
	host := readHostResolv()
	if cfg = k.dnsConfig(pod); !slices.Equal(cfg.Servers, host.servers[:min(len(host.servers), 3)]) {
		t.Errorf("ClusterFirst without cluster DNS: %+v, want the host's %v", cfg, host.servers)
	}
}
