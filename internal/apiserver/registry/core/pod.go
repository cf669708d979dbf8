package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// PodStrategy is the strategy of pods.
var PodStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		pod := obj.(*corev1.Pod)
		DefaultPodSpec(&pod.Spec)
		defaultPodOnly(pod)
	},
	PrepareForCreate: func(obj runtime.Object) {
		pod := obj.(*corev1.Pod)
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: PodQOSClass(&pod.Spec)}
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		pod := obj.(*corev1.Pod)
		return ValidatePodSpec(&pod.Spec, field.NewPath("spec"), AllRestartPolicies)
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
		errs := ValidatePodSpec(&pod.Spec, field.NewPath("spec"), AllRestartPolicies)
		return append(errs, validatePodSpecUpdate(&pod.Spec, &oldPod.Spec)...)
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Ready", Type: "string", Description: "The aggregate readiness state of this pod for accepting traffic."},
		{Name: "Status", Type: "string", Description: "The aggregate status of the containers in this pod."},
		{Name: "Restarts", Type: "string", Description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
		registry.AgeColumn,
		{Name: "IP", Type: "string", Priority: 1, Description: "podIP address allocated to the pod. Routable at least within the cluster."},
		{Name: "Node", Type: "string", Priority: 1, Description: "NodeName indicates in which node this pod is scheduled."},
		{Name: "Nominated Node", Type: "string", Priority: 1, Description: "nominatedNodeName is set only when this pod preempts other pods on the node."},
		{Name: "Readiness Gates", Type: "string", Priority: 1, Description: "If specified, all readiness gates will be evaluated for pod readiness."},
	},
	Row: func(obj runtime.Object) []interface{} { return podRow(obj.(*corev1.Pod)) },
	Fields: func(obj runtime.Object) fields.Set {
		pod := obj.(*corev1.Pod)
		return fields.Set{
			"spec.nodeName":            pod.Spec.NodeName,
			"spec.restartPolicy":       string(pod.Spec.RestartPolicy),
			"spec.schedulerName":       pod.Spec.SchedulerName,
			"spec.serviceAccountName":  pod.Spec.ServiceAccountName,
			"spec.hostNetwork":         strconv.FormatBool(pod.Spec.HostNetwork),
			"status.phase":             string(pod.Status.Phase),
			"status.podIP":             podIP(pod),
			"status.nominatedNodeName": pod.Status.NominatedNodeName,
		}
	},
}

func podIP(pod *corev1.Pod) string {
	if len(pod.Status.PodIPs) > 0 {
		return pod.Status.PodIPs[0].IP
	}
	return pod.Status.PodIP
}

// podUpdateMessage is Kubernetes' wording, which users and tests grep for.
const podUpdateMessage = "pod updates may not change fields other than `spec.containers[*].image`," +
	"`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)," +
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"

// validatePodSpecUpdate allows only the mutations Kubernetes allows on a pod's spec: images,
// activeDeadlineSeconds (set or shortened), tolerations (added), terminationGracePeriodSeconds
// (negative to 1), and the removal of scheduling gates. Ephemeral containers change only
// through their subresource; nodeName only through binding.
func validatePodSpecUpdate(spec, old *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	if old.ActiveDeadlineSeconds != nil && (spec.ActiveDeadlineSeconds == nil || *spec.ActiveDeadlineSeconds > *old.ActiveDeadlineSeconds) {
		v := interface{}(nil)
		if spec.ActiveDeadlineSeconds != nil {
			v = *spec.ActiveDeadlineSeconds
		}
		errs = append(errs, field.Invalid(specPath.Child("activeDeadlineSeconds"), v, "must be less than or equal to previous value"))
	}
	if !tolerationsAdded(spec.Tolerations, old.Tolerations) {
		errs = append(errs, field.Forbidden(specPath.Child("tolerations"), "existing toleration can not be modified except its tolerationSeconds"))
	}

	// Copy the mutable fields from the new spec onto the old one; anything left different is forbidden.
	munged := old.DeepCopy()
	if len(spec.Containers) == len(munged.Containers) {
		for i := range spec.Containers {
			munged.Containers[i].Image = spec.Containers[i].Image
		}
	}
	if len(spec.InitContainers) == len(munged.InitContainers) {
		for i := range spec.InitContainers {
			munged.InitContainers[i].Image = spec.InitContainers[i].Image
		}
	}
	munged.ActiveDeadlineSeconds = spec.ActiveDeadlineSeconds
	munged.Tolerations = spec.Tolerations
	if old.TerminationGracePeriodSeconds != nil && *old.TerminationGracePeriodSeconds < 0 &&
		spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds == 1 {
		munged.TerminationGracePeriodSeconds = spec.TerminationGracePeriodSeconds
	}
	if len(spec.SchedulingGates) <= len(old.SchedulingGates) {
		munged.SchedulingGates = spec.SchedulingGates
	}
	if len(old.SchedulingGates) > 0 { // gated pods may get more scheduling constraints
		munged.NodeSelector = spec.NodeSelector
		munged.Affinity = spec.Affinity
	}
	munged.EphemeralContainers = spec.EphemeralContainers
	if !equality.Semantic.DeepEqual(munged, spec) {
		// Like Kubernetes, show what changed in the fields that may not change.
		errs = append(errs, field.Forbidden(specPath, podUpdateMessage+"\n"+diff.Diff(munged, spec)))
	}
	return errs
}

