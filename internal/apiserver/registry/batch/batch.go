// Package batch describes the batch/v1 resources: jobs and cronjobs. Pod templates are defaulted
// and validated by package core.
package batch

import (
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/apiserver/registry/core"
)

var all = []string{"all"}

// Resources returns the batch/v1 resources.
func Resources() []*registry.Resource {
	gv := batchv1.SchemeGroupVersion
	return []*registry.Resource{
		{GroupVersion: gv, Resource: "jobs", Kind: "Job", ListKind: "JobList", SingularName: "job",
			Categories: all, Namespaced: true, Subresources: []string{"status"}, Strategy: JobStrategy},
		{GroupVersion: gv, Resource: "cronjobs", Kind: "CronJob", ListKind: "CronJobList", SingularName: "cronjob",
			ShortNames: []string{"cj"}, Categories: all, Namespaced: true, Subresources: []string{"status"}, Strategy: CronJobStrategy},
	}
}

var (
	containersColumn = metav1.TableColumnDefinition{Name: "Containers", Type: "string", Priority: 1, Description: "Names of each container in the template."}
	imagesColumn     = metav1.TableColumnDefinition{Name: "Images", Type: "string", Priority: 1, Description: "Images referenced by each container in the template."}
	selectorColumn   = metav1.TableColumnDefinition{Name: "Selector", Type: "string", Priority: 1, Description: "A label query over pods that should match the pod count."}
)

// JobStrategy is the strategy of jobs. PrepareForCreate generates the selector and the
// controller-uid/job-name template labels from metadata.uid and metadata.name, so the API server
// must set both before calling it.
var JobStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		job := obj.(*batchv1.Job)
		defaultJobSpec(&job.Spec)
		// Kubernetes gives an unlabelled job its template's labels (after selector generation
		// these include job-name and controller-uid).
		if job.Spec.Template.Labels != nil && len(job.Labels) == 0 {
			job.Labels = maps.Clone(job.Spec.Template.Labels)
		}
	},
	PrepareForCreate: func(obj runtime.Object) {
		job := obj.(*batchv1.Job)
		job.Status = batchv1.JobStatus{}
		if job.Spec.ManualSelector == nil || !*job.Spec.ManualSelector {
			generateSelector(job)
		}
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		job := obj.(*batchv1.Job)
		return validateJobSpec(&job.Spec, field.NewPath("spec"), true)
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		job, o := obj.(*batchv1.Job), old.(*batchv1.Job)
		sp := field.NewPath("spec")
		errs := validateJobSpec(&job.Spec, sp, true)
		errs = append(errs, apivalidation.ValidateImmutableField(job.Spec.Selector, o.Spec.Selector, sp.Child("selector"))...)
		errs = append(errs, apivalidation.ValidateImmutableField(job.Spec.CompletionMode, o.Spec.CompletionMode, sp.Child("completionMode"))...)
		// Indexed jobs may scale completions with parallelism ("elastic indexed jobs").
		elastic := ptr.Deref(job.Spec.CompletionMode, "") == batchv1.IndexedCompletion &&
			ptr.Equal(job.Spec.Completions, job.Spec.Parallelism)
		if !elastic {
			errs = append(errs, apivalidation.ValidateImmutableField(job.Spec.Completions, o.Spec.Completions, sp.Child("completions"))...)
		}
		// A suspended job that never started may change its pod template's scheduling fields;
		// we allow any template change while suspended.
		if !ptr.Deref(o.Spec.Suspend, false) || o.Status.StartTime != nil {
			if !equality.Semantic.DeepEqual(job.Spec.Template, o.Spec.Template) {
				errs = append(errs, field.Invalid(sp.Child("template"), "<pod template>", "field is immutable"))
			}
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Status", Type: "string", Description: "Status of the job."},
		{Name: "Completions", Type: "string", Description: "The number of pods which reached phase Succeeded."},
		{Name: "Duration", Type: "string", Description: "Time required to complete the job."},
		registry.AgeColumn, containersColumn, imagesColumn, selectorColumn,
	},
	Row: func(obj runtime.Object) []interface{} { return jobRow(obj.(*batchv1.Job), time.Now()) },
	Fields: func(obj runtime.Object) fields.Set {
		return fields.Set{"status.successful": strconv.Itoa(int(obj.(*batchv1.Job).Status.Succeeded))}
	},
}

func defaultJobSpec(spec *batchv1.JobSpec) {
	core.DefaultPodTemplate(&spec.Template)
	if spec.Completions == nil && spec.Parallelism == nil {
		spec.Completions = ptr.To(int32(1))
	}
	if spec.Parallelism == nil {
		spec.Parallelism = ptr.To(int32(1))
	}
	if spec.BackoffLimit == nil {
		if spec.BackoffLimitPerIndex != nil {
			spec.BackoffLimit = ptr.To(int32(math.MaxInt32))
		} else {
			spec.BackoffLimit = ptr.To(int32(6))
		}
	}
	if spec.CompletionMode == nil {
		spec.CompletionMode = ptr.To(batchv1.NonIndexedCompletion)
	}
	if spec.Suspend == nil {
		spec.Suspend = ptr.To(false)
	}
	if spec.PodReplacementPolicy == nil {
		if spec.PodFailurePolicy != nil {
			spec.PodReplacementPolicy = ptr.To(batchv1.Failed)
		} else {
			spec.PodReplacementPolicy = ptr.To(batchv1.TerminatingOrFailed)
		}
	}
	if pfp := spec.PodFailurePolicy; pfp != nil {
		for i := range pfp.Rules {
			for j := range pfp.Rules[i].OnPodConditions {
				if pfp.Rules[i].OnPodConditions[j].Status == "" {
					pfp.Rules[i].OnPodConditions[j].Status = corev1.ConditionTrue
				}
			}
		}
	}
}

