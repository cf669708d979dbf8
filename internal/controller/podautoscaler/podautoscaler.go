package podautoscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/controller/worker"
)

// Defaults as in kube-controller-manager.
const (
	DefaultSyncPeriod              = 15 * time.Second
	DefaultDownscaleStabilization  = 5 * time.Minute
	DefaultTolerance               = 0.1
	DefaultCPUInitializationPeriod = 5 * time.Minute
	DefaultInitialReadinessDelay   = 30 * time.Second
)

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Metrics   metricsclient.Interface // the resource metrics API (metrics.k8s.io)
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder
	Log       *slog.Logger // nil: discard
	// SyncPeriod is how often every autoscaler is evaluated (0: DefaultSyncPeriod).
	SyncPeriod time.Duration
	// DownscaleStabilization is the scale-down stabilisation window of autoscalers that do not
	// set one (0: DefaultDownscaleStabilization).
	DownscaleStabilization time.Duration
	// Tolerance is the usage ratio change below which nothing is scaled (0: DefaultTolerance).
	Tolerance float64
	// CPUInitializationPeriod and InitialReadinessDelay decide which CPU samples of starting
	// pods are trusted (0: the defaults).
	CPUInitializationPeriod time.Duration
	InitialReadinessDelay   time.Duration
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time
}

// Controller is the horizontal pod autoscaler controller.
type Controller struct {
	client    kubernetes.Interface
	metrics   metricsclient.Interface
	hpaLister autoscalinglisters.HorizontalPodAutoscalerLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     workqueue.TypedRateLimitingInterface[string]
	calc      *calculator
	period    time.Duration
	downscale time.Duration
	now       func() time.Time

	mu      sync.Mutex
	history map[string]*history // by HPA key
}

// New builds the controller and registers its informer handlers.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Metrics == nil || cfg.Informers == nil || cfg.Recorder == nil {
		return nil, errors.New("podautoscaler: a client, a metrics client, informers and a recorder are required")
	}
	if cfg.SyncPeriod < 0 || cfg.DownscaleStabilization < 0 || cfg.Tolerance < 0 || cfg.CPUInitializationPeriod < 0 || cfg.InitialReadinessDelay < 0 {
		return nil, errors.New("podautoscaler: periods and tolerance must not be negative")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.SyncPeriod, DefaultSyncPeriod)
	def(&cfg.DownscaleStabilization, DefaultDownscaleStabilization)
	def(&cfg.CPUInitializationPeriod, DefaultCPUInitializationPeriod)
	def(&cfg.InitialReadinessDelay, DefaultInitialReadinessDelay)
	if cfg.Tolerance == 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	hpaInformer := cfg.Informers.Autoscaling().V2().HorizontalPodAutoscalers()
	podInformer := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client: cfg.Client, metrics: cfg.Metrics, recorder: cfg.Recorder, log: cfg.Log,
		hpaLister: hpaInformer.Lister(), podLister: podInformer.Lister(),
		synced: []cache.InformerSynced{hpaInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		// Failed syncs are retried one period later: the next evaluation is the retry.
		queue: workqueue.NewTypedRateLimitingQueueWithConfig[string](
			workqueue.NewTypedItemFastSlowRateLimiter[string](cfg.SyncPeriod, cfg.SyncPeriod, 0),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "horizontalpodautoscaler"}),
		calc: &calculator{tolerance: cfg.Tolerance, cpuInitializationPeriod: cfg.CPUInitializationPeriod,
			delayOfInitialReadinessStatus: cfg.InitialReadinessDelay, now: cfg.Now},
		period: cfg.SyncPeriod, downscale: cfg.DownscaleStabilization, now: cfg.Now,
		history: map[string]*history{},
	}
	_, err := hpaInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur any) {
			// Our own status writes must not cause evaluations; spec changes do.
			if o, n := old.(*autoscalingv2.HorizontalPodAutoscaler), cur.(*autoscalingv2.HorizontalPodAutoscaler); o.Generation != n.Generation {
				c.enqueue(cur)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

// Run evaluates the autoscalers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	worker.Pool{Queue: c.queue, Synced: c.synced, Sync: c.sync, Log: c.log, Name: "horizontalpodautoscaler"}.Run(ctx, workers)
}

// sync evaluates one autoscaler and schedules its next evaluation one period later.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	shared, err := c.hpaLister.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.history, key)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	c.queue.AddAfter(key, c.period)
	return c.reconcile(ctx, key, shared.DeepCopy())
}

