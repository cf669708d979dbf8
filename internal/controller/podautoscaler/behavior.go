package podautoscaler

import (
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"
)

// Without spec.behavior a scale-up is limited to max(2 × current, 4) replicas per sync, as in
// kube-controller-manager.
const (
	scaleUpLimitFactor  = 2.0
	scaleUpLimitMinimum = 4.0
)

type recommendation struct {
	replicas int32
	at       time.Time
}

type scaleEvent struct {
	change int32 // always positive: the number of replicas added or removed
	at     time.Time
}

// history is what one autoscaler remembers between syncs: its recent recommendations (for
// stabilisation) and recent scale changes (for the rate policies). It lives only in memory,
// as in kube-controller-manager: a restarted controller starts afresh.
type history struct {
	recommendations []recommendation
	scaleUps        []scaleEvent
	scaleDowns      []scaleEvent
}

// limitResult is a normalised replica count with the AbleToScale and ScalingLimited reasons.
type limitResult struct {
	replicas                      int32
	ableReason, ableMessage       string
	limited                       bool
	limitedReason, limitedMessage string
}

// normalize turns the metrics' proposal into the replica count to set: stabilised over the
// recent recommendations, then limited by min/max and the scale rate.
func (h *history) normalize(now time.Time, behavior *autoscalingv2.HorizontalPodAutoscalerBehavior, downscaleWindow time.Duration,
	current, proposed, minReplicas, maxReplicas int32) limitResult {
	if behavior == nil {
		return h.normalizeDefault(now, downscaleWindow, current, proposed, minReplicas, maxReplicas)
	}
	up, down := rulesWithDefaults(behavior, downscaleWindow)
	var res limitResult
	stabilized, reason, message := h.stabilize(now, up, down, current, proposed)
	if stabilized != proposed {
		res.ableReason, res.ableMessage = reason, message
	} else {
		res.ableReason, res.ableMessage = "ReadyForNewScale", "recommended size matches current size"
	}
	res.replicas, res.limitedReason, res.limitedMessage = h.limitByRate(now, up, down, current, stabilized, minReplicas, maxReplicas)
	res.limited = res.replicas != stabilized
	return res
}

// normalizeDefault is the path without spec.behavior: scale-down stabilisation over the
// --horizontal-pod-autoscaler-downscale-stabilization window and the fixed scale-up limit.
func (h *history) normalizeDefault(now time.Time, window time.Duration, current, proposed, minReplicas, maxReplicas int32) limitResult {
	var res limitResult
	stabilized := proposed
	found, oldIndex := false, 0
	cutoff := now.Add(-window)
	for i, rec := range h.recommendations {
		if rec.at.Before(cutoff) {
			found, oldIndex = true, i
		} else if rec.replicas > stabilized {
			stabilized = rec.replicas
		}
	}
	if found {
		h.recommendations[oldIndex] = recommendation{proposed, now}
	} else {
		h.recommendations = append(h.recommendations, recommendation{proposed, now})
	}
	if stabilized != proposed {
		res.ableReason, res.ableMessage = "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
	} else {
		res.ableReason, res.ableMessage = "ReadyForNewScale", "recommended size matches current size"
	}
	scaleUpLimit := int32(math.Max(scaleUpLimitFactor*float64(current), scaleUpLimitMinimum))
	maxAllowed := maxReplicas
	reason, message := "TooManyReplicas", "the desired replica count is more than the maximum replica count"
	if maxReplicas > scaleUpLimit {
		maxAllowed = scaleUpLimit
		reason, message = "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
	}
	switch {
	case stabilized < minReplicas:
		res.replicas, res.limitedReason, res.limitedMessage = minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
	case stabilized > maxAllowed:
		res.replicas, res.limitedReason, res.limitedMessage = maxAllowed, reason, message
	default:
		res.replicas, res.limitedReason, res.limitedMessage = stabilized, "DesiredWithinRange", "the desired count is within the acceptable range"
	}
	res.limited = res.replicas != stabilized
	return res
}

// rulesWithDefaults fills what the API server leaves unset, as kube-apiserver's defaulting
// and the controller's --horizontal-pod-autoscaler-downscale-stabilization do.
func rulesWithDefaults(b *autoscalingv2.HorizontalPodAutoscalerBehavior, downscaleWindow time.Duration) (up, down *autoscalingv2.HPAScalingRules) {
	up, down = &autoscalingv2.HPAScalingRules{}, &autoscalingv2.HPAScalingRules{}
	if b.ScaleUp != nil {
		up = b.ScaleUp.DeepCopy()
	}
	if b.ScaleDown != nil {
		down = b.ScaleDown.DeepCopy()
	}
	if up.StabilizationWindowSeconds == nil {
		up.StabilizationWindowSeconds = ptr.To[int32](0)
	}
	if down.StabilizationWindowSeconds == nil {
		down.StabilizationWindowSeconds = ptr.To(int32(downscaleWindow.Seconds()))
	}
	for _, r := range []*autoscalingv2.HPAScalingRules{up, down} {
		if r.SelectPolicy == nil {
			r.SelectPolicy = ptr.To(autoscalingv2.MaxChangePolicySelect)
		}
	}
	if up.Policies == nil {
		up.Policies = []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}
	}
	if down.Policies == nil {
		down.Policies = []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}
	}
	return up, down
}