func generateSelector(job *batchv1.Job) {
	if job.UID == "" {
		return // without a uid there is nothing unique to select on; validation reports the missing selector
	}
	uid := string(job.UID)
	t := &job.Spec.Template
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	for k, v := range map[string]string{
		"job-name": job.Name, batchv1.JobNameLabel: job.Name,
		"controller-uid": uid, batchv1.ControllerUidLabel: uid,
	} {
		if _, ok := t.Labels[k]; !ok {
			t.Labels[k] = v
		}
	}
	if job.Spec.Selector == nil {
		job.Spec.Selector = &metav1.LabelSelector{}
	}
	if job.Spec.Selector.MatchLabels == nil {
		job.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, ok := job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel]; !ok {
		job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = uid
	}
}

// validateJobSpec checks a job spec at p; requireSelector is false for cronjob templates, whose
// selectors are generated when the job is created.
func validateJobSpec(spec *batchv1.JobSpec, p *field.Path, requireSelector bool) field.ErrorList {
	var errs field.ErrorList
	for name, v := range map[string]*int32{"parallelism": spec.Parallelism, "completions": spec.Completions,
		"backoffLimit": spec.BackoffLimit, "backoffLimitPerIndex": spec.BackoffLimitPerIndex, "maxFailedIndexes": spec.MaxFailedIndexes,
		"ttlSecondsAfterFinished": spec.TTLSecondsAfterFinished} {
		if v != nil {
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*v), p.Child(name))...)
		}
	}
	if spec.ActiveDeadlineSeconds != nil && *spec.ActiveDeadlineSeconds <= 0 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *spec.ActiveDeadlineSeconds, "must be greater than 0"))
	}
	modes := []batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}
	if m := spec.CompletionMode; m != nil {
		if *m != batchv1.NonIndexedCompletion && *m != batchv1.IndexedCompletion {
			errs = append(errs, field.NotSupported(p.Child("completionMode"), *m, modes))
		}
		if *m == batchv1.IndexedCompletion && spec.Completions == nil {
			errs = append(errs, field.Required(p.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
		}
	}
	if spec.BackoffLimitPerIndex != nil && ptr.Deref(spec.CompletionMode, "") != batchv1.IndexedCompletion {
		errs = append(errs, field.Forbidden(p.Child("backoffLimitPerIndex"), "requires indexed completion mode"))
	}
	if r := spec.PodReplacementPolicy; r != nil {
		policies := []batchv1.PodReplacementPolicy{batchv1.TerminatingOrFailed, batchv1.Failed}
		if *r != batchv1.TerminatingOrFailed && *r != batchv1.Failed {
			errs = append(errs, field.NotSupported(p.Child("podReplacementPolicy"), *r, policies))
		} else if spec.PodFailurePolicy != nil && *r != batchv1.Failed {
			errs = append(errs, field.NotSupported(p.Child("podReplacementPolicy"), *r, []batchv1.PodReplacementPolicy{batchv1.Failed}))
		}
	}
	if requireSelector || spec.Selector != nil {
		errs = append(errs, core.ValidateSelector(spec.Selector, &spec.Template, p, "job")...)
	}
	return append(errs, core.ValidatePodTemplate(&spec.Template, p.Child("template"), core.JobRestartPolicies)...)
}

func jobCondition(job *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func jobRow(job *batchv1.Job, now time.Time) []interface{} {
	var status string
	switch {
	case jobCondition(job, batchv1.JobComplete):
		status = "Complete"
	case jobCondition(job, batchv1.JobFailed):
		status = "Failed"
	case job.DeletionTimestamp != nil:
		status = "Terminating"
	case jobCondition(job, batchv1.JobSuspended):
		status = "Suspended"
	case jobCondition(job, batchv1.JobFailureTarget):
		status = "FailureTarget"
	case jobCondition(job, batchv1.JobSuccessCriteriaMet):
		status = "SuccessCriteriaMet"
	default:
		status = "Running"
	}
	var completions string
	switch parallelism := ptr.Deref(job.Spec.Parallelism, 0); {
	case job.Spec.Completions != nil:
		completions = fmt.Sprintf("%d/%d", job.Status.Succeeded, *job.Spec.Completions)
	case parallelism > 1:
		completions = fmt.Sprintf("%d/1 of %d", job.Status.Succeeded, parallelism)
	default:
		completions = fmt.Sprintf("%d/1", job.Status.Succeeded)
	}
	var d string
	switch {
	case job.Status.StartTime == nil:
	case job.Status.CompletionTime == nil:
		d = duration.HumanDuration(now.Sub(job.Status.StartTime.Time))
	default:
		d = duration.HumanDuration(job.Status.CompletionTime.Sub(job.Status.StartTime.Time))
	}
	names, images := core.ContainerCells(job.Spec.Template.Spec.Containers)
	return []interface{}{job.Name, status, completions, d, registry.Age(job.CreationTimestamp),
		names, images, metav1.FormatLabelSelector(job.Spec.Selector)}
}
