package core

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// The storage and policy kinds of core/v1 (persistent volumes and claims, limit ranges, resource
// quotas): served so that manifests using them apply, with light validation.

// PersistentVolumeStrategy is the strategy of persistentvolumes.
var PersistentVolumeStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		pv := obj.(*corev1.PersistentVolume)
		if pv.Spec.PersistentVolumeReclaimPolicy == "" {
			pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		}
		if pv.Spec.VolumeMode == nil {
			mode := corev1.PersistentVolumeFilesystem
			pv.Spec.VolumeMode = &mode
		}
		if pv.Status.Phase == "" {
			pv.Status.Phase = corev1.VolumePending
		}
	},
	PrepareForCreate: func(obj runtime.Object) {
		obj.(*corev1.PersistentVolume).Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending}
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		pv := obj.(*corev1.PersistentVolume)
		var errs field.ErrorList
		if len(pv.Spec.AccessModes) == 0 {
			errs = append(errs, field.Required(field.NewPath("spec", "accessModes"), ""))
		}
		if _, ok := pv.Spec.Capacity[corev1.ResourceStorage]; !ok {
			errs = append(errs, field.Required(field.NewPath("spec", "capacity").Key(string(corev1.ResourceStorage)), ""))
		}
		if set := setFields(&pv.Spec.PersistentVolumeSource); len(set) == 0 {
			errs = append(errs, field.Required(field.NewPath("spec"), "must specify a volume type"))
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Capacity", Type: "string", Description: "capacity is the description of the persistent volume's resources and capacity."},
		{Name: "Access Modes", Type: "string", Description: "accessModes contains all ways the volume can be mounted."},
		{Name: "Reclaim Policy", Type: "string", Description: "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."},
		{Name: "Status", Type: "string", Description: "phase indicates if a volume is available, bound to a claim, or released by a claim."},
		{Name: "Claim", Type: "string", Description: "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."},
		{Name: "StorageClass", Type: "string", Description: "StorageClass of the pv"},
		{Name: "VolumeAttributesClass", Type: "string", Description: "VolumeAttributesClass of the pv"},
		{Name: "Reason", Type: "string", Description: "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."},
		registry.AgeColumn,
		{Name: "VolumeMode", Type: "string", Priority: 1, Description: "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."},
	},
	Row: func(obj runtime.Object) []interface{} {
		pv := obj.(*corev1.PersistentVolume)
		claim := ""
		if pv.Spec.ClaimRef != nil {
			claim = pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name
		}
		capacity := ""
		if q, ok := pv.Spec.Capacity[corev1.ResourceStorage]; ok {
			capacity = q.String()
		}
		return []interface{}{pv.Name, capacity, accessModes(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy),
			string(pv.Status.Phase), claim, pv.Spec.StorageClassName, unsetIfNil(pv.Spec.VolumeAttributesClassName), pv.Status.Reason,
			registry.Age(pv.CreationTimestamp), volumeMode(pv.Spec.VolumeMode)}
	},
}

// PersistentVolumeClaimStrategy is the strategy of persistentvolumeclaims.
var PersistentVolumeClaimStrategy = registry.Strategy{
	Default: func(obj runtime.Object) { DefaultPersistentVolumeClaim(obj.(*corev1.PersistentVolumeClaim)) },
	PrepareForCreate: func(obj runtime.Object) {
		obj.(*corev1.PersistentVolumeClaim).Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		return ValidatePersistentVolumeClaimSpec(&obj.(*corev1.PersistentVolumeClaim).Spec, field.NewPath("spec"))
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Status", Type: "string", Description: "phase represents the current phase of PersistentVolumeClaim."},
		{Name: "Volume", Type: "string", Description: "volumeName is the binding reference to the PersistentVolume backing this claim."},
		{Name: "Capacity", Type: "string", Description: "capacity represents the actual resources of the underlying volume."},
		{Name: "Access Modes", Type: "string", Description: "accessModes contains the actual access modes the volume backing the PVC has."},
		{Name: "StorageClass", Type: "string", Description: "StorageClass of the pvc"},
		{Name: "VolumeAttributesClass", Type: "string", Description: "VolumeAttributesClass of the pvc"},
		registry.AgeColumn,
		{Name: "VolumeMode", Type: "string", Priority: 1, Description: "volumeMode defines what type of volume is required by the claim."},
	},
	Row: func(obj runtime.Object) []interface{} {
		pvc := obj.(*corev1.PersistentVolumeClaim)
		phase := string(pvc.Status.Phase)
		if pvc.DeletionTimestamp != nil {
			phase = "Terminating"
		}
		capacity, modes := "", ""
		if pvc.Spec.VolumeName != "" {
			modes = accessModes(pvc.Status.AccessModes)
			if q, ok := pvc.Status.Capacity[corev1.ResourceStorage]; ok {
				capacity = q.String()
			}
		}
		class := ""
		if pvc.Spec.StorageClassName != nil {
			class = *pvc.Spec.StorageClassName
		}
		return []interface{}{pvc.Name, phase, pvc.Spec.VolumeName, capacity, modes, class,
			unsetIfNil(pvc.Spec.VolumeAttributesClassName), registry.Age(pvc.CreationTimestamp), volumeMode(pvc.Spec.VolumeMode)}
	},
}

