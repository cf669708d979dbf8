// Package apps describes the apps/v1 resources: deployments, replicasets, statefulsets,
// daemonsets and controllerrevisions. Pod templates are defaulted and validated by package core.
// The scale subresource (autoscaling/v1 Scale) is served by the API server from spec.replicas,
// status.replicas and the selector.
package apps

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/apiserver/registry/core"
)

var all = []string{"all"}

// Resources returns the apps/v1 resources.
func Resources() []*registry.Resource {
	gv := appsv1.SchemeGroupVersion
	return []*registry.Resource{
		{GroupVersion: gv, Resource: "deployments", Kind: "Deployment", ListKind: "DeploymentList", SingularName: "deployment",
			ShortNames: []string{"deploy"}, Categories: all, Namespaced: true, Subresources: []string{"status", "scale"},
			Strategy: DeploymentStrategy},
		{GroupVersion: gv, Resource: "replicasets", Kind: "ReplicaSet", ListKind: "ReplicaSetList", SingularName: "replicaset",
			ShortNames: []string{"rs"}, Categories: all, Namespaced: true, Subresources: []string{"status", "scale"},
			Strategy: ReplicaSetStrategy},
		{GroupVersion: gv, Resource: "statefulsets", Kind: "StatefulSet", ListKind: "StatefulSetList", SingularName: "statefulset",
			ShortNames: []string{"sts"}, Categories: all, Namespaced: true, Subresources: []string{"status", "scale"},
			Strategy: StatefulSetStrategy},
		{GroupVersion: gv, Resource: "daemonsets", Kind: "DaemonSet", ListKind: "DaemonSetList", SingularName: "daemonset",
			ShortNames: []string{"ds"}, Categories: all, Namespaced: true, Subresources: []string{"status"},
			Strategy: DaemonSetStrategy},
		{GroupVersion: gv, Resource: "controllerrevisions", Kind: "ControllerRevision", ListKind: "ControllerRevisionList",
			SingularName: "controllerrevision", Namespaced: true, Strategy: ControllerRevisionStrategy},
	}
}

var (
	containersColumn = metav1.TableColumnDefinition{Name: "Containers", Type: "string", Priority: 1, Description: "Names of each container in the template."}
	imagesColumn     = metav1.TableColumnDefinition{Name: "Images", Type: "string", Priority: 1, Description: "Images referenced by each container in the template."}
	selectorColumn   = metav1.TableColumnDefinition{Name: "Selector", Type: "string", Priority: 1, Description: "Label query over pods that should match the replica count."}
)

func specPath() *field.Path { return field.NewPath("spec") }

// validateTemplate checks a long-running workload's pod template: restartPolicy Always and no
// activeDeadlineSeconds.
func validateTemplate(t *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	errs := core.ValidatePodTemplate(t, p, core.AlwaysRestartPolicies)
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(p.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in ReplicaSet is not Supported"))
	}
	return errs
}

func nonNegative(v *int32, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	return apivalidation.ValidateNonnegativeField(int64(*v), p)
}

// validateIntOrPercent checks maxSurge/maxUnavailable-like values: non-negative, and at most
// 100% when a percentage.
func validateIntOrPercent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	var errs field.ErrorList
	switch v.Type {
	case intstr.String:
		n, err := strconv.Atoi(trimPercent(v.StrVal))
		if err != nil || len(v.StrVal) == 0 || v.StrVal[len(v.StrVal)-1] != '%' {
			return append(errs, field.Invalid(p, v.StrVal, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"))
		}
		if n < 0 {
			errs = append(errs, field.Invalid(p, v.StrVal, "must be greater than or equal to 0"))
		}
		if n > 100 {
			errs = append(errs, field.Invalid(p, v.StrVal, "must not be greater than 100%"))
		}
	case intstr.Int:
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(v.IntVal), p)...)
	}
	return errs
}

func trimPercent(s string) string {
	if len(s) > 0 && s[len(s)-1] == '%' {
		return s[:len(s)-1]
	}
	return s
}

func isZero(v *intstr.IntOrString) bool {
	return v == nil || (v.Type == intstr.Int && v.IntVal == 0) || (v.Type == intstr.String && trimPercent(v.StrVal) == "0")
}

func validateSelectorUpdate(sel, old *metav1.LabelSelector) field.ErrorList {
	return apivalidation.ValidateImmutableField(sel, old, specPath().Child("selector"))
}

