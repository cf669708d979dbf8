package batch

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // zone names must resolve on hosts without a zone database, as in kube-apiserver

	"github.com/robfig/cron/v3"
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
	errs = append(errs, validateTimeZone(cj.Spec.TimeZone, sp.Child("timeZone"))...)
	if cj.Spec.TimeZone != nil {
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

// ValidateSchedule parses schedule with the parser the CronJob controller runs it with
// (github.com/robfig/cron/v3's standard parser, as in Kubernetes): five fields of numbers,
// names, "*", "?", ranges, lists and steps, or a descriptor (@yearly, @annually, @monthly,
// @weekly, @daily, @midnight, @hourly, @every <duration>), with an optional leading TZ= or
// CRON_TZ= zone. The API thus accepts exactly the schedules the controller can run, and its
// errors read like kube-apiserver's.
func ValidateSchedule(schedule string) (err error) {
	// cron v3.0.1 slices past the end of a TZ= prefix that no space follows.
	if (strings.HasPrefix(schedule, "TZ=") || strings.HasPrefix(schedule, "CRON_TZ=")) && !strings.Contains(schedule, " ") {
		return fmt.Errorf("missing schedule after time zone: %s", schedule)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unparseable schedule: %v", r)
		}
	}()
	_, err = cron.ParseStandard(schedule)
	return err
}

// validTimeZoneCharacters is what Kubernetes allows in each "/"-separated part of a zone name
// before asking the zone database, so that a name cannot walk the file system.
var validTimeZoneCharacters = regexp.MustCompile(`^[A-Za-z\.\-_0-9+]{1,14}$`)

// validateTimeZone checks spec.timeZone with kube-apiserver's rules and wording.
func validateTimeZone(tz *string, p *field.Path) field.ErrorList {
	if tz == nil {
		return nil
	}
	if *tz == "" {
		return field.ErrorList{field.Invalid(p, *tz, "timeZone must be nil or non-empty string")}
	}
	for _, part := range strings.Split(*tz, "/") {
		if part == "." || part == ".." || strings.HasPrefix(part, "-") || !validTimeZoneCharacters.MatchString(part) {
			return field.ErrorList{field.Invalid(p, *tz, "unknown time zone "+*tz)}
		}
	}
	if strings.EqualFold(*tz, "Local") {
		return field.ErrorList{field.Invalid(p, *tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")}
	}
	if _, err := time.LoadLocation(*tz); err != nil {
		return field.ErrorList{field.Invalid(p, *tz, err.Error())}
	}
	return nil
}
