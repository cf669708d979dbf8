package batch

import (
	"sort"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func paths(errs field.ErrorList) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = string(e.Type) + ":" + e.Field
	}
	sort.Strings(out)
	return out
}

func job() *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi", UID: "uid-1"}, Spec: batchv1.JobSpec{
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "pi", Image: "perl:5.34"}}}}}}
	JobStrategy.PrepareForCreate(j)
	JobStrategy.Default(j)
	return j
}

func TestJobDefaultsAndSelector(t *testing.T) {
	j := job()
	s := j.Spec
	if *s.Completions != 1 || *s.Parallelism != 1 || *s.BackoffLimit != 6 || *s.CompletionMode != batchv1.NonIndexedCompletion ||
		*s.Suspend || *s.PodReplacementPolicy != batchv1.TerminatingOrFailed || s.ManualSelector != nil {
		t.Errorf("job defaults: %+v", s)
	}
	if s.Selector.MatchLabels[batchv1.ControllerUidLabel] != "uid-1" || s.Template.Labels["job-name"] != "pi" ||
		s.Template.Labels[batchv1.JobNameLabel] != "pi" || s.Template.Labels["controller-uid"] != "uid-1" {
		t.Errorf("generated selector/labels: %v %v", s.Selector, s.Template.Labels)
	}
	if errs := JobStrategy.Validate(j); len(errs) != 0 {
		t.Errorf("valid job: %v", errs)
	}
	parallel := &batchv1.Job{Spec: batchv1.JobSpec{Parallelism: ptr.To(int32(3))}}
	JobStrategy.Default(parallel)
	if parallel.Spec.Completions != nil {
		t.Errorf("completions defaulted with parallelism set")
	}
}

func TestJobValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*batchv1.Job)
		want   []string
	}{
		"restart always": {func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways }, []string{"FieldValueNotSupported:spec.template.spec.restartPolicy"}},
		"indexed": {func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
			j.Spec.Completions = nil
		}, []string{"FieldValueRequired:spec.completions"}},
		"selector": {func(j *batchv1.Job) { j.Spec.Template.Labels = nil }, []string{"FieldValueInvalid:spec.template.metadata.labels"}},
		"negative": {func(j *batchv1.Job) { j.Spec.BackoffLimit = ptr.To(int32(-1)) }, []string{"FieldValueInvalid:spec.backoffLimit"}},
	} {
		j := job()
		tc.mutate(j)
		got := paths(JobStrategy.Validate(j))
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
	old := job()
	j := old.DeepCopy()
	j.Spec.Template.Spec.Containers[0].Image = "perl:5.36"
	if got := paths(JobStrategy.ValidateUpdate(j, old)); len(got) != 1 || got[0] != "FieldValueInvalid:spec.template" {
		t.Errorf("template change: %v", got)
	}
}

func TestJobRow(t *testing.T) {
	start := metav1.NewTime(time.Now().Add(-2 * time.Minute))
	end := metav1.NewTime(start.Add(30 * time.Second))
	j := job()
	j.Status = batchv1.JobStatus{Succeeded: 1, StartTime: &start, CompletionTime: &end,
		Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}
	row := JobStrategy.Row(j)
	if row[1] != "Complete" || row[2] != "1/1" || row[3] != "30s" || len(row) != len(JobStrategy.Columns) {
		t.Errorf("row %v", row)
	}
	running := job()
	running.Spec.Completions, running.Spec.Parallelism = nil, ptr.To(int32(2))
	if row := JobStrategy.Row(running); row[1] != "Running" || row[2] != "0/1 of 2" || row[3] != "" {
		t.Errorf("running row %v", row)
	}
	if f := JobStrategy.Fields(j); f["status.successful"] != "1" {
		t.Errorf("fields %v", f)
	}
}