// stabilize records the proposal and returns the lowest recent recommendation within the
// scale-up window (when scaling up) or the highest within the scale-down window.
func (h *history) stabilize(now time.Time, up, down *autoscalingv2.HPAScalingRules, current, proposed int32) (int32, string, string) {
	result := proposed
	var window int32
	better := func(a, b int32) int32 { return min(a, b) }
	reason, message := "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
	if proposed >= current {
		window = *up.StabilizationWindowSeconds
	} else {
		window = *down.StabilizationWindowSeconds
		better = func(a, b int32) int32 { return max(a, b) }
		reason, message = "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
	}
	obsolete := now.Add(-time.Duration(max(*up.StabilizationWindowSeconds, *down.StabilizationWindowSeconds)) * time.Second)
	cutoff := now.Add(-time.Duration(window) * time.Second)
	found, oldIndex := false, 0
	for i, rec := range h.recommendations {
		if rec.at.After(cutoff) {
			result = better(rec.replicas, result)
		}
		if rec.at.Before(obsolete) {
			found, oldIndex = true, i
		}
	}
	if found {
		h.recommendations[oldIndex] = recommendation{proposed, now}
	} else {
		h.recommendations = append(h.recommendations, recommendation{proposed, now})
	}
	return result, reason, message
}

// limitByRate applies min/max and the scale-up or scale-down policies.
func (h *history) limitByRate(now time.Time, up, down *autoscalingv2.HPAScalingRules, current, desired, minReplicas, maxReplicas int32) (int32, string, string) {
	switch {
	case desired > current:
		limit := scaleUpLimit(now, current, h.scaleUps, up)
		if limit < current {
			limit = current // no further scale-up until older events leave the periods
		}
		maxAllowed := maxReplicas
		reason, message := "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if maxAllowed > limit {
			maxAllowed = limit
			reason, message = "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > maxAllowed {
			return maxAllowed, reason, message
		}
	case desired < current:
		limit := scaleDownLimit(now, current, h.scaleDowns, down)
		if limit > current {
			limit = current
		}
		minAllowed := minReplicas
		reason, message := "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if minAllowed < limit {
			minAllowed = limit
			reason, message = "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < minAllowed {
			return minAllowed, reason, message
		}
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// changeInPeriod sums the changes of the events within the last periodSeconds.
func changeInPeriod(now time.Time, periodSeconds int32, events []scaleEvent) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var n int32
	for _, e := range events {
		if e.at.After(cutoff) {
			n += e.change
		}
	}
	return n
}

// scaleUpLimit is the most replicas the policies allow now: each policy measures from the
// replica count at the start of its period; Max picks the most permissive, Min the least.
func scaleUpLimit(now time.Time, current int32, events []scaleEvent, rules *autoscalingv2.HPAScalingRules) int32 {
	if *rules.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick := func(a, b int32) int32 { return max(a, b) }
	var result int32
	if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick = func(a, b int32) int32 { return min(a, b) }
		result = math.MaxInt32
	}
	for _, p := range rules.Policies {
		start := current - changeInPeriod(now, p.PeriodSeconds, events)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start + p.Value
		case autoscalingv2.PercentScalingPolicy:
			// Rounded up, or a small target could never grow.
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		default:
			continue
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is the fewest replicas the policies allow now.
func scaleDownLimit(now time.Time, current int32, events []scaleEvent, rules *autoscalingv2.HPAScalingRules) int32 {
	if *rules.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick := func(a, b int32) int32 { return min(a, b) }
	var result int32 = math.MaxInt32
	if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick = func(a, b int32) int32 { return max(a, b) }
		result = math.MinInt32
	}
	for _, p := range rules.Policies {
		start := current + changeInPeriod(now, p.PeriodSeconds, events)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		default:
			continue
		}
		result = pick(result, proposed)
	}
	return result
}

// recordScale remembers a scale change for the rate policies, reusing the slot of an event
// older than every policy period.
func (h *history) recordScale(now time.Time, behavior *autoscalingv2.HorizontalPodAutoscalerBehavior, downscaleWindow time.Duration, from, to int32) {
	if behavior == nil {
		return // only policies read the events
	}
	up, down := rulesWithDefaults(behavior, downscaleWindow)
	events, rules, change := &h.scaleUps, up, to-from
	if to < from {
		events, rules, change = &h.scaleDowns, down, from-to
	}
	var longest int32
	for _, p := range rules.Policies {
		longest = max(longest, p.PeriodSeconds)
	}
	cutoff := now.Add(-time.Duration(longest) * time.Second)
	ev := scaleEvent{change: change, at: now}
	for i := range *events {
		if (*events)[i].at.Before(cutoff) {
			(*events)[i] = ev
			return
		}
	}
	*events = append(*events, ev)
}
