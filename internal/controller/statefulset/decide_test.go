package statefulset

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// testPod is a pod of ordinal at revision in one of the states the table speaks of.
func testPod(ordinal int, revision, state string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-" + string(rune('0'+ordinal)),
		Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: revision}}}
	switch state {
	case "ready":
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(testNow.Add(-time.Minute))}}
	case "running":
		p.Status.Phase = corev1.PodRunning
	case "pending":
		p.Status.Phase = corev1.PodPending
	case "failed":
		p.Status.Phase = corev1.PodFailed
	case "terminating":
		p.Status.Phase = corev1.PodRunning
		p.DeletionTimestamp = &metav1.Time{Time: testNow}
	default:
		panic(state)
	}
	return p
}

func testSet(replicas int32, mutate ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.StatefulSetSpec{
		Replicas:            ptr.To(replicas),
		PodManagementPolicy: appsv1.OrderedReadyPodManagement,
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To(int32(0))}},
	}}
	for _, m := range mutate {
		m(set)
	}
	return set
}

func parallel(set *appsv1.StatefulSet) { set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement }
func partition(n int32) func(*appsv1.StatefulSet) {
	return func(set *appsv1.StatefulSet) { set.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To(n) }
}
func onDelete(set *appsv1.StatefulSet) {
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  *appsv1.StatefulSet
		pods []*corev1.Pod // ordinal = index; nil = missing
		want []string      // "create N@rev" or "delete N"
	}{
		{name: "empty set creates pod 0 only", set: testSet(3), want: []string{"create 0@new"}},
		{name: "waits for pod 0 to be ready", set: testSet(3), pods: []*corev1.Pod{testPod(0, "new", "running")}},
		{name: "pending pod blocks", set: testSet(3), pods: []*corev1.Pod{testPod(0, "new", "pending")}},
		{name: "next after ready", set: testSet(3), pods: []*corev1.Pod{testPod(0, "new", "ready")}, want: []string{"create 1@new"}},
		{name: "a gap is filled first", set: testSet(3), pods: []*corev1.Pod{nil, testPod(1, "new", "ready"), testPod(2, "new", "ready")},
			want: []string{"create 0@new"}},
		{name: "failed pod is deleted", set: testSet(2), pods: []*corev1.Pod{testPod(0, "new", "failed"), testPod(1, "new", "ready")},
			want: []string{"delete 0"}},
		{name: "terminating pod is waited for", set: testSet(2), pods: []*corev1.Pod{testPod(0, "new", "terminating")}},
		{name: "parallel creates all", set: testSet(3, parallel), want: []string{"create 0@new", "create 1@new", "create 2@new"}},
		{name: "parallel does not wait", set: testSet(3, parallel), pods: []*corev1.Pod{testPod(0, "new", "pending")},
			want: []string{"create 1@new", "create 2@new"}},
		{name: "scale down highest first", set: testSet(1),
			pods: []*corev1.Pod{testPod(0, "new", "ready"), testPod(1, "new", "ready"), testPod(2, "new", "ready")},
			want: []string{"delete 2"}},
		{name: "scale down waits for the terminating one", set: testSet(1),
			pods: []*corev1.Pod{testPod(0, "new", "ready"), testPod(1, "new", "ready"), testPod(2, "new", "terminating")}},
		{name: "scale down waits for an unready replica", set: testSet(1),
			pods: []*corev1.Pod{testPod(0, "new", "running"), testPod(1, "new", "ready")}},
		{name: "parallel scale down deletes all", set: testSet(1, parallel),
			pods: []*corev1.Pod{testPod(0, "new", "ready"), testPod(1, "new", "ready"), testPod(2, "new", "ready")},
			want: []string{"delete 2", "delete 1"}},
		{name: "rolling update starts at the highest ordinal", set: testSet(3),
			pods: []*corev1.Pod{testPod(0, "old", "ready"), testPod(1, "old", "ready"), testPod(2, "old", "ready")},
			want: []string{"delete 2"}},
		{name: "rolling update waits for the replacement", set: testSet(3),
			pods: []*corev1.Pod{testPod(0, "old", "ready"), testPod(1, "old", "ready"), testPod(2, "new", "running")}},
		{name: "rolling update goes on", set: testSet(3),
			pods: []*corev1.Pod{testPod(0, "old", "ready"), testPod(1, "old", "ready"), testPod(2, "new", "ready")},
			want: []string{"delete 1"}},
		{name: "partition stops the update", set: testSet(3, partition(2)),
			pods: []*corev1.Pod{testPod(0, "old", "ready"), testPod(1, "old", "ready"), testPod(2, "new", "ready")}},
		{name: "below the partition pods come back at the current revision", set: testSet(3, partition(2)),
			pods: []*corev1.Pod{nil, testPod(1, "old", "ready"), testPod(2, "new", "ready")},
			want: []string{"create 0@old"}},
		{name: "on delete replaces nothing", set: testSet(2, onDelete),
			pods: []*corev1.Pod{testPod(0, "old", "ready"), testPod(1, "old", "ready")}},
		{name: "on delete recreates at the update revision", set: testSet(2, onDelete),
			pods: []*corev1.Pod{testPod(0, "old", "ready")}, want: []string{"create 1@new"}},
		{name: "ordinals start", set: testSet(2, func(s *appsv1.StatefulSet) { s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5} }),
			want: []string{"create 5@new"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods := map[int]*corev1.Pod{}
			for i, p := range tc.pods {
				if p != nil {
					pods[i] = p
				}
			}
			steps := decide(decision{set: tc.set, pods: pods, currentRevision: "old", updateRevision: "new", now: testNow})
			var got []string
			for _, s := range steps {
				if s.op == opCreate {
					got = append(got, "create "+itoa(s.ordinal)+"@"+s.revision)
				} else {
					got = append(got, "delete "+itoa(s.ordinal))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("steps %v, want %v", steps, tc.want)
			}
		})
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestMinReadySecondsHoldsOrderedReady(t *testing.T) {
	set := testSet(2, func(s *appsv1.StatefulSet) { s.Spec.MinReadySeconds = 120 })
	pods := map[int]*corev1.Pod{0: testPod(0, "new", "ready")} // ready for a minute only
	if steps := decide(decision{set: set, pods: pods, updateRevision: "new", now: testNow}); len(steps) != 0 {
		t.Fatalf("steps %v before minReadySeconds", steps)
	}
	if steps := decide(decision{set: set, pods: pods, updateRevision: "new", now: testNow.Add(2 * time.Minute)}); len(steps) != 1 {
		t.Fatalf("steps %v after minReadySeconds", steps)
	}
}

func TestComputeStatus(t *testing.T) {
	set := testSet(3)
	set.Generation = 4
	pods := map[int]*corev1.Pod{0: testPod(0, "old", "ready"), 1: testPod(1, "new", "ready"), 2: testPod(2, "new", "running")}
	st := computeStatus(set, pods, "old", "new", testNow)
	want := appsv1.StatefulSetStatus{ObservedGeneration: 4, Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2,
		CurrentReplicas: 1, UpdatedReplicas: 2, CurrentRevision: "old", UpdateRevision: "new"}
	if !apiequality.Semantic.DeepEqual(st, want) {
		t.Fatalf("status %+v\nwant   %+v", st, want)
	}
	pods[0] = testPod(0, "new", "ready")
	pods[2] = testPod(2, "new", "ready")
	st = computeStatus(set, pods, "old", "new", testNow)
	if st.CurrentRevision != "new" || st.CurrentReplicas != 3 || st.UpdatedReplicas != 3 {
		t.Fatalf("completed update: %+v", st)
	}
}

func TestOrdinalOf(t *testing.T) {
	set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	for name, want := range map[string]int{"web-0": 0, "web-12": 12, "web-01": -1, "web-": -1, "web-x": -1, "webby-1": -1, "web-web-1": -1} {
		got, ok := ordinalOf(set, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if (want < 0) == ok || ok && got != want {
			t.Errorf("%s: %d %v, want %d", name, got, ok, want)
		}
	}
}
