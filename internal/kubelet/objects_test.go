package kubelet

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestObjectCache holds the kubelet to reading a configMap that pods use from a watch once
// the first read has gone to the API: a resync of an idle pod makes no API request, and a
// change or deletion still reaches the next read.
func TestObjectCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := fake.NewClientset(&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}, Data: map[string]string{"k": "1"}})
	c := newObjectCache(client)
	defer c.stop()
	gets := func() int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "get" && a.GetResource().Resource == "configmaps" {
				n++
			}
		}
		return n
	}
	// eventually polls read until ok accepts what it returned.
	eventually := func(what string, ok func(*v1.ConfigMap, error) bool) {
		t.Helper()
		for {
			cm, err := c.ConfigMap(ctx, "ns", "cm")
			if ok(cm, err) {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: last read %v, %v", what, cm, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	if cm, err := c.ConfigMap(ctx, "ns", "cm"); err != nil || cm.Data["k"] != "1" {
		t.Fatalf("first read: %v, %v", cm, err)
	}
	if gets() != 1 {
		t.Fatalf("first read made %d GETs, want 1", gets())
	}
	c.mu.Lock()
	w := c.watches[objectKey{"configmaps", "ns", "cm"}]
	c.mu.Unlock()
	if w == nil {
		t.Fatal("no watch started after the first read")
	}
	for !w.informer.HasSynced() {
		if ctx.Err() != nil {
			t.Fatal("the watch never synced")
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := gets()
	for range 5 {
		if cm, err := c.ConfigMap(ctx, "ns", "cm"); err != nil || cm.Data["k"] != "1" {
			t.Fatalf("cached read: %v, %v", cm, err)
		}
	}
	if gets() != before {
		t.Errorf("reads from the watch made %d GETs", gets()-before)
	}

	if _, err := client.CoreV1().ConfigMaps("ns").Update(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}, Data: map[string]string{"k": "2"}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("update", func(cm *v1.ConfigMap, err error) bool { return err == nil && cm.Data["k"] == "2" })
	if err := client.CoreV1().ConfigMaps("ns").Delete(ctx, "cm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("delete", func(_ *v1.ConfigMap, err error) bool { return apierrors.IsNotFound(err) })

	// A watch no read has used for a while stops; the next read goes to the API again.
	c.prune(time.Now().Add(objectIdle + time.Minute))
	c.mu.Lock()
	left := len(c.watches)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d watches left after pruning", left)
	}
}
