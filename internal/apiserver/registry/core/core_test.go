package core

import (
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// paths returns "type:path" for each error, sorted, for compact comparisons.
func paths(errs field.ErrorList) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = string(e.Type) + ":" + e.Field
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func validPod() *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}}}
	PodStrategy.Default(pod)
	return pod
}

func TestPodDefaults(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{
			{Name: "a", Image: "nginx", Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
				Resources:     corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": resource.MustParse("1")}}},
			{Name: "b", Image: "registry:5000/app:v1"},
			{Name: "c", Image: "busybox@sha256:abc"},
			{Name: "d", Image: "busybox:latest"},
		},
		Volumes: []corev1.Volume{{Name: "e"}, {Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}},
	}}
	PodStrategy.Default(pod)
	s := pod.Spec
	if s.RestartPolicy != corev1.RestartPolicyAlways || s.DNSPolicy != corev1.DNSClusterFirst || *s.TerminationGracePeriodSeconds != 30 ||
		s.SchedulerName != "default-scheduler" || s.SecurityContext == nil || !*s.EnableServiceLinks || s.ServiceAccountName != "" {
		t.Errorf("pod spec defaults: %+v", s)
	}
	for i, want := range []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullIfNotPresent, corev1.PullAlways} {
		if got := s.Containers[i].ImagePullPolicy; got != want {
			t.Errorf("container %d pull policy %s, want %s", i, got, want)
		}
	}
	c := s.Containers[0]
	if c.TerminationMessagePath != "/dev/termination-log" || c.TerminationMessagePolicy != corev1.TerminationMessageReadFile ||
		c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("container defaults: %+v", c)
	}
	p := c.LivenessProbe
	if p.TimeoutSeconds != 1 || p.PeriodSeconds != 10 || p.SuccessThreshold != 1 || p.FailureThreshold != 3 || p.HTTPGet.Path != "/" || p.HTTPGet.Scheme != "HTTP" {
		t.Errorf("probe defaults: %+v", p)
	}
	if q := c.Resources.Requests["cpu"]; q.String() != "1" {
		t.Errorf("requests not defaulted from limits: %v", c.Resources.Requests)
	}
	if s.Volumes[0].EmptyDir == nil || *s.Volumes[1].ConfigMap.DefaultMode != 0o644 {
		t.Errorf("volume defaults: %+v", s.Volumes)
	}

	// Templates get spec defaults but not the pod-only ones.
	tmpl := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "x",
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": resource.MustParse("1")}}}}}}
	DefaultPodTemplate(tmpl)
	if tmpl.Spec.EnableServiceLinks != nil || tmpl.Spec.Containers[0].Resources.Requests != nil || tmpl.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("template defaults: %+v", tmpl.Spec)
	}
}

func TestPodPrepareForCreate(t *testing.T) {
	cpu := corev1.ResourceList{"cpu": resource.MustParse("1"), "memory": resource.MustParse("1Gi")}
	for name, tc := range map[string]struct {
		res  corev1.ResourceRequirements
		want corev1.PodQOSClass
	}{
		"besteffort": {corev1.ResourceRequirements{}, corev1.PodQOSBestEffort},
		"guaranteed": {corev1.ResourceRequirements{Limits: cpu}, corev1.PodQOSGuaranteed},
		"burstable":  {corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": resource.MustParse("1")}}, corev1.PodQOSBurstable},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "x", Resources: tc.res}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"}}
		PodStrategy.PrepareForCreate(pod)
		if pod.Status.Phase != corev1.PodPending || pod.Status.PodIP != "" || pod.Status.QOSClass != tc.want {
			t.Errorf("%s: status %+v, want QOS %s", name, pod.Status, tc.want)
		}
		if tc.res.Requests == nil && pod.Spec.Containers[0].Resources.Requests != nil {
			t.Errorf("%s: PrepareForCreate changed the spec", name)
		}
	}
}

func TestPodValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*corev1.Pod)
		want   []string
	}{
		"valid":          {func(*corev1.Pod) {}, nil},
		"no containers":  {func(p *corev1.Pod) { p.Spec.Containers = nil }, []string{"FieldValueRequired:spec.containers"}},
		"no image":       {func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, []string{"FieldValueRequired:spec.containers[0].image"}},
		"bad name":       {func(p *corev1.Pod) { p.Spec.Containers[0].Name = "App_1" }, []string{"FieldValueInvalid:spec.containers[0].name"}},
		"duplicate name": {func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) }, []string{"FieldValueDuplicate:spec.containers[1].name"}},
		"bad port": {func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000, Protocol: "TCP"}, {ContainerPort: 80, Protocol: "ICMP"}}
		}, []string{"FieldValueInvalid:spec.containers[0].ports[0].containerPort", "FieldValueNotSupported:spec.containers[0].ports[1].protocol"}},
		"restart policy": {func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []string{"FieldValueNotSupported:spec.restartPolicy"}},
		"dns policy":     {func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }, []string{"FieldValueNotSupported:spec.dnsPolicy"}},
		"volumes": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{
				{Name: "a", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "a", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}, HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
				{Name: "c"},
			}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "a", MountPath: "/a"}, {Name: "missing", MountPath: "/m"}}
		}, []string{"FieldValueDuplicate:spec.volumes[1].name", "FieldValueForbidden:spec.volumes[1].emptyDir",
			"FieldValueNotFound:spec.containers[0].volumeMounts[1].name", "FieldValueRequired:spec.volumes[2]"}},
		"requests over limits": {func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": resource.MustParse("2")},
				Limits: corev1.ResourceList{"cpu": resource.MustParse("1")}}
		}, []string{"FieldValueInvalid:spec.containers[0].resources.requests[cpu]"}},
	} {
		pod := validPod()
		tc.mutate(pod)
		if got := paths(PodStrategy.Validate(pod)); !equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

func TestPodValidateUpdate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*corev1.Pod)
		want   []string
	}{
		"image":        {func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }, nil},
		"deadline set": {func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To(int64(5)) }, nil},
		"toleration added": {func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: "Exists"})
		}, nil},
		"restart policy": {func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }, []string{"FieldValueForbidden:spec"}},
		"node name":      {func(p *corev1.Pod) { p.Spec.NodeName = "n1" }, []string{"FieldValueForbidden:spec"}},
	} {
		old := validPod()
		pod := old.DeepCopy()
		tc.mutate(pod)
		if got := paths(PodStrategy.ValidateUpdate(pod, old)); !equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

func TestPodRowStatus(t *testing.T) {
	now := metav1.Now()
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	for name, tc := range map[string]struct {
		pod       corev1.Pod
		ready     string
		status    string
		restarts  string
		hasAgoSfx bool
	}{
		"pending": {pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, ready: "0/1", status: "Pending", restarts: "0"},
		"running": {pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: running}}}}, ready: "1/1", status: "Running", restarts: "0"},
		"waiting reason": {pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}}},
			ready: "0/1", status: "ImagePullBackOff", restarts: "0"},
		"crashloop with restarts": {pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 3,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(now.Add(-5 * time.Minute))}}}}}},
			ready: "0/1", status: "CrashLoopBackOff", restarts: "3 (5m ago)"},
		"completed": {pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}}},
			ready: "0/1", status: "Completed", restarts: "0"},
		"exit code": {pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}}}}},
			ready: "0/1", status: "ExitCode:2", restarts: "0"},
		"init waiting": {pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "init"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{{Name: "init",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}}}},
			ready: "0/1", status: "Init:0/1", restarts: "0"},
		"init error": {pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "init"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{{Name: "init",
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}},
			ready: "0/1", status: "Init:Error", restarts: "0"},
		"terminating": {pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: running}}}}, ready: "1/1", status: "Terminating", restarts: "0"},
		"sidecar counts": {pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "side", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning,
				InitContainerStatuses: []corev1.ContainerStatus{{Name: "side", Ready: true, Started: ptr.To(true), State: running}},
				ContainerStatuses:     []corev1.ContainerStatus{{Name: "app", Ready: true, State: running}}}},
			ready: "2/2", status: "Running", restarts: "0"},
	} {
		pod := tc.pod
		pod.Name = "p"
		if len(pod.Spec.Containers) == 0 {
			pod.Spec.Containers = []corev1.Container{{Name: "app"}}
		}
		row := PodStrategy.Row(&pod)
		if len(row) != len(PodStrategy.Columns) {
			t.Fatalf("%s: %d cells", name, len(row))
		}
		if row[1] != tc.ready || row[2] != tc.status || row[3] != tc.restarts {
			t.Errorf("%s: READY %v STATUS %v RESTARTS %v, want %s %s %s", name, row[1], row[2], row[3], tc.ready, tc.status, tc.restarts)
		}
		if row[5] != "<none>" || row[6] != "<none>" || row[8] != "<none>" {
			t.Errorf("%s: wide cells %v", name, row[5:])
		}
	}
}