// reconcile is kube-controller-manager's reconcileAutoscaler for resource metrics.
func (c *Controller) reconcile(ctx context.Context, key string, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	original := hpa.Status.DeepCopy()
	ref := hpa.Spec.ScaleTargetRef
	reference := fmt.Sprintf("%s/%s/%s", ref.Kind, hpa.Namespace, ref.Name)

	scale, err := c.getScale(ctx, hpa.Namespace, ref)
	if err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetScale", err.Error())
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale", "the HPA controller was unable to get the target's current scale: %v", err)
		if uerr := c.updateStatusIfNeeded(ctx, original, hpa); uerr != nil {
			return uerr
		}
		return fmt.Errorf("failed to query scale subresource for %s: %w", reference, err)
	}
	setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale")
	current := scale.Spec.Replicas
	minReplicas := ptr.Deref(hpa.Spec.MinReplicas, 1)

	c.mu.Lock()
	h := c.history[key]
	if h == nil {
		// The current size is the first recommendation, so that a new autoscaler does not
		// scale down before a window has passed.
		h = &history{recommendations: []recommendation{{current, c.now()}}}
		c.history[key] = h
	}
	c.mu.Unlock()

	var desired int32
	var statuses []autoscalingv2.MetricStatus
	var retErr error
	rescaleReason := ""
	rescale := true
	switch {
	case current == 0 && minReplicas != 0:
		desired, rescale = 0, false
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
	case current > hpa.Spec.MaxReplicas:
		rescaleReason, desired = "Current number of replicas above Spec.MaxReplicas", hpa.Spec.MaxReplicas
	case current < minReplicas:
		rescaleReason, desired = "Current number of replicas below Spec.MinReplicas", minReplicas
	default:
		proposed, metricName, sts, err := c.replicasForMetrics(ctx, hpa, scale)
		statuses = sts
		if err != nil && proposed == -1 {
			setStatus(hpa, current, hpa.Status.DesiredReplicas, statuses, false, c.now())
			if uerr := c.updateStatusIfNeeded(ctx, original, hpa); uerr != nil {
				c.log.Info("status update failed", "hpa", key, "err", uerr)
			}
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedComputeMetricsReplicas", err.Error())
			return fmt.Errorf("failed to compute desired number of replicas based on listed metrics for %s: %w", reference, err)
		}
		retErr = err // some metrics failed, but the others still scale up
		desired = proposed
		if desired > current {
			rescaleReason = metricName + " above target"
		} else if desired < current {
			rescaleReason = "All metrics below target"
		}
		c.mu.Lock()
		res := h.normalize(c.now(), hpa.Spec.Behavior, c.downscale, current, desired, minReplicas, hpa.Spec.MaxReplicas)
		c.mu.Unlock()
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, res.ableReason, "%s", res.ableMessage)
		limited := corev1.ConditionFalse
		if res.limited {
			limited = corev1.ConditionTrue
		}
		setCondition(hpa, autoscalingv2.ScalingLimited, limited, res.limitedReason, "%s", res.limitedMessage)
		desired = res.replicas
		rescale = desired != current
	}

	if rescale {
		if err := c.updateScale(ctx, hpa.Namespace, ref, scale, desired); err != nil {
			c.recorder.Eventf(hpa, corev1.EventTypeWarning, "FailedRescale", "New size: %d; reason: %s; error: %v", desired, rescaleReason, err)
			setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale", "the HPA controller was unable to update the target scale: %v", err)
			setStatus(hpa, current, hpa.Status.DesiredReplicas, hpa.Status.CurrentMetrics, false, c.now())
			if uerr := c.updateStatusIfNeeded(ctx, original, hpa); uerr != nil {
				c.log.Info("status update failed", "hpa", key, "err", uerr)
			}
			return fmt.Errorf("failed to rescale %s: %w", reference, err)
		}
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", "the HPA controller was able to update the target scale to %d", desired)
		c.recorder.Eventf(hpa, corev1.EventTypeNormal, "SuccessfulRescale", "New size: %d; reason: %s", desired, rescaleReason)
		c.mu.Lock()
		h.recordScale(c.now(), hpa.Spec.Behavior, c.downscale, current, desired)
		c.mu.Unlock()
		c.log.Info("rescaled", "hpa", key, "target", reference, "from", current, "to", desired, "reason", rescaleReason)
	} else {
		desired = current
	}
	setStatus(hpa, current, desired, statuses, rescale, c.now())
	if err := c.updateStatusIfNeeded(ctx, original, hpa); err != nil {
		return err
	}
	return retErr
}

