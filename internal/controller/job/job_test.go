package job

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fixture is a controller on a fake clientset whose informer caches the test fills directly.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	clock    *testingclock.FakeClock
	recorder *record.FakeRecorder
	factory  informers.SharedInformerFactory
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	client := fake.NewSimpleClientset(objs...)
	var n atomic.Int32 // the fake clientset does not implement generateName
	client.PrependReactor("create", "pods", func(a core.Action) (bool, runtime.Object, error) {
		pod := a.(core.CreateAction).GetObject().(*corev1.Pod)
		if pod.Name == "" {
			pod.Name = fmt.Sprintf("%s%d", pod.GenerateName, n.Add(1))
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	clk := testingclock.NewFakeClock(testNow)
	c, err := New(Config{Client: client, Informers: factory, Recorder: recorder, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *batchv1.Job:
			_ = factory.Batch().V1().Jobs().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			_ = factory.Core().V1().Pods().Informer().GetIndexer().Add(o)
		}
	}
	return &fixture{t: t, client: client, c: c, clock: clk, recorder: recorder, factory: factory}
}

func (f *fixture) sync(k string) {
	f.t.Helper()
	if err := f.c.sync(context.Background(), k); err != nil {
		f.t.Fatalf("sync %s: %v", k, err)
	}
}

// verbs lists the client's actions as "verb resource[/subresource]".
func (f *fixture) verbs() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	return out
}

func (f *fixture) created() []*corev1.Pod {
	var out []*corev1.Pod
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			out = append(out, a.(core.CreateAction).GetObject().(*corev1.Pod))
		}
	}
	return out
}

// status is the Job's status as last written.
func (f *fixture) status(name string) batchv1.JobStatus {
	f.t.Helper()
	j, err := f.client.BatchV1().Jobs("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return j.Status
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

func newJob(name string, parallelism int32, completions *int32) *batchv1.Job {
	uid := types.UID(name + "-uid")
	l := map[string]string{batchv1.ControllerUidLabel: string(uid), batchv1.JobNameLabel: name}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: uid},
		Spec: batchv1.JobSpec{
			Parallelism: &parallelism, Completions: completions, BackoffLimit: ptr.To[int32](6),
			CompletionMode: ptr.To(batchv1.NonIndexedCompletion), Suspend: ptr.To(false),
			PodReplacementPolicy: ptr.To(batchv1.TerminatingOrFailed),
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: string(uid)}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
		Status: batchv1.JobStatus{StartTime: &metav1.Time{Time: testNow.Add(-time.Minute)}},
	}
}

type podOpt func(*corev1.Pod)

func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
func index(ix int) podOpt {
	return func(p *corev1.Pod) {
		p.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: fmt.Sprint(ix)}
	}
}
func exitCode(code int32) podOpt {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: metav1.NewTime(testNow.Add(-time.Second))}}}}
	}
}
func noFinalizer() podOpt { return func(p *corev1.Pod) { p.Finalizers = nil } }

func podOf(job *batchv1.Job, name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: job.Namespace, UID: types.UID(name + "-uid"),
			Labels: job.Spec.Template.Labels, Finalizers: []string{batchv1.JobTrackingFinalizer},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, controllerKind)}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func condition(st batchv1.JobStatus, t batchv1.JobConditionType) *batchv1.JobCondition {
	return findCondition(&st, t)
}

func TestCreatesPodsForParallelism(t *testing.T) {
	job := newJob("pi", 3, ptr.To[int32](5))
	f := newFixture(t, job)
	f.sync("default/pi")
	if got := f.verbs(); count(got, "create pods") != 3 || count(got, "update jobs/status") != 1 || len(got) != 4 {
		t.Fatalf("actions %v", got)
	}
	for _, p := range f.created() {
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.UID != job.UID || !*ref.BlockOwnerDeletion || !hasFinalizer(p) ||
			p.Labels[batchv1.JobNameLabel] != "pi" || p.GenerateName != "pi-" {
			t.Errorf("pod %+v", p.ObjectMeta)
		}
	}
	if st := f.status("pi"); st.Active != 3 || *st.Ready != 0 || st.UncountedTerminatedPods == nil {
		t.Errorf("status %+v", st)
	}
	if ev := f.events(); len(ev) != 3 || !strings.HasPrefix(ev[0], "Normal SuccessfulCreate Created pod: pi-") {
		t.Errorf("events %v", ev)
	}
}

