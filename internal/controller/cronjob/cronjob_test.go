package cronjob

import (
	"context"
	"slices"
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

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func newCronJob(schedule string, created time.Time) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default", UID: "cj-uid", CreationTimestamp: metav1.NewTime(created)},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule, TimeZone: ptr.To("UTC"), ConcurrencyPolicy: batchv1.AllowConcurrent, Suspend: ptr.To(false),
			SuccessfulJobsHistoryLimit: ptr.To[int32](3), FailedJobsHistoryLimit: ptr.To[int32](1),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "hello"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure,
					Containers: []corev1.Container{{Name: "hello", Image: "busybox"}}}}},
			},
		},
	}
}

func TestPlanAt(t *testing.T) {
	for name, tc := range map[string]struct {
		schedule string
		tz       string
		created  string
		last     string
		deadline *int64
		now      string
		run      string // "" for none
		missed   string
		tooMany  bool
		next     string
	}{
		"not yet":       {schedule: "*/5 * * * *", created: "2026-03-02T10:01:00Z", now: "2026-03-02T10:04:59Z", next: "2026-03-02T10:05:00Z"},
		"due":           {schedule: "*/5 * * * *", created: "2026-03-02T10:01:00Z", now: "2026-03-02T10:05:00Z", run: "2026-03-02T10:05:00Z", next: "2026-03-02T10:10:00Z"},
		"already ran":   {schedule: "*/5 * * * *", created: "2026-03-02T09:00:00Z", last: "2026-03-02T10:05:00Z", now: "2026-03-02T10:07:00Z", next: "2026-03-02T10:10:00Z"},
		"missed a few":  {schedule: "*/5 * * * *", created: "2026-03-02T09:00:00Z", last: "2026-03-02T10:05:00Z", now: "2026-03-02T10:31:00Z", run: "2026-03-02T10:30:00Z", next: "2026-03-02T10:35:00Z"},
		"too many":      {schedule: "* * * * *", created: "2026-03-02T08:00:00Z", now: "2026-03-02T10:00:30Z", run: "2026-03-02T10:00:00Z", tooMany: true, next: "2026-03-02T10:01:00Z"},
		"too many days": {schedule: "0 9 * * 1-5", created: "2026-01-01T00:00:00Z", now: "2026-07-04T12:00:00Z", run: "2026-07-03T09:00:00Z", tooMany: true, next: "2026-07-06T09:00:00Z"},
		"deadline passed": {schedule: "0 * * * *", created: "2026-03-02T07:00:00Z", last: "2026-03-02T08:00:00Z", deadline: ptr.To[int64](600),
			now: "2026-03-02T10:30:00Z", next: "2026-03-02T11:00:00Z"},
		"within deadline": {schedule: "0 * * * *", created: "2026-03-02T07:00:00Z", last: "2026-03-02T08:00:00Z", deadline: ptr.To[int64](600),
			now: "2026-03-02T10:05:00Z", run: "2026-03-02T10:00:00Z", next: "2026-03-02T11:00:00Z"},
		"time zone": {schedule: "0 9 * * *", tz: "Europe/Paris", created: "2026-01-01T00:00:00Z", now: "2026-01-01T08:00:30Z",
			run: "2026-01-01T08:00:00Z", next: "2026-01-02T08:00:00Z"},
		"hourly":          {schedule: "@hourly", created: "2026-03-02T10:10:00Z", now: "2026-03-02T11:00:01Z", run: "2026-03-02T11:00:00Z", next: "2026-03-02T12:00:00Z"},
		"every":           {schedule: "@every 90s", created: "2026-03-02T10:00:00Z", now: "2026-03-02T10:03:10Z", run: "2026-03-02T10:03:00Z", next: "2026-03-02T10:04:40Z"},
		"every, too many": {schedule: "@every 1m", created: "2026-03-02T08:00:00Z", now: "2026-03-02T10:00:30Z", run: "2026-03-02T10:00:00Z", tooMany: true, next: "2026-03-02T10:01:30Z"},
		"clock skew":      {schedule: "*/5 * * * *", created: "2026-03-02T09:00:00Z", last: "2026-03-02T10:10:00Z", now: "2026-03-02T10:06:00Z", next: "2026-03-02T10:15:00Z"},
	} {
		cj := newCronJob(tc.schedule, at(tc.created))
		if tc.tz != "" {
			cj.Spec.TimeZone = &tc.tz
		}
		if tc.last != "" {
			cj.Status.LastScheduleTime = &metav1.Time{Time: at(tc.last)}
		}
		cj.Spec.StartingDeadlineSeconds = tc.deadline
		s, err := parseSchedule(cj)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, err := planAt(cj, s, at(tc.now))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		str := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		}
		if str(p.Run) != tc.run || str(p.Missed) != tc.missed || p.TooManyMissed != tc.tooMany || str(p.Next) != tc.next {
			t.Errorf("%s: run %q missed %q tooMany %v next %q; want %q %q %v %q", name,
				str(p.Run), str(p.Missed), p.TooManyMissed, str(p.Next), tc.run, tc.missed, tc.tooMany, tc.next)
		}
	}
}

