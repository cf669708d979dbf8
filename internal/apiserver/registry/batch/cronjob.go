package batch

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/apiserver/registry/core"
)

// CronJobStrategy is the strategy of cronjobs. The job template gets the pod-template defaults
// but not the job defaults (Kubernetes defaults those when the job is created).
var CronJobStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		cj := obj.(*batchv1.CronJob)
		core.DefaultPodTemplate(&cj.Spec.JobTemplate.Spec.Template)
		if cj.Spec.ConcurrencyPolicy == "" {
			cj.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
		}
		if cj.Spec.Suspend == nil {
			cj.Spec.Suspend = ptr.To(false)
		}
		if cj.Spec.SuccessfulJobsHistoryLimit == nil {
			cj.Spec.SuccessfulJobsHistoryLimit = ptr.To(int32(3))
		}
		if cj.Spec.FailedJobsHistoryLimit == nil {
			cj.Spec.FailedJobsHistoryLimit = ptr.To(int32(1))
		}
	},
	PrepareForCreate: func(obj runtime.Object) { obj.(*batchv1.CronJob).Status = batchv1.CronJobStatus{} },
	Validate:         func(obj runtime.Object) field.ErrorList { return validateCronJob(obj.(*batchv1.CronJob), true) },
	// Updates accept a TZ= prefix that older clusters allowed, as Kubernetes does.
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateCronJob(obj.(*batchv1.CronJob), false) },
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Schedule", Type: "string", Description: "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."},
		{Name: "Timezone", Type: "string", Description: "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."},
		{Name: "Suspend", Type: "boolean", Description: "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."},
		{Name: "Active", Type: "integer", Description: "A list of pointers to currently running jobs."},
		{Name: "Last Schedule", Type: "string", Description: "Information when was the last time the job was successfully scheduled."},
		registry.AgeColumn, containersColumn, imagesColumn, selectorColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		cj := obj.(*batchv1.CronJob)
		last := "<none>"
		if cj.Status.LastScheduleTime != nil {
			last = registry.Age(*cj.Status.LastScheduleTime)
		}
		suspend := "<unset>"
		if cj.Spec.Suspend != nil {
			suspend = "False"
			if *cj.Spec.Suspend {
				suspend = "True"
			}
		}
		names, images := core.ContainerCells(cj.Spec.JobTemplate.Spec.Template.Spec.Containers)
		return []interface{}{cj.Name, cj.Spec.Schedule, ptr.Deref(cj.Spec.TimeZone, "<none>"), suspend,
			int64(len(cj.Status.Active)), last, registry.Age(cj.CreationTimestamp),
			names, images, metav1.FormatLabelSelector(cj.Spec.JobTemplate.Spec.Selector)}
	},
}

func validateCronJob(cj *batchv1.CronJob, create bool) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	// Job names get an 11-character suffix and must stay DNS labels of at most 63 characters.
	if len(cj.Name) > 52 {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, "must be no more than 52 characters"))
	}
	if cj.Spec.Schedule == "" {
		errs = append(errs, field.Required(sp.Child("schedule"), ""))
	} else if err := ValidateSchedule(cj.Spec.Schedule); err != nil {
		errs = append(errs, field.Invalid(sp.Child("schedule"), cj.Spec.Schedule, err.Error()))
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil || *tz == "" || strings.EqualFold(*tz, "local") {
			errs = append(errs, field.Invalid(sp.Child("timeZone"), *tz, "unknown time zone "+*tz))
		}
		if strings.Contains(cj.Spec.Schedule, "TZ") {
			errs = append(errs, field.Invalid(sp.Child("schedule"), cj.Spec.Schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
		}
	} else if create && strings.Contains(cj.Spec.Schedule, "TZ") {
		errs = append(errs, field.Invalid(sp.Child("schedule"), cj.Spec.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	}
	policies := []batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	case "":
		errs = append(errs, field.Required(sp.Child("concurrencyPolicy"), ""))
	default:
		errs = append(errs, field.NotSupported(sp.Child("concurrencyPolicy"), cj.Spec.ConcurrencyPolicy, policies))
	}
	if v := cj.Spec.StartingDeadlineSeconds; v != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(*v, sp.Child("startingDeadlineSeconds"))...)
	}
	for name, v := range map[string]*int32{"successfulJobsHistoryLimit": cj.Spec.SuccessfulJobsHistoryLimit, "failedJobsHistoryLimit": cj.Spec.FailedJobsHistoryLimit} {
		if v != nil {
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*v), sp.Child(name))...)
		}
	}
	return append(errs, validateJobSpec(&cj.Spec.JobTemplate.Spec, sp.Child("jobTemplate", "spec"), false)...)
}

// cronFields are the bounds and names of the five standard fields.
var cronFields = []struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{"day of week", 0, 6, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// ValidateSchedule accepts what the CronJob controller's parser accepts: five fields of
// "*", "?", numbers, names, ranges, lists and steps; the @yearly.. @hourly descriptors and
// "@every <duration>"; an optional leading TZ= or CRON_TZ= zone.
func ValidateSchedule(schedule string) error {
	s := strings.TrimSpace(schedule)
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return fmt.Errorf("missing schedule after time zone")
		}
		zone := s[strings.Index(s, "=")+1 : i]
		if _, err := time.LoadLocation(zone); err != nil {
			return fmt.Errorf("provided bad location %s: %v", zone, err)
		}
		s = strings.TrimSpace(s[i:])
	}
	if strings.HasPrefix(s, "@") {
		switch s {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return nil
		}
		if rest, ok := strings.CutPrefix(s, "@every "); ok {
			if d, err := time.ParseDuration(strings.TrimSpace(rest)); err != nil || d <= 0 {
				return fmt.Errorf("failed to parse duration %s", rest)
			}
			return nil
		}
		return fmt.Errorf("unrecognized descriptor: %s", s)
	}
	parts := strings.Fields(s)
	if len(parts) != 5 {
		return fmt.Errorf("expected exactly 5 fields, found %d: %s", len(parts), s)
	}
	for i, part := range parts {
		f := cronFields[i]
		for _, item := range strings.Split(part, ",") {
			if err := validateCronItem(item, f.min, f.max, f.names); err != nil {
				return fmt.Errorf("%s (%s field)", err, f.name)
			}
		}
	}
	return nil
}

func validateCronItem(item string, min, max int, names []string) error {
	rangePart, step, hasStep := strings.Cut(item, "/")
	if hasStep {
		n, err := strconv.Atoi(step)
		if err != nil || n <= 0 {
			return fmt.Errorf("failed to parse step %q", step)
		}
	}
	if rangePart == "*" || rangePart == "?" {
		return nil
	}
	lo, hi, isRange := strings.Cut(rangePart, "-")
	loV, err := cronValue(lo, min, max, names)
	if err != nil {
		return err
	}
	hiV := loV
	if isRange {
		if hiV, err = cronValue(hi, min, max, names); err != nil {
			return err
		}
	}
	if hiV < loV {
		return fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", loV, hiV, item)
	}
	return nil
}

func cronValue(s string, min, max int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("failed to parse int from %s", s)
	}
	if v < min || v > max {
		// day of week accepts 7 for Sunday, as most crons do
		if !(max == 6 && v == 7) {
			return 0, fmt.Errorf("%d out of range [%d, %d]", v, min, max)
		}
	}
	return v, nil
}
