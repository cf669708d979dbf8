package registry

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// NameColumn and AgeColumn are the columns every table has.
var (
	NameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name",
		Description: "Name must be unique within a namespace."}
	AgeColumn = metav1.TableColumnDefinition{Name: "Age", Type: "string",
		Description: "CreationTimestamp is a timestamp representing the server time when this object was created."}
)

// DefaultColumns are used for resources whose strategy has no Columns.
var DefaultColumns = []metav1.TableColumnDefinition{NameColumn, AgeColumn}

// DefaultRow is the row for DefaultColumns.
func DefaultRow(obj runtime.Object) []interface{} {
	m, err := meta.Accessor(obj)
	if err != nil {
		return []interface{}{"", "<unknown>"}
	}
	return []interface{}{m.GetName(), Age(m.GetCreationTimestamp())}
}

// Age formats a timestamp the way kubectl's AGE column does ("5m", "3d2h", "<unknown>").
func Age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}
