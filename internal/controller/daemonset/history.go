package daemonset

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/davecgh/go-spew/spew"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/nanokube/nanokube/internal/controller/history"
)

// defaultRevisionHistoryLimit is apps/v1's default spec.revisionHistoryLimit.
const defaultRevisionHistoryLimit = 10

// computeHash is Kubernetes' controller.ComputeHash: fnv32a over a spew dump of the template,
// then the collision count, encoded with rand.SafeEncodeString.
func computeHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	printer := spew.ConfigState{Indent: " ", SortKeys: true, DisableMethods: true, SpewKeys: true}
	printer.Fprintf(h, "%#v", *template)
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		_, _ = h.Write(b)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// revisionData is the data a revision of ds records (history.TemplatePatch).
func revisionData(ds *appsv1.DaemonSet) ([]byte, error) { return history.TemplatePatch(ds) }

// matchesRevision reports whether cr records ds's current template.
func matchesRevision(ds *appsv1.DaemonSet, cr *appsv1.ControllerRevision) (bool, error) {
	data, err := revisionData(ds)
	if err != nil {
		return false, err
	}
	return bytes.Equal(data, cr.Data.Raw), nil
}

// constructHistory claims ds's ControllerRevisions and splits them into the one that records
// the current template (created, or renumbered to the newest revision, as needed) and the
// old ones. pods are ds's pods, relabelled if duplicate current revisions are merged.
func (c *Controller) constructHistory(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, pods []*corev1.Pod) (
	cur *appsv1.ControllerRevision, old []*appsv1.ControllerRevision, err error) {
	histories, err := c.controlledHistories(ctx, ds, selector)
	if err != nil {
		return nil, nil, err
	}
	var current []*appsv1.ControllerRevision
	for _, h := range histories {
		// Revisions made before the hash label existed get their name as the label: no hash to
		// recompute, no collision to worry about.
		if _, ok := h.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]; !ok {
			u := h.DeepCopy()
			if u.Labels == nil {
				u.Labels = map[string]string{}
			}
			u.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] = u.Name
			if h, err = c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
				return nil, nil, err
			}
		}
		match, err := matchesRevision(ds, h)
		if err != nil {
			return nil, nil, err
		}
		if match {
			current = append(current, h)
		} else {
			old = append(old, h)
		}
	}
	next := maxRevision(old) + 1
	if len(current) == 0 {
		cur, err = c.snapshot(ctx, ds, next)
		return cur, old, err
	}
	if cur, err = c.dedupCurrentHistories(ctx, ds, current, pods); err != nil {
		return nil, nil, err
	}
	// A template that comes back (kubectl rollout undo) reuses its revision under a new number.
	if cur.Revision < next {
		u := cur.DeepCopy()
		u.Revision = next
		if cur, err = c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			return nil, nil, err
		}
	}
	return cur, old, nil
}