// tolerationsAdded reports whether every old toleration is still present in tolerations
// (tolerationSeconds may change).
func tolerationsAdded(tolerations, old []corev1.Toleration) bool {
	for _, o := range old {
		found := false
		for _, t := range tolerations {
			o2, t2 := o, t
			o2.TolerationSeconds, t2.TolerationSeconds = nil, nil
			if equality.Semantic.DeepEqual(o2, t2) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// PodQOSClass computes the pod's quality-of-service class as Kubernetes does: Guaranteed when
// every container has equal, non-zero cpu and memory requests and limits; BestEffort when none
// has any; Burstable otherwise. Missing requests count as equal to the limits (the defaulting).
func PodQOSClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	add := func(list corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if cur, ok := list[name]; ok {
			q.Add(cur)
		}
		list[name] = q
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		reqs := corev1.ResourceList{}
		for name, q := range c.Resources.Limits {
			reqs[name] = q
		}
		for name, q := range c.Resources.Requests {
			reqs[name] = q
		}
		for name, q := range reqs {
			if isQOSResource(name) && q.Sign() > 0 {
				add(requests, name, q.DeepCopy())
			}
		}
		found := 0
		for name, q := range c.Resources.Limits {
			if isQOSResource(name) && q.Sign() > 0 {
				found++
				add(limits, name, q.DeepCopy())
			}
		}
		if found < 2 {
			guaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				guaranteed = false
				break
			}
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func isQOSResource(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory
}

// podRow is kubectl's pod row: READY counts ready containers (and started sidecars), STATUS is
// the most telling reason among the pod's and its containers' states.
func podRow(pod *corev1.Pod) []interface{} {
	restarts, sidecarRestarts := 0, 0
	total := len(pod.Spec.Containers)
	ready := 0
	var lastRestart, lastSidecarRestart time.Time

	reason := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}
	sidecars := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
			total++
		}
	}
	later := func(t *time.Time, s corev1.ContainerStatus) {
		if term := s.LastTerminationState.Terminated; term != nil && term.FinishedAt.After(*t) {
			*t = term.FinishedAt.Time
		}
	}

	initializing := false
	for i, s := range pod.Status.InitContainerStatuses {
		restarts += int(s.RestartCount)
		later(&lastRestart, s)
		if sidecars[s.Name] {
			sidecarRestarts += int(s.RestartCount)
			later(&lastSidecarRestart, s)
		}
		switch {
		case s.State.Terminated != nil && s.State.Terminated.ExitCode == 0:
			continue
		case sidecars[s.Name] && s.Started != nil && *s.Started:
			if s.Ready {
				ready++
			}
			continue
		case s.State.Terminated != nil:
			switch {
			case s.State.Terminated.Reason != "":
				reason = "Init:" + s.State.Terminated.Reason
			case s.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Init:Signal:%d", s.State.Terminated.Signal)
			default:
				reason = fmt.Sprintf("Init:ExitCode:%d", s.State.Terminated.ExitCode)
			}
		case s.State.Waiting != nil && s.State.Waiting.Reason != "" && s.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + s.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		initializing = true
		break
	}

	if !initializing || podCondition(pod, corev1.PodInitialized) {
		restarts = sidecarRestarts
		lastRestart = lastSidecarRestart
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			s := pod.Status.ContainerStatuses[i]
			restarts += int(s.RestartCount)
			later(&lastRestart, s)
			switch {
			case s.State.Waiting != nil && s.State.Waiting.Reason != "":
				reason = s.State.Waiting.Reason
			case s.State.Terminated != nil && s.State.Terminated.Reason != "":
				reason = s.State.Terminated.Reason
			case s.State.Terminated != nil && s.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", s.State.Terminated.Signal)
			case s.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", s.State.Terminated.ExitCode)
			case s.Ready && s.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		// A pod whose last container completed but another still runs is not "Completed".
		if reason == "Completed" && hasRunning {
			if podCondition(pod, corev1.PodReady) {
				reason = "Running"
			} else {
				reason = "NotReady"
			}
		}
	}

	terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
	if pod.DeletionTimestamp != nil && pod.Status.Reason == "NodeLost" {
		reason = "Unknown"
	} else if pod.DeletionTimestamp != nil && !terminal {
		reason = "Terminating"
	}

	restartCell := strconv.Itoa(restarts)
	if !lastRestart.IsZero() {
		restartCell = fmt.Sprintf("%d (%s ago)", restarts, registry.Age(metav1.NewTime(lastRestart)))
	}
	ip, node, nominated := podIP(pod), pod.Spec.NodeName, pod.Status.NominatedNodeName
	gates := "<none>"
	if n := len(pod.Spec.ReadinessGates); n > 0 {
		trueGates := 0
		for _, g := range pod.Spec.ReadinessGates {
			if podCondition(pod, g.ConditionType) {
				trueGates++
			}
		}
		gates = fmt.Sprintf("%d/%d", trueGates, n)
	}
	return []interface{}{pod.Name, fmt.Sprintf("%d/%d", ready, total), reason, restartCell,
		registry.Age(pod.CreationTimestamp), orNone(ip), orNone(node), orNone(nominated), gates}
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// ContainerCells returns the CONTAINERS and IMAGES cells of the workload tables.
func ContainerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, len(containers))
	im := make([]string, len(containers))
	for i, c := range containers {
		n[i], im[i] = c.Name, c.Image
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}