func TestCreatesNoMoreThanRemainingCompletions(t *testing.T) {
	job := newJob("pi", 3, ptr.To[int32](5))
	job.Status.Succeeded = 3
	f := newFixture(t, job, podOf(job, "a"))
	f.sync("default/pi")
	if got := f.verbs(); count(got, "create pods") != 1 {
		t.Fatalf("actions %v, want one creation (5 completions - 3 succeeded - 1 active)", got)
	}
	if st := f.status("pi"); st.Active != 2 {
		t.Errorf("active %d", st.Active)
	}
}

func TestScalesDownToParallelism(t *testing.T) {
	job := newJob("pi", 1, nil)
	ready := podOf(job, "ready", func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	})
	f := newFixture(t, job, ready, podOf(job, "pending", phase(corev1.PodPending)))
	f.sync("default/pi")
	if got := f.verbs(); !slices.Equal(got, []string{"patch pods", "delete pods", "update jobs/status"}) {
		t.Fatalf("actions %v", got)
	}
	if d := f.client.Actions()[1].(core.DeleteAction); d.GetName() != "pending" {
		t.Errorf("deleted %s, want the pending pod", d.GetName())
	}
	if st := f.status("pi"); st.Active != 1 || *st.Ready != 1 || *st.Terminating != 1 {
		t.Errorf("status %+v", st)
	}
}

// A finished pod is recorded in uncountedTerminatedPods, loses its finalizer, then counts.
func TestCountsFinishedPodsOnce(t *testing.T) {
	job := newJob("pi", 2, ptr.To[int32](3))
	done := podOf(job, "done", phase(corev1.PodSucceeded))
	f := newFixture(t, job, done, podOf(job, "running"))
	var writes []batchv1.JobStatus
	f.client.PrependReactor("update", "jobs", func(a core.Action) (bool, runtime.Object, error) {
		writes = append(writes, *a.(core.UpdateAction).GetObject().(*batchv1.Job).Status.DeepCopy())
		return false, nil, nil
	})
	f.sync("default/pi")
	if got := f.verbs(); !slices.Equal(got, []string{"create pods", "update jobs/status", "patch pods", "update jobs/status"}) {
		t.Fatalf("actions %v", got)
	}
	if len(writes) != 2 || !slices.Equal(writes[0].UncountedTerminatedPods.Succeeded, []types.UID{"done-uid"}) || writes[0].Succeeded != 0 {
		t.Fatalf("first write %+v", writes)
	}
	if st := writes[1]; st.Succeeded != 1 || len(st.UncountedTerminatedPods.Succeeded) != 0 || st.Active != 2 {
		t.Fatalf("second write %+v", st)
	}
	patch := string(f.client.Actions()[2].(core.PatchAction).GetPatch())
	if !strings.Contains(patch, `"$deleteFromPrimitiveList/finalizers":["batch.kubernetes.io/job-tracking"]`) {
		t.Errorf("patch %s", patch)
	}
}

// A pod recorded earlier whose finalizer is already gone moves to the counter without a
// second count.
func TestSettlesRecordedPods(t *testing.T) {
	job := newJob("pi", 1, ptr.To[int32](3))
	job.Status.Succeeded = 1
	job.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{Succeeded: []types.UID{"done-uid"}}
	f := newFixture(t, job, podOf(job, "done", phase(corev1.PodSucceeded), noFinalizer()), podOf(job, "running"))
	f.sync("default/pi")
	if got := f.verbs(); !slices.Equal(got, []string{"update jobs/status"}) {
		t.Fatalf("actions %v", got)
	}
	if st := f.status("pi"); st.Succeeded != 2 || len(st.UncountedTerminatedPods.Succeeded) != 0 {
		t.Errorf("status %+v", st)
	}
}

