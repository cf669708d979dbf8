package apiserver

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	registrystorage "github.com/nanokube/nanokube/internal/apiserver/registry/storage"
	"github.com/nanokube/nanokube/internal/storage"
)

var priorityClassesGVR = schema.GroupVersionResource{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"}

var storageClassesGVR = schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"}

// systemPriorityClasses are the classes every Kubernetes cluster has.
var systemPriorityClasses = []*schedulingv1.PriorityClass{
	{ObjectMeta: metav1.ObjectMeta{Name: "system-node-critical"}, Value: 2000001000,
		Description: "Used for system critical pods that must not be moved from their current node."},
	{ObjectMeta: metav1.ObjectMeta{Name: "system-cluster-critical"}, Value: 2000000000,
		Description: "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."},
}

// admitDefaults runs the defaulting admission plugins of Kubernetes on new objects:
// LimitRanger (default requests and limits), ServiceAccount (the pod's account defaults to
// "default", and the token volume is added), DefaultTolerationSeconds (300 s for not-ready
// and unreachable nodes) and Priority (spec.priority from the pod's PriorityClass, or the
// global default class, or 0).
func (s *Server) admitDefaults(ctx context.Context, rs *resourceStore, obj runtime.Object) error {
	if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
		return s.admitDefaultStorageClass(ctx, pvc)
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil
	}
	if err := s.admitLimitRangeDefaults(ctx, pod); err != nil {
		return err
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = "default"
	}
	s.admitServiceAccountToken(ctx, pod)
	defaultTolerations(pod)
	return s.admitPriority(ctx, pod)
}

func (s *Server) admitPriority(ctx context.Context, pod *corev1.Pod) error {
	pcs := s.resources[priorityClassesGVR]
	if pcs == nil {
		return nil
	}
	var pc *schedulingv1.PriorityClass
	if name := pod.Spec.PriorityClassName; name != "" {
		obj, err := pcs.lookup(ctx, pcs.key("", name))
		if errors.Is(err, storage.ErrNotFound) {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name, fmt.Errorf("no PriorityClass with name %s was found", name))
		}
		if err != nil {
			return toStatus(err, pcs.gr, name)
		}
		pc = obj.(*schedulingv1.PriorityClass)
	} else {
		items, _, err := pcs.cacheList(ctx, pcs.prefix, 0, func(o runtime.Object) bool { return o.(*schedulingv1.PriorityClass).GlobalDefault })
		if err != nil {
			return toStatus(err, pcs.gr, "")
		}
		for _, it := range items {
			if c := it.(*schedulingv1.PriorityClass); pc == nil || c.Value < pc.Value {
				pc = c
			}
		}
	}
	var value int32
	policy := corev1.PreemptLowerPriority
	if pc != nil {
		value = pc.Value
		pod.Spec.PriorityClassName = pc.Name
		if pc.PreemptionPolicy != nil {
			policy = *pc.PreemptionPolicy
		}
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != value {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
			fmt.Errorf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *pod.Spec.Priority, value))
	}
	pod.Spec.Priority = ptr.To(value)
	if pod.Spec.PreemptionPolicy == nil {
		pod.Spec.PreemptionPolicy = &policy
	}
	return nil
}

// ensurePriorityClasses creates the system priority classes.
func (s *Server) ensurePriorityClasses(ctx context.Context, opts writeOptions) error {
	pcs := s.resources[priorityClassesGVR]
	if pcs == nil {
		return nil
	}
	for _, pc := range systemPriorityClasses {
		c := pc.DeepCopy()
		c.TypeMeta = metav1.TypeMeta{Kind: "PriorityClass", APIVersion: "scheduling.k8s.io/v1"}
		if err := s.ensure(ctx, pcs, c, opts); err != nil {
			return err
		}
	}
	return nil
}

// admitDefaultStorageClass is Kubernetes' DefaultStorageClass admission: a claim created
// without spec.storageClassName gets the default StorageClass (the newest one, then the first
// by name, if several are marked default). An explicit "" means "no class" and is kept, as is
// a claim when no class is the default.
func (s *Server) admitDefaultStorageClass(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	scs := s.resources[storageClassesGVR]
	if scs == nil || pvc.Spec.StorageClassName != nil {
		return nil
	}
	items, _, err := scs.cacheList(ctx, scs.prefix, 0, func(o runtime.Object) bool {
		return registrystorage.IsDefaultClass(o.(*storagev1.StorageClass))
	})
	if err != nil {
		return toStatus(err, scs.gr, "")
	}
	var def *storagev1.StorageClass
	for _, it := range items {
		c := it.(*storagev1.StorageClass)
		if def == nil || c.CreationTimestamp.After(def.CreationTimestamp.Time) ||
			(c.CreationTimestamp.Equal(&def.CreationTimestamp) && c.Name < def.Name) {
			def = c
		}
	}
	if def != nil {
		pvc.Spec.StorageClassName = ptr.To(def.Name)
	}
	return nil
}
