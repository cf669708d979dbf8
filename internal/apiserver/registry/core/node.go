package core

import (
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// NodeStrategy is the strategy of nodes. Nodes may carry status on create (the kubelet registers
// itself with it), so there is no PrepareForCreate.
var NodeStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		node := obj.(*corev1.Node)
		if node.Status.Allocatable == nil && node.Status.Capacity != nil {
			node.Status.Allocatable = node.Status.Capacity.DeepCopy()
		}
	},
	Validate:       func(obj runtime.Object) field.ErrorList { return validateNode(obj.(*corev1.Node)) },
	ValidateUpdate: validateNodeUpdate,
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Status", Type: "string", Description: "The status of the node"},
		{Name: "Roles", Type: "string", Description: "The roles of the node"},
		registry.AgeColumn,
		{Name: "Version", Type: "string", Description: "Kubelet Version reported by the node."},
		{Name: "Internal-IP", Type: "string", Priority: 1, Description: "List of addresses reachable to the node."},
		{Name: "External-IP", Type: "string", Priority: 1, Description: "List of addresses reachable to the node."},
		{Name: "OS-Image", Type: "string", Priority: 1, Description: "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."},
		{Name: "Kernel-Version", Type: "string", Priority: 1, Description: "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."},
		{Name: "Container-Runtime", Type: "string", Priority: 1, Description: "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."},
	},
	Row: func(obj runtime.Object) []interface{} {
		n := obj.(*corev1.Node)
		info := n.Status.NodeInfo
		return []interface{}{n.Name, nodeStatus(n), nodeRoles(n), registry.Age(n.CreationTimestamp), info.KubeletVersion,
			nodeAddress(n, corev1.NodeInternalIP), nodeAddress(n, corev1.NodeExternalIP),
			orUnknown(info.OSImage), orUnknown(info.KernelVersion), orUnknown(info.ContainerRuntimeVersion)}
	},
	Fields: func(obj runtime.Object) fields.Set {
		return fields.Set{"spec.unschedulable": strconv.FormatBool(obj.(*corev1.Node).Spec.Unschedulable)}
	},
}

// nodeStatus is "Ready", "NotReady" (condition False or Unknown) or "Unknown" (no condition),
// with ",SchedulingDisabled" for cordoned nodes.
func nodeStatus(n *corev1.Node) string {
	var status []string
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				status = append(status, "Ready")
			} else {
				status = append(status, "NotReady")
			}
			break
		}
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if n.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	return strings.Join(status, ",")
}

// nodeRoles reads node-role.kubernetes.io/<role> label keys and the kubernetes.io/role value.
func nodeRoles(n *corev1.Node) string {
	roles := sets.New[string]()
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, "node-role.kubernetes.io/"):
			if role := strings.TrimPrefix(k, "node-role.kubernetes.io/"); role != "" {
				roles.Insert(role)
			}
		case k == "kubernetes.io/role" && v != "":
			roles.Insert(v)
		}
	}
	if roles.Len() == 0 {
		return "<none>"
	}
	list := roles.UnsortedList()
	sort.Strings(list)
	return strings.Join(list, ",")
}

func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

func validateNode(n *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if n.Spec.PodCIDR != "" {
		errs = append(errs, utilvalidation.IsValidCIDR(spec.Child("podCIDR"), n.Spec.PodCIDR)...)
	}
	for i, c := range n.Spec.PodCIDRs {
		errs = append(errs, utilvalidation.IsValidCIDR(spec.Child("podCIDRs").Index(i), c)...)
	}
	if len(n.Spec.PodCIDRs) > 0 && n.Spec.PodCIDR != "" && n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
		errs = append(errs, field.Invalid(spec.Child("podCIDRs"), n.Spec.PodCIDRs, "the first entry must match spec.podCIDR"))
	}
	effects := []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}
	seen := sets.New[string]()
	for i, t := range n.Spec.Taints {
		tp := spec.Child("taints").Index(i)
		for _, msg := range utilvalidation.IsQualifiedName(t.Key) {
			errs = append(errs, field.Invalid(tp.Child("key"), t.Key, msg))
		}
		for _, msg := range utilvalidation.IsValidLabelValue(t.Value) {
			errs = append(errs, field.Invalid(tp.Child("value"), t.Value, msg))
		}
		if t.Effect == "" {
			errs = append(errs, field.Required(tp.Child("effect"), ""))
		} else if !supported(t.Effect, effects) {
			errs = append(errs, field.NotSupported(tp.Child("effect"), t.Effect, effects))
		}
		key := t.Key + "/" + string(t.Effect)
		if seen.Has(key) {
			errs = append(errs, field.Duplicate(tp, "taints must be unique by key and effect pair"))
		}
		seen.Insert(key)
	}
	for name, q := range n.Status.Capacity {
		errs = append(errs, validateQuantity(q, field.NewPath("status", "capacity").Key(string(name)))...)
	}
	for name, q := range n.Status.Allocatable {
		errs = append(errs, validateQuantity(q, field.NewPath("status", "allocatable").Key(string(name)))...)
	}
	return errs
}

func validateNodeUpdate(obj, old runtime.Object) field.ErrorList {
	n, o := obj.(*corev1.Node), old.(*corev1.Node)
	errs := validateNode(n)
	// podCIDR(s) may be set once (by the node IPAM) and never changed.
	if o.Spec.PodCIDR != "" && n.Spec.PodCIDR != o.Spec.PodCIDR {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "podCIDR"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if o.Spec.ProviderID != "" && n.Spec.ProviderID != o.Spec.ProviderID {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	return errs
}