func TestPlanAtInvalidSchedules(t *testing.T) {
	cj := newCronJob("0 0 31 2 *", at("2026-01-01T00:00:00Z"))
	s, err := parseSchedule(cj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planAt(cj, s, at("2026-03-01T00:00:00Z")); err == nil {
		t.Error("February 31st: no error")
	}
	for _, bad := range []string{"* * * *", "61 * * * *", "TZ=UTC", "@often"} {
		if _, err := parseSchedule(newCronJob(bad, time.Time{})); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestJobFromTemplate(t *testing.T) {
	cj := newCronJob("*/5 * * * *", at("2026-03-02T10:00:00Z"))
	cj.Spec.TimeZone = ptr.To("Europe/Paris")
	job, err := jobFromTemplate(cj, at("2026-03-02T10:05:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	if job.Name != "hello-29540765" || job.Labels["app"] != "hello" ||
		job.Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-03-02T11:05:00+01:00" {
		t.Errorf("job %+v", job.ObjectMeta)
	}
	if ref := metav1.GetControllerOf(job); ref == nil || ref.Kind != "CronJob" || ref.UID != cj.UID {
		t.Errorf("owner %+v", job.OwnerReferences)
	}
}

func finishedJob(name string, started time.Time, cond batchv1.JobConditionType) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid")},
		Status: batchv1.JobStatus{StartTime: &metav1.Time{Time: started}}}
	if cond != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue}}
	}
	if cond == batchv1.JobComplete {
		j.Status.CompletionTime = &metav1.Time{Time: started.Add(time.Minute)}
	}
	return j
}

func TestJobsToPrune(t *testing.T) {
	base := at("2026-03-02T10:00:00Z")
	cj := newCronJob("* * * * *", base)
	var jobs []*batchv1.Job
	for _, name := range []string{"s3", "s1", "s5", "s2", "s4"} {
		n := int(name[1] - '0')
		jobs = append(jobs, finishedJob(name, base.Add(time.Duration(n)*time.Minute), batchv1.JobComplete))
	}
	jobs = append(jobs, finishedJob("f1", base, batchv1.JobFailed), finishedJob("f2", base.Add(time.Hour), batchv1.JobFailed),
		finishedJob("running", base, ""))
	var names []string
	for _, j := range jobsToPrune(cj, jobs) {
		names = append(names, j.Name)
	}
	if !slices.Equal(names, []string{"s1", "s2", "f1"}) {
		t.Errorf("pruned %v", names)
	}
	cj.Spec.SuccessfulJobsHistoryLimit, cj.Spec.FailedJobsHistoryLimit = nil, ptr.To[int32](0)
	names = nil
	for _, j := range jobsToPrune(cj, jobs) {
		names = append(names, j.Name)
	}
	if !slices.Equal(names, []string{"f1", "f2"}) {
		t.Errorf("pruned %v", names)
	}
}

// fixture is a controller on a fake clientset whose informer caches the test fills directly.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	recorder *record.FakeRecorder
}

func newFixture(t *testing.T, now time.Time, objs ...runtime.Object) *fixture {
	client := fake.NewSimpleClientset(objs...)
	client.PrependReactor("create", "jobs", func(a core.Action) (bool, runtime.Object, error) {
		j := a.(core.CreateAction).GetObject().(*batchv1.Job)
		j.UID = types.UID(j.Name + "-uid")
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	c, err := New(Config{Client: client, Informers: factory, Recorder: recorder, Clock: testingclock.NewFakeClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *batchv1.CronJob:
			_ = factory.Batch().V1().CronJobs().Informer().GetIndexer().Add(o)
		case *batchv1.Job:
			_ = factory.Batch().V1().Jobs().Informer().GetIndexer().Add(o)
		}
	}
	return &fixture{t: t, client: client, c: c, recorder: recorder}
}

func (f *fixture) sync() time.Duration {
	f.t.Helper()
	d, err := f.c.sync(context.Background(), "default/hello")
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) verbs() []string {
	var out []string
	for _, a := range f.client.Actions() {
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	return out
}

func (f *fixture) status() batchv1.CronJobStatus {
	cj, err := f.client.BatchV1().CronJobs("default").Get(context.Background(), "hello", metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return cj.Status
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

// activeJob is a running Job of cj, listed in its status.
func activeJob(cj *batchv1.CronJob, name string) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)}}}
	cj.Status.Active = append(cj.Status.Active, corev1.ObjectReference{Kind: "Job", Namespace: "default", Name: name, UID: j.UID})
	return j
}