func TestCompletes(t *testing.T) {
	job := newJob("pi", 2, ptr.To[int32](2))
	job.Status.Succeeded = 1
	f := newFixture(t, job, podOf(job, "a", phase(corev1.PodSucceeded), noFinalizer()), podOf(job, "b", phase(corev1.PodSucceeded)))
	f.sync("default/pi")
	st := f.status("pi")
	if st.Succeeded != 2 || st.Active != 0 || st.CompletionTime == nil || !st.CompletionTime.Time.Equal(testNow) {
		t.Fatalf("status %+v", st)
	}
	for _, typ := range []batchv1.JobConditionType{batchv1.JobSuccessCriteriaMet, batchv1.JobComplete} {
		if c := condition(st, typ); c == nil || c.Status != corev1.ConditionTrue || c.Reason != batchv1.JobReasonCompletionsReached {
			t.Errorf("%s = %+v", typ, c)
		}
	}
	if ev := f.events(); !slices.Equal(ev, []string{"Normal Completed Job completed"}) {
		t.Errorf("events %v", ev)
	}
	// A finished Job is left alone.
	_ = f.c.pods.Update(podOf(job, "b", phase(corev1.PodSucceeded), noFinalizer()))
	f.nextRound("pi", nil)
	f.sync("default/pi")
	if got := f.verbs(); len(got) != 0 {
		t.Errorf("finished job: actions %v", got)
	}
}

// nextRound makes the controller see what the last sync did, as its informers would: the
// Job as last written (with edit applied, if any) in its cache, and every expectation
// settled. Pod changes are made to f.c.pods by the test.
func (f *fixture) nextRound(name string, edit func(*batchv1.Job)) {
	f.t.Helper()
	j, err := f.client.BatchV1().Jobs("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	if edit != nil {
		edit(j)
	}
	if err := f.factory.Batch().V1().Jobs().Informer().GetIndexer().Update(j); err != nil {
		f.t.Fatal(err)
	}
	f.c.expectations.Delete("default/" + name)
	f.c.finalizerRemovals.Delete("default/" + name)
	f.client.ClearActions()
}

func TestWithoutCompletionsFirstSuccessEndsTheJob(t *testing.T) {
	job := newJob("work", 3, nil)
	f := newFixture(t, job, podOf(job, "a", phase(corev1.PodSucceeded)), podOf(job, "b"), podOf(job, "c"))
	f.sync("default/work")
	got := f.verbs()
	if count(got, "create pods") != 0 || count(got, "delete pods") != 0 {
		t.Fatalf("actions %v: running pods are left to finish, none is added", got)
	}
	if st := f.status("work"); st.Succeeded != 1 || st.Active != 2 || condition(st, batchv1.JobComplete) != nil {
		t.Errorf("status %+v", st)
	}
}

func TestBackoffDelaysReplacement(t *testing.T) {
	job := newJob("pi", 1, ptr.To[int32](1))
	f := newFixture(t, job, podOf(job, "a", phase(corev1.PodFailed), exitCode(1)))
	f.sync("default/pi")
	if got := f.verbs(); count(got, "create pods") != 0 {
		t.Fatalf("actions %v: the replacement must wait", got)
	}
	st := f.status("pi")
	if st.Failed != 1 || st.Active != 0 {
		t.Fatalf("status %+v", st)
	}
	// After the backoff (10s from the failure, a second ago) the replacement comes.
	rec := f.c.backoff.get("default/pi")
	if rec.failuresAfterLastSuccess != 1 || rec.remaining(testNow, DefaultPodFailureBackoff, DefaultMaxPodFailureBackoff) != 9*time.Second {
		t.Fatalf("backoff %+v", rec)
	}
	f.clock.Step(10 * time.Second)
	_ = f.c.pods.Update(podOf(job, "a", phase(corev1.PodFailed), exitCode(1), noFinalizer()))
	f.nextRound("pi", nil)
	f.sync("default/pi")
	if got := f.verbs(); count(got, "create pods") != 1 {
		t.Fatalf("after backoff: actions %v", got)
	}
}

