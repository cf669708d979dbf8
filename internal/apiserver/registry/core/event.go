package core

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// EventColumns are the columns of both event APIs (kube-apiserver prints events.k8s.io events
// through the core type): LAST SEEN TYPE REASON OBJECT MESSAGE, the rest with -o wide.
var EventColumns = []metav1.TableColumnDefinition{
	{Name: "Last Seen", Type: "string", Description: "The time at which the most recent occurrence of this event was recorded."},
	{Name: "Type", Type: "string", Description: "Type of this event (Normal, Warning), new types could be added in the future"},
	{Name: "Reason", Type: "string", Description: "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."},
	{Name: "Object", Type: "string", Description: "The object that this event is about."},
	{Name: "Subobject", Type: "string", Priority: 1, Description: "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."},
	{Name: "Source", Type: "string", Priority: 1, Description: "The component reporting this event. Should be a short machine understandable string."},
	{Name: "Message", Type: "string", Description: "A human-readable description of the status of this operation."},
	{Name: "First Seen", Type: "string", Priority: 1, Description: "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"},
	{Name: "Count", Type: "string", Priority: 1, Description: "The number of times this event has occurred."},
	{Name: "Name", Type: "string", Priority: 1, Format: "name", Description: "Name must be unique within a namespace."},
}

// EventStrategy is the strategy of core/v1 events.
var EventStrategy = registry.Strategy{
	Validate:       func(obj runtime.Object) field.ErrorList { return validateEvent(obj.(*corev1.Event)) },
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateEvent(obj.(*corev1.Event)) },
	Columns:        EventColumns,
	Row:            func(obj runtime.Object) []interface{} { return EventRow(obj.(*corev1.Event)) },
	Fields: func(obj runtime.Object) fields.Set {
		e := obj.(*corev1.Event)
		return fields.Set{
			"involvedObject.kind":            e.InvolvedObject.Kind,
			"involvedObject.namespace":       e.InvolvedObject.Namespace,
			"involvedObject.name":            e.InvolvedObject.Name,
			"involvedObject.uid":             string(e.InvolvedObject.UID),
			"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
			"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
			"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
			"reason":                         e.Reason,
			"reportingComponent":             e.ReportingController,
			"source":                         e.Source.Component,
			"type":                           e.Type,
		}
	},
}

func validateEvent(e *corev1.Event) field.ErrorList {
	var errs field.ErrorList
	// An event about a namespaced object lives in that object's namespace.
	if ns := e.InvolvedObject.Namespace; ns != "" && e.Namespace != "" && ns != e.Namespace {
		errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), ns, "does not match event.namespace"))
	}
	if e.Type != "" && e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning && !e.EventTime.IsZero() {
		errs = append(errs, field.NotSupported(field.NewPath("type"), e.Type, []string{corev1.EventTypeNormal, corev1.EventTypeWarning}))
	}
	return errs
}

// EventRow is kubectl's event row for a core event.
func EventRow(e *corev1.Event) []interface{} {
	first := registry.Age(e.FirstTimestamp)
	if e.FirstTimestamp.IsZero() {
		first = microAge(e.EventTime)
	}
	last := registry.Age(e.LastTimestamp)
	if e.LastTimestamp.IsZero() {
		last = first
	}
	count := e.Count
	if e.Series != nil {
		last = microAge(e.Series.LastObservedTime)
		count = e.Series.Count
	} else if count == 0 {
		count = 1 // singleton events of the new API carry no count
	}
	target := strings.ToLower(e.InvolvedObject.Kind)
	if e.InvolvedObject.Name != "" {
		target = fmt.Sprintf("%s/%s", target, e.InvolvedObject.Name)
	}
	return []interface{}{last, e.Type, e.Reason, target, e.InvolvedObject.FieldPath,
		eventSource(e.Source, e.ReportingController, e.ReportingInstance), strings.TrimSpace(e.Message),
		first, int64(count), e.Name}
}

func microAge(t metav1.MicroTime) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return registry.Age(metav1.NewTime(t.Time))
}

func eventSource(s corev1.EventSource, controller, instance string) string {
	component, host := s.Component, s.Host
	if component == "" {
		component = controller
	}
	if host == "" {
		host = instance
	}
	if host == "" {
		return component
	}
	return component + ", " + host
}