// snapshot records ds's template as revision, named after the template hash. A name taken by
// a different template is a hash collision: status.collisionCount is raised and the sync
// retried, which changes the hash.
func (c *Controller) snapshot(ctx context.Context, ds *appsv1.DaemonSet, revision int64) (*appsv1.ControllerRevision, error) {
	data, err := revisionData(ds)
	if err != nil {
		return nil, err
	}
	hash := computeHash(&ds.Spec.Template, ds.Status.CollisionCount)
	lbls := make(map[string]string, len(ds.Spec.Template.Labels)+1)
	for k, v := range ds.Spec.Template.Labels {
		lbls[k] = v
	}
	lbls[appsv1.DefaultDaemonSetUniqueLabelKey] = hash
	var annotations map[string]string
	if len(ds.Annotations) > 0 {
		annotations = make(map[string]string, len(ds.Annotations))
		for k, v := range ds.Annotations {
			annotations[k] = v
		}
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: ds.Name + "-" + hash, Namespace: ds.Namespace, Labels: lbls,
			Annotations: annotations, OwnerReferences: []metav1.OwnerReference{ownerRef(ds)}},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	revisions := c.client.AppsV1().ControllerRevisions(ds.Namespace)
	created, err := revisions.Create(ctx, cr, metav1.CreateOptions{})
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return created, err
	}
	existing, getErr := revisions.Get(ctx, cr.Name, metav1.GetOptions{})
	if getErr != nil {
		return nil, getErr
	}
	match, err := matchesRevision(ds, existing)
	if err != nil {
		return nil, err
	}
	if match {
		return existing, nil // made by an earlier sync whose result the cache had not shown yet
	}
	fresh, getErr := c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	if getErr != nil {
		return nil, getErr
	}
	if !apiequality.Semantic.DeepEqual(fresh.Status.CollisionCount, ds.Status.CollisionCount) {
		return nil, fmt.Errorf("stale collision count of DaemonSet %s: retrying", key(ds))
	}
	n := int32(0)
	if fresh.Status.CollisionCount != nil {
		n = *fresh.Status.CollisionCount
	}
	n++
	fresh.Status.CollisionCount = &n
	if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, fresh, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	c.log.Info("hash collision: raised collisionCount", "daemonset", key(ds), "collisionCount", n)
	return nil, fmt.Errorf("revision %s: hash collision", cr.Name)
}

// dedupCurrentHistories keeps the newest of several revisions of the current template,
// moves the pods labelled with the others over to it and deletes the others.
func (c *Controller) dedupCurrentHistories(ctx context.Context, ds *appsv1.DaemonSet, current []*appsv1.ControllerRevision,
	pods []*corev1.Pod) (*appsv1.ControllerRevision, error) {
	if len(current) == 1 {
		return current[0], nil
	}
	keep := current[0]
	for _, h := range current[1:] {
		if h.Revision >= keep.Revision {
			keep = h
		}
	}
	keepHash := keep.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
	dropped := map[string]bool{}
	for _, h := range current {
		if h.Name != keep.Name {
			dropped[h.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]] = true
		}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{
		appsv1.DefaultDaemonSetUniqueLabelKey: keepHash}}})
	for _, p := range pods {
		if h := p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]; h == keepHash || !dropped[h] {
			continue
		}
		if _, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil &&
			!apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	for _, h := range current {
		if h.Name == keep.Name {
			continue
		}
		if err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil &&
			!apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return keep, nil
}

// cleanupHistory deletes the oldest old revisions beyond spec.revisionHistoryLimit, sparing
// those that some pod (even a finished one) still runs.
func (c *Controller) cleanupHistory(ctx context.Context, ds *appsv1.DaemonSet, pods []*corev1.Pod, old []*appsv1.ControllerRevision) error {
	limit := defaultRevisionHistoryLimit
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	toKill := len(old) - limit
	if toKill <= 0 {
		return nil
	}
	live := map[string]bool{}
	for _, p := range pods {
		if h := p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]; h != "" {
			live[h] = true
		}
	}
	old = append([]*appsv1.ControllerRevision(nil), old...)
	sort.SliceStable(old, func(i, j int) bool { return old[i].Revision < old[j].Revision })
	for _, h := range old {
		if toKill <= 0 {
			break
		}
		if live[h.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]] {
			continue
		}
		if err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil &&
			!apierrors.IsNotFound(err) {
			return err
		}
		toKill--
	}
	return nil
}

func maxRevision(hs []*appsv1.ControllerRevision) int64 {
	var m int64
	for _, h := range hs {
		m = max(m, h.Revision)
	}
	return m
}

// controlledHistories returns the ControllerRevisions ds controls after adopting matching
// orphans and releasing owned ones that no longer match its selector.
func (c *Controller) controlledHistories(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) ([]*appsv1.ControllerRevision, error) {
	all, err := c.historyLister.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	return claim(ctx, c.newClaimer(ds, selector), all, func(ctx context.Context, cr *appsv1.ControllerRevision, patch []byte) error {
		_, err := c.client.AppsV1().ControllerRevisions(cr.Namespace).Patch(ctx, cr.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		return err
	})
}
