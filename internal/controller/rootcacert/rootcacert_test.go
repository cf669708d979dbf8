package rootcacert

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func TestPublishesAndRepairs(t *testing.T) {
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "going"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "stale"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: "stale"}, Data: map[string]string{"ca.crt": "old", "extra": "x"}},
	)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: factory, RootCA: []byte(ca)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	go c.Run(ctx, 1)

	published := func(ns string) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, ConfigMapName, metav1.GetOptions{})
			return err == nil && cm.Data["ca.crt"] == ca && len(cm.Data) == 1 && cm.Annotations[descriptionAnnotation] != "", nil
		}
	}
	for _, ns := range []string{"team", "stale"} {
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, published(ns)); err != nil {
			t.Fatalf("%s: the CA was not published: %v", ns, err)
		}
	}
	if _, err := client.CoreV1().ConfigMaps("going").Get(ctx, ConfigMapName, metav1.GetOptions{}); err == nil {
		t.Error("a terminating namespace got the ConfigMap")
	}
	// A deleted ConfigMap comes back.
	if err := client.CoreV1().ConfigMaps("team").Delete(ctx, ConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, published("team")); err != nil {
		t.Fatalf("a deleted ConfigMap was not put back: %v", err)
	}
}

func TestNeedsARootCA(t *testing.T) {
	if _, err := New(Config{Client: fake.NewClientset(), Informers: informers.NewSharedInformerFactory(fake.NewClientset(), 0)}); err == nil {
		t.Fatal("New without a CA succeeded")
	}
}
