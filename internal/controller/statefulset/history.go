package statefulset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/nanokube/nanokube/internal/controller/history"
)

// hashLabel is the label ControllerRevisions carry their hash in (Kubernetes'
// ControllerRevisionHashLabel); pods carry the revision's name in controller-revision-hash.
const hashLabel = "controller.kubernetes.io/hash"

// revisionData is the data a revision of set records (history.TemplatePatch).
func revisionData(set *appsv1.StatefulSet) ([]byte, error) { return history.TemplatePatch(set) }

// hashRevision is Kubernetes' HashControllerRevision: fnv32 of the data, then the collision
// count in decimal, encoded with rand.SafeEncodeString.
func hashRevision(data []byte, collisionCount *int32) string {
	h := fnv.New32()
	_, _ = h.Write(data)
	if collisionCount != nil {
		_, _ = h.Write([]byte(strconv.FormatInt(int64(*collisionCount), 10)))
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// templateOf returns the pod template a revision records. The "$patch" key is ignored by
// the decoder, and a "replace" patch is the whole template.
func templateOf(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var r struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &r); err != nil {
		return nil, fmt.Errorf("revision %s: %w", cr.Name, err)
	}
	return &r.Spec.Template, nil
}

// revisions resolves the current and update revisions of set among its ControllerRevisions
// (owned, in any order), creating the update revision or renumbering an older revision of the
// same template (kubectl rollout undo) as needed. It returns every owned revision afterwards.
func (c *Controller) revisions(ctx context.Context, set *appsv1.StatefulSet, owned []*appsv1.ControllerRevision) (
	current, update *appsv1.ControllerRevision, all []*appsv1.ControllerRevision, err error) {
	data, err := revisionData(set)
	if err != nil {
		return nil, nil, nil, err
	}
	all = append([]*appsv1.ControllerRevision(nil), owned...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Revision < all[j].Revision })
	var next int64 = 1
	if len(all) > 0 {
		next = all[len(all)-1].Revision + 1
	}
	for i, r := range all {
		if !bytes.Equal(r.Data.Raw, data) {
			continue
		}
		update = r
		if i != len(all)-1 { // an old template comes back: it becomes the newest revision
			u := r.DeepCopy()
			u.Revision = next
			if update, err = c.client.AppsV1().ControllerRevisions(set.Namespace).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
				return nil, nil, nil, err
			}
			all[i] = update
			sort.SliceStable(all, func(i, j int) bool { return all[i].Revision < all[j].Revision })
		}
		break
	}
	if update == nil {
		if update, err = c.createRevision(ctx, set, data, next); err != nil {
			return nil, nil, nil, err
		}
		all = append(all, update)
	}
	for _, r := range all {
		if r.Name == set.Status.CurrentRevision {
			current = r
		}
	}
	if current == nil {
		current = update
	}
	return current, update, all, nil
}

// createRevision records data as revision number; a name taken by another template is a
// hash collision, which raises status.collisionCount and fails the sync (the retry hashes
// differently).
func (c *Controller) createRevision(ctx context.Context, set *appsv1.StatefulSet, data []byte, number int64) (*appsv1.ControllerRevision, error) {
	hash := hashRevision(data, set.Status.CollisionCount)
	lbls := make(map[string]string, len(set.Spec.Template.Labels)+1)
	for k, v := range set.Spec.Template.Labels {
		lbls[k] = v
	}
	lbls[hashLabel] = hash
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: set.Name + "-" + hash, Namespace: set.Namespace, Labels: lbls,
			OwnerReferences: []metav1.OwnerReference{ownerRef(set)}},
		Data:     runtime.RawExtension{Raw: data},
		Revision: number,
	}
	revs := c.client.AppsV1().ControllerRevisions(set.Namespace)
	created, err := revs.Create(ctx, cr, metav1.CreateOptions{})
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return created, err
	}
	existing, err := revs.Get(ctx, cr.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if bytes.Equal(existing.Data.Raw, data) && metav1.IsControlledBy(existing, set) {
		return existing, nil // ours, made by a sync the cache had not shown yet
	}
	fresh, err := c.client.AppsV1().StatefulSets(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	n := int32(1)
	if fresh.Status.CollisionCount != nil {
		n = *fresh.Status.CollisionCount + 1
	}
	fresh.Status.CollisionCount = &n
	if _, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, fresh, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("revision %s: hash collision, collisionCount raised to %d", cr.Name, n)
}

// truncateHistory deletes the oldest revisions beyond spec.revisionHistoryLimit, sparing the
// current and update revisions and any that a pod still runs.
func (c *Controller) truncateHistory(ctx context.Context, set *appsv1.StatefulSet, pods map[int]*corev1.Pod,
	all []*appsv1.ControllerRevision, current, update *appsv1.ControllerRevision) error {
	live := map[string]bool{current.Name: true, update.Name: true}
	for _, p := range pods {
		live[revisionOf(p)] = true
	}
	var old []*appsv1.ControllerRevision
	for _, r := range all {
		if !live[r.Name] {
			old = append(old, r)
		}
	}
	limit := 10
	if set.Spec.RevisionHistoryLimit != nil {
		limit = int(*set.Spec.RevisionHistoryLimit)
	}
	for i := 0; i < len(old)-limit; i++ { // old is sorted by revision, oldest first
		err := c.client.AppsV1().ControllerRevisions(set.Namespace).Delete(ctx, old[i].Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
