package core

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// DefaultPodTemplate fills the Kubernetes defaults of a pod template (in deployments, jobs, ...).
// Templates get the pod-spec defaults but not the pod-only ones (requests from limits,
// enableServiceLinks, host ports under hostNetwork), as in Kubernetes.
func DefaultPodTemplate(t *corev1.PodTemplateSpec) {
	DefaultPodSpec(&t.Spec)
}

// DefaultPodSpec fills the defaults shared by pods and pod templates.
func DefaultPodSpec(spec *corev1.PodSpec) {
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = ptr.To(int64(corev1.DefaultTerminationGracePeriodSeconds))
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = corev1.DefaultSchedulerName
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		c := &spec.EphemeralContainers[i].EphemeralContainerCommon
		defaultContainerCommon(&c.ImagePullPolicy, &c.TerminationMessagePath, &c.TerminationMessagePolicy, c.Image)
		defaultPorts(c.Ports)
		defaultEnv(c.Env)
	}
	for i := range spec.Volumes {
		defaultVolume(&spec.Volumes[i])
	}
}

// defaultPodOnly fills the defaults Kubernetes applies to pods but not to templates.
func defaultPodOnly(pod *corev1.Pod) {
	for i := range pod.Spec.Containers {
		defaultRequestsFromLimits(&pod.Spec.Containers[i].Resources)
	}
	for i := range pod.Spec.InitContainers {
		defaultRequestsFromLimits(&pod.Spec.InitContainers[i].Resources)
	}
	if pod.Spec.EnableServiceLinks == nil {
		pod.Spec.EnableServiceLinks = ptr.To(corev1.DefaultEnableServiceLinks)
	}
	if pod.Spec.HostNetwork {
		defaultHostNetworkPorts(pod.Spec.Containers)
		defaultHostNetworkPorts(pod.Spec.InitContainers)
	}
}

func defaultRequestsFromLimits(r *corev1.ResourceRequirements) {
	for name, limit := range r.Limits {
		if _, ok := r.Requests[name]; ok {
			continue
		}
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		r.Requests[name] = limit.DeepCopy()
	}
}

func defaultHostNetworkPorts(containers []corev1.Container) {
	for i := range containers {
		for j := range containers[i].Ports {
			if containers[i].Ports[j].HostPort == 0 {
				containers[i].Ports[j].HostPort = containers[i].Ports[j].ContainerPort
			}
		}
	}
}

func defaultContainer(c *corev1.Container) {
	defaultContainerCommon(&c.ImagePullPolicy, &c.TerminationMessagePath, &c.TerminationMessagePolicy, c.Image)
	defaultPorts(c.Ports)
	defaultEnv(c.Env)
	defaultProbe(c.LivenessProbe)
	defaultProbe(c.ReadinessProbe)
	defaultProbe(c.StartupProbe)
	if c.Lifecycle != nil {
		defaultHandler(c.Lifecycle.PostStart)
		defaultHandler(c.Lifecycle.PreStop)
	}
}

func defaultContainerCommon(pull *corev1.PullPolicy, msgPath *string, msgPolicy *corev1.TerminationMessagePolicy, image string) {
	if *pull == "" {
		*pull = defaultPullPolicy(image)
	}
	if *msgPath == "" {
		*msgPath = corev1.TerminationMessagePathDefault
	}
	if *msgPolicy == "" {
		*msgPolicy = corev1.TerminationMessageReadFile
	}
}

// defaultPullPolicy is Always for ":latest" or untagged images and IfNotPresent otherwise
// (images pinned by digest included).
func defaultPullPolicy(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:] // a registry host may carry a port: "host:5000/img"
	}
	tag := ""
	if i := strings.LastIndex(name, ":"); i >= 0 {
		tag = name[i+1:]
	}
	if tag == "" || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func defaultPorts(ports []corev1.ContainerPort) {
	for i := range ports {
		if ports[i].Protocol == "" {
			ports[i].Protocol = corev1.ProtocolTCP
		}
	}
}

func defaultEnv(env []corev1.EnvVar) {
	for i := range env {
		if vf := env[i].ValueFrom; vf != nil && vf.FieldRef != nil && vf.FieldRef.APIVersion == "" {
			vf.FieldRef.APIVersion = "v1"
		}
	}
}

func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	if p.HTTPGet != nil {
		defaultHTTPGet(p.HTTPGet)
	}
	if p.GRPC != nil && p.GRPC.Service == nil {
		p.GRPC.Service = ptr.To("")
	}
}

func defaultHandler(h *corev1.LifecycleHandler) {
	if h != nil && h.HTTPGet != nil {
		defaultHTTPGet(h.HTTPGet)
	}
}

func defaultHTTPGet(h *corev1.HTTPGetAction) {
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Scheme == "" {
		h.Scheme = corev1.URISchemeHTTP
	}
}

func defaultVolume(v *corev1.Volume) {
	s := &v.VolumeSource
	if *s == (corev1.VolumeSource{}) {
		s.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	mode := ptr.To(int32(0o644))
	switch {
	case s.ConfigMap != nil:
		if s.ConfigMap.DefaultMode == nil {
			s.ConfigMap.DefaultMode = mode
		}
	case s.Secret != nil:
		if s.Secret.DefaultMode == nil {
			s.Secret.DefaultMode = mode
		}
	case s.DownwardAPI != nil:
		if s.DownwardAPI.DefaultMode == nil {
			s.DownwardAPI.DefaultMode = mode
		}
		for i := range s.DownwardAPI.Items {
			if f := s.DownwardAPI.Items[i].FieldRef; f != nil && f.APIVersion == "" {
				f.APIVersion = "v1"
			}
		}
	case s.Projected != nil:
		if s.Projected.DefaultMode == nil {
			s.Projected.DefaultMode = mode
		}
		for i := range s.Projected.Sources {
			if t := s.Projected.Sources[i].ServiceAccountToken; t != nil && t.ExpirationSeconds == nil {
				t.ExpirationSeconds = ptr.To(int64(3600))
			}
			if d := s.Projected.Sources[i].DownwardAPI; d != nil {
				for j := range d.Items {
					if f := d.Items[j].FieldRef; f != nil && f.APIVersion == "" {
						f.APIVersion = "v1"
					}
				}
			}
		}
	case s.HostPath != nil:
		if s.HostPath.Type == nil {
			s.HostPath.Type = ptr.To(corev1.HostPathUnset)
		}
	case s.ISCSI != nil:
		if s.ISCSI.ISCSIInterface == "" {
			s.ISCSI.ISCSIInterface = "default"
		}
	}
}

// intOrStringUnset reports whether v is unset (0 or "").
func intOrStringUnset(v intstr.IntOrString) bool {
	return (v.Type == intstr.Int && v.IntVal == 0) || (v.Type == intstr.String && v.StrVal == "")
}
