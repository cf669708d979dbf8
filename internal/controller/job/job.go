package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/controller/controllerref"
	"github.com/nanokube/nanokube/internal/controller/expectations"
	"github.com/nanokube/nanokube/internal/controller/readiness"
	"github.com/nanokube/nanokube/internal/controller/worker"
)

var controllerKind = batchv1.SchemeGroupVersion.WithKind("Job")

const (
	// DefaultPodFailureBackoff and DefaultMaxPodFailureBackoff shape the delay before a failed
	// pod is replaced: 10s after the first failure, doubling, at most six minutes.
	DefaultPodFailureBackoff    = 10 * time.Second
	DefaultMaxPodFailureBackoff = 6 * time.Minute

	// maxPodChangesPerSync caps the creations or deletions of one sync, as in Kubernetes.
	maxPodChangesPerSync = 500
	// orphanPodPrefix marks queue keys of pods that hold the tracking finalizer but whose Job
	// is gone; Job keys ("namespace/name") never contain a colon.
	orphanPodPrefix = "pod:"
	// podIndex files pods under the UID of their controller, and orphans under
	// controllerref.OrphanKey(namespace).
	podIndex = "job.nanokube.io/controller-uid"

	messageBackoffLimit = "Job has reached the specified backoff limit"
	messageDeadline     = "Job was active longer than specified deadline"
	messageCompletions  = "Reached expected number of succeeded pods"
)

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder // nil: no events
	Log       *slog.Logger         // the caller names the controller in it; nil: discard
	Clock     clock.WithTicker     // nil: the real clock
	// PodFailureBackoff and MaxPodFailureBackoff override the replacement delay of failed
	// pods (zero: DefaultPodFailureBackoff, DefaultMaxPodFailureBackoff); tests shorten them.
	PodFailureBackoff, MaxPodFailureBackoff time.Duration
}

// Controller is the Job controller.
type Controller struct {
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	podLister corelisters.PodLister
	pods      cache.Indexer
	synced    []cache.InformerSynced

	recorder     record.EventRecorder
	log          *slog.Logger
	clock        clock.WithTicker
	queue        workqueue.TypedRateLimitingInterface[string]
	expectations *expectations.Expectations
	// finalizerRemovals are the pods (by UID) whose tracking finalizer the controller is taking
	// off: for the Job's count such a pod is gone, so they are deletions to expect.
	finalizerRemovals *expectations.Expectations
	statusWrites      statusWrites
	backoff           *backoffStore

	podFailureBackoff, maxPodFailureBackoff time.Duration
}