func TestPodFields(t *testing.T) {
	pod := validPod()
	pod.Spec.NodeName = "n1"
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.5"}}
	f := PodStrategy.Fields(pod)
	for k, v := range map[string]string{"spec.nodeName": "n1", "status.phase": "Running", "status.podIP": "10.0.0.5",
		"spec.hostNetwork": "false", "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
		"spec.serviceAccountName": "", "status.nominatedNodeName": ""} {
		if got, ok := f[k]; !ok || got != v {
			t.Errorf("field %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
}

func TestNodeRow(t *testing.T) {
	for name, tc := range map[string]struct {
		node   corev1.Node
		status string
		roles  string
	}{
		"ready": {corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}, "Ready", "<none>"},
		"not ready": {corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}},
			"NotReady", "<none>"},
		"unknown": {corev1.Node{}, "Unknown", "<none>"},
		"cordoned control plane": {corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "master"}},
			Spec:   corev1.NodeSpec{Unschedulable: true},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}},
			"Ready,SchedulingDisabled", "control-plane,master"},
	} {
		row := NodeStrategy.Row(&tc.node)
		if row[1] != tc.status || row[2] != tc.roles {
			t.Errorf("%s: STATUS %v ROLES %v, want %s %s", name, row[1], row[2], tc.status, tc.roles)
		}
	}
	if f := NodeStrategy.Fields(&corev1.Node{Spec: corev1.NodeSpec{Unschedulable: true}}); f["spec.unschedulable"] != "true" {
		t.Errorf("fields %v", f)
	}
}

func TestServiceDefaultsAndRow(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}}}}
	ServiceStrategy.Default(svc)
	s := svc.Spec
	if s.SessionAffinity != corev1.ServiceAffinityNone || s.Ports[0].Protocol != corev1.ProtocolTCP || s.Ports[0].TargetPort != intstr.FromInt32(80) ||
		s.Ports[1].TargetPort.StrVal != "dns" || s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster ||
		*s.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster || *s.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack ||
		len(s.IPFamilies) != 1 || s.IPFamilies[0] != corev1.IPv4Protocol {
		t.Errorf("service defaults: %+v", s)
	}
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	svc.Spec.Ports[0].NodePort = 30080
	row := ServiceStrategy.Row(svc)
	want := []interface{}{"web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP"}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("cell %d = %v, want %v", i, row[i], want[i])
		}
	}
	if row[6] != "app=web" {
		t.Errorf("selector cell %v", row[6])
	}
	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	if got := serviceExternalIP(lb); got != "<pending>" {
		t.Errorf("lb external ip %q", got)
	}
}

func TestServiceValidate(t *testing.T) {
	base := func() *corev1.Service {
		svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
		ServiceStrategy.Default(svc)
		return svc
	}
	for name, tc := range map[string]struct {
		mutate func(*corev1.Service)
		want   []string
	}{
		"valid":    {func(*corev1.Service) {}, nil},
		"no ports": {func(s *corev1.Service) { s.Spec.Ports = nil }, []string{"FieldValueRequired:spec.ports"}},
		"headless": {func(s *corev1.Service) {
			s.Spec.Ports = nil
			s.Spec.ClusterIP = "None"
			s.Spec.ClusterIPs = []string{"None"}
		}, nil},
		"unnamed ports": {func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "b", Port: 81, Protocol: "TCP", TargetPort: intstr.FromInt32(81)})
		}, []string{"FieldValueRequired:spec.ports[0].name"}},
		"bad port":  {func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }, []string{"FieldValueInvalid:spec.ports[0].port"}},
		"bad type":  {func(s *corev1.Service) { s.Spec.Type = "Magic" }, []string{"FieldValueNotSupported:spec.type"}},
		"node port": {func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30000 }, []string{"FieldValueForbidden:spec.ports[0].nodePort"}},
		"selector":  {func(s *corev1.Service) { s.Spec.Selector = map[string]string{"a b": "c"} }, []string{"FieldValueInvalid:spec.selector"}},
	} {
		svc := base()
		tc.mutate(svc)
		if got := paths(ServiceStrategy.Validate(svc)); !equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
	old := base()
	old.Spec.ClusterIP, old.Spec.ClusterIPs = "10.96.0.1", []string{"10.96.0.1"}
	changed := old.DeepCopy()
	changed.Spec.ClusterIP, changed.Spec.ClusterIPs = "10.96.0.2", []string{"10.96.0.2"}
	if got := paths(ServiceStrategy.ValidateUpdate(changed, old)); !equal(got, []string{"FieldValueInvalid:spec.clusterIPs[0]"}) {
		t.Errorf("clusterIP change: %v", got)
	}
	omitted := old.DeepCopy()
	omitted.Spec.ClusterIP, omitted.Spec.ClusterIPs = "", nil
	if got := ServiceStrategy.ValidateUpdate(omitted, old); len(got) != 0 {
		t.Errorf("PUT without clusterIP: %v", got)
	}
	nodePort := old.DeepCopy()
	nodePort.Spec.Type = corev1.ServiceTypeNodePort
	nodePort.Spec.Ports[0].NodePort = 30001
	back := nodePort.DeepCopy()
	back.Spec.Type = corev1.ServiceTypeClusterIP
	if got := ServiceStrategy.ValidateUpdate(back, nodePort); len(got) != 0 {
		t.Errorf("NodePort -> ClusterIP keeping the old nodePort: %v", got)
	}
	external := old.DeepCopy()
	external.Spec.Type, external.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
	if got := ServiceStrategy.ValidateUpdate(external, old); len(got) != 0 {
		t.Errorf("ClusterIP -> ExternalName keeping the old clusterIP: %v", got)
	}
	external = changed.DeepCopy()
	external.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}
	ServiceStrategy.Default(external)
	if got := ServiceStrategy.ValidateUpdate(external, old); len(got) != 0 {
		t.Errorf("to ExternalName: %v", got)
	}
}

