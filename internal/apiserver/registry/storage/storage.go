// Package storage describes the storage.k8s.io/v1 resources: storageclasses.
//
// Validation follows kube-apiserver's (pkg/apis/storage/validation) and uses its wording; the
// DefaultStorageClass admission that fills a claim's storageClassName lives in the API server,
// which reads IsDefaultClass from here.
package storage

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// DefaultClassAnnotation marks the default StorageClass; BetaDefaultClassAnnotation is its
// older spelling, which Kubernetes still honours.
const (
	DefaultClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	BetaDefaultClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

// Limits on parameters, as in Kubernetes.
const (
	maxParameterCount = 512
	maxParameterSize  = 256 * (1 << 10)
)

// Resources returns the storage.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{GroupVersion: storagev1.SchemeGroupVersion, Resource: "storageclasses", Kind: "StorageClass",
			ListKind: "StorageClassList", SingularName: "storageclass", ShortNames: []string{"sc"}, Strategy: StorageClassStrategy},
	}
}

// IsDefaultClass reports whether sc is annotated as the cluster's default class.
func IsDefaultClass(sc *storagev1.StorageClass) bool {
	return sc.Annotations[DefaultClassAnnotation] == "true" || sc.Annotations[BetaDefaultClassAnnotation] == "true"
}

// StorageClassStrategy is the strategy of storageclasses.
var StorageClassStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		sc := obj.(*storagev1.StorageClass)
		if sc.ReclaimPolicy == nil {
			sc.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimDelete)
		}
		if sc.VolumeBindingMode == nil {
			sc.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
		}
	},
	Validate: func(obj runtime.Object) field.ErrorList { return validateStorageClass(obj.(*storagev1.StorageClass)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		sc, o := obj.(*storagev1.StorageClass), old.(*storagev1.StorageClass)
		errs := validateStorageClass(sc)
		if !equalParameters(sc.Parameters, o.Parameters) {
			errs = append(errs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
		}
		if sc.Provisioner != o.Provisioner {
			errs = append(errs, field.Forbidden(field.NewPath("provisioner"), "updates to provisioner are forbidden."))
		}
		if !ptr.Equal(sc.ReclaimPolicy, o.ReclaimPolicy) {
			errs = append(errs, field.Forbidden(field.NewPath("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
		}
		if !ptr.Equal(sc.VolumeBindingMode, o.VolumeBindingMode) {
			errs = append(errs, field.Forbidden(field.NewPath("volumeBindingMode"), "field is immutable"))
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Provisioner", Type: "string", Description: "provisioner indicates the type of the provisioner."},
		{Name: "ReclaimPolicy", Type: "string", Description: "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."},
		{Name: "VolumeBindingMode", Type: "string", Description: "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."},
		{Name: "AllowVolumeExpansion", Type: "string", Description: "allowVolumeExpansion shows whether the storage class allow volume expand."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		sc := obj.(*storagev1.StorageClass)
		name := sc.Name
		if IsDefaultClass(sc) {
			name += " (default)"
		}
		reclaim, binding := string(corev1.PersistentVolumeReclaimDelete), string(storagev1.VolumeBindingImmediate)
		if sc.ReclaimPolicy != nil {
			reclaim = string(*sc.ReclaimPolicy)
		}
		if sc.VolumeBindingMode != nil {
			binding = string(*sc.VolumeBindingMode)
		}
		expansion := sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
		return []interface{}{name, sc.Provisioner, reclaim, binding, expansion, registry.Age(sc.CreationTimestamp)}
	},
}

func validateStorageClass(sc *storagev1.StorageClass) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("provisioner")
	if sc.Provisioner == "" {
		errs = append(errs, field.Required(p, sc.Provisioner))
	} else if msgs := validation.IsQualifiedName(strings.ToLower(sc.Provisioner)); len(msgs) > 0 {
		errs = append(errs, field.Invalid(p, sc.Provisioner, strings.Join(msgs, "; ")))
	}
	errs = append(errs, validateParameters(sc.Parameters, field.NewPath("parameters"))...)
	if sc.ReclaimPolicy != nil {
		if r := *sc.ReclaimPolicy; r != corev1.PersistentVolumeReclaimDelete && r != corev1.PersistentVolumeReclaimRetain {
			errs = append(errs, field.NotSupported(field.NewPath("reclaimPolicy"), r,
				[]string{string(corev1.PersistentVolumeReclaimDelete), string(corev1.PersistentVolumeReclaimRetain)}))
		}
	}
	bp := field.NewPath("volumeBindingMode")
	switch {
	case sc.VolumeBindingMode == nil:
		errs = append(errs, field.Required(bp, ""))
	case *sc.VolumeBindingMode != storagev1.VolumeBindingImmediate && *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer:
		errs = append(errs, field.NotSupported(bp, *sc.VolumeBindingMode,
			[]string{string(storagev1.VolumeBindingImmediate), string(storagev1.VolumeBindingWaitForFirstConsumer)}))
	}
	tp := field.NewPath("allowedTopologies")
	for i, term := range sc.AllowedTopologies {
		if len(term.MatchLabelExpressions) == 0 {
			errs = append(errs, field.Required(tp.Index(i).Child("matchLabelExpressions"), "must contain at least one requirement"))
		}
		for j, req := range term.MatchLabelExpressions {
			rp := tp.Index(i).Child("matchLabelExpressions").Index(j)
			for _, msg := range validation.IsQualifiedName(req.Key) {
				errs = append(errs, field.Invalid(rp.Child("key"), req.Key, msg))
			}
			if len(req.Values) == 0 {
				errs = append(errs, field.Required(rp.Child("values"), "must specify as least one value"))
			}
		}
	}
	return errs
}

func validateParameters(params map[string]string, p *field.Path) field.ErrorList {
	if len(params) > maxParameterCount {
		return field.ErrorList{field.TooLong(p, "Provisioner Parameters exceeded max allowed", maxParameterCount)}
	}
	var errs field.ErrorList
	size := 0
	for k, v := range params {
		if k == "" {
			errs = append(errs, field.Invalid(p, k, "field can not be empty."))
		}
		size += len(k) + len(v)
	}
	if size > maxParameterSize {
		errs = append(errs, field.TooLong(p, "", maxParameterSize))
	}
	return errs
}

func equalParameters(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
