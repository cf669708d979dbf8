package cronjob

import (
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // spec.timeZone must resolve on hosts without a zone database, as in Kubernetes

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// tooManyMissed is how many missed start times a CronJob may have before the controller
// warns (it starts only the latest anyway), as in Kubernetes.
const tooManyMissed = 100

// parseSchedule parses the schedule with robfig/cron's standard parser, as Kubernetes does
// (and as the API server validates it), in spec.timeZone when that is set.
func parseSchedule(cj *batchv1.CronJob) (s cron.Schedule, err error) {
	spec := cj.Spec.Schedule
	if tz := cj.Spec.TimeZone; tz != nil && !strings.Contains(spec, "TZ") {
		spec = "TZ=" + *tz + " " + spec
	}
	// cron v3.0.1 slices past the end of a TZ= prefix that no space follows.
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, fmt.Errorf("missing schedule after time zone: %s", spec)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unparseable schedule: %v", r)
		}
	}()
	return cron.ParseStandard(spec)
}

// plan is what a CronJob should do at a given moment.
type plan struct {
	// Run is the scheduled time of the Job to start now; zero: none is due.
	Run time.Time
	// Missed is the latest scheduled time that passed its starting deadline unstarted (Run
	// is then zero).
	Missed time.Time
	// TooManyMissed: more than 100 start times were missed; Run is the latest of them.
	TooManyMissed bool
	// Next is the first scheduled time after now: when to look again.
	Next time.Time
}

// planAt decides, free of I/O, which scheduled time a CronJob should start a Job for at now:
// the latest unmet schedule time since its last scheduled time (or its creation), no older
// than startingDeadlineSeconds. It fails for schedules that never fire (February 31st).
func planAt(cj *batchv1.CronJob, s cron.Schedule, now time.Time) (plan, error) {
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	var p plan
	from := now
	if earliest.After(now) {
		from = earliest // a schedule time in the future (clock skew) is not run twice
	}
	if p.Next = s.Next(from); p.Next.IsZero() {
		return p, fmt.Errorf("no schedule time within five years")
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil {
		// nothing older than the deadline is started
		if deadline := now.Add(-time.Duration(*d) * time.Second); deadline.After(earliest) {
			earliest = deadline
		}
	}
	latest, n := unmetTimes(s, earliest, now)
	if n == 0 {
		return p, nil
	}
	p.TooManyMissed = n > tooManyMissed
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && latest.Add(time.Duration(*d)*time.Second).Before(now) {
		p.Missed = latest
		return p, nil
	}
	p.Run = latest
	return p, nil
}

// unmetTimes returns the latest schedule time in (earliest, now] and how many there are,
// counting no further than tooManyMissed+1.
func unmetTimes(s cron.Schedule, earliest, now time.Time) (time.Time, int) {
	var latest time.Time
	n := 0
	for t := s.Next(earliest); !t.IsZero() && !t.After(now); t = s.Next(t) {
		latest = t
		if n++; n > tooManyMissed {
			return latestBefore(s, latest, now), n
		}
	}
	return latest, n
}

// latestBefore finds the latest schedule time in [from, now] (from is one) without walking
// through all of them: it looks back from now in windows that double until one holds a time.
func latestBefore(s cron.Schedule, from, now time.Time) time.Time {
	if every, ok := s.(cron.ConstantDelaySchedule); ok && every.Delay > 0 {
		// @every: the times are from + k*delay
		return from.Add(now.Sub(from) / every.Delay * every.Delay)
	}
	for d := time.Second; ; d *= 2 {
		start := now.Add(-d)
		if !start.After(from) {
			start = from.Add(-time.Nanosecond)
		}
		t := s.Next(start)
		if t.IsZero() || t.After(now) {
			if start.Before(from) {
				return from
			}
			continue
		}
		for u := s.Next(t); !u.IsZero() && !u.After(now); u = s.Next(u) {
			t = u
		}
		return t
	}
}

// jobName is the name of the Job for a scheduled time: <cronjob>-<minutes since the epoch>,
// which makes creating it twice fail.
func jobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

// jobFromTemplate is the Job a CronJob starts for a scheduled time.
func jobFromTemplate(cj *batchv1.CronJob, scheduled time.Time) (*batchv1.Job, error) {
	loc, err := time.LoadLocation(ptr.Deref(cj.Spec.TimeZone, ""))
	if err != nil {
		return nil, err
	}
	t := &cj.Spec.JobTemplate
	annotations := maps.Clone(t.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.In(loc).Format(time.RFC3339)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            jobName(cj, scheduled),
			Namespace:       cj.Namespace,
			Labels:          maps.Clone(t.Labels),
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)},
		},
	}
	t.Spec.DeepCopyInto(&job.Spec)
	return job, nil
}

// finishedType is Complete or Failed for a finished Job, "" for a running one.
func finishedType(job *batchv1.Job) batchv1.JobConditionType {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type
		}
	}
	return ""
}

// jobsToPrune returns the finished Jobs beyond the CronJob's history limits, oldest first
// (by start time; Jobs that never started go last, then by name).
func jobsToPrune(cj *batchv1.CronJob, jobs []*batchv1.Job) []*batchv1.Job {
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		switch finishedType(j) {
		case batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	var out []*batchv1.Job
	for _, h := range []struct {
		jobs  []*batchv1.Job
		limit *int32
	}{{succeeded, cj.Spec.SuccessfulJobsHistoryLimit}, {failed, cj.Spec.FailedJobsHistoryLimit}} {
		if h.limit == nil || len(h.jobs) <= int(*h.limit) {
			continue
		}
		sort.Slice(h.jobs, func(i, j int) bool { return startedBefore(h.jobs[i], h.jobs[j]) })
		out = append(out, h.jobs[:len(h.jobs)-int(*h.limit)]...)
	}
	return out
}

func startedBefore(a, b *batchv1.Job) bool {
	sa, sb := a.Status.StartTime, b.Status.StartTime
	switch {
	case sa == nil && sb != nil:
		return false
	case sa != nil && sb == nil:
		return true
	case sa.Equal(sb):
		return a.Name < b.Name
	default:
		return sa.Before(sb)
	}
}
