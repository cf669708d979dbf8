package quota

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Resource names beyond those corev1 declares.
const (
	storageClassSuffix = ".storageclass.storage.k8s.io/"
)

// computeResources are the names that make a quota insist every container states them.
var computeResources = sets.New[corev1.ResourceName](
	corev1.ResourceCPU, corev1.ResourceMemory,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory,
)

// CountName is the object-count resource of a group-resource: "count/pods",
// "count/deployments.apps".
func CountName(gr schema.GroupResource) corev1.ResourceName {
	if gr.Group == "" {
		return corev1.ResourceName("count/" + gr.Resource)
	}
	return corev1.ResourceName("count/" + gr.Resource + "." + gr.Group)
}

// ParseCountName is CountName's inverse; ok is false for other names.
func ParseCountName(name corev1.ResourceName) (schema.GroupResource, bool) {
	s, ok := strings.CutPrefix(string(name), "count/")
	if !ok || s == "" {
		return schema.GroupResource{}, false
	}
	res, group, _ := strings.Cut(s, ".")
	return schema.GroupResource{Group: group, Resource: res}, true
}

// Usage is what obj, stored as resource gr, counts against a quota. now decides whether a
// pod whose grace period has run out still counts. Objects that count nothing (a finished
// pod) return an empty list.
func Usage(gr schema.GroupResource, obj runtime.Object, now time.Time) corev1.ResourceList {
	usage := corev1.ResourceList{}
	switch o := obj.(type) {
	case *corev1.Pod:
		if !PodCounts(o, now) {
			return usage
		}
		usage[corev1.ResourcePods] = *resource.NewQuantity(1, resource.DecimalSI)
		for name, q := range podComputeUsage(o) {
			usage[name] = q
		}
	case *corev1.Service:
		usage[corev1.ResourceServices] = *resource.NewQuantity(1, resource.DecimalSI)
		switch o.Spec.Type {
		case corev1.ServiceTypeNodePort:
			usage[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(len(o.Spec.Ports)), resource.DecimalSI)
		case corev1.ServiceTypeLoadBalancer:
			usage[corev1.ResourceServicesLoadBalancers] = *resource.NewQuantity(1, resource.DecimalSI)
			nodePorts := int64(len(o.Spec.Ports))
			if o.Spec.AllocateLoadBalancerNodePorts != nil && !*o.Spec.AllocateLoadBalancerNodePorts {
				nodePorts = 0
			}
			usage[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(nodePorts, resource.DecimalSI)
		}
	case *corev1.PersistentVolumeClaim:
		usage[corev1.ResourcePersistentVolumeClaims] = *resource.NewQuantity(1, resource.DecimalSI)
		storage := o.Spec.Resources.Requests[corev1.ResourceStorage]
		// A claim being resized holds what it was granted if that is more.
		if granted, ok := o.Status.AllocatedResources[corev1.ResourceStorage]; ok && granted.Cmp(storage) > 0 {
			storage = granted
		}
		usage[corev1.ResourceRequestsStorage] = storage.DeepCopy()
		if sc := o.Spec.StorageClassName; sc != nil && *sc != "" {
			usage[corev1.ResourceName(*sc+storageClassSuffix+"persistentvolumeclaims")] = *resource.NewQuantity(1, resource.DecimalSI)
			usage[corev1.ResourceName(*sc+storageClassSuffix+"requests.storage")] = storage.DeepCopy()
		}
	case *corev1.ConfigMap:
		usage[corev1.ResourceConfigMaps] = *resource.NewQuantity(1, resource.DecimalSI)
	case *corev1.Secret:
		usage[corev1.ResourceSecrets] = *resource.NewQuantity(1, resource.DecimalSI)
	case *corev1.ReplicationController:
		usage[corev1.ResourceReplicationControllers] = *resource.NewQuantity(1, resource.DecimalSI)
	case *corev1.ResourceQuota:
		usage[corev1.ResourceQuotas] = *resource.NewQuantity(1, resource.DecimalSI)
	}
	usage[CountName(gr)] = *resource.NewQuantity(1, resource.DecimalSI)
	return usage
}

// PodCounts is false for pods that hold nothing any more: finished ones, and ones whose
// deletion grace period has run out, as in Kubernetes' QuotaV1Pod.
func PodCounts(pod *corev1.Pod, now time.Time) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil {
		end := pod.DeletionTimestamp.Add(time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second)
		if now.After(end) {
			return false
		}
	}
	return true
}