// DeploymentStrategy is the strategy of deployments.
var DeploymentStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		d := obj.(*appsv1.Deployment)
		core.DefaultPodTemplate(&d.Spec.Template)
		if d.Spec.Replicas == nil {
			d.Spec.Replicas = ptr.To(int32(1))
		}
		s := &d.Spec.Strategy
		if s.Type == "" {
			s.Type = appsv1.RollingUpdateDeploymentStrategyType
		}
		if s.Type == appsv1.RollingUpdateDeploymentStrategyType {
			if s.RollingUpdate == nil {
				s.RollingUpdate = &appsv1.RollingUpdateDeployment{}
			}
			if s.RollingUpdate.MaxUnavailable == nil {
				s.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("25%"))
			}
			if s.RollingUpdate.MaxSurge == nil {
				s.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("25%"))
			}
		}
		if d.Spec.RevisionHistoryLimit == nil {
			d.Spec.RevisionHistoryLimit = ptr.To(int32(10))
		}
		if d.Spec.ProgressDeadlineSeconds == nil {
			d.Spec.ProgressDeadlineSeconds = ptr.To(int32(600))
		}
	},
	PrepareForCreate: func(obj runtime.Object) { obj.(*appsv1.Deployment).Status = appsv1.DeploymentStatus{} },
	Validate:         func(obj runtime.Object) field.ErrorList { return validateDeployment(obj.(*appsv1.Deployment)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		d, o := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
		return append(validateDeployment(d), validateSelectorUpdate(d.Spec.Selector, o.Spec.Selector)...)
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
		{Name: "Up-to-date", Type: "string", Description: "Total number of non-terminating pods targeted by this deployment that have the desired template spec."},
		{Name: "Available", Type: "string", Description: "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment."},
		registry.AgeColumn, containersColumn, imagesColumn, selectorColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		d := obj.(*appsv1.Deployment)
		names, images := core.ContainerCells(d.Spec.Template.Spec.Containers)
		return []interface{}{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 0)),
			int64(d.Status.UpdatedReplicas), int64(d.Status.AvailableReplicas), registry.Age(d.CreationTimestamp),
			names, images, metav1.FormatLabelSelector(d.Spec.Selector)}
	},
}