// replicasForMetrics proposes the largest replica count of the metrics. It returns -1 with
// the error when every metric failed, or some failed and the rest would scale down (a
// failing metric must not let the target shrink).
func (c *Controller) replicasForMetrics(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, scale *autoscalingv1.Scale) (int32, string, []autoscalingv2.MetricStatus, error) {
	if scale.Status.Selector == "" {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "SelectorRequired", "selector is required")
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "the HPA target's scale is missing a selector")
		return -1, "", nil, errors.New("selector is required")
	}
	selector, err := labels.Parse(scale.Status.Selector)
	if err != nil {
		msg := fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "InvalidSelector", msg)
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "%s", msg)
		return -1, "", nil, errors.New(msg)
	}
	specs := hpa.Spec.Metrics
	statuses := make([]autoscalingv2.MetricStatus, len(specs))
	var replicas int32
	var metricName string
	invalid := 0
	var firstErr error
	var firstCond autoscalingv2.HorizontalPodAutoscalerCondition
	for i, spec := range specs {
		proposal, name, cond, err := c.replicasForMetric(ctx, hpa, spec, scale.Spec.Replicas, selector, &statuses[i])
		if err != nil {
			if invalid == 0 {
				firstErr, firstCond = err, cond
			}
			invalid++
			continue
		}
		if replicas == 0 || proposal > replicas {
			replicas, metricName = proposal, name
		}
	}
	if invalid >= len(specs) || (invalid > 0 && replicas < scale.Spec.Replicas) {
		setCondition(hpa, firstCond.Type, firstCond.Status, firstCond.Reason, "%s", firstCond.Message)
		if firstErr == nil {
			firstErr = errors.New("the autoscaler has no metrics")
		}
		return -1, "", statuses, fmt.Errorf("invalid metrics (%d invalid out of %d), first error is: %w", invalid, len(specs), firstErr)
	}
	setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from %s", metricName)
	if invalid > 0 {
		return replicas, metricName, statuses, fmt.Errorf("invalid metrics (%d invalid out of %d), first error is: %w", invalid, len(specs), firstErr)
	}
	return replicas, metricName, statuses, nil
}

