package podautoscaler

import (
	"errors"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// podMetric is one pod's usage of a resource, in milli-units (millicores, millibytes).
type podMetric struct {
	timestamp time.Time
	window    time.Duration
	value     int64
}

// podMetrics maps pod names to their usage.
type podMetrics map[string]podMetric

// podMetricsFor sums each pod's containers' usage of resource, as kube-controller-manager's
// resource metrics client does: a pod missing the resource in any container, or with no
// containers, has no metric.
func podMetricsFor(items []metricsv1beta1.PodMetrics, resource corev1.ResourceName) podMetrics {
	out := make(podMetrics, len(items))
	for _, m := range items {
		sum := int64(0)
		missing := len(m.Containers) == 0
		for _, c := range m.Containers {
			v, ok := c.Usage[resource]
			if !ok {
				missing = true
				break
			}
			sum += v.MilliValue()
		}
		if !missing {
			out[m.Name] = podMetric{timestamp: m.Timestamp.Time, window: m.Window.Duration, value: sum}
		}
	}
	return out
}

// calculator is kube-controller-manager's replica calculation for resource metrics, with no
// I/O: pods and metrics are handed in.
type calculator struct {
	tolerance float64
	// cpuInitializationPeriod: CPU samples of a pod this young are only trusted once it is
	// ready and a full metric window has passed since it became ready.
	cpuInitializationPeriod time.Duration
	// delayOfInitialReadinessStatus: an unready pod whose readiness last changed within this
	// delay of its start is taken as never having been ready.
	delayOfInitialReadinessStatus time.Duration
	now                           func() time.Time
}

var errNoPods = errors.New("no pods returned by selector while calculating replica count")

// utilizationReplicas computes the replica count for a target utilization (percent of the
// pods' requests). It returns the new count, the current utilization and the raw average
// usage (milli-units).
func (c *calculator) utilizationReplicas(currentReplicas, targetUtilization int32, resource corev1.ResourceName, pods []*corev1.Pod, metrics podMetrics) (int32, int32, int64, error) {
	if len(pods) == 0 {
		return 0, 0, 0, errNoPods
	}
	readyPodCount, unreadyPods, missingPods, ignoredPods := c.groupPods(pods, metrics, resource)
	removeMetrics(metrics, ignoredPods)
	removeMetrics(metrics, unreadyPods)
	requests, err := podRequests(pods, resource)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(metrics) == 0 {
		return 0, 0, 0, errors.New("did not receive metrics for targeted pods (pods might be unready)")
	}
	usageRatio, utilization, rawUtilization, err := utilizationRatio(metrics, requests, targetUtilization)
	if err != nil {
		return 0, 0, 0, err
	}
	scaleUpWithUnready := len(unreadyPods) > 0 && usageRatio > 1.0
	if !scaleUpWithUnready && len(missingPods) == 0 {
		if math.Abs(1.0-usageRatio) <= c.tolerance {
			return currentReplicas, utilization, rawUtilization, nil
		}
		return int32(math.Ceil(usageRatio * float64(readyPodCount))), utilization, rawUtilization, nil
	}
	if len(missingPods) > 0 {
		if usageRatio < 1.0 {
			// On a scale-down, a pod without metrics counts as using all of its request (or
			// the target, when the target is above 100%), so that it cannot cause one.
			fallback := int64(max(100, targetUtilization))
			for name := range missingPods {
				metrics[name] = podMetric{value: requests[name] * fallback / 100}
			}
		} else if usageRatio > 1.0 {
			for name := range missingPods {
				metrics[name] = podMetric{value: 0}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unreadyPods {
			metrics[name] = podMetric{value: 0}
		}
	}
	newUsageRatio, _, _, err := utilizationRatio(metrics, requests, targetUtilization)
	if err != nil {
		return 0, utilization, rawUtilization, err
	}
	if math.Abs(1.0-newUsageRatio) <= c.tolerance || (usageRatio < 1.0 && newUsageRatio > 1.0) || (usageRatio > 1.0 && newUsageRatio < 1.0) {
		// Too small a change, or the assumed values flip the direction: stay.
		return currentReplicas, utilization, rawUtilization, nil
	}
	newReplicas := int32(math.Ceil(newUsageRatio * float64(len(metrics))))
	if (newUsageRatio < 1.0 && newReplicas > currentReplicas) || (newUsageRatio > 1.0 && newReplicas < currentReplicas) {
		return currentReplicas, utilization, rawUtilization, nil
	}
	return newReplicas, utilization, rawUtilization, nil
}

// averageValueReplicas computes the replica count for a target average usage per pod
// (milli-units); it returns the count and the current average.
func (c *calculator) averageValueReplicas(currentReplicas int32, targetUsage int64, resource corev1.ResourceName, pods []*corev1.Pod, metrics podMetrics) (int32, int64, error) {
	if len(pods) == 0 {
		return 0, 0, errNoPods
	}
	readyPodCount, unreadyPods, missingPods, ignoredPods := c.groupPods(pods, metrics, resource)
	removeMetrics(metrics, ignoredPods)
	removeMetrics(metrics, unreadyPods)
	if len(metrics) == 0 {
		return 0, 0, errors.New("did not receive metrics for targeted pods (pods might be unready)")
	}
	usageRatio, usage := averageRatio(metrics, targetUsage)
	scaleUpWithUnready := len(unreadyPods) > 0 && usageRatio > 1.0
	if !scaleUpWithUnready && len(missingPods) == 0 {
		if math.Abs(1.0-usageRatio) <= c.tolerance {
			return currentReplicas, usage, nil
		}
		return int32(math.Ceil(usageRatio * float64(readyPodCount))), usage, nil
	}
	if len(missingPods) > 0 {
		if usageRatio < 1.0 {
			for name := range missingPods {
				metrics[name] = podMetric{value: targetUsage}
			}
		} else if usageRatio > 1.0 {
			for name := range missingPods {
				metrics[name] = podMetric{value: 0}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unreadyPods {
			metrics[name] = podMetric{value: 0}
		}
	}
	newUsageRatio, _ := averageRatio(metrics, targetUsage)
	if math.Abs(1.0-newUsageRatio) <= c.tolerance || (usageRatio < 1.0 && newUsageRatio > 1.0) || (usageRatio > 1.0 && newUsageRatio < 1.0) {
		return currentReplicas, usage, nil
	}
	newReplicas := int32(math.Ceil(newUsageRatio * float64(len(metrics))))
	if (newUsageRatio < 1.0 && newReplicas > currentReplicas) || (newUsageRatio > 1.0 && newReplicas < currentReplicas) {
		return currentReplicas, usage, nil
	}
	return newReplicas, usage, nil
}

// groupPods sorts pods as kube-controller-manager does: deleted and failed pods are ignored;
// pending pods, and (for CPU) pods not ready or still starting, are unready; running pods
// without a metric are missing; the rest count as ready.
func (c *calculator) groupPods(pods []*corev1.Pod, metrics podMetrics, resource corev1.ResourceName) (readyPodCount int, unready, missing, ignored sets.Set[string]) {
	unready, missing, ignored = sets.New[string](), sets.New[string](), sets.New[string]()
	now := c.now()
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed {
			ignored.Insert(pod.Name)
			continue
		}
		if pod.Status.Phase == corev1.PodPending {
			unready.Insert(pod.Name)
			continue
		}
		metric, found := metrics[pod.Name]
		if !found {
			missing.Insert(pod.Name)
			continue
		}
		if resource == corev1.ResourceCPU {
			var isUnready bool
			cond := podReadyCondition(pod)
			if cond == nil || pod.Status.StartTime == nil {
				isUnready = true
			} else if pod.Status.StartTime.Add(c.cpuInitializationPeriod).After(now) {
				// Still initialising: trust the sample only if the pod is ready and a full
				// window was measured since it became so.
				isUnready = cond.Status == corev1.ConditionFalse || metric.timestamp.Before(cond.LastTransitionTime.Add(metric.window))
			} else {
				// Past initialisation: skip only pods that have never been ready.
				isUnready = cond.Status == corev1.ConditionFalse && pod.Status.StartTime.Add(c.delayOfInitialReadinessStatus).After(cond.LastTransitionTime.Time)
			}
			if isUnready {
				unready.Insert(pod.Name)
				continue
			}
		}
		readyPodCount++
	}
	return readyPodCount, unready, missing, ignored
}

func podReadyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func removeMetrics(metrics podMetrics, pods sets.Set[string]) {
	for name := range pods {
		delete(metrics, name)
	}
}

// podRequests sums each pod's containers' requests of resource (restartable init containers,
// that is sidecars, included); a container without one is an error, as utilization is a
// share of the request.
func podRequests(pods []*corev1.Pod, resource corev1.ResourceName) (map[string]int64, error) {
	out := make(map[string]int64, len(pods))
	for _, pod := range pods {
		sum := int64(0)
		containers := pod.Spec.Containers
		for _, ic := range pod.Spec.InitContainers {
			if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				containers = append(containers[:len(containers):len(containers)], ic)
			}
		}
		for _, ctr := range containers {
			req, ok := ctr.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, ctr.Name, pod.Name)
			}
			sum += req.MilliValue()
		}
		out[pod.Name] = sum
	}
	return out, nil
}

// utilizationRatio is the ratio of the pods' total usage to their total request, relative to
// the target, with the utilization in percent and the average raw usage.
func utilizationRatio(metrics podMetrics, requests map[string]int64, targetUtilization int32) (float64, int32, int64, error) {
	var usageTotal, requestsTotal int64
	n := 0
	for name, m := range metrics {
		req, ok := requests[name]
		if !ok {
			continue // a metric of a pod we do not target
		}
		usageTotal += m.value
		requestsTotal += req
		n++
	}
	if requestsTotal == 0 {
		return 0, 0, 0, errors.New("no metrics returned matched known pods")
	}
	utilization := int32((usageTotal * 100) / requestsTotal)
	return float64(utilization) / float64(targetUtilization), utilization, usageTotal / int64(n), nil
}

// averageRatio is the average usage relative to the target, with the average.
func averageRatio(metrics podMetrics, targetUsage int64) (float64, int64) {
	var total int64
	for _, m := range metrics {
		total += m.value
	}
	avg := total / int64(len(metrics))
	return float64(avg) / float64(targetUsage), avg
}
