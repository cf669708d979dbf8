package podautoscaler

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"
)

func rules(window int32, sel autoscalingv2.ScalingPolicySelect, policies ...autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To(window), SelectPolicy: ptr.To(sel), Policies: policies}
}

func pods(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: n, PeriodSeconds: period}
}

func percent(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: n, PeriodSeconds: period}
}

func TestNormalize(t *testing.T) {
	ago := func(d time.Duration) time.Time { return testNow.Add(-d) }
	for _, tc := range []struct {
		name                     string
		behavior                 *autoscalingv2.HorizontalPodAutoscalerBehavior
		hist                     history
		current, proposed        int32
		minReplicas, maxReplicas int32
		want                     int32
		wantAble, wantLimited    string
		wantLimitedTrue          bool
	}{
		{name: "default: within range", current: 3, proposed: 5, minReplicas: 1, maxReplicas: 10,
			want: 5, wantAble: "ReadyForNewScale", wantLimited: "DesiredWithinRange"},
		{name: "default: scale-up at most doubles (at least 4)", current: 1, proposed: 10, minReplicas: 1, maxReplicas: 20,
			want: 4, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "default: max replicas", current: 8, proposed: 12, minReplicas: 1, maxReplicas: 10,
			want: 10, wantAble: "ReadyForNewScale", wantLimited: "TooManyReplicas", wantLimitedTrue: true},
		{name: "default: min replicas", current: 3, proposed: 1, minReplicas: 2, maxReplicas: 10,
			want: 2, wantAble: "ReadyForNewScale", wantLimited: "TooFewReplicas", wantLimitedTrue: true},
		{name: "default: scale-down stabilised on a recent higher recommendation", current: 5, proposed: 2, minReplicas: 1, maxReplicas: 10,
			hist: history{recommendations: []recommendation{{5, ago(time.Minute)}}},
			want: 5, wantAble: "ScaleDownStabilized", wantLimited: "DesiredWithinRange"},
		{name: "default: recommendations older than the window do not hold", current: 5, proposed: 2, minReplicas: 1, maxReplicas: 10,
			hist: history{recommendations: []recommendation{{5, ago(6 * time.Minute)}}},
			want: 2, wantAble: "ReadyForNewScale", wantLimited: "DesiredWithinRange"},
		{name: "behavior: pods policy limits a scale-up", current: 2, proposed: 10, minReplicas: 1, maxReplicas: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, autoscalingv2.MaxChangePolicySelect, pods(1, 60))},
			want:     3, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "behavior: earlier scale-ups use up the period", current: 3, proposed: 10, minReplicas: 1, maxReplicas: 20,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, autoscalingv2.MaxChangePolicySelect, pods(1, 60))},
			hist:     history{scaleUps: []scaleEvent{{change: 1, at: ago(30 * time.Second)}}},
			want:     3, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "behavior: Max picks the most permissive policy", current: 10, proposed: 40, minReplicas: 1, maxReplicas: 100,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, autoscalingv2.MaxChangePolicySelect, pods(4, 15), percent(100, 15))},
			want:     20, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "behavior: Min picks the least permissive policy", current: 10, proposed: 40, minReplicas: 1, maxReplicas: 100,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, autoscalingv2.MinChangePolicySelect, pods(4, 15), percent(100, 15))},
			want:     14, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "behavior: Disabled scale-up", current: 3, proposed: 6, minReplicas: 1, maxReplicas: 10,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, autoscalingv2.DisabledPolicySelect, pods(4, 15))},
			want:     3, wantAble: "ReadyForNewScale", wantLimited: "ScaleUpLimit", wantLimitedTrue: true},
		{name: "behavior: percent policy limits a scale-down", current: 10, proposed: 1, minReplicas: 1, maxReplicas: 10,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: rules(0, autoscalingv2.MaxChangePolicySelect, percent(50, 60))},
			want:     5, wantAble: "ReadyForNewScale", wantLimited: "ScaleDownLimit", wantLimitedTrue: true},
		{name: "behavior: scale-up stabilisation takes the lowest recent recommendation", current: 2, proposed: 6, minReplicas: 1, maxReplicas: 10,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(60, autoscalingv2.MaxChangePolicySelect, pods(10, 15))},
			hist:     history{recommendations: []recommendation{{3, ago(30 * time.Second)}}},
			want:     3, wantAble: "ScaleUpStabilized", wantLimited: "DesiredWithinRange"},
		{name: "behavior: unset scale-down window is the controller's 5 minutes", current: 5, proposed: 2, minReplicas: 1, maxReplicas: 10,
			behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{},
			hist:     history{recommendations: []recommendation{{4, ago(4 * time.Minute)}}},
			want:     4, wantAble: "ScaleDownStabilized", wantLimited: "DesiredWithinRange"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.hist
			res := h.normalize(testNow, tc.behavior, DefaultDownscaleStabilization, tc.current, tc.proposed, tc.minReplicas, tc.maxReplicas)
			if res.replicas != tc.want || res.ableReason != tc.wantAble || res.limitedReason != tc.wantLimited || res.limited != tc.wantLimitedTrue {
				t.Errorf("normalize = %d (%s, %s, limited=%v); want %d (%s, %s, limited=%v)", res.replicas, res.ableReason, res.limitedReason, res.limited,
					tc.want, tc.wantAble, tc.wantLimited, tc.wantLimitedTrue)
			}
			if last := h.recommendations[len(h.recommendations)-1]; len(tc.hist.recommendations) == 0 && (last.replicas != tc.proposed || !last.at.Equal(testNow)) {
				t.Errorf("the proposal was not recorded: %+v", h.recommendations)
			}
		})
	}
}

func TestRecordScaleReusesOutdatedSlots(t *testing.T) {
	b := &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, autoscalingv2.MaxChangePolicySelect, pods(1, 60))}
	h := history{}
	h.recordScale(testNow.Add(-2*time.Minute), b, DefaultDownscaleStabilization, 1, 2)
	h.recordScale(testNow, b, DefaultDownscaleStabilization, 2, 4)
	if len(h.scaleUps) != 1 || h.scaleUps[0].change != 2 {
		t.Fatalf("scale-ups = %+v, want the outdated event replaced by +2", h.scaleUps)
	}
	h.recordScale(testNow, b, DefaultDownscaleStabilization, 4, 3)
	if len(h.scaleDowns) != 1 || h.scaleDowns[0].change != 1 {
		t.Fatalf("scale-downs = %+v", h.scaleDowns)
	}
	// Without spec.behavior nothing reads the events, so none are kept.
	h2 := history{}
	h2.recordScale(testNow, nil, DefaultDownscaleStabilization, 1, 4)
	if len(h2.scaleUps) != 0 {
		t.Fatalf("events kept without behavior: %+v", h2.scaleUps)
	}
}
