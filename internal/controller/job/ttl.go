package job

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/nanokube/nanokube/internal/controller/worker"
)

// TTLController is kube-controller-manager's ttl-after-finished controller: it deletes a
// finished Job (with foreground propagation, so its pods go first) ttlSecondsAfterFinished
// after it completed or failed. It uses Config's Client, Informers, Log and Clock.
type TTLController struct {
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	synced    cache.InformerSynced
	log       *slog.Logger
	clock     clock.WithTicker
	queue     workqueue.TypedRateLimitingInterface[string]
}

// NewTTLAfterFinished builds the controller and registers its Job informer handlers.
func NewTTLAfterFinished(cfg Config) (*TTLController, error) {
	jobs := cfg.Informers.Batch().V1().Jobs()
	c := &TTLController{client: cfg.Client, jobLister: jobs.Lister(), synced: jobs.Informer().HasSynced, log: cfg.Log, clock: cfg.Clock}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "ttl_jobs_to_delete", Clock: c.clock})
	enqueue := func(obj any) {
		if job, ok := obj.(*batchv1.Job); ok && needsCleanup(job) {
			c.queue.Add(key(job))
		}
	}
	if _, err := jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run starts workers and blocks until ctx is done.
func (c *TTLController) Run(ctx context.Context, workers int) {
	worker.Pool{Queue: c.queue, Synced: []cache.InformerSynced{c.synced}, Sync: c.sync, Log: c.log, Name: "job"}.Run(ctx, workers)
}

// sync deletes the Job at k if its TTL expired, or queues it again for when it will.
func (c *TTLController) sync(ctx context.Context, k string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	job, err := c.jobLister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if expired, err := c.expired(job); err != nil || !expired {
		return err
	}
	// The cached TTL may be stale: check the latest Job before deleting it.
	fresh, err := c.client.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if expired, err := c.expired(fresh); err != nil || !expired {
		return err
	}
	policy := metav1.DeletePropagationForeground
	err = c.client.BatchV1().Jobs(namespace).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &fresh.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or replaced by a Job with its own TTL
	}
	if err == nil {
		c.log.Info("deleted finished job", "job", k)
	}
	return err
}

// expired reports whether job's TTL ran out; if it will later, it queues the Job for then.
func (c *TTLController) expired(job *batchv1.Job) (bool, error) {
	if job.DeletionTimestamp != nil || !needsCleanup(job) {
		return false, nil
	}
	finished := finishedCondition(job)
	if finished.LastTransitionTime.IsZero() {
		return false, fmt.Errorf("unable to find the time when the Job %s finished", key(job))
	}
	left := finished.LastTransitionTime.Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second).Sub(c.clock.Now())
	if left > 0 {
		c.queue.AddAfter(key(job), left)
		return false, nil
	}
	return true, nil
}

func needsCleanup(job *batchv1.Job) bool {
	return job.Spec.TTLSecondsAfterFinished != nil && finishedCondition(job) != nil
}