func TestCronJob(t *testing.T) {
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "hello"}, Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *",
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "hello", Image: "busybox"}}}}}}}}
	CronJobStrategy.Default(cj)
	s := cj.Spec
	if s.ConcurrencyPolicy != batchv1.AllowConcurrent || *s.Suspend || *s.SuccessfulJobsHistoryLimit != 3 || *s.FailedJobsHistoryLimit != 1 ||
		s.JobTemplate.Spec.BackoffLimit != nil || s.JobTemplate.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirst {
		t.Errorf("cronjob defaults: %+v", s)
	}
	if errs := CronJobStrategy.Validate(cj); len(errs) != 0 {
		t.Errorf("valid cronjob: %v", errs)
	}
	row := CronJobStrategy.Row(cj)
	if row[1] != "*/5 * * * *" || row[2] != "<none>" || row[3] != "False" || row[4] != int64(0) || row[5] != "<none>" {
		t.Errorf("row %v", row)
	}
	cj.Spec.Schedule = "61 * * * *"
	if got := paths(CronJobStrategy.Validate(cj)); len(got) != 1 || got[0] != "FieldValueInvalid:spec.schedule" {
		t.Errorf("bad schedule: %v", got)
	}
}

// ValidateSchedule accepts what the CronJob controller's parser accepts (the same parser as
// Kubernetes': day of week 7 is not Sunday there) and words errors as kube-apiserver does.
func TestValidateSchedule(t *testing.T) {
	for _, ok := range []string{"* * * * *", "0 0 * * 0", "*/15 9-17 * jan-jun mon-fri", "0 0 1,15 * *", "@hourly", "@every 1h30m",
		"TZ=UTC 0 * * * *", "CRON_TZ=Europe/Paris 0 9 * * *", "0 0 ? * 6", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"} {
		if err := ValidateSchedule(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, msg := range map[string]string{
		"":                    "empty spec string",
		"* * * *":             "expected exactly 5 fields, found 4: [* * * *]",
		"60 * * * *":          "end of range (60) above maximum (59): 60",
		"* 24 * * *":          "end of range (24) above maximum (23): 24",
		"* * 0 * *":           "beginning of range (0) below minimum (1): 0",
		"* * * 13 *":          "end of range (13) above maximum (12): 13",
		"0 0 * * 7":           "end of range (7) above maximum (6): 7",
		"*/0 * * * *":         "step of range should be a positive number: */0",
		"5-1 * * * *":         "beginning of range (5) beyond end of range (1): 5-1",
		"@often":              "unrecognized descriptor: @often",
		"x * * * *":           `failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax`,
		"TZ=UTC":              "missing schedule after time zone: TZ=UTC",
		"TZ=Mars/X * * * * *": "provided bad location Mars/X: unknown time zone Mars/X",
	} {
		if err := ValidateSchedule(bad); err == nil || err.Error() != msg {
			t.Errorf("%q: %v, want %q", bad, err, msg)
		}
	}
}

func TestCronJobScheduleAndTimeZoneErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		schedule string
		tz       *string
		want     string
	}{
		"bad schedule":   {"61 * * * *", nil, `spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61`},
		"bad zone":       {"0 * * * *", ptr.To("Mars/Olympus"), `spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus`},
		"empty zone":     {"0 * * * *", ptr.To(""), `spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string`},
		"local zone":     {"0 * * * *", ptr.To("Local"), `spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones`},
		"path in zone":   {"0 * * * *", ptr.To("../etc/passwd"), `spec.timeZone: Invalid value: "../etc/passwd": unknown time zone ../etc/passwd`},
		"TZ in schedule": {"TZ=UTC 0 * * * *", nil, `spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead`},
		"TZ and zone":    {"TZ=UTC 0 * * * *", ptr.To("UTC"), `spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use both timeZone field and TZ or CRON_TZ in schedule`},
		"good zone":      {"0 9 * * 1-5", ptr.To("Europe/Paris"), ""},
	} {
		cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "hello"}, Spec: batchv1.CronJobSpec{Schedule: tc.schedule, TimeZone: tc.tz,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "hello", Image: "busybox"}}}}}}}}
		CronJobStrategy.Default(cj)
		errs := CronJobStrategy.Validate(cj)
		if tc.want == "" {
			if len(errs) != 0 {
				t.Errorf("%s: %v", name, errs)
			}
			continue
		}
		if len(errs) != 1 || errs[0].Error() != tc.want {
			t.Errorf("%s: %v, want %s", name, errs, tc.want)
		}
	}
}