// replicasForMetric evaluates one metric; only Resource metrics are served by nanokube (the
// custom and external metrics APIs are not), so the others fail with Kubernetes' reasons.
func (c *Controller) replicasForMetric(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, spec autoscalingv2.MetricSpec,
	current int32, selector labels.Selector, status *autoscalingv2.MetricStatus) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	fail := func(reason string, err error) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
		c.recorder.Event(hpa, corev1.EventTypeWarning, reason, err.Error())
		return 0, "", autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse,
			Reason: reason, Message: fmt.Sprintf("the HPA was unable to compute the replica count: %v", err)}, err
	}
	switch spec.Type {
	case autoscalingv2.ResourceMetricSourceType:
	case autoscalingv2.PodsMetricSourceType:
		return fail("FailedGetPodsMetric", errors.New("unable to get metric: the custom metrics API (custom.metrics.k8s.io) is not served"))
	case autoscalingv2.ObjectMetricSourceType:
		return fail("FailedGetObjectMetric", errors.New("unable to get metric: the custom metrics API (custom.metrics.k8s.io) is not served"))
	case autoscalingv2.ExternalMetricSourceType:
		return fail("FailedGetExternalMetric", errors.New("unable to get external metric: the external metrics API (external.metrics.k8s.io) is not served"))
	case autoscalingv2.ContainerResourceMetricSourceType:
		return fail("FailedGetContainerResourceMetric", errors.New("container resource metrics are not supported"))
	default:
		return fail("InvalidMetricSourceType", fmt.Errorf("unknown metric source type %q", spec.Type))
	}
	if spec.Resource == nil {
		return fail("FailedGetResourceMetric", errors.New("invalid resource metric source: the resource is not set"))
	}
	res := spec.Resource.Name
	target := spec.Resource.Target
	if target.AverageValue == nil && target.AverageUtilization == nil {
		return fail("FailedGetResourceMetric", errors.New("invalid resource metric source: neither a utilization target nor a value target was set"))
	}
	list, err := c.metrics.MetricsV1beta1().PodMetricses(hpa.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err == nil && len(list.Items) == 0 {
		err = errors.New("no metrics returned from resource metrics API")
	}
	if err != nil {
		return fail("FailedGetResourceMetric", fmt.Errorf("failed to get %s utilization: unable to get metrics for resource %s: %w", res, res, err))
	}
	metrics := podMetricsFor(list.Items, res)
	pods, err := c.podLister.Pods(hpa.Namespace).List(selector)
	if err != nil {
		return fail("FailedGetResourceMetric", fmt.Errorf("failed to get %s utilization: %w", res, err))
	}
	if target.AverageValue != nil {
		replicas, usage, err := c.calc.averageValueReplicas(current, target.AverageValue.MilliValue(), res, pods, metrics)
		if err != nil {
			return fail("FailedGetResourceMetric", fmt.Errorf("failed to get %s usage: %w", res, err))
		}
		*status = autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
			Name: res, Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(usage, resource.DecimalSI)}}}
		return replicas, fmt.Sprintf("%s resource", res), autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	}
	replicas, utilization, raw, err := c.calc.utilizationReplicas(current, *target.AverageUtilization, res, pods, metrics)
	if err != nil {
		return fail("FailedGetResourceMetric", fmt.Errorf("failed to get %s utilization: %w", res, err))
	}
	*status = autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
		Name: res, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To(utilization), AverageValue: resource.NewMilliQuantity(raw, resource.DecimalSI)}}}
	return replicas, fmt.Sprintf("%s resource utilization (percentage of request)", res), autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
}

// getScale reads the target's scale subresource.
func (c *Controller) getScale(ctx context.Context, ns string, ref autoscalingv2.CrossVersionObjectReference) (*autoscalingv1.Scale, error) {
	kind, err := scaleKindOf(ref)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "Deployment":
		return c.client.AppsV1().Deployments(ns).GetScale(ctx, ref.Name, metav1.GetOptions{})
	case "ReplicaSet":
		return c.client.AppsV1().ReplicaSets(ns).GetScale(ctx, ref.Name, metav1.GetOptions{})
	case "StatefulSet":
		return c.client.AppsV1().StatefulSets(ns).GetScale(ctx, ref.Name, metav1.GetOptions{})
	default:
		return c.client.CoreV1().ReplicationControllers(ns).GetScale(ctx, ref.Name, metav1.GetOptions{})
	}
}

