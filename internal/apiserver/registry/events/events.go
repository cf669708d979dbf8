// Package events describes events.k8s.io/v1 events. Kubernetes stores both event APIs as one
// resource; this strategy prints and selects them like core events.
package events

import (
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/apiserver/registry/core"
)

// Resources returns the events.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{GroupVersion: eventsv1.SchemeGroupVersion, Resource: "events", Kind: "Event", ListKind: "EventList",
			SingularName: "event", ShortNames: []string{"ev"}, Namespaced: true, Strategy: EventStrategy,
			SharedStorage: &registry.SharedStorage{
				Resource:    corev1.SchemeGroupVersion.WithResource("events"),
				ToStorage:   func(obj runtime.Object) runtime.Object { return ToCore(obj.(*eventsv1.Event)) },
				FromStorage: func(obj runtime.Object) runtime.Object { return FromCore(obj.(*corev1.Event)) },
			}},
	}
}

// EventStrategy is the strategy of events.k8s.io/v1 events.
var EventStrategy = registry.Strategy{
	Validate: func(obj runtime.Object) field.ErrorList { return validateEvent(obj.(*eventsv1.Event)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		e, o := obj.(*eventsv1.Event), old.(*eventsv1.Event)
		errs := validateEvent(e)
		for name, pair := range map[string][2]string{
			"action": {e.Action, o.Action}, "reason": {e.Reason, o.Reason},
			"reportingController": {e.ReportingController, o.ReportingController},
			"reportingInstance":   {e.ReportingInstance, o.ReportingInstance}, "type": {e.Type, o.Type},
		} {
			if pair[0] != pair[1] {
				errs = append(errs, field.Invalid(field.NewPath(name), pair[0], "field is immutable"))
			}
		}
		if e.Regarding != o.Regarding {
			errs = append(errs, field.Invalid(field.NewPath("regarding"), e.Regarding, "field is immutable"))
		}
		return errs
	},
	Columns: core.EventColumns,
	Row:     func(obj runtime.Object) []interface{} { return core.EventRow(ToCore(obj.(*eventsv1.Event))) },
	Fields: func(obj runtime.Object) fields.Set {
		e := obj.(*eventsv1.Event)
		// The regarding.* names, and the core names kube-apiserver also accepts for both event APIs.
		return fields.Set{
			"involvedObject.kind":            e.Regarding.Kind,
			"involvedObject.namespace":       e.Regarding.Namespace,
			"involvedObject.name":            e.Regarding.Name,
			"involvedObject.uid":             string(e.Regarding.UID),
			"involvedObject.apiVersion":      e.Regarding.APIVersion,
			"involvedObject.resourceVersion": e.Regarding.ResourceVersion,
			"involvedObject.fieldPath":       e.Regarding.FieldPath,
			"reportingComponent":             e.ReportingController,
			"source":                         e.DeprecatedSource.Component,
			"regarding.kind":                 e.Regarding.Kind,
			"regarding.namespace":            e.Regarding.Namespace,
			"regarding.name":                 e.Regarding.Name,
			"regarding.uid":                  string(e.Regarding.UID),
			"regarding.apiVersion":           e.Regarding.APIVersion,
			"regarding.resourceVersion":      e.Regarding.ResourceVersion,
			"regarding.fieldPath":            e.Regarding.FieldPath,
			"reason":                         e.Reason,
			"reportingController":            e.ReportingController,
			"type":                           e.Type,
		}
	},
}

// validateEvent applies the events.k8s.io rules that keep new-style events well formed.
func validateEvent(e *eventsv1.Event) field.ErrorList {
	var errs field.ErrorList
	if e.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if e.ReportingController == "" {
		errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
	}
	if e.ReportingInstance == "" {
		errs = append(errs, field.Required(field.NewPath("reportingInstance"), ""))
	} else if len(e.ReportingInstance) > 128 {
		errs = append(errs, field.Invalid(field.NewPath("reportingInstance"), "", "can have at most 128 characters"))
	}
	if e.Action == "" {
		errs = append(errs, field.Required(field.NewPath("action"), ""))
	} else if len(e.Action) > 128 {
		errs = append(errs, field.Invalid(field.NewPath("action"), "", "can have at most 128 characters"))
	}
	if e.Reason == "" {
		errs = append(errs, field.Required(field.NewPath("reason"), ""))
	} else if len(e.Reason) > 128 {
		errs = append(errs, field.Invalid(field.NewPath("reason"), "", "can have at most 128 characters"))
	}
	if e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning {
		errs = append(errs, field.NotSupported(field.NewPath("type"), e.Type, []string{corev1.EventTypeNormal, corev1.EventTypeWarning}))
	}
	if len(e.Note) > 1024 {
		errs = append(errs, field.Invalid(field.NewPath("note"), "", "can have at most 1024 characters"))
	}
	if ns := e.Regarding.Namespace; ns != "" && e.Namespace != "" && ns != e.Namespace {
		errs = append(errs, field.Invalid(field.NewPath("regarding", "namespace"), ns, "does not match event.namespace"))
	}
	return errs
}

// ToCore converts an events.k8s.io/v1 event to the core/v1 event it is stored as; the
// mapping is Kubernetes' (regarding = involvedObject, note = message, deprecated* = the core
// fields of the same name).
func ToCore(e *eventsv1.Event) *corev1.Event {
	c := &corev1.Event{
		TypeMeta:            metav1.TypeMeta{Kind: "Event", APIVersion: "v1"},
		ObjectMeta:          *e.ObjectMeta.DeepCopy(),
		Related:             e.Related.DeepCopy(),
		Action:              e.Action,
		InvolvedObject:      e.Regarding,
		Reason:              e.Reason,
		Message:             e.Note,
		Source:              e.DeprecatedSource,
		FirstTimestamp:      e.DeprecatedFirstTimestamp,
		LastTimestamp:       e.DeprecatedLastTimestamp,
		Count:               e.DeprecatedCount,
		Type:                e.Type,
		EventTime:           e.EventTime,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
	}
	if e.Series != nil {
		c.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return c
}

// FromCore converts a stored core/v1 event to its events.k8s.io/v1 form.
func FromCore(c *corev1.Event) *eventsv1.Event {
	e := &eventsv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "events.k8s.io/v1"},
		ObjectMeta:               *c.ObjectMeta.DeepCopy(),
		EventTime:                c.EventTime,
		ReportingController:      c.ReportingController,
		ReportingInstance:        c.ReportingInstance,
		Action:                   c.Action,
		Reason:                   c.Reason,
		Regarding:                c.InvolvedObject,
		Related:                  c.Related.DeepCopy(),
		Note:                     c.Message,
		Type:                     c.Type,
		DeprecatedSource:         c.Source,
		DeprecatedFirstTimestamp: c.FirstTimestamp,
		DeprecatedLastTimestamp:  c.LastTimestamp,
		DeprecatedCount:          c.Count,
	}
	if c.Series != nil {
		e.Series = &eventsv1.EventSeries{Count: c.Series.Count, LastObservedTime: c.Series.LastObservedTime}
	}
	return e
}