// podComputeUsage is the pod's effective requests and limits (the larger of the sum over
// app containers and the largest init container, plus overhead) under quota names.
func podComputeUsage(pod *corev1.Pod) corev1.ResourceList {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	for _, c := range pod.Spec.Containers {
		addTo(requests, c.Resources.Requests)
		addTo(limits, c.Resources.Limits)
	}
	for _, c := range pod.Spec.InitContainers {
		maxInto(requests, c.Resources.Requests)
		maxInto(limits, c.Resources.Limits)
	}
	addTo(requests, pod.Spec.Overhead)
	if len(limits) > 0 {
		addTo(limits, pod.Spec.Overhead)
	}
	return computeUsage(requests, limits)
}

// computeUsage maps requests and limits to quota names: cpu and requests.cpu from the
// request, limits.cpu from the limit, and likewise for memory, ephemeral storage and
// extended resources (requests only).
func computeUsage(requests, limits corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range requests {
		switch name {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
			out[name] = q.DeepCopy()
			out["requests."+name] = q.DeepCopy()
		default:
			if strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
				out["requests."+name] = q.DeepCopy()
			} else if strings.Contains(string(name), "/") { // extended resources
				out["requests."+name] = q.DeepCopy()
			}
		}
	}
	for name, q := range limits {
		switch name {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
			out["limits."+name] = q.DeepCopy()
		}
	}
	return out
}

func addTo(dst, src corev1.ResourceList) {
	for name, q := range src {
		sum := dst[name]
		sum.Add(q)
		dst[name] = sum
	}
}

func maxInto(dst, src corev1.ResourceList) {
	for name, q := range src {
		if cur, ok := dst[name]; !ok || q.Cmp(cur) > 0 {
			dst[name] = q.DeepCopy()
		}
	}
}

// Constraints is the pod check a quota on cpu or memory adds: every container must state
// the constrained resources. names are the quota's resources; the error is Kubernetes' text.
func Constraints(pod *corev1.Pod, names []corev1.ResourceName) error {
	required := sets.New[corev1.ResourceName]()
	for _, name := range names {
		if computeResources.Has(name) {
			required.Insert(name)
		}
	}
	if required.Len() == 0 {
		return nil
	}
	missing := map[corev1.ResourceName]sets.Set[string]{}
	check := func(c *corev1.Container) {
		have := sets.KeySet(computeUsage(c.Resources.Requests, c.Resources.Limits))
		for _, name := range sets.List(required.Difference(have)) {
			if missing[name] == nil {
				missing[name] = sets.New[string]()
			}
			missing[name].Insert(c.Name)
		}
	}
	for i := range pod.Spec.Containers {
		check(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		check(&pod.Spec.InitContainers[i])
	}
	if len(missing) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(missing))
	for _, name := range sets.List(sets.KeySet(missing)) {
		msgs = append(msgs, fmt.Sprintf("%s for: %s", name, strings.Join(sets.List(missing[name]), ",")))
	}
	return fmt.Errorf("must specify %s", strings.Join(msgs, "; "))
}

// Tracks reports whether resource name counts something about objects of gr.
func Tracks(gr schema.GroupResource, name corev1.ResourceName) bool {
	if name == CountName(gr) {
		return true
	}
	if gr.Group != "" {
		return false
	}
	n := string(name)
	switch gr.Resource {
	case "pods":
		return name == corev1.ResourcePods || name == corev1.ResourceCPU || name == corev1.ResourceMemory ||
			name == corev1.ResourceEphemeralStorage || strings.HasPrefix(n, "requests.") || strings.HasPrefix(n, "limits.")
	case "services":
		return name == corev1.ResourceServices || name == corev1.ResourceServicesNodePorts || name == corev1.ResourceServicesLoadBalancers
	case "persistentvolumeclaims":
		return name == corev1.ResourcePersistentVolumeClaims || name == corev1.ResourceRequestsStorage || strings.Contains(n, storageClassSuffix)
	case "configmaps":
		return name == corev1.ResourceConfigMaps
	case "secrets":
		return name == corev1.ResourceSecrets
	case "replicationcontrollers":
		return name == corev1.ResourceReplicationControllers
	case "resourcequotas":
		return name == corev1.ResourceQuotas
	}
	return false
}