func TestNamespace(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
	NamespaceStrategy.PrepareForCreate(ns)
	NamespaceStrategy.Default(ns)
	if ns.Status.Phase != corev1.NamespaceActive || len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != corev1.FinalizerKubernetes ||
		ns.Labels[corev1.LabelMetadataName] != "team-a" {
		t.Errorf("namespace: %+v", ns)
	}
	bad := &corev1.Namespace{Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"a b"}}}
	if got := paths(NamespaceStrategy.Validate(bad)); !equal(got, []string{"FieldValueInvalid:spec.finalizers[0]"}) {
		t.Errorf("namespace finalizers: %v", got)
	}
	if row := NamespaceStrategy.Row(ns); row[1] != "Active" {
		t.Errorf("row %v", row)
	}
}

func TestConfigMapAndSecret(t *testing.T) {
	cm := &corev1.ConfigMap{Data: map[string]string{"ok.key": "v", "bad key": "v"}, BinaryData: map[string][]byte{"ok.key": nil}}
	if got := paths(ConfigMapStrategy.Validate(cm)); !equal(got, []string{"FieldValueInvalid:binaryData[ok.key]", "FieldValueInvalid:data[bad key]"}) {
		t.Errorf("configmap: %v", got)
	}
	big := &corev1.ConfigMap{Data: map[string]string{"a": string(make([]byte, corev1.MaxSecretSize+1))}}
	if got := paths(ConfigMapStrategy.Validate(big)); len(got) != 1 || got[0][:17] != "FieldValueTooLong" {
		t.Errorf("big configmap: %v", got)
	}
	s := &corev1.Secret{StringData: map[string]string{"password": "x"}, Data: map[string][]byte{"password": []byte("y"), "user": []byte("u")}}
	SecretStrategy.Default(s)
	if s.Type != corev1.SecretTypeOpaque || SecretStrategy.Fields(s)["type"] != "Opaque" {
		t.Errorf("secret type %q", s.Type)
	}
	if s.StringData != nil || string(s.Data["password"]) != "x" || string(s.Data["user"]) != "u" {
		t.Errorf("stringData not merged: %v %v", s.StringData, s.Data)
	}
	tls := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": nil}}
	if got := paths(SecretStrategy.Validate(tls)); !equal(got, []string{"FieldValueRequired:data[tls.key]"}) {
		t.Errorf("tls secret: %v", got)
	}
	old := &corev1.Secret{Type: corev1.SecretTypeOpaque}
	if got := paths(SecretStrategy.ValidateUpdate(tls, old)); len(got) != 2 || got[0] != "FieldValueInvalid:type" {
		t.Errorf("secret type change: %v", got)
	}
}

func TestEndpointsRow(t *testing.T) {
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}},
		Ports:     []corev1.EndpointPort{{Port: 80}, {Port: 443}},
	}}}
	if got := EndpointsStrategy.Row(ep)[1]; got != "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..." {
		t.Errorf("endpoints cell %q", got)
	}
	if got := EndpointsStrategy.Row(&corev1.Endpoints{})[1]; got != "<none>" {
		t.Errorf("empty endpoints cell %q", got)
	}
}

func TestEventRowAndFields(t *testing.T) {
	e := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "p.1"}, Type: "Normal", Reason: "Scheduled", Message: " assigned ",
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "default", UID: "u1"},
		Source:         corev1.EventSource{Component: "default-scheduler"}}
	row := EventStrategy.Row(e)
	if row[1] != "Normal" || row[2] != "Scheduled" || row[3] != "pod/p" || row[5] != "default-scheduler" || row[6] != "assigned" || row[8] != int64(1) {
		t.Errorf("event row %v", row)
	}
	f := EventStrategy.Fields(e)
	if f["involvedObject.name"] != "p" || f["involvedObject.uid"] != "u1" || f["source"] != "default-scheduler" || f["type"] != "Normal" {
		t.Errorf("event fields %v", f)
	}
}
