package events

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEvent(t *testing.T) {
	e := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "default"},
		EventTime: metav1.NewMicroTime(time.Now().Add(-time.Minute)), ReportingController: "kubelet", ReportingInstance: "node-1",
		Action: "Pulling", Reason: "Pulling", Type: "Normal", Note: "pulling image",
		Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "default"}}
	if errs := EventStrategy.Validate(e); len(errs) != 0 {
		t.Errorf("valid event: %v", errs)
	}
	row := EventStrategy.Row(e)
	if row[0] != "60s" || row[3] != "pod/p" || row[5] != "kubelet, node-1" || row[6] != "pulling image" || row[8] != int64(1) {
		t.Errorf("row %v", row)
	}
	if f := EventStrategy.Fields(e); f["regarding.name"] != "p" || f["reportingController"] != "kubelet" {
		t.Errorf("fields %v", f)
	}
	if errs := EventStrategy.Validate(&eventsv1.Event{Type: "Normal"}); len(errs) != 5 {
		t.Errorf("empty event: %v", errs)
	}
}