func TestSyncStartsDueJob(t *testing.T) {
	cj := newCronJob("*/5 * * * *", at("2026-03-02T10:01:00Z"))
	f := newFixture(t, at("2026-03-02T10:05:01Z"), cj)
	requeue := f.sync()
	if got := f.verbs(); !slices.Equal(got, []string{"create jobs", "update cronjobs/status"}) {
		t.Fatalf("actions %v", got)
	}
	if requeue != 4*time.Minute+59*time.Second+nextScheduleDelta {
		t.Errorf("requeue after %v", requeue)
	}
	st := f.status()
	if len(st.Active) != 1 || st.Active[0].Name != "hello-29540765" || st.Active[0].Kind != "Job" ||
		!st.LastScheduleTime.Time.Equal(at("2026-03-02T10:05:00Z")) {
		t.Errorf("status %+v", st)
	}
	if ev := f.events(); !slices.Equal(ev, []string{"Normal SuccessfulCreate Created job hello-29540765"}) {
		t.Errorf("events %v", ev)
	}

	// Not yet time: only the wait for the next time.
	f = newFixture(t, at("2026-03-02T10:03:00Z"), cj)
	if requeue := f.sync(); requeue != 2*time.Minute+nextScheduleDelta || len(f.verbs()) != 0 {
		t.Errorf("early sync: requeue %v actions %v", requeue, f.verbs())
	}
}

func TestConcurrencyPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy batchv1.ConcurrencyPolicy
		want   []string
		active int
	}{
		{batchv1.AllowConcurrent, []string{"create jobs", "update cronjobs/status"}, 2},
		{batchv1.ForbidConcurrent, nil, 1},
		{batchv1.ReplaceConcurrent, []string{"get jobs", "delete jobs", "create jobs", "update cronjobs/status"}, 1},
	} {
		cj := newCronJob("*/5 * * * *", at("2026-03-02T10:01:00Z"))
		cj.Spec.ConcurrencyPolicy = tc.policy
		cj.Status.LastScheduleTime = &metav1.Time{Time: at("2026-03-02T10:05:00Z")}
		running := activeJob(cj, "hello-29540765")
		f := newFixture(t, at("2026-03-02T10:10:00Z"), cj, running)
		f.sync()
		if got := f.verbs(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: actions %v, want %v", tc.policy, got, tc.want)
		}
		if tc.want == nil {
			if ev := f.events(); !slices.Equal(ev, []string{"Normal JobAlreadyActive Not starting job because prior execution is running and concurrency policy is Forbid"}) {
				t.Errorf("forbid: events %v", ev)
			}
			continue
		}
		if st := f.status(); len(st.Active) != tc.active || st.Active[len(st.Active)-1].Name != "hello-29540770" {
			t.Errorf("%s: active %+v", tc.policy, st.Active)
		}
	}
}

func TestSuspendedStartsNothing(t *testing.T) {
	cj := newCronJob("* * * * *", at("2026-03-02T10:00:00Z"))
	cj.Spec.Suspend = ptr.To(true)
	f := newFixture(t, at("2026-03-02T11:00:00Z"), cj)
	if requeue := f.sync(); requeue != 0 || len(f.verbs()) != 0 {
		t.Errorf("requeue %v actions %v", requeue, f.verbs())
	}
}

func TestActiveListFollowsJobs(t *testing.T) {
	cj := newCronJob("0 * * * *", at("2026-03-02T09:30:00Z"))
	cj.Status.LastScheduleTime = &metav1.Time{Time: at("2026-03-02T10:00:00Z")}
	done := activeJob(cj, "hello-done")
	done.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	done.Status.CompletionTime = &metav1.Time{Time: at("2026-03-02T10:02:00Z")}
	activeJob(cj, "hello-missing") // in the status, gone from the API
	f := newFixture(t, at("2026-03-02T10:30:00Z"), cj, done)
	f.sync()
	st := f.status()
	if len(st.Active) != 0 || st.LastSuccessfulTime == nil || !st.LastSuccessfulTime.Time.Equal(at("2026-03-02T10:02:00Z")) {
		t.Errorf("status %+v", st)
	}
	ev := f.events()
	if !slices.Contains(ev, "Normal SawCompletedJob Saw completed job: hello-done, condition: Complete") ||
		!slices.Contains(ev, "Normal MissingJob Active job went missing: hello-missing") {
		t.Errorf("events %v", ev)
	}
}

func TestHistoryLimits(t *testing.T) {
	cj := newCronJob("0 * * * *", at("2026-03-02T00:30:00Z"))
	cj.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](1)
	cj.Status.LastScheduleTime = &metav1.Time{Time: at("2026-03-02T10:00:00Z")}
	objs := []runtime.Object{cj}
	for i, cond := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobComplete, batchv1.JobFailed, batchv1.JobComplete} {
		j := finishedJob("hello-"+string(rune('a'+i)), at("2026-03-02T06:00:00Z").Add(time.Duration(i)*time.Hour), cond)
		j.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)}
		objs = append(objs, j)
	}
	f := newFixture(t, at("2026-03-02T10:30:00Z"), objs...)
	f.sync()
	var deleted []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" {
			deleted = append(deleted, a.(core.DeleteAction).GetName())
		}
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, []string{"hello-a", "hello-b"}) {
		t.Errorf("deleted %v", deleted)
	}
}

func TestScaledClock(t *testing.T) {
	c := NewScaledClock(3600)
	start := c.Now()
	timer := c.NewTimer(time.Hour) // one real second
	select {
	case <-timer.C():
	case <-time.After(10 * time.Second):
		t.Fatal("an hour at speed 3600 took more than 10s")
	}
	if d := c.Since(start); d < time.Hour {
		t.Errorf("after the timer only %v passed", d)
	}
}