func TestBackoffRecord(t *testing.T) {
	base, maxDelay := 10*time.Second, 6*time.Minute
	for _, tc := range []struct {
		failures int
		since    time.Duration
		want     time.Duration
	}{
		{0, 0, 0},
		{1, 0, 10 * time.Second},
		{1, 4 * time.Second, 6 * time.Second},
		{2, 0, 20 * time.Second},
		{3, 0, 40 * time.Second},
		{6, 0, 320 * time.Second},
		{7, 0, 6 * time.Minute},
		{30, 0, 6 * time.Minute},
		{3, time.Hour, 0},
	} {
		r := backoffRecord{failuresAfterLastSuccess: tc.failures, lastFailure: testNow.Add(-tc.since)}
		if got := r.remaining(testNow, base, maxDelay); got != tc.want {
			t.Errorf("%d failures %v ago: %v, want %v", tc.failures, tc.since, got, tc.want)
		}
	}
	job := newJob("pi", 1, nil)
	failedAt := func(d time.Duration) *corev1.Pod {
		p := podOf(job, "f", phase(corev1.PodFailed))
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(testNow.Add(d))}}}}
		return p
	}
	succeededAt := func(d time.Duration) *corev1.Pod {
		p := failedAt(d)
		p.Status.Phase = corev1.PodSucceeded
		return p
	}
	r := backoffRecord{}.next(nil, []*corev1.Pod{failedAt(-3 * time.Second), failedAt(-time.Second)}, testNow)
	if r.failuresAfterLastSuccess != 2 || !r.lastFailure.Equal(testNow.Add(-time.Second)) {
		t.Errorf("two failures: %+v", r)
	}
	r = r.next([]*corev1.Pod{succeededAt(-2 * time.Second)}, []*corev1.Pod{failedAt(-time.Second)}, testNow)
	if r.failuresAfterLastSuccess != 1 {
		t.Errorf("a success resets the count: %+v", r)
	}
}

func TestBackoffLimitFailsTheJob(t *testing.T) {
	job := newJob("pi", 2, ptr.To[int32](4))
	job.Spec.BackoffLimit = ptr.To[int32](1)
	job.Status.Failed = 1
	f := newFixture(t, job, podOf(job, "a", phase(corev1.PodFailed), exitCode(1)), podOf(job, "b"))
	f.sync("default/pi")
	got := f.verbs()
	// record the failure, take the running pod's finalizer off and delete it, release the
	// failed pod; the Failed condition waits until nothing terminates.
	if count(got, "create pods") != 0 || count(got, "delete pods") != 1 || count(got, "patch pods") != 2 {
		t.Fatalf("actions %v", got)
	}
	st := f.status("pi")
	if c := condition(st, batchv1.JobFailureTarget); c == nil || c.Reason != batchv1.JobReasonBackoffLimitExceeded || c.Message != messageBackoffLimit {
		t.Fatalf("FailureTarget %+v", c)
	}
	if condition(st, batchv1.JobFailed) != nil || st.Failed != 2 || *st.Terminating != 1 {
		t.Fatalf("status %+v", st)
	}
	// Once the deleted pod is gone, the Job fails.
	_ = f.c.pods.Delete(podOf(job, "b"))
	_ = f.c.pods.Update(podOf(job, "a", phase(corev1.PodFailed), exitCode(1), noFinalizer()))
	f.nextRound("pi", nil)
	f.sync("default/pi")
	st = f.status("pi")
	if c := condition(st, batchv1.JobFailed); c == nil || c.Status != corev1.ConditionTrue || c.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Fatalf("Failed %+v", c)
	}
	if st.CompletionTime != nil || *st.Terminating != 0 {
		t.Errorf("status %+v", st)
	}
	if ev := f.events(); !slices.Contains(ev, "Warning BackoffLimitExceeded Job has reached the specified backoff limit") {
		t.Errorf("events %v", ev)
	}
}

func TestActiveDeadline(t *testing.T) {
	job := newJob("pi", 2, ptr.To[int32](2))
	job.Spec.ActiveDeadlineSeconds = ptr.To[int64](30)
	f := newFixture(t, job, podOf(job, "a"), podOf(job, "b"))
	f.sync("default/pi")
	if got := f.verbs(); count(got, "delete pods") != 2 {
		t.Fatalf("actions %v", got)
	}
	st := f.status("pi")
	if c := condition(st, batchv1.JobFailureTarget); c == nil || c.Reason != batchv1.JobReasonDeadlineExceeded || c.Message != messageDeadline {
		t.Fatalf("FailureTarget %+v", c)
	}
	if st.Active != 0 || st.Failed != 0 {
		t.Errorf("deleted pods do not count as failed: %+v", st)
	}
}

