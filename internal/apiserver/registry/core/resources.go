package core

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

var all = []string{"all"}

// Resources returns the core/v1 resources, in discovery order.
func Resources() []*registry.Resource {
	gv := corev1.SchemeGroupVersion
	return []*registry.Resource{
		{GroupVersion: gv, Resource: "namespaces", Kind: "Namespace", ListKind: "NamespaceList", SingularName: "namespace",
			ShortNames: []string{"ns"}, Subresources: []string{"status", "finalize"}, Strategy: NamespaceStrategy},
		{GroupVersion: gv, Resource: "pods", Kind: "Pod", ListKind: "PodList", SingularName: "pod",
			ShortNames: []string{"po"}, Categories: all, Namespaced: true,
			Subresources: []string{"status", "binding", "log", "exec", "attach", "portforward", "proxy", "eviction", "ephemeralcontainers"},
			Strategy:     PodStrategy},
		{GroupVersion: gv, Resource: "nodes", Kind: "Node", ListKind: "NodeList", SingularName: "node",
			ShortNames: []string{"no"}, Subresources: []string{"status", "proxy"}, Strategy: NodeStrategy},
		{GroupVersion: gv, Resource: "services", Kind: "Service", ListKind: "ServiceList", SingularName: "service",
			ShortNames: []string{"svc"}, Categories: all, Namespaced: true, Subresources: []string{"status", "proxy"},
			Strategy: ServiceStrategy},
		{GroupVersion: gv, Resource: "endpoints", Kind: "Endpoints", ListKind: "EndpointsList", SingularName: "endpoints",
			ShortNames: []string{"ep"}, Namespaced: true, Strategy: EndpointsStrategy},
		{GroupVersion: gv, Resource: "configmaps", Kind: "ConfigMap", ListKind: "ConfigMapList", SingularName: "configmap",
			ShortNames: []string{"cm"}, Namespaced: true, Strategy: ConfigMapStrategy},
		{GroupVersion: gv, Resource: "secrets", Kind: "Secret", ListKind: "SecretList", SingularName: "secret",
			Namespaced: true, Strategy: SecretStrategy},
		{GroupVersion: gv, Resource: "serviceaccounts", Kind: "ServiceAccount", ListKind: "ServiceAccountList", SingularName: "serviceaccount",
			ShortNames: []string{"sa"}, Namespaced: true, Subresources: []string{"token"}, Strategy: ServiceAccountStrategy},
		{GroupVersion: gv, Resource: "events", Kind: "Event", ListKind: "EventList", SingularName: "event",
			ShortNames: []string{"ev"}, Namespaced: true, Strategy: EventStrategy},
		{GroupVersion: gv, Resource: "limitranges", Kind: "LimitRange", ListKind: "LimitRangeList", SingularName: "limitrange",
			ShortNames: []string{"limits"}, Namespaced: true, Strategy: LimitRangeStrategy},
		{GroupVersion: gv, Resource: "resourcequotas", Kind: "ResourceQuota", ListKind: "ResourceQuotaList", SingularName: "resourcequota",
			ShortNames: []string{"quota"}, Namespaced: true, Subresources: []string{"status"}, Strategy: ResourceQuotaStrategy},
		{GroupVersion: gv, Resource: "persistentvolumes", Kind: "PersistentVolume", ListKind: "PersistentVolumeList", SingularName: "persistentvolume",
			ShortNames: []string{"pv"}, Subresources: []string{"status"}, Strategy: PersistentVolumeStrategy},
		{GroupVersion: gv, Resource: "persistentvolumeclaims", Kind: "PersistentVolumeClaim", ListKind: "PersistentVolumeClaimList",
			SingularName: "persistentvolumeclaim", ShortNames: []string{"pvc"}, Namespaced: true, Subresources: []string{"status"},
			Strategy: PersistentVolumeClaimStrategy},
	}
}