// New builds the controller and registers its informer handlers and a pod index; it fails
// only if the pod informer has already started.
func New(cfg Config) (*Controller, error) {
	jobs := cfg.Informers.Batch().V1().Jobs()
	pods := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client:               cfg.Client,
		jobLister:            jobs.Lister(),
		podLister:            pods.Lister(),
		pods:                 pods.Informer().GetIndexer(),
		synced:               []cache.InformerSynced{jobs.Informer().HasSynced, pods.Informer().HasSynced},
		recorder:             cfg.Recorder,
		log:                  cfg.Log,
		clock:                cfg.Clock,
		backoff:              newBackoffStore(),
		podFailureBackoff:    cfg.PodFailureBackoff,
		maxPodFailureBackoff: cfg.MaxPodFailureBackoff,
	}
	if c.recorder == nil {
		c.recorder = &record.FakeRecorder{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	if c.podFailureBackoff <= 0 {
		c.podFailureBackoff = DefaultPodFailureBackoff
	}
	if c.maxPodFailureBackoff <= 0 {
		c.maxPodFailureBackoff = DefaultMaxPodFailureBackoff
	}
	c.expectations = expectations.New(c.clock.Now)
	c.finalizerRemovals = expectations.New(c.clock.Now)
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "job", Clock: c.clock})
	if err := pods.Informer().AddIndexers(cache.Indexers{podIndex: controllerref.Index}); err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	if _, err := jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: c.updateJob,
		DeleteFunc: c.deleteJob,
	}); err != nil {
		return nil, err
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func key(o metav1.Object) string { return o.GetNamespace() + "/" + o.GetName() }

// Run starts workers and blocks until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	worker.Pool{Queue: c.queue, Synced: c.synced, Sync: c.sync, Log: c.log, Name: "job"}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

func (c *Controller) enqueueOrphan(pod *corev1.Pod) { c.queue.Add(orphanPodPrefix + key(pod)) }

func (c *Controller) updateJob(old, cur any) {
	o, n := old.(*batchv1.Job), cur.(*batchv1.Job)
	if o.UID != n.UID {
		c.deleteJob(cache.DeletedFinalStateUnknown{Key: key(o), Obj: o})
	}
	c.enqueue(n)
}

func (c *Controller) deleteJob(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	job, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	c.queue.Add(key(job))
	// Its pods keep the tracking finalizer until someone takes it off.
	objs, _ := c.pods.ByIndex(podIndex, string(job.UID))
	for _, o := range objs {
		if p := o.(*corev1.Pod); hasFinalizer(p) {
			c.enqueueOrphan(p)
		}
	}
}

// resolveJob returns the Job ref points to, if it is still the same object.
func (c *Controller) resolveJob(namespace string, ref *metav1.OwnerReference) *batchv1.Job {
	return controllerref.Resolve(ref, controllerKind, c.jobLister.Jobs(namespace).Get)
}

// jobsForOrphan lists the Jobs whose selector matches an orphan pod: they may adopt it.
func (c *Controller) jobsForOrphan(pod *corev1.Pod) []*batchv1.Job {
	return controllerref.Adopters(c.jobLister.Jobs(pod.Namespace).List,
		func(j *batchv1.Job) *metav1.LabelSelector { return j.Spec.Selector }, pod.Labels)
}

// podEvent settles the expectations a pod change answers and queues its Job; a pod that
// holds the tracking finalizer and has no live Job is queued for clean-up instead.
func (c *Controller) podEvent(pod *corev1.Pod, gone bool) {
	ref := metav1.GetControllerOf(pod)
	var job *batchv1.Job
	if ref != nil {
		job = c.resolveJob(pod.Namespace, ref)
	}
	if job == nil {
		if !gone && hasFinalizer(pod) {
			c.enqueueOrphan(pod)
		}
		return
	}
	k := key(job)
	if gone || pod.DeletionTimestamp != nil {
		c.expectations.DeletionObserved(k, key(pod))
	}
	if gone || !hasFinalizer(pod) {
		c.finalizerRemovals.DeletionObserved(k, string(pod.UID))
	}
	c.queue.Add(k)
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if ref := metav1.GetControllerOf(pod); ref != nil {
		if job := c.resolveJob(pod.Namespace, ref); job != nil {
			c.expectations.CreationObserved(key(job))
		}
		c.podEvent(pod, false)
		return
	}
	c.podEvent(pod, false)
	for _, j := range c.jobsForOrphan(pod) {
		c.queue.Add(key(j))
	}
}

func (c *Controller) updatePod(old, cur any) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	oref, nref := metav1.GetControllerOf(o), metav1.GetControllerOf(n)
	if oref != nil && (nref == nil || oref.UID != nref.UID) {
		if j := c.resolveJob(o.Namespace, oref); j != nil {
			c.queue.Add(key(j))
		}
	}
	c.podEvent(n, false)
	if nref == nil {
		for _, j := range c.jobsForOrphan(n) {
			c.queue.Add(key(j))
		}
	}
}

func (c *Controller) deletePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		c.podEvent(pod, true)
	}
}