func TestSuspendAndResume(t *testing.T) {
	job := newJob("pi", 2, ptr.To[int32](4))
	job.Spec.Suspend = ptr.To(true)
	f := newFixture(t, job, podOf(job, "a"), podOf(job, "b"))
	f.sync("default/pi")
	if got := f.verbs(); count(got, "delete pods") != 2 || count(got, "create pods") != 0 {
		t.Fatalf("actions %v", got)
	}
	st := f.status("pi")
	if c := condition(st, batchv1.JobSuspended); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "JobSuspended" {
		t.Fatalf("Suspended %+v", c)
	}
	if st.StartTime != nil || st.Active != 0 || st.Failed != 0 {
		t.Fatalf("status %+v", st)
	}
	if ev := f.events(); !slices.Contains(ev, "Normal Suspended Job suspended") {
		t.Errorf("events %v", ev)
	}

	_ = f.c.pods.Delete(podOf(job, "a"))
	_ = f.c.pods.Delete(podOf(job, "b"))
	f.nextRound("pi", func(j *batchv1.Job) { j.Spec.Suspend = ptr.To(false) })
	f.sync("default/pi")
	if got := f.verbs(); count(got, "create pods") != 2 {
		t.Fatalf("resume: actions %v", got)
	}
	st = f.status("pi")
	if c := condition(st, batchv1.JobSuspended); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "JobResumed" {
		t.Fatalf("Suspended %+v", c)
	}
	if st.StartTime == nil || !st.StartTime.Time.Equal(testNow) {
		t.Errorf("startTime %v", st.StartTime)
	}
}

func TestIndexed(t *testing.T) {
	job := newJob("idx", 2, ptr.To[int32](4))
	job.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	job.Status.CompletedIndexes = "0"
	job.Status.Succeeded = 1
	f := newFixture(t, job,
		podOf(job, "one", index(1)),
		podOf(job, "two", index(2), phase(corev1.PodSucceeded)),
		podOf(job, "dup", index(2)), // a second pod for an index that succeeded
	)
	f.sync("default/idx")
	// The duplicate goes first; creations wait for the next sync.
	if got := f.verbs(); count(got, "create pods") != 0 || count(got, "delete pods") != 1 {
		t.Fatalf("actions %v", got)
	}
	if d := f.client.Actions()[1].(core.DeleteAction); d.GetName() != "dup" {
		t.Fatalf("deleted %s", d.GetName())
	}
	st := f.status("idx")
	if st.CompletedIndexes != "0,2" || st.Succeeded != 2 || len(st.UncountedTerminatedPods.Succeeded) != 0 {
		t.Fatalf("status %+v", st)
	}
	// Next round: the duplicate is gone; index 3 is the one to run.
	_ = f.c.pods.Delete(podOf(job, "dup"))
	_ = f.c.pods.Delete(podOf(job, "two"))
	f.nextRound("idx", nil)
	f.sync("default/idx")
	created := f.created()
	if len(created) != 1 {
		t.Fatalf("actions %v", f.verbs())
	}
	p := created[0]
	env := p.Spec.Containers[0].Env
	if p.Annotations[batchv1.JobCompletionIndexAnnotation] != "3" || p.Labels[batchv1.JobCompletionIndexAnnotation] != "3" ||
		p.Spec.Hostname != "idx-3" || p.GenerateName != "idx-3-" || len(env) != 1 || env[0].Name != CompletionIndexEnv ||
		env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("indexed pod %+v %+v", p.ObjectMeta, p.Spec)
	}
}

func TestPodFailurePolicy(t *testing.T) {
	policy := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{42}}},
	}}
	job := newJob("pi", 1, ptr.To[int32](1))
	disrupted := podOf(job, "evicted", phase(corev1.PodFailed), exitCode(137))
	disrupted.Status.Conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}
	for _, tc := range []struct {
		pod          *corev1.Pod
		wantFailJob  string
		wantCounted  bool
		wantCreation bool
	}{
		{disrupted, "", false, true},
		{podOf(job, "answer", phase(corev1.PodFailed), exitCode(42)),
			"Container c for pod default/answer failed with exit code 42 matching FailJob rule at index 1", true, false},
		{podOf(job, "crash", phase(corev1.PodFailed), exitCode(1)), "", true, false},
	} {
		msg, counted := matchPodFailurePolicy(policy, tc.pod)
		if ptr.Deref(msg, "") != tc.wantFailJob || counted != tc.wantCounted {
			t.Errorf("%s: %v %v", tc.pod.Name, ptr.Deref(msg, ""), counted)
		}
		j := job.DeepCopy()
		j.Spec.PodFailurePolicy = policy
		j.Spec.PodReplacementPolicy = ptr.To(batchv1.Failed)
		f := newFixture(t, j, tc.pod)
		f.sync("default/pi")
		st := f.status("pi")
		if got := count(f.verbs(), "create pods") == 1; got != tc.wantCreation {
			t.Errorf("%s: actions %v", tc.pod.Name, f.verbs())
		}
		if tc.wantFailJob != "" {
			c := condition(st, batchv1.JobFailed)
			if c == nil || c.Reason != batchv1.JobReasonPodFailurePolicy || c.Message != tc.wantFailJob {
				t.Errorf("%s: Failed %+v", tc.pod.Name, c)
			}
		}
		if wantFailed := int32(0); tc.wantCounted {
			wantFailed = 1
			if st.Failed != wantFailed {
				t.Errorf("%s: failed %d", tc.pod.Name, st.Failed)
			}
		} else if st.Failed != 0 {
			t.Errorf("%s: ignored failure counted", tc.pod.Name)
		}
	}
}