func validateDeployment(d *appsv1.Deployment) field.ErrorList {
	sp := specPath()
	errs := nonNegative(d.Spec.Replicas, sp.Child("replicas"))
	errs = append(errs, core.ValidateSelector(d.Spec.Selector, &d.Spec.Template, sp, "deployment")...)
	errs = append(errs, validateTemplate(&d.Spec.Template, sp.Child("template"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(d.Spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	errs = append(errs, nonNegative(d.Spec.RevisionHistoryLimit, sp.Child("revisionHistoryLimit"))...)
	if pds := d.Spec.ProgressDeadlineSeconds; pds != nil {
		errs = append(errs, nonNegative(pds, sp.Child("progressDeadlineSeconds"))...)
		if *pds <= d.Spec.MinReadySeconds {
			errs = append(errs, field.Invalid(sp.Child("progressDeadlineSeconds"), *pds, "must be greater than minReadySeconds"))
		}
	}
	s := d.Spec.Strategy
	stp := sp.Child("strategy")
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(stp.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if s.RollingUpdate == nil {
			errs = append(errs, field.Required(stp.Child("rollingUpdate"), "this should be defaulted and never be nil"))
			break
		}
		rp := stp.Child("rollingUpdate")
		errs = append(errs, validateIntOrPercent(s.RollingUpdate.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, validateIntOrPercent(s.RollingUpdate.MaxSurge, rp.Child("maxSurge"))...)
		if isZero(s.RollingUpdate.MaxUnavailable) && isZero(s.RollingUpdate.MaxSurge) {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), s.RollingUpdate.MaxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
	default:
		errs = append(errs, field.NotSupported(stp.Child("type"), s.Type,
			[]appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType}))
	}
	return errs
}

// ReplicaSetStrategy is the strategy of replicasets.
var ReplicaSetStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		rs := obj.(*appsv1.ReplicaSet)
		core.DefaultPodTemplate(&rs.Spec.Template)
		if rs.Spec.Replicas == nil {
			rs.Spec.Replicas = ptr.To(int32(1))
		}
	},
	PrepareForCreate: func(obj runtime.Object) { obj.(*appsv1.ReplicaSet).Status = appsv1.ReplicaSetStatus{} },
	Validate:         func(obj runtime.Object) field.ErrorList { return validateReplicaSet(obj.(*appsv1.ReplicaSet)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		rs, o := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
		return append(validateReplicaSet(rs), validateSelectorUpdate(rs.Spec.Selector, o.Spec.Selector)...)
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Desired", Type: "integer", Description: "Replicas is the number of desired pods."},
		{Name: "Current", Type: "integer", Description: "Replicas is the most recently observed number of non-terminating pods."},
		{Name: "Ready", Type: "integer", Description: "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."},
		registry.AgeColumn, containersColumn, imagesColumn, selectorColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		rs := obj.(*appsv1.ReplicaSet)
		names, images := core.ContainerCells(rs.Spec.Template.Spec.Containers)
		return []interface{}{rs.Name, int64(ptr.Deref(rs.Spec.Replicas, 0)), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
			registry.Age(rs.CreationTimestamp), names, images, metav1.FormatLabelSelector(rs.Spec.Selector)}
	},
	Fields: func(obj runtime.Object) fields.Set {
		return fields.Set{"status.replicas": strconv.Itoa(int(obj.(*appsv1.ReplicaSet).Status.Replicas))}
	},
}

func validateReplicaSet(rs *appsv1.ReplicaSet) field.ErrorList {
	sp := specPath()
	errs := nonNegative(rs.Spec.Replicas, sp.Child("replicas"))
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(rs.Spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	errs = append(errs, core.ValidateSelector(rs.Spec.Selector, &rs.Spec.Template, sp, "replicaset")...)
	return append(errs, validateTemplate(&rs.Spec.Template, sp.Child("template"))...)
}

// StatefulSetStrategy is the strategy of statefulsets.
var StatefulSetStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		s := obj.(*appsv1.StatefulSet)
		core.DefaultPodTemplate(&s.Spec.Template)
		if s.Spec.PodManagementPolicy == "" {
			s.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
		}
		u := &s.Spec.UpdateStrategy
		if u.Type == "" {
			u.Type = appsv1.RollingUpdateStatefulSetStrategyType
		}
		if u.Type == appsv1.RollingUpdateStatefulSetStrategyType {
			if u.RollingUpdate == nil {
				u.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
			}
			if u.RollingUpdate.Partition == nil {
				u.RollingUpdate.Partition = ptr.To(int32(0))
			}
		}
		if s.Spec.Replicas == nil {
			s.Spec.Replicas = ptr.To(int32(1))
		}
		if s.Spec.RevisionHistoryLimit == nil {
			s.Spec.RevisionHistoryLimit = ptr.To(int32(10))
		}
		if s.Spec.PersistentVolumeClaimRetentionPolicy == nil {
			s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
		}
		r := s.Spec.PersistentVolumeClaimRetentionPolicy
		if r.WhenDeleted == "" {
			r.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
		}
		if r.WhenScaled == "" {
			r.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
		}
		for i := range s.Spec.VolumeClaimTemplates {
			core.DefaultPersistentVolumeClaim(&s.Spec.VolumeClaimTemplates[i])
		}
	},
	PrepareForCreate: func(obj runtime.Object) { obj.(*appsv1.StatefulSet).Status = appsv1.StatefulSetStatus{} },
	Validate:         func(obj runtime.Object) field.ErrorList { return validateStatefulSet(obj.(*appsv1.StatefulSet)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		s, o := obj.(*appsv1.StatefulSet), old.(*appsv1.StatefulSet)
		errs := validateStatefulSet(s)
		// Only these fields may change; everything else in spec is fixed at creation.
		munged := o.Spec.DeepCopy()
		munged.Replicas = s.Spec.Replicas
		munged.Ordinals = s.Spec.Ordinals
		munged.Template = s.Spec.Template
		munged.UpdateStrategy = s.Spec.UpdateStrategy
		munged.RevisionHistoryLimit = s.Spec.RevisionHistoryLimit
		munged.PersistentVolumeClaimRetentionPolicy = s.Spec.PersistentVolumeClaimRetentionPolicy
		munged.MinReadySeconds = s.Spec.MinReadySeconds
		if !equality.Semantic.DeepEqual(munged, &s.Spec) {
			errs = append(errs, field.Forbidden(specPath(), "updates to statefulset spec for fields other than 'replicas', 'ordinals', "+
				"'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
		registry.AgeColumn, containersColumn, imagesColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		s := obj.(*appsv1.StatefulSet)
		names, images := core.ContainerCells(s.Spec.Template.Spec.Containers)
		return []interface{}{s.Name, fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, ptr.Deref(s.Spec.Replicas, 0)),
			registry.Age(s.CreationTimestamp), names, images}
	},
}

func validateStatefulSet(s *appsv1.StatefulSet) field.ErrorList {
	sp := specPath()
	errs := nonNegative(s.Spec.Replicas, sp.Child("replicas"))
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.Spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	errs = append(errs, nonNegative(s.Spec.RevisionHistoryLimit, sp.Child("revisionHistoryLimit"))...)
	policies := []appsv1.PodManagementPolicyType{appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement}
	if s.Spec.PodManagementPolicy == "" {
		errs = append(errs, field.Required(sp.Child("podManagementPolicy"), ""))
	} else if !supportedValue(s.Spec.PodManagementPolicy, policies) {
		errs = append(errs, field.NotSupported(sp.Child("podManagementPolicy"), s.Spec.PodManagementPolicy, policies))
	}
	u := s.Spec.UpdateStrategy
	up := sp.Child("updateStrategy")
	switch u.Type {
	case appsv1.OnDeleteStatefulSetStrategyType:
		if u.RollingUpdate != nil {
			errs = append(errs, field.Invalid(up.Child("rollingUpdate"), u.RollingUpdate, "only allowed for updateStrategy 'RollingUpdate'"))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if u.RollingUpdate != nil {
			errs = append(errs, nonNegative(u.RollingUpdate.Partition, up.Child("rollingUpdate", "partition"))...)
		}
	default:
		errs = append(errs, field.NotSupported(up.Child("type"), u.Type,
			[]appsv1.StatefulSetUpdateStrategyType{appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType}))
	}
	if r := s.Spec.PersistentVolumeClaimRetentionPolicy; r != nil {
		types := []appsv1.PersistentVolumeClaimRetentionPolicyType{appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
		rp := sp.Child("persistentVolumeClaimRetentionPolicy")
		if !supportedValue(r.WhenDeleted, types) {
			errs = append(errs, field.NotSupported(rp.Child("whenDeleted"), r.WhenDeleted, types))
		}
		if !supportedValue(r.WhenScaled, types) {
			errs = append(errs, field.NotSupported(rp.Child("whenScaled"), r.WhenScaled, types))
		}
	}
	for i := range s.Spec.VolumeClaimTemplates {
		errs = append(errs, core.ValidatePersistentVolumeClaimSpec(&s.Spec.VolumeClaimTemplates[i].Spec, sp.Child("volumeClaimTemplates").Index(i).Child("spec"))...)
	}
	errs = append(errs, core.ValidateSelector(s.Spec.Selector, &s.Spec.Template, sp, "statefulset")...)
	return append(errs, validateTemplate(withClaimVolumes(s), sp.Child("template"))...)
}

// withClaimVolumes returns the template as the controller makes pods of it: each
// volumeClaimTemplate is a persistentVolumeClaim volume of its name (replacing a template
// volume of that name), so that volumeMounts may name claim templates, as in Kubernetes.
func withClaimVolumes(s *appsv1.StatefulSet) *corev1.PodTemplateSpec {
	if len(s.Spec.VolumeClaimTemplates) == 0 {
		return &s.Spec.Template
	}
	t := s.Spec.Template.DeepCopy()
	for _, c := range s.Spec.VolumeClaimTemplates {
		vol := corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name}}}
		i := slices.IndexFunc(t.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.Name })
		if i >= 0 {
			t.Spec.Volumes[i] = vol
		} else {
			t.Spec.Volumes = append(t.Spec.Volumes, vol)
		}
	}
	return t
}

func supportedValue[T comparable](v T, allowed []T) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// DaemonSetStrategy is the strategy of daemonsets.
var DaemonSetStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		ds := obj.(*appsv1.DaemonSet)
		core.DefaultPodTemplate(&ds.Spec.Template)
		u := &ds.Spec.UpdateStrategy
		if u.Type == "" {
			u.Type = appsv1.RollingUpdateDaemonSetStrategyType
		}
		if u.Type == appsv1.RollingUpdateDaemonSetStrategyType {
			if u.RollingUpdate == nil {
				u.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
			}
			if u.RollingUpdate.MaxUnavailable == nil {
				u.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(1))
			}
			if u.RollingUpdate.MaxSurge == nil {
				u.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
			}
		}
		if ds.Spec.RevisionHistoryLimit == nil {
			ds.Spec.RevisionHistoryLimit = ptr.To(int32(10))
		}
	},
	PrepareForCreate: func(obj runtime.Object) { obj.(*appsv1.DaemonSet).Status = appsv1.DaemonSetStatus{} },
	Validate:         func(obj runtime.Object) field.ErrorList { return validateDaemonSet(obj.(*appsv1.DaemonSet)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		ds, o := obj.(*appsv1.DaemonSet), old.(*appsv1.DaemonSet)
		return append(validateDaemonSet(ds), validateSelectorUpdate(ds.Spec.Selector, o.Spec.Selector)...)
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Desired", Type: "integer", Description: "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."},
		{Name: "Current", Type: "integer", Description: "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."},
		{Name: "Ready", Type: "integer", Description: "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."},
		{Name: "Up-to-date", Type: "integer", Description: "The total number of nodes that are running updated daemon pod"},
		{Name: "Available", Type: "integer", Description: "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"},
		{Name: "Node Selector", Type: "string", Description: "NodeSelector is a selector which must be true for the pod to fit on a node."},
		registry.AgeColumn, containersColumn, imagesColumn, selectorColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		ds := obj.(*appsv1.DaemonSet)
		names, images := core.ContainerCells(ds.Spec.Template.Spec.Containers)
		st := ds.Status
		return []interface{}{ds.Name, int64(st.DesiredNumberScheduled), int64(st.CurrentNumberScheduled), int64(st.NumberReady),
			int64(st.UpdatedNumberScheduled), int64(st.NumberAvailable), labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
			registry.Age(ds.CreationTimestamp), names, images, metav1.FormatLabelSelector(ds.Spec.Selector)}
	},
}

func validateDaemonSet(ds *appsv1.DaemonSet) field.ErrorList {
	sp := specPath()
	errs := core.ValidateSelector(ds.Spec.Selector, &ds.Spec.Template, sp, "daemonset")
	errs = append(errs, validateTemplate(&ds.Spec.Template, sp.Child("template"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(ds.Spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	errs = append(errs, nonNegative(ds.Spec.RevisionHistoryLimit, sp.Child("revisionHistoryLimit"))...)
	u := ds.Spec.UpdateStrategy
	up := sp.Child("updateStrategy")
	switch u.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		if u.RollingUpdate == nil {
			errs = append(errs, field.Required(up.Child("rollingUpdate"), ""))
			break
		}
		rp := up.Child("rollingUpdate")
		errs = append(errs, validateIntOrPercent(u.RollingUpdate.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, validateIntOrPercent(u.RollingUpdate.MaxSurge, rp.Child("maxSurge"))...)
		if isZero(u.RollingUpdate.MaxUnavailable) && isZero(u.RollingUpdate.MaxSurge) {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), u.RollingUpdate.MaxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
	default:
		errs = append(errs, field.NotSupported(up.Child("type"), u.Type,
			[]appsv1.DaemonSetUpdateStrategyType{appsv1.RollingUpdateDaemonSetStrategyType, appsv1.OnDeleteDaemonSetStrategyType}))
	}
	return errs
}

// ControllerRevisionStrategy is the strategy of controllerrevisions.
var ControllerRevisionStrategy = registry.Strategy{
	Validate: func(obj runtime.Object) field.ErrorList {
		return validateControllerRevision(obj.(*appsv1.ControllerRevision))
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		cr, o := obj.(*appsv1.ControllerRevision), old.(*appsv1.ControllerRevision)
		errs := validateControllerRevision(cr)
		if !equality.Semantic.DeepEqual(cr.Data, o.Data) {
			errs = append(errs, field.Invalid(field.NewPath("data"), "<data>", "field is immutable"))
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Controller", Type: "string", Description: "Controller of the object"},
		{Name: "Revision", Type: "string", Description: "Revision indicates the revision of the state represented by Data."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		cr := obj.(*appsv1.ControllerRevision)
		controller := "<none>"
		if ref := metav1.GetControllerOf(cr); ref != nil {
			gv, _ := schema.ParseGroupVersion(ref.APIVersion)
			gk := schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
			controller = strings.ToLower(gk.String()) + "/" + ref.Name
		}
		return []interface{}{cr.Name, controller, cr.Revision, registry.Age(cr.CreationTimestamp)}
	},
}

func validateControllerRevision(cr *appsv1.ControllerRevision) field.ErrorList {
	errs := apivalidation.ValidateNonnegativeField(cr.Revision, field.NewPath("revision"))
	if cr.Data.Raw == nil && cr.Data.Object == nil {
		errs = append(errs, field.Required(field.NewPath("data"), "data is mandatory"))
	}
	return errs
}