func (c *Controller) sync(ctx context.Context, k string) error {
	if pod, ok := strings.CutPrefix(k, orphanPodPrefix); ok {
		return c.syncOrphanPod(ctx, pod)
	}
	return c.syncJob(ctx, k)
}

// syncOrphanPod takes the tracking finalizer off a pod that no live Job controls.
func (c *Controller) syncOrphanPod(ctx context.Context, k string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	pod, err := c.podLister.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !hasFinalizer(pod) {
		return nil
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && c.resolveJob(namespace, ref) != nil {
		return nil // its Job counts it
	}
	if err := c.removeFinalizer(ctx, pod); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// errInvalidSelector stops a sync without a retry: only an update of the Job can help.
var errInvalidSelector = errors.New("invalid selector")

// syncJob reconciles one Job.
func (c *Controller) syncJob(ctx context.Context, k string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	cached, err := c.jobLister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.Delete(k)
		c.finalizerRemovals.Delete(k)
		c.statusWrites.forget(k)
		c.backoff.delete(k)
		return nil
	}
	if err != nil {
		return err
	}
	if m := cached.Spec.ManagedBy; m != nil && *m != batchv1.JobControllerName {
		return nil // another controller reconciles this Job
	}
	if !c.expectations.Satisfied(k) || !c.finalizerRemovals.Satisfied(k) {
		return nil // the events still expected will queue the Job again
	}
	if c.statusWrites.stale(k, cached.ResourceVersion) {
		// The cache has not seen our last status write yet: counting from it would miss
		// pods whose finalizer that write let go, and create their replacements again.
		c.queue.AddAfter(k, 100*time.Millisecond)
		return nil
	}
	pods, err := c.claimPods(ctx, cached)
	if errors.Is(err, errInvalidSelector) {
		return nil
	}
	if err != nil {
		return err
	}
	if cached.DeletionTimestamp != nil || finishedCondition(cached) != nil {
		// Nothing is left to count: let the pods go.
		c.backoff.delete(k)
		var held []*corev1.Pod
		for _, p := range pods {
			if hasFinalizer(p) {
				held = append(held, p)
			}
		}
		_, err := c.removeFinalizers(ctx, k, held)
		return err
	}
	return c.reconcile(ctx, k, cached.DeepCopy(), pods)
}

type event struct{ kind, reason, message string }

// reconcile drives a running Job: it counts the pods that finished (recording them in
// status.uncountedTerminatedPods before taking their tracking finalizer off, so that a pod is
// counted exactly once even if the sync dies half-way), decides whether the Job failed or
// succeeded, creates and deletes pods, and writes the status.
func (c *Controller) reconcile(ctx context.Context, k string, job *batchv1.Job, pods []*corev1.Pod) error {
	now := c.clock.Now()
	old := job.Status.DeepCopy()
	st := &job.Status
	if st.UncountedTerminatedPods == nil {
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	uncounted := st.UncountedTerminatedPods
	recorded := map[types.UID]bool{}
	for _, uid := range append(append([]types.UID(nil), uncounted.Succeeded...), uncounted.Failed...) {
		recorded[uid] = true
	}
	completions := int(ptr.Deref(job.Spec.Completions, 0))
	indexed := isIndexed(job)
	var succeededIndexes indexSet
	if indexed {
		succeededIndexes = parseIndexes(st.CompletedIndexes, completions)
	}

	// Sort the pods and find those that finished since the last sync.
	var active, terminating, finished, newSucceeded, newFailed []*corev1.Pod
	var failJob *string
	for _, p := range pods {
		switch {
		case isActive(p):
			active = append(active, p)
		case isTerminating(p):
			terminating = append(terminating, p)
		}
		if !hasFinalizer(p) {
			continue // already counted, or never to be
		}
		if recorded[p.UID] {
			finished = append(finished, p)
			continue
		}
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			finished = append(finished, p)
			newSucceeded = append(newSucceeded, p)
			if !indexed {
				uncounted.Succeeded = append(uncounted.Succeeded, p.UID)
			} else if ix, ok := completionIndex(p, completions); ok {
				succeededIndexes.add(ix) // idempotent: no need to track the pod
			}
		case isFailed(p, job):
			finished = append(finished, p)
			msg, count := matchPodFailurePolicy(job.Spec.PodFailurePolicy, p)
			if msg != nil && failJob == nil {
				failJob = msg
			}
			if count {
				uncounted.Failed = append(uncounted.Failed, p.UID)
				newFailed = append(newFailed, p)
			}
		}
	}
	succeeded := st.Succeeded + int32(len(uncounted.Succeeded))
	if indexed {
		succeeded = int32(len(succeededIndexes))
	}
	failed := st.Failed + int32(len(uncounted.Failed))
	backoff := c.backoff.get(k).next(newSucceeded, newFailed, now)

	var events []event
	suspended := ptr.Deref(job.Spec.Suspend, false)
	if !suspended {
		if cond := findCondition(st, batchv1.JobSuspended); cond != nil && cond.Status == corev1.ConditionTrue {
			setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", now)
			events = append(events, event{corev1.EventTypeNormal, "Resumed", "Job resumed"})
			// activeDeadlineSeconds counts the time a Job runs without a break.
			st.StartTime = &metav1.Time{Time: now}
		}
		if st.StartTime == nil {
			st.StartTime = &metav1.Time{Time: now}
		}
	}

	// The verdict: a Job that failed or succeeded stops its pods, then finishes.
	var finish *batchv1.JobCondition
	overdue, untilDeadline := pastDeadline(job, now)
	switch cond := trueCondition(st, batchv1.JobFailureTarget, batchv1.JobSuccessCriteriaMet); {
	case cond != nil && cond.Type == batchv1.JobFailureTarget:
		finish = &batchv1.JobCondition{Type: batchv1.JobFailed, Reason: cond.Reason, Message: cond.Message}
	case cond != nil:
		finish = &batchv1.JobCondition{Type: batchv1.JobComplete, Reason: cond.Reason, Message: cond.Message}
	case failJob != nil:
		finish = &batchv1.JobCondition{Type: batchv1.JobFailed, Reason: batchv1.JobReasonPodFailurePolicy, Message: *failJob}
	case failed > ptr.Deref(job.Spec.BackoffLimit, 6) || pastBackoffLimitOnFailure(job, active):
		finish = &batchv1.JobCondition{Type: batchv1.JobFailed, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: messageBackoffLimit}
	case !suspended && overdue:
		finish = &batchv1.JobCondition{Type: batchv1.JobFailed, Reason: batchv1.JobReasonDeadlineExceeded, Message: messageDeadline}
	}

	var errs []error
	created := 0
	remaining := active
	if finish == nil {
		var err error
		if suspended {
			remaining, err = c.deletePods(ctx, k, job, active)
			if cond := findCondition(st, batchv1.JobSuspended); cond == nil || cond.Status != corev1.ConditionTrue {
				setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", now)
				events = append(events, event{corev1.EventTypeNormal, "Suspended", "Job suspended"})
				st.StartTime = nil
			}
		} else {
			remaining, created, err = c.manage(ctx, k, job, active, terminating, succeeded, succeededIndexes, backoff, now)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if !suspended && complete(job, succeeded, len(remaining)+created, succeededIndexes) {
			finish = &batchv1.JobCondition{Type: batchv1.JobComplete, Reason: batchv1.JobReasonCompletionsReached, Message: messageCompletions}
		}
	}
	if finish != nil {
		interim := batchv1.JobFailureTarget
		if finish.Type == batchv1.JobComplete {
			interim = batchv1.JobSuccessCriteriaMet
		}
		setCondition(st, interim, corev1.ConditionTrue, finish.Reason, finish.Message, now)
		var err error
		if remaining, err = c.deletePods(ctx, k, job, remaining); err != nil {
			errs = append(errs, err)
		}
	}
	// Pods just deleted may take a while to terminate.
	nTerminating := int32(len(terminating) + len(active) - len(remaining))
	ready := int32(0)
	for _, p := range remaining {
		if readiness.Ready(p) {
			ready++
		}
	}
	st.Active = int32(len(remaining) + created)
	st.Ready = &ready
	st.Terminating = &nTerminating
	if indexed {
		st.CompletedIndexes = succeededIndexes.String()
		st.Succeeded = succeeded
	}

	// Record the newly finished pods, then let them go.
	var released map[types.UID]bool
	if len(finished) > 0 {
		if !apiequality.Semantic.DeepEqual(old, st) {
			updated, err := c.updateStatus(ctx, job)
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			updated.Status = *st.DeepCopy() // what we wrote, whatever the server echoed
			job, st = updated, &updated.Status
			uncounted, old = st.UncountedTerminatedPods, st.DeepCopy()
		}
		var err error
		if released, err = c.removeFinalizers(ctx, k, finished); err != nil {
			errs = append(errs, err)
		}
	}
	c.backoff.set(k, backoff)
	// Move the recorded pods that no longer hold the finalizer to the counters.
	byUID := make(map[types.UID]*corev1.Pod, len(pods))
	for _, p := range pods {
		byUID[p.UID] = p
	}
	settle := func(uids []types.UID) ([]types.UID, int32) {
		var keep []types.UID
		var n int32
		for _, uid := range uids {
			if p, ok := byUID[uid]; ok && hasFinalizer(p) && !released[uid] {
				keep = append(keep, uid)
				continue
			}
			n++
		}
		return keep, n
	}
	var n int32
	uncounted.Succeeded, n = settle(uncounted.Succeeded)
	if !indexed {
		st.Succeeded += n
	}
	uncounted.Failed, n = settle(uncounted.Failed)
	st.Failed += n

	finishedNow := false
	if finish != nil && len(uncounted.Succeeded)+len(uncounted.Failed) == 0 && nTerminating == 0 {
		setCondition(st, finish.Type, corev1.ConditionTrue, finish.Reason, finish.Message, now)
		if finish.Type == batchv1.JobComplete {
			st.CompletionTime = &metav1.Time{Time: now}
			events = append(events, event{corev1.EventTypeNormal, "Completed", "Job completed"})
		} else {
			events = append(events, event{corev1.EventTypeWarning, finish.Reason, finish.Message})
		}
		finishedNow = true
	}
	if !apiequality.Semantic.DeepEqual(old, st) {
		if _, err := c.updateStatus(ctx, job); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	for _, e := range events {
		c.recorder.Event(job, e.kind, e.reason, e.message)
	}
	if finishedNow {
		c.backoff.delete(k)
	} else if finish == nil && !suspended && job.Spec.ActiveDeadlineSeconds != nil {
		c.queue.AddAfter(k, untilDeadline)
	}
	return errors.Join(errs...)
}

// manage creates and deletes pods towards the number of active pods the Job wants; it
// returns the active pods left and how many pods it created.
func (c *Controller) manage(ctx context.Context, k string, job *batchv1.Job, active, terminating []*corev1.Pod,
	succeeded int32, succeededIndexes indexSet, backoff backoffRecord, now time.Time) ([]*corev1.Pod, int, error) {
	parallelism := ptr.Deref(job.Spec.Parallelism, 1)
	var want int32
	if job.Spec.Completions == nil {
		// Without completions, the first success means that the work is done: no new pods,
		// and those still running may finish.
		want = parallelism
		if succeeded > 0 {
			want = int32(len(active))
		}
	} else {
		want = max(0, min(parallelism, *job.Spec.Completions-succeeded))
	}
	if rm := podsForRemoval(job, active, len(active)-int(want), succeededIndexes); len(rm) > 0 {
		rm = rm[:min(len(rm), maxPodChangesPerSync)]
		left, err := c.deletePods(ctx, k, job, rm)
		gone := map[types.UID]bool{}
		for _, p := range rm {
			gone[p.UID] = true
		}
		for _, p := range left {
			delete(gone, p.UID)
		}
		var remaining []*corev1.Pod
		for _, p := range active {
			if !gone[p.UID] {
				remaining = append(remaining, p)
			}
		}
		return remaining, 0, err
	}
	holders := active
	diff := int(want) - len(active)
	if onlyReplaceFailed(job) {
		// a terminating pod keeps its place until it has failed
		diff -= len(terminating)
		holders = append(append([]*corev1.Pod(nil), active...), terminating...)
	}
	if diff <= 0 {
		return active, 0, nil
	}
	if wait := backoff.remaining(now, c.podFailureBackoff, c.maxPodFailureBackoff); wait > 0 {
		c.queue.AddAfter(k, wait)
		return active, 0, nil
	}
	n := min(diff, maxPodChangesPerSync)
	indexes := make([]int, n)
	for i := range indexes {
		indexes[i] = -1
	}
	if isIndexed(job) {
		indexes = pendingIndexes(n, int(ptr.Deref(job.Spec.Completions, 0)), succeededIndexes, holders)
	}
	created, err := c.createPods(ctx, k, job, indexes)
	return active, created, err
}

// complete reports whether the Job met its completions with active pods left.
func complete(job *batchv1.Job, succeeded int32, active int, succeededIndexes indexSet) bool {
	switch {
	case job.Spec.Completions == nil:
		return succeeded > 0 && active == 0
	case isIndexed(job):
		return len(succeededIndexes) >= int(*job.Spec.Completions)
	default:
		return succeeded >= *job.Spec.Completions && active == 0
	}
}

// pastDeadline reports whether the Job ran for activeDeadlineSeconds, or how long it still may.
func pastDeadline(job *batchv1.Job, now time.Time) (bool, time.Duration) {
	if job.Spec.ActiveDeadlineSeconds == nil || job.Status.StartTime == nil {
		return false, 0
	}
	left := time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second - now.Sub(job.Status.StartTime.Time)
	return left <= 0, left
}

var errNamespaceTerminating = errors.New("namespace terminating")

// createPods creates one pod per entry of indexes (-1: no index) in slow-start batches that
// stop at the first failure; it returns how many it created.
func (c *Controller) createPods(ctx context.Context, k string, job *batchv1.Job, indexes []int) (int, error) {
	n := len(indexes)
	if n == 0 {
		return 0, nil
	}
	c.expectations.ExpectCreations(k, n)
	next := make(chan int, n)
	for _, ix := range indexes {
		next <- ix
	}
	var created atomic.Int32
	err := slowStartBatch(n, 1, func() error {
		pod := podFromTemplate(job, <-next)
		p, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return errNamespaceTerminating
			}
			c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			return err
		}
		created.Add(1)
		c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", p.Name)
		return nil
	})
	// The pods never created will never be observed.
	for range n - int(created.Load()) {
		c.expectations.CreationObserved(k)
	}
	if errors.Is(err, errNamespaceTerminating) {
		err = nil // the namespace controller deletes everything here anyway
	}
	return int(created.Load()), err
}

// slowStartBatch calls fn count times in batches that double from initial, stopping after the
// first batch with an error.
func slowStartBatch(count, initial int, fn func() error) error {
	remaining := count
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		var wg sync.WaitGroup
		errc := make(chan error, batch)
		for range batch {
			wg.Go(func() {
				if err := fn(); err != nil {
					errc <- err
				}
			})
		}
		wg.Wait()
		close(errc)
		if err, failed := <-errc; failed {
			return err
		}
		remaining -= batch
	}
	return nil
}