// DefaultPersistentVolumeClaim fills a claim's defaults (also used for statefulset claim templates).
func DefaultPersistentVolumeClaim(pvc *corev1.PersistentVolumeClaim) {
	if pvc.Spec.VolumeMode == nil {
		mode := corev1.PersistentVolumeFilesystem
		pvc.Spec.VolumeMode = &mode
	}
	if pvc.Status.Phase == "" {
		pvc.Status.Phase = corev1.ClaimPending
	}
}

// ValidatePersistentVolumeClaimSpec checks the parts of a claim spec every claim needs.
func ValidatePersistentVolumeClaimSpec(spec *corev1.PersistentVolumeClaimSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(spec.AccessModes) == 0 {
		errs = append(errs, field.Required(p.Child("accessModes"), "at least 1 access mode is required"))
	}
	modes := []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod}
	for i, m := range spec.AccessModes {
		if !supported(m, modes) {
			errs = append(errs, field.NotSupported(p.Child("accessModes").Index(i), m, modes))
		}
	}
	if q, ok := spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		errs = append(errs, field.Required(p.Child("resources").Key(string(corev1.ResourceStorage)), ""))
	} else if q.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("resources").Key(string(corev1.ResourceStorage)), q.String(), "must be greater than zero"))
	}
	return errs
}

func accessModes(modes []corev1.PersistentVolumeAccessMode) string {
	short := map[corev1.PersistentVolumeAccessMode]string{corev1.ReadWriteOnce: "RWO", corev1.ReadOnlyMany: "ROX",
		corev1.ReadWriteMany: "RWX", corev1.ReadWriteOncePod: "RWOP"}
	var out []string
	seen := map[string]bool{}
	for _, m := range []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod} {
		for _, have := range modes {
			if have == m && !seen[short[m]] {
				seen[short[m]] = true
				out = append(out, short[m])
			}
		}
	}
	return strings.Join(out, ",")
}

func volumeMode(m *corev1.PersistentVolumeMode) string {
	if m == nil {
		return "<unset>"
	}
	return string(*m)
}

func unsetIfNil(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}

// LimitRangeStrategy is the strategy of limitranges.
var LimitRangeStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		lr := obj.(*corev1.LimitRange)
		for i := range lr.Spec.Limits {
			item := &lr.Spec.Limits[i]
			if item.Type != corev1.LimitTypeContainer {
				continue
			}
			// Kubernetes: default limits from max, default requests from the default limits,
			// then from min.
			for name, q := range item.Max {
				if _, ok := item.Default[name]; !ok {
					if item.Default == nil {
						item.Default = corev1.ResourceList{}
					}
					item.Default[name] = q.DeepCopy()
				}
			}
			for _, from := range []corev1.ResourceList{item.Default, item.Min} {
				for name, q := range from {
					if _, ok := item.DefaultRequest[name]; !ok {
						if item.DefaultRequest == nil {
							item.DefaultRequest = corev1.ResourceList{}
						}
						item.DefaultRequest[name] = q.DeepCopy()
					}
				}
			}
		}
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Created At", Type: "date", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."},
	},
	Row: func(obj runtime.Object) []interface{} {
		lr := obj.(*corev1.LimitRange)
		return []interface{}{lr.Name, lr.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z")}
	},
}

// ResourceQuotaStrategy is the strategy of resourcequotas.
var ResourceQuotaStrategy = registry.Strategy{
	PrepareForCreate: func(obj runtime.Object) { obj.(*corev1.ResourceQuota).Status = corev1.ResourceQuotaStatus{} },
	Validate: func(obj runtime.Object) field.ErrorList {
		var errs field.ErrorList
		for name, q := range obj.(*corev1.ResourceQuota).Spec.Hard {
			errs = append(errs, validateQuantity(q, field.NewPath("spec", "hard").Key(string(name)))...)
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		registry.AgeColumn,
		{Name: "Request", Type: "string", Description: "Request represents a minimum amount of cpu/memory that a container may consume."},
		{Name: "Limit", Type: "string", Description: "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."},
	},
	Row: func(obj runtime.Object) []interface{} {
		rq := obj.(*corev1.ResourceQuota)
		var requests, limits []string
		names := make([]string, 0, len(rq.Spec.Hard))
		for name := range rq.Spec.Hard {
			names = append(names, string(name))
		}
		sort.Strings(names)
		for _, name := range names {
			hard := rq.Spec.Hard[corev1.ResourceName(name)]
			used := "0"
			if q, ok := rq.Status.Used[corev1.ResourceName(name)]; ok {
				used = q.String()
			}
			cell := fmt.Sprintf("%s: %s/%s", name, used, hard.String())
			if strings.HasPrefix(name, "limits.") {
				limits = append(limits, cell)
			} else {
				requests = append(requests, cell)
			}
		}
		return []interface{}{rq.Name, registry.Age(rq.CreationTimestamp), strings.Join(requests, ", "), strings.Join(limits, ", ")}
	},
}
