package serviceaccount

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

func newTest(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.StartInformers(t, client, factory)
	client.ClearActions()
	return c, client
}

func writes(client *fake.Clientset) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			out = append(out, a)
		}
	}
	return out
}

func TestSync(t *testing.T) {
	ns := func(name string, phase corev1.NamespacePhase) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: phase}}
	}
	tests := []struct {
		name       string
		objs       []runtime.Object
		key        string
		wantCreate bool
	}{
		{"missing account is created", []runtime.Object{ns("a", corev1.NamespaceActive)}, "a", true},
		{"existing account left alone", []runtime.Object{ns("a", corev1.NamespaceActive),
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "a"}}}, "a", false},
		{"terminating namespace skipped", []runtime.Object{ns("a", corev1.NamespaceTerminating)}, "a", false},
		{"gone namespace skipped", nil, "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, client := newTest(t, tt.objs...)
			if err := c.sync(context.Background(), tt.key); err != nil {
				t.Fatal(err)
			}
			acts := writes(client)
			if !tt.wantCreate {
				if len(acts) != 0 {
					t.Fatalf("want no writes, got %v", acts)
				}
				return
			}
			if len(acts) != 1 || acts[0].GetVerb() != "create" || acts[0].GetResource().Resource != "serviceaccounts" ||
				acts[0].GetNamespace() != tt.key {
				t.Fatalf("want one create of serviceaccounts in %s, got %v", tt.key, acts)
			}
			sa := acts[0].(clienttesting.CreateAction).GetObject().(*corev1.ServiceAccount)
			if sa.Name != "default" {
				t.Fatalf("created %q", sa.Name)
			}
		})
	}
}

// TestRecreatedAfterDelete runs the controller and deletes the account it made.
func TestRecreatedAfterDelete(t *testing.T) {
	c, client := newTest(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx, 1)
	get := func() error {
		_, err := client.CoreV1().ServiceAccounts("a").Get(ctx, "default", metav1.GetOptions{})
		return err
	}
	poll(t, func() bool { return get() == nil })
	if err := client.CoreV1().ServiceAccounts("a").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, func() bool { return get() == nil })
}

func poll(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