// deletePods deletes pods, first taking their tracking finalizer off: a pod this controller
// deletes never counts as failed. It returns the pods it could not delete.
func (c *Controller) deletePods(ctx context.Context, k string, job *batchv1.Job, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var mu sync.Mutex
	var left []*corev1.Pod
	var errs []error
	fail := func(p *corev1.Pod, err error) {
		c.expectations.DeletionObserved(k, key(p))
		if apierrors.IsNotFound(err) {
			return
		}
		c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
		mu.Lock()
		left = append(left, p)
		errs = append(errs, err)
		mu.Unlock()
	}
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = key(p)
	}
	c.expectations.ExpectDeletions(k, keys)
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() {
			if hasFinalizer(p) {
				if err := c.removeFinalizer(ctx, p); err != nil {
					fail(p, err)
					return
				}
			}
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil {
				fail(p, err)
				return
			}
			if cur, ok := c.cachedPod(p); !ok || cur.DeletionTimestamp != nil {
				// its event came before the expectation: it will not come again
				c.expectations.DeletionObserved(k, key(p))
			}
			c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
		})
	}
	wg.Wait()
	return left, errors.Join(errs...)
}

// removeFinalizers takes the tracking finalizer off pods; it returns the UIDs of those that
// no longer hold it (or are gone).
func (c *Controller) removeFinalizers(ctx context.Context, k string, pods []*corev1.Pod) (map[types.UID]bool, error) {
	var mu sync.Mutex
	released := map[types.UID]bool{}
	var errs []error
	uids := make([]string, len(pods))
	for i, p := range pods {
		uids[i] = string(p.UID)
	}
	c.finalizerRemovals.ExpectDeletions(k, uids)
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() {
			err := c.removeFinalizer(ctx, p)
			if cur, ok := c.cachedPod(p); err != nil || !ok || !hasFinalizer(cur) {
				// failed, or its event came before the expectation: none is coming
				c.finalizerRemovals.DeletionObserved(k, string(p.UID))
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil || apierrors.IsNotFound(err) {
				released[p.UID] = true
				return
			}
			errs = append(errs, fmt.Errorf("remove finalizer of %s: %w", key(p), err))
		})
	}
	wg.Wait()
	return released, errors.Join(errs...)
}