// Governs returns the names in hard (a quota's status.hard) that count obj, stored as gr,
// when obj falls within the quota's scopes; nil when the quota does not govern obj.
func Governs(q *corev1.ResourceQuota, gr schema.GroupResource, obj runtime.Object) []corev1.ResourceName {
	var names []corev1.ResourceName
	for _, name := range Names(q.Status.Hard) {
		if Tracks(gr, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 || !InScope(q, obj) {
		return nil
	}
	return names
}

// InScope reports whether obj falls within all of the quota's scopes. Scoped quotas govern
// pods only, as in Kubernetes.
func InScope(q *corev1.ResourceQuota, obj runtime.Object) bool {
	for _, sel := range scopeSelectors(q) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || !podMatchesScope(pod, sel) {
			return false
		}
	}
	return true
}

// scopeSelectors merges spec.scopes and spec.scopeSelector into one list.
func scopeSelectors(q *corev1.ResourceQuota) []corev1.ScopedResourceSelectorRequirement {
	var out []corev1.ScopedResourceSelectorRequirement
	for _, s := range q.Spec.Scopes {
		out = append(out, corev1.ScopedResourceSelectorRequirement{ScopeName: s, Operator: corev1.ScopeSelectorOpExists})
	}
	if q.Spec.ScopeSelector != nil {
		out = append(out, q.Spec.ScopeSelector.MatchExpressions...)
	}
	return out
}

func podMatchesScope(pod *corev1.Pod, sel corev1.ScopedResourceSelectorRequirement) bool {
	switch sel.ScopeName {
	case corev1.ResourceQuotaScopeTerminating:
		return pod.Spec.ActiveDeadlineSeconds != nil && *pod.Spec.ActiveDeadlineSeconds >= 0
	case corev1.ResourceQuotaScopeNotTerminating:
		return pod.Spec.ActiveDeadlineSeconds == nil || *pod.Spec.ActiveDeadlineSeconds < 0
	case corev1.ResourceQuotaScopeBestEffort:
		return bestEffort(pod)
	case corev1.ResourceQuotaScopeNotBestEffort:
		return !bestEffort(pod)
	case corev1.ResourceQuotaScopePriorityClass:
		name := pod.Spec.PriorityClassName
		switch sel.Operator {
		case corev1.ScopeSelectorOpExists:
			return name != ""
		case corev1.ScopeSelectorOpDoesNotExist:
			return name == ""
		case corev1.ScopeSelectorOpIn:
			return sets.New(sel.Values...).Has(name)
		case corev1.ScopeSelectorOpNotIn:
			return !sets.New(sel.Values...).Has(name)
		}
		return false
	case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return crossNamespaceAffinity(pod)
	}
	return false
}

// bestEffort is the BestEffort QoS class: no container requests or limits cpu or memory.
func bestEffort(pod *corev1.Pod) bool {
	all := append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...)
	for _, c := range all {
		for _, l := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for name, q := range l {
				if (name == corev1.ResourceCPU || name == corev1.ResourceMemory) && !q.IsZero() {
					return false
				}
			}
		}
	}
	return true
}

func crossNamespaceAffinity(pod *corev1.Pod) bool {
	a := pod.Spec.Affinity
	if a == nil {
		return false
	}
	var terms []corev1.PodAffinityTerm
	if a.PodAffinity != nil {
		terms = append(terms, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	if a.PodAntiAffinity != nil {
		terms = append(terms, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	for _, t := range terms {
		if len(t.Namespaces) > 0 || t.NamespaceSelector != nil {
			return true
		}
	}
	return false
}

// Mask keeps the entries of list named in names.
func Mask(list corev1.ResourceList, names []corev1.ResourceName) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, name := range names {
		if q, ok := list[name]; ok {
			out[name] = q.DeepCopy()
		}
	}
	return out
}

// Names lists the names in list, sorted.
func Names(list corev1.ResourceList) []corev1.ResourceName {
	out := make([]corev1.ResourceName, 0, len(list))
	for name := range list {
		out = append(out, name)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Add returns a + b.
func Add(a, b corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range a {
		out[name] = q.DeepCopy()
	}
	addTo(out, b)
	return out
}

// Subtract returns a - b, dropping nothing (results may be negative).
func Subtract(a, b corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range a {
		out[name] = q.DeepCopy()
	}
	for name, q := range b {
		d := out[name]
		d.Sub(q)
		out[name] = d
	}
	return out
}

// Exceeded lists, sorted, the names in used whose value is above hard.
func Exceeded(used, hard corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, name := range Names(used) {
		if h, ok := hard[name]; ok {
			if u := used[name]; u.Cmp(h) <= 0 {
				continue
			}
			out = append(out, name)
		}
	}
	return out
}

// Equal reports whether two lists hold the same names and values.
func Equal(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for name, q := range a {
		if o, ok := b[name]; !ok || q.Cmp(o) != 0 {
			return false
		}
	}
	return true
}

// Format prints a list the way Kubernetes' quota messages do: "pods=1,requests.cpu=500m".
func Format(list corev1.ResourceList) string {
	parts := make([]string, 0, len(list))
	for _, name := range Names(list) {
		q := list[name]
		parts = append(parts, fmt.Sprintf("%s=%s", name, q.String()))
	}
	return strings.Join(parts, ",")
}