// updateScale writes the target's scale subresource, with the read resourceVersion so that a
// concurrent change is not overwritten.
func (c *Controller) updateScale(ctx context.Context, ns string, ref autoscalingv2.CrossVersionObjectReference, scale *autoscalingv1.Scale, replicas int32) error {
	kind, err := scaleKindOf(ref)
	if err != nil {
		return err
	}
	sc := scale.DeepCopy()
	sc.Spec.Replicas = replicas
	switch kind {
	case "Deployment":
		_, err = c.client.AppsV1().Deployments(ns).UpdateScale(ctx, ref.Name, sc, metav1.UpdateOptions{})
	case "ReplicaSet":
		_, err = c.client.AppsV1().ReplicaSets(ns).UpdateScale(ctx, ref.Name, sc, metav1.UpdateOptions{})
	case "StatefulSet":
		_, err = c.client.AppsV1().StatefulSets(ns).UpdateScale(ctx, ref.Name, sc, metav1.UpdateOptions{})
	default:
		_, err = c.client.CoreV1().ReplicationControllers(ns).UpdateScale(ctx, ref.Name, sc, metav1.UpdateOptions{})
	}
	return err
}

// scaleKindOf checks that the reference names a kind with a scale subresource.
func scaleKindOf(ref autoscalingv2.CrossVersionObjectReference) (string, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", fmt.Errorf("invalid API version in scale target reference: %w", err)
	}
	switch {
	case gv.Group == "apps" && (ref.Kind == "Deployment" || ref.Kind == "ReplicaSet" || ref.Kind == "StatefulSet"):
		return ref.Kind, nil
	case gv.Group == "" && ref.Kind == "ReplicationController":
		return ref.Kind, nil
	}
	return "", fmt.Errorf("unable to determine resource for scale target reference: no matches for kind %q in group %q", ref.Kind, gv.Group)
}

func setStatus(hpa *autoscalingv2.HorizontalPodAutoscaler, current, desired int32, metrics []autoscalingv2.MetricStatus, rescaled bool, now time.Time) {
	hpa.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		CurrentReplicas: current, DesiredReplicas: desired, LastScaleTime: hpa.Status.LastScaleTime,
		CurrentMetrics: metrics, Conditions: hpa.Status.Conditions, ObservedGeneration: ptr.To(hpa.Generation),
	}
	if rescaled {
		t := metav1.NewTime(now)
		hpa.Status.LastScaleTime = &t
	}
}

func (c *Controller) updateStatusIfNeeded(ctx context.Context, original *autoscalingv2.HorizontalPodAutoscalerStatus, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	if apiequality.Semantic.DeepEqual(original, &hpa.Status) {
		return nil
	}
	if _, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(hpa.Namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedUpdateStatus", err.Error())
		return fmt.Errorf("failed to update status for %s: %w", hpa.Name, err)
	}
	return nil
}

// setCondition sets a condition, moving its transition time only when its status changes.
func setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, t autoscalingv2.HorizontalPodAutoscalerConditionType, status corev1.ConditionStatus, reason, format string, args ...any) {
	var cond *autoscalingv2.HorizontalPodAutoscalerCondition
	for i := range hpa.Status.Conditions {
		if hpa.Status.Conditions[i].Type == t {
			cond = &hpa.Status.Conditions[i]
			break
		}
	}
	if cond == nil {
		hpa.Status.Conditions = append(hpa.Status.Conditions, autoscalingv2.HorizontalPodAutoscalerCondition{Type: t})
		cond = &hpa.Status.Conditions[len(hpa.Status.Conditions)-1]
	}
	if cond.Status != status {
		cond.LastTransitionTime = metav1.Now()
	}
	cond.Status, cond.Reason, cond.Message = status, reason, fmt.Sprintf(format, args...)
}