// cachedPod is the pod informer's current copy of p, if it has one of the same pod.
func (c *Controller) cachedPod(p *corev1.Pod) (*corev1.Pod, bool) {
	obj, ok, err := c.pods.GetByKey(key(p))
	if err != nil || !ok {
		return nil, false
	}
	cur, ok := obj.(*corev1.Pod)
	return cur, ok && cur.UID == p.UID
}

func (c *Controller) removeFinalizer(ctx context.Context, p *corev1.Pod) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer},
		"uid":                                 p.UID,
	}})
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsConflict(err) {
		// the uid precondition failed: a different pod of the same name, ours is gone
		return apierrors.NewNotFound(corev1.Resource("pods"), p.Name)
	}
	return err
}

// claimPods returns the pods the Job owns: those it controls that match its selector, and
// matching orphans, which it adopts. Controlled pods that no longer match are released.
func (c *Controller) claimPods(ctx context.Context, job *batchv1.Job) ([]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil || selector.Empty() {
		c.recorder.Eventf(job, corev1.EventTypeWarning, "InvalidSelector", "Invalid selector: %v", err)
		return nil, errInvalidSelector
	}
	owned, err := c.pods.ByIndex(podIndex, string(job.UID))
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	var errs []error
	for _, o := range owned {
		p := o.(*corev1.Pod)
		if p.Namespace != job.Namespace {
			continue
		}
		if selector.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
			continue
		}
		if job.DeletionTimestamp == nil {
			if err := c.releasePod(ctx, job, p); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if job.DeletionTimestamp != nil {
		return out, errors.Join(errs...)
	}
	orphans, err := c.pods.ByIndex(podIndex, controllerref.OrphanKey(job.Namespace))
	if err != nil {
		return nil, err
	}
	var fresh *bool // whether the Job may adopt, checked once against the API server
	for _, o := range orphans {
		p := o.(*corev1.Pod)
		if p.DeletionTimestamp != nil || !selector.Matches(labels.Set(p.Labels)) {
			continue
		}
		if fresh == nil {
			live, err := c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
			ok := err == nil && live.UID == job.UID && live.DeletionTimestamp == nil
			fresh = &ok
		}
		if !*fresh {
			break
		}
		adopted, err := c.adoptPod(ctx, job, p)
		if err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		out = append(out, adopted)
	}
	return out, errors.Join(errs...)
}

// adoptPod makes the Job the pod's controller and adds the tracking finalizer, with a patch
// whose uid makes the API server refuse it if the pod was replaced meanwhile.
func (c *Controller) adoptPod(ctx context.Context, job *batchv1.Job, p *corev1.Pod) (*corev1.Pod, error) {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{*metav1.NewControllerRef(job, controllerKind)},
		"finalizers":      []string{batchv1.JobTrackingFinalizer},
		"uid":             p.UID,
	}})
	return c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
}

