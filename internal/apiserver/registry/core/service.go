package core

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// ServiceStrategy is the strategy of services. ClusterIP and NodePort allocation (and keeping
// allocated values across updates that omit them) is the API server's job, not this one.
var ServiceStrategy = registry.Strategy{
	Default:          func(obj runtime.Object) { defaultService(obj.(*corev1.Service)) },
	PrepareForCreate: func(obj runtime.Object) { obj.(*corev1.Service).Status = corev1.ServiceStatus{} },
	Validate:         func(obj runtime.Object) field.ErrorList { return validateService(obj.(*corev1.Service)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		svc := serviceUpdateView(obj.(*corev1.Service), old.(*corev1.Service))
		return append(validateService(svc), validateServiceUpdate(svc, old.(*corev1.Service))...)
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Type", Type: "string", Description: "type determines how the Service is exposed."},
		{Name: "Cluster-IP", Type: "string", Description: "clusterIP is the IP address of the service and is usually assigned randomly."},
		{Name: "External-IP", Type: "string", Description: "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."},
		{Name: "Port(s)", Type: "string", Description: "The list of ports that are exposed by this service."},
		registry.AgeColumn,
		{Name: "Selector", Type: "string", Priority: 1, Description: "Route service traffic to pods with label keys and values matching this selector."},
	},
	Row: func(obj runtime.Object) []interface{} {
		svc := obj.(*corev1.Service)
		ip := "<none>"
		if len(svc.Spec.ClusterIPs) > 0 {
			ip = svc.Spec.ClusterIPs[0]
		}
		ports := servicePorts(svc.Spec.Ports)
		if ports == "" {
			ports = "<none>"
		}
		return []interface{}{svc.Name, string(svc.Spec.Type), ip, serviceExternalIP(svc), ports,
			registry.Age(svc.CreationTimestamp), labels.FormatLabels(svc.Spec.Selector)}
	},
}

func defaultService(svc *corev1.Service) {
	spec := &svc.Spec
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if spec.SessionAffinity == corev1.ServiceAffinityNone {
		spec.SessionAffinityConfig = nil
	}
	if spec.SessionAffinity == corev1.ServiceAffinityClientIP &&
		(spec.SessionAffinityConfig == nil || spec.SessionAffinityConfig.ClientIP == nil || spec.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil) {
		spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{
			TimeoutSeconds: ptr.To(corev1.DefaultClientIPServiceAffinitySeconds)}}
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	for i := range spec.Ports {
		p := &spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if intOrStringUnset(p.TargetPort) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if externallyAccessible(svc) && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if spec.Type != corev1.ServiceTypeExternalName && spec.InternalTrafficPolicy == nil {
		spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyCluster)
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.AllocateLoadBalancerNodePorts == nil {
		spec.AllocateLoadBalancerNodePorts = ptr.To(true)
	}
	if len(spec.ClusterIPs) == 0 && spec.ClusterIP != "" {
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	// IP families: a single-stack IPv4 cluster. Headless services without a selector get
	// RequireDualStack as in Kubernetes (all of the cluster's families, here only IPv4).
	if spec.Type != corev1.ServiceTypeExternalName {
		if spec.IPFamilyPolicy == nil {
			policy := corev1.IPFamilyPolicySingleStack
			if spec.ClusterIP == corev1.ClusterIPNone && len(spec.Selector) == 0 {
				policy = corev1.IPFamilyPolicyRequireDualStack
			}
			spec.IPFamilyPolicy = &policy
		}
		if len(spec.IPFamilies) == 0 {
			spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
	}
}

// externallyAccessible: node ports, load balancers and cluster IPs with external IPs.
func externallyAccessible(svc *corev1.Service) bool {
	t := svc.Spec.Type
	return t == corev1.ServiceTypeLoadBalancer || t == corev1.ServiceTypeNodePort ||
		(t == corev1.ServiceTypeClusterIP && len(svc.Spec.ExternalIPs) > 0)
}

func validateService(svc *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	spec := &svc.Spec
	sp := field.NewPath("spec")
	types := []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName}
	if !supported(spec.Type, types) {
		errs = append(errs, field.NotSupported(sp.Child("type"), spec.Type, types))
	}
	headless := spec.ClusterIP == corev1.ClusterIPNone
	if spec.Type == corev1.ServiceTypeExternalName {
		if spec.ClusterIP != "" {
			errs = append(errs, field.Forbidden(sp.Child("clusterIP"), "may not be set for ExternalName services"))
		}
		if spec.ExternalName == "" {
			errs = append(errs, field.Required(sp.Child("externalName"), ""))
		} else {
			name := strings.TrimSuffix(spec.ExternalName, ".")
			for _, msg := range utilvalidation.IsDNS1123Subdomain(name) {
				errs = append(errs, field.Invalid(sp.Child("externalName"), spec.ExternalName, msg))
			}
		}
	} else if spec.ClusterIP != "" && !headless {
		errs = append(errs, utilvalidation.IsValidIP(sp.Child("clusterIP"), spec.ClusterIP)...)
	}
	if len(spec.ClusterIPs) > 0 && spec.ClusterIPs[0] != spec.ClusterIP {
		errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), spec.ClusterIPs[0], "must be equal to `clusterIP`"))
	}
	if headless && spec.Type != corev1.ServiceTypeClusterIP && spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Invalid(sp.Child("clusterIP"), spec.ClusterIP, "may not be set to 'None' for "+string(spec.Type)+" services"))
	}

	if len(spec.Ports) == 0 && !headless && spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(sp.Child("ports"), ""))
	}
	names := sets.New[string]()
	portProto := sets.New[string]()
	nodePorts := sets.New[string]()
	for i, p := range spec.Ports {
		pp := sp.Child("ports").Index(i)
		if len(spec.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		} else if p.Name != "" {
			for _, msg := range utilvalidation.IsDNS1123Label(p.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		for _, msg := range utilvalidation.IsValidPortNum(int(p.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), p.Port, msg))
		}
		if p.Protocol == "" {
			errs = append(errs, field.Required(pp.Child("protocol"), ""))
		} else if !supported(p.Protocol, supportedProtocols) {
			errs = append(errs, field.NotSupported(pp.Child("protocol"), p.Protocol, supportedProtocols))
		}
		errs = append(errs, validatePortRef(p.TargetPort.IntValue(), p.TargetPort.StrVal, pp.Child("targetPort"))...)
		key := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if portProto.Has(key) {
			errs = append(errs, field.Duplicate(pp, key))
		}
		portProto.Insert(key)
		if p.NodePort != 0 {
			if spec.Type != corev1.ServiceTypeNodePort && spec.Type != corev1.ServiceTypeLoadBalancer {
				errs = append(errs, field.Forbidden(pp.Child("nodePort"), "may not be used when `type` is '"+string(spec.Type)+"'"))
			}
			for _, msg := range utilvalidation.IsValidPortNum(int(p.NodePort)) {
				errs = append(errs, field.Invalid(pp.Child("nodePort"), p.NodePort, msg))
			}
			key := fmt.Sprintf("%d/%s", p.NodePort, p.Protocol)
			if nodePorts.Has(key) {
				errs = append(errs, field.Duplicate(pp.Child("nodePort"), key))
			}
			nodePorts.Insert(key)
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(spec.Selector, sp.Child("selector"))...)
	affinities := []corev1.ServiceAffinity{corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone}
	if spec.Type != corev1.ServiceTypeExternalName && !supported(spec.SessionAffinity, affinities) {
		errs = append(errs, field.NotSupported(sp.Child("sessionAffinity"), spec.SessionAffinity, affinities))
	}
	if spec.ExternalTrafficPolicy != "" {
		etps := []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal}
		switch {
		case !externallyAccessible(svc):
			errs = append(errs, field.Invalid(sp.Child("externalTrafficPolicy"), spec.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
		case !supported(spec.ExternalTrafficPolicy, etps):
			errs = append(errs, field.NotSupported(sp.Child("externalTrafficPolicy"), spec.ExternalTrafficPolicy, etps))
		}
	}
	if spec.InternalTrafficPolicy != nil {
		itps := []corev1.ServiceInternalTrafficPolicy{corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal}
		if !supported(*spec.InternalTrafficPolicy, itps) {
			errs = append(errs, field.NotSupported(sp.Child("internalTrafficPolicy"), *spec.InternalTrafficPolicy, itps))
		}
	}
	for i, ip := range spec.ExternalIPs {
		errs = append(errs, utilvalidation.IsValidIP(sp.Child("externalIPs").Index(i), ip)...)
	}
	if spec.IPFamilyPolicy != nil {
		policies := []corev1.IPFamilyPolicy{corev1.IPFamilyPolicySingleStack, corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack}
		if !supported(*spec.IPFamilyPolicy, policies) {
			errs = append(errs, field.NotSupported(sp.Child("ipFamilyPolicy"), *spec.IPFamilyPolicy, policies))
		}
	}
	for i, f := range spec.IPFamilies {
		families := []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		if !supported(f, families) {
			errs = append(errs, field.NotSupported(sp.Child("ipFamilies").Index(i), f, families))
		}
	}
	return errs
}

// serviceUpdateView is the update as Kubernetes validates it: allocated values the client
// omitted are kept (a PUT without clusterIP or nodePort keeps them), and values the new type
// has no use for are dropped when the client left them as they were (ClusterIP -> ExternalName,
// NodePort -> ClusterIP). The API server applies the same rules when it stores the update.
func serviceUpdateView(svc, old *corev1.Service) *corev1.Service {
	svc = svc.DeepCopy()
	spec, o := &svc.Spec, &old.Spec
	if spec.Type != corev1.ServiceTypeExternalName && spec.ClusterIP == "" && o.ClusterIP != "" {
		spec.ClusterIP, spec.ClusterIPs = o.ClusterIP, append([]string(nil), o.ClusterIPs...)
	}
	if spec.Type == corev1.ServiceTypeExternalName && o.Type != corev1.ServiceTypeExternalName {
		if spec.ClusterIP == o.ClusterIP {
			spec.ClusterIP, spec.ClusterIPs = "", nil
		}
	}
	if spec.Type != corev1.ServiceTypeNodePort && spec.Type != corev1.ServiceTypeLoadBalancer {
		oldPorts := map[string]int32{}
		for _, p := range o.Ports {
			oldPorts[fmt.Sprintf("%d/%s", p.Port, p.Protocol)] = p.NodePort
		}
		for i := range spec.Ports {
			p := &spec.Ports[i]
			if p.NodePort != 0 && oldPorts[fmt.Sprintf("%d/%s", p.Port, p.Protocol)] == p.NodePort {
				p.NodePort = 0
			}
		}
	}
	if !externallyAccessible(svc) && spec.ExternalTrafficPolicy == o.ExternalTrafficPolicy {
		spec.ExternalTrafficPolicy = ""
	}
	return svc
}

// validateServiceUpdate keeps allocated cluster IPs: they may not change once set, unless the
// service moves to or from ExternalName (which has none).
func validateServiceUpdate(svc, old *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	if svc.Spec.Type == corev1.ServiceTypeExternalName || old.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	if len(old.Spec.ClusterIPs) == 0 {
		return nil
	}
	p := field.NewPath("spec", "clusterIPs")
	if len(svc.Spec.ClusterIPs) == 0 {
		return append(errs, field.Invalid(p.Index(0), "", "primary clusterIP can not be unset"))
	}
	for i := range old.Spec.ClusterIPs {
		if i < len(svc.Spec.ClusterIPs) && svc.Spec.ClusterIPs[i] != old.Spec.ClusterIPs[i] {
			errs = append(errs, field.Invalid(p.Index(i), svc.Spec.ClusterIPs, "may not change once set"))
		}
	}
	return errs
}

// servicePorts is the PORT(S) cell: "80/TCP", "80:30080/TCP", comma-separated.
func servicePorts(ports []corev1.ServicePort) string {
	pieces := make([]string, len(ports))
	for i, p := range ports {
		if p.NodePort > 0 {
			pieces[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			pieces[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	return strings.Join(pieces, ",")
}

func serviceExternalIP(svc *corev1.Service) string {
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		lb := sets.New[string]()
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				lb.Insert(in.IP)
			} else if in.Hostname != "" {
				lb.Insert(in.Hostname)
			}
		}
		ips := lb.UnsortedList()
		sort.Strings(ips)
		ips = append(ips, svc.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}