func TestRestartPolicyOnFailureCountsRestarts(t *testing.T) {
	job := newJob("pi", 1, ptr.To[int32](1))
	job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	job.Spec.BackoffLimit = ptr.To[int32](2)
	p := podOf(job, "a")
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: 2}}
	f := newFixture(t, job, p)
	f.sync("default/pi")
	if c := condition(f.status("pi"), batchv1.JobFailureTarget); c == nil || c.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Fatalf("FailureTarget %+v", c)
	}
}

func TestOrphanPodLosesFinalizer(t *testing.T) {
	job := newJob("gone", 1, nil)
	pod := podOf(job, "left", phase(corev1.PodSucceeded))
	f := newFixture(t, pod) // its Job no longer exists
	f.c.addPod(pod)
	if f.c.queue.Len() != 1 {
		t.Fatalf("queue length %d", f.c.queue.Len())
	}
	k, _ := f.c.queue.Get()
	if k != "pod:default/left" {
		t.Fatalf("queued %q", k)
	}
	f.sync(k)
	if got := f.verbs(); !slices.Equal(got, []string{"patch pods"}) {
		t.Fatalf("actions %v", got)
	}
}

func TestIndexSet(t *testing.T) {
	for _, tc := range []struct {
		in          string
		completions int
		want        string
		n           int
	}{
		{"", 5, "", 0},
		{"0", 5, "0", 1},
		{"0-2,4", 5, "0-2,4", 4},
		{"1,2,3,7-9", 8, "1-3,7", 4},
		{"3,1,2", 10, "1-3", 3},
		{"x,2", 10, "2", 1},
	} {
		s := parseIndexes(tc.in, tc.completions)
		if got := s.String(); got != tc.want || len(s) != tc.n {
			t.Errorf("%q/%d: %q (%d), want %q (%d)", tc.in, tc.completions, got, len(s), tc.want, tc.n)
		}
	}
}

func TestPendingIndexes(t *testing.T) {
	job := newJob("idx", 1, nil)
	held := []*corev1.Pod{podOf(job, "a", index(1)), podOf(job, "b", index(4))}
	succeeded := parseIndexes("0,2", 6)
	if got := pendingIndexes(3, 6, succeeded, held); !slices.Equal(got, []int{3, 5}) {
		t.Errorf("pending %v", got)
	}
}

func TestTTLAfterFinished(t *testing.T) {
	for _, tc := range []struct {
		finishedAgo time.Duration
		want        []string
	}{
		{50 * time.Second, nil},
		{200 * time.Second, []string{"get jobs", "delete jobs"}},
	} {
		job := newJob("pi", 1, ptr.To[int32](1))
		job.Spec.TTLSecondsAfterFinished = ptr.To[int32](100)
		job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(testNow.Add(-tc.finishedAgo))}}
		f := newFixture(t, job)
		ttl, err := NewTTLAfterFinished(Config{Client: f.client, Informers: f.factory, Clock: f.clock})
		if err != nil {
			t.Fatal(err)
		}
		if err := ttl.sync(context.Background(), "default/pi"); err != nil {
			t.Fatal(err)
		}
		if got := f.verbs(); !slices.Equal(got, tc.want) {
			t.Fatalf("finished %v ago: actions %v, want %v", tc.finishedAgo, got, tc.want)
		}
		if tc.want != nil {
			opts := f.client.Actions()[1].(core.DeleteAction).GetDeleteOptions()
			if ptr.Deref(opts.PropagationPolicy, "") != metav1.DeletePropagationForeground || opts.Preconditions == nil || *opts.Preconditions.UID != job.UID {
				t.Errorf("delete options %+v", opts)
			}
		}
	}
}