func (c *Controller) releasePod(ctx context.Context, job *batchv1.Job, p *corev1.Pod) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences":                     []map[string]any{{"$patch": "delete", "uid": job.UID}},
		"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer},
		"uid":                                 p.UID,
	}})
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsInvalid(err) {
		return nil // the pod has no such owner any more, or is being deleted
	}
	return err
}

func (c *Controller) updateStatus(ctx context.Context, job *batchv1.Job) (*batchv1.Job, error) {
	updated, err := c.client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, job, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update status of %s: %w", key(job), err)
	}
	c.statusWrites.wrote(key(job), updated.ResourceVersion)
	return updated, nil
}

// statusWrites remembers the resourceVersion of each Job's last status write, so that a
// sync does not trust a cached Job older than what it wrote itself.
type statusWrites struct {
	mu sync.Mutex
	rv map[string]uint64
}

func (w *statusWrites) wrote(k, rv string) {
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		return // not a number: no ordering to rely on
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rv == nil {
		w.rv = map[string]uint64{}
	}
	w.rv[k] = n
}

func (w *statusWrites) forget(k string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.rv, k)
}

// stale reports whether the cached object at rv predates our last write; once the cache
// has caught up the record is dropped.
func (w *statusWrites) stale(k, rv string) bool {
	n, err := strconv.ParseUint(rv, 10, 64)
	w.mu.Lock()
	defer w.mu.Unlock()
	written, ok := w.rv[k]
	if !ok || err != nil {
		return false
	}
	if n >= written {
		delete(w.rv, k)
		return false
	}
	return true
}

func findCondition(st *batchv1.JobStatus, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// trueCondition returns the first condition of one of types whose status is True.
func trueCondition(st *batchv1.JobStatus, types ...batchv1.JobConditionType) *batchv1.JobCondition {
	for _, t := range types {
		if c := findCondition(st, t); c != nil && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// finishedCondition is the Job's Complete or Failed condition, if it finished.
func finishedCondition(job *batchv1.Job) *batchv1.JobCondition {
	return trueCondition(&job.Status, batchv1.JobComplete, batchv1.JobFailed)
}

// setCondition sets a condition as Kubernetes does: a change of status, reason or message
// replaces it (with new times); a False condition that does not exist is not added.
func setCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) {
	c := batchv1.JobCondition{Type: t, Status: status, Reason: reason, Message: message,
		LastProbeTime: metav1.Time{Time: now}, LastTransitionTime: metav1.Time{Time: now}}
	if cur := findCondition(st, t); cur != nil {
		if cur.Status != status || cur.Reason != reason || cur.Message != message {
			*cur = c
		}
		return
	}
	if status != corev1.ConditionFalse {
		st.Conditions = append(st.Conditions, c)
	}
}
