package podgc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Defaults as in kube-controller-manager.
const (
	DefaultTerminatedPodThreshold = 12500
	DefaultGCPeriod               = 20 * time.Second
	DefaultQuarantine             = 40 * time.Second
)

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Log       *slog.Logger // the caller names the controller in it; nil: discard
	// TerminatedPodThreshold is how many terminated pods may exist before the oldest are
	// deleted (0: DefaultTerminatedPodThreshold; negative: never delete terminated pods).
	TerminatedPodThreshold int
	// GCPeriod is the time between passes (0: DefaultGCPeriod).
	GCPeriod time.Duration
	// Quarantine is how long a node must be missing before its pods go (0: DefaultQuarantine;
	// negative: none).
	Quarantine time.Duration
}

// Controller is the pod garbage collector.
type Controller struct {
	client     kubernetes.Interface
	podLister  corelisters.PodLister
	nodeLister corelisters.NodeLister
	synced     []cache.InformerSynced
	log        *slog.Logger
	threshold  int
	period     time.Duration
	quarantine time.Duration
	now        func() time.Time

	mu           sync.Mutex
	missingSince map[string]time.Time // node name → when a pass first found it missing
}

// New builds the controller.
func New(cfg Config) (*Controller, error) {
	podInformer := cfg.Informers.Core().V1().Pods()
	nodeInformer := cfg.Informers.Core().V1().Nodes()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		client:       cfg.Client,
		podLister:    podInformer.Lister(),
		nodeLister:   nodeInformer.Lister(),
		synced:       []cache.InformerSynced{podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced},
		log:          log,
		threshold:    cfg.TerminatedPodThreshold,
		period:       cfg.GCPeriod,
		quarantine:   cfg.Quarantine,
		now:          time.Now,
		missingSince: map[string]time.Time{},
	}
	if c.threshold == 0 {
		c.threshold = DefaultTerminatedPodThreshold
	}
	if c.period <= 0 {
		c.period = DefaultGCPeriod
	}
	switch {
	case c.quarantine == 0:
		c.quarantine = DefaultQuarantine
	case c.quarantine < 0:
		c.quarantine = 0
	}
	return c, nil
}

// Run runs a pass every GCPeriod until ctx is done; the pod GC is one loop, so workers is
// ignored.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := c.gc(ctx); err != nil {
			c.log.Info("pod garbage collection pass failed", "err", err)
		}
	}, c.period)
}

// gc is one pass.
func (c *Controller) gc(ctx context.Context) error {
	pods, err := c.podLister.List(labels.Everything())
	if err != nil {
		return err
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	if c.threshold > 0 {
		errs = append(errs, c.gcTerminated(ctx, pods))
	}
	errs = append(errs, c.gcOrphaned(ctx, pods, nodes), c.gcUnscheduledTerminating(ctx, pods))
	return errors.Join(errs...)
}

func isTerminated(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func (c *Controller) gcTerminated(ctx context.Context, pods []*corev1.Pod) error {
	var terminated []*corev1.Pod
	for _, pod := range pods {
		if isTerminated(pod) {
			terminated = append(terminated, pod)
		}
	}
	excess := len(terminated) - c.threshold
	if excess <= 0 {
		return nil
	}
	sort.SliceStable(terminated, func(i, j int) bool {
		a, b := terminated[i].CreationTimestamp, terminated[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return terminated[i].Namespace+"/"+terminated[i].Name < terminated[j].Namespace+"/"+terminated[j].Name
	})
	c.log.Info("deleting terminated pods over the threshold", "count", excess, "threshold", c.threshold)
	var errs []error
	for _, pod := range terminated[:excess] {
		errs = append(errs, c.markFailedAndDelete(ctx, pod, nil))
	}
	return errors.Join(errs...)
}

func (c *Controller) gcOrphaned(ctx context.Context, pods []*corev1.Pod, nodes []*corev1.Node) error {
	existing := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		existing[n.Name] = true
	}
	now := c.now()
	byNode := map[string][]*corev1.Pod{}
	for _, pod := range pods {
		if pod.Spec.NodeName != "" && !existing[pod.Spec.NodeName] {
			byNode[pod.Spec.NodeName] = append(byNode[pod.Spec.NodeName], pod)
		}
	}
	c.mu.Lock()
	for name := range c.missingSince {
		if _, ok := byNode[name]; !ok {
			delete(c.missingSince, name)
		}
	}
	var expired []string
	for name := range byNode {
		since, ok := c.missingSince[name]
		if !ok {
			since = now
			c.missingSince[name] = now
		}
		if now.Sub(since) >= c.quarantine {
			expired = append(expired, name)
		}
	}
	c.mu.Unlock()
	sort.Strings(expired)

	var errs []error
	for _, name := range expired {
		// The cache may lag behind a node just registered: ask the API server.
		_, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		for _, pod := range byNode[name] {
			c.log.Info("deleting pod bound to a deleted node", "pod", pod.Namespace+"/"+pod.Name, "node", name)
			cond := &corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
				Reason: "DeletionByPodGC", Message: "PodGC: node no longer exists"}
			errs = append(errs, c.markFailedAndDelete(ctx, pod, cond))
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) gcUnscheduledTerminating(ctx context.Context, pods []*corev1.Pod) error {
	var errs []error
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil && pod.Spec.NodeName == "" {
			c.log.Info("deleting unscheduled terminating pod", "pod", pod.Namespace+"/"+pod.Name)
			errs = append(errs, c.markFailedAndDelete(ctx, pod, nil))
		}
	}
	return errors.Join(errs...)
}

// markFailedAndDelete moves a pod that has not terminated to Failed (with cond, if any), then
// deletes it at once.
func (c *Controller) markFailedAndDelete(ctx context.Context, pod *corev1.Pod, cond *corev1.PodCondition) error {
	if !isTerminated(pod) {
		updated := pod.DeepCopy()
		updated.Status.Phase = corev1.PodFailed
		if cond != nil {
			cond.LastTransitionTime = metav1.NewTime(c.now())
			setCondition(&updated.Status, *cond)
		}
		if _, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("marking pod %s/%s failed: %w", pod.Namespace, pod.Name, err)
		}
	}
	uid := pod.UID
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

func setCondition(status *corev1.PodStatus, cond corev1.PodCondition) {
	for i := range status.Conditions {
		if status.Conditions[i].Type == cond.Type {
			status.Conditions[i] = cond
			return
		}
	}
	status.Conditions = append(status.Conditions, cond)
}
