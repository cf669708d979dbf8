package scheduler

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/nanokube/nanokube/internal/scheduler/framework"
)

// annSelectedNode is how the scheduler tells a provisioner where the first consumer of a
// WaitForFirstConsumer claim runs.
const annSelectedNode = "volume.kubernetes.io/selected-node"

// volumeListers read the claims, volumes and classes the VolumeBinding decision needs.
type volumeListers struct {
	claims  corelisters.PersistentVolumeClaimLister
	volumes corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
}

// watchVolumes starts caching claims, volumes and classes; a change to any of them may let
// a pod that VolumeBinding rejected fit.
func (s *Scheduler) watchVolumes() ([]toolscache.ResourceEventHandlerRegistration, error) {
	claims := s.factory.Core().V1().PersistentVolumeClaims()
	volumes := s.factory.Core().V1().PersistentVolumes()
	classes := s.factory.Storage().V1().StorageClasses()
	s.volumes = volumeListers{claims: claims.Lister(), volumes: volumes.Lister(), classes: classes.Lister()}
	wake := func(any) { s.queue.MoveAllToActiveOrBackoff("VolumeBinding") }
	h := toolscache.ResourceEventHandlerFuncs{AddFunc: wake, UpdateFunc: func(_, o any) { wake(o) }}
	var regs []toolscache.ResourceEventHandlerRegistration
	for _, inf := range []toolscache.SharedIndexInformer{claims.Informer(), volumes.Informer(), classes.Informer()} {
		reg, err := inf.AddEventHandler(h)
		if err != nil {
			return nil, err
		}
		regs = append(regs, reg)
	}
	return regs, nil
}

// podVolumes resolves the pod's claims from the caches for the VolumeBinding plugin; nil
// when the pod uses no claim.
func (s *Scheduler) podVolumes(pod *v1.Pod) *framework.PodVolumes {
	var out *framework.PodVolumes
	for _, vol := range pod.Spec.Volumes {
		if vol.PersistentVolumeClaim == nil {
			continue
		}
		if out == nil {
			out = &framework.PodVolumes{}
		}
		name := vol.PersistentVolumeClaim.ClaimName
		pvc, err := s.volumes.claims.PersistentVolumeClaims(pod.Namespace).Get(name)
		if err != nil {
			out.Unresolvable = fmt.Sprintf("persistentvolumeclaim %q not found", name)
			return out
		}
		if pvc.DeletionTimestamp != nil {
			out.Unresolvable = fmt.Sprintf("persistentvolumeclaim %q is being deleted", name)
			return out
		}
		if pvc.Spec.VolumeName != "" {
			pv, err := s.volumes.volumes.Get(pvc.Spec.VolumeName)
			if err != nil {
				out.Unresolvable = fmt.Sprintf("pvc(s) bound to non-existent pv(s): %s", pvc.Spec.VolumeName)
				return out
			}
			if pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil {
				out.NodeAffinities = append(out.NodeAffinities, pv.Spec.NodeAffinity.Required)
			}
			continue
		}
		className := ""
		if pvc.Spec.StorageClassName != nil {
			className = *pvc.Spec.StorageClassName
		}
		var class *storagev1.StorageClass
		if className != "" {
			if class, err = s.volumes.classes.Get(className); err != nil {
				out.Unresolvable = fmt.Sprintf("storageclass.storage.k8s.io %q not found", className)
				return out
			}
		}
		if class == nil || class.VolumeBindingMode == nil || *class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			out.Unresolvable = framework.ReasonUnboundImmediateClaims
			return out
		}
		if node := pvc.Annotations[annSelectedNode]; node != "" {
			out.SelectedNode = node
			continue
		}
		out.Delayed = append(out.Delayed, pvc)
	}
	return out
}

// selectNode annotates the pod's delayed claims with its node before the pod is bound, so
// that their provisioner makes the volumes there. A claim annotated meanwhile for another
// node fails the binding; the pod is then retried and follows that node.
func (s *Scheduler) selectNode(ctx context.Context, pv *framework.PodVolumes, node string) error {
	if pv == nil {
		return nil
	}
	for _, pvc := range pv.Delayed {
		cur, err := s.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Get(ctx, pvc.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if sel := cur.Annotations[annSelectedNode]; sel == node || cur.Spec.VolumeName != "" {
			continue
		} else if sel != "" {
			return apierrors.NewConflict(v1.Resource("persistentvolumeclaims"), pvc.Name,
				fmt.Errorf("claim already selected for node %s", sel))
		}
		// The resourceVersion makes the patch fail if someone else selected meanwhile.
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": cur.ResourceVersion, "annotations": map[string]string{annSelectedNode: node}}})
		if _, err := s.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Patch(ctx, pvc.Name, types.MergePatchType, patch,
			metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	return nil
}
