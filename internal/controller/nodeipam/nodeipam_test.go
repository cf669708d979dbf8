package nodeipam

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

func TestCIDRSet(t *testing.T) {
	tests := []struct {
		cluster string
		mask    int
		index   int
		want    string
	}{
		{"10.244.0.0/16", 24, 0, "10.244.0.0/24"},
		{"10.244.0.0/16", 24, 1, "10.244.1.0/24"},
		{"10.244.0.0/16", 24, 255, "10.244.255.0/24"},
		{"10.0.0.0/8", 26, 5, "10.0.1.64/26"},
		{"fd00:10:244::/56", 64, 3, "fd00:10:244:3::/64"},
		{"fd00::/48", 112, 0x10001, "fd00::1:1:0/112"},
	}
	for _, tt := range tests {
		s, err := newCIDRSet(netip.MustParsePrefix(tt.cluster), tt.mask)
		if err != nil {
			t.Fatal(err)
		}
		got := s.subnet(tt.index)
		if got.String() != tt.want {
			t.Errorf("%s/%d subnet(%d) = %s, want %s", tt.cluster, tt.mask, tt.index, got, tt.want)
		}
		if i, ok := s.index(got); !ok || i != tt.index {
			t.Errorf("index(%s) = %d, %v; want %d", got, i, ok, tt.index)
		}
	}
	s, _ := newCIDRSet(netip.MustParsePrefix("10.0.0.0/23"), 24)
	if _, ok := s.index(netip.MustParsePrefix("10.0.2.0/24")); ok {
		t.Error("range outside the cluster CIDR accepted")
	}
	if _, ok := s.index(netip.MustParsePrefix("10.0.0.0/25")); ok {
		t.Error("range of another size accepted")
	}
	a, _ := s.allocate()
	b, _ := s.allocate()
	if _, err := s.allocate(); err != errExhausted {
		t.Fatalf("third allocation from a /23 in /24s: %v", err)
	}
	s.release(a)
	if c, err := s.allocate(); err != nil || c != a || b == a {
		t.Fatalf("after release got %v, %v", c, err)
	}
	if _, err := newCIDRSet(netip.MustParsePrefix("10.0.0.0/16"), 8); err == nil {
		t.Error("mask shorter than the cluster CIDR accepted")
	}
}

func node(name, cidr string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if cidr != "" {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidr, []string{cidr}
	}
	return n
}

func newTest(t *testing.T, cluster string, objs ...runtime.Object) (*Controller, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	rec := record.NewFakeRecorder(10)
	c, err := New(Config{Client: client, Informers: factory, Recorder: rec, ClusterCIDR: netip.MustParsePrefix(cluster)})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.StartInformers(t, client, factory)
	if err := c.recover(); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	return c, client, rec
}

func updates(t *testing.T, client *fake.Clientset) []*corev1.Node {
	t.Helper()
	var out []*corev1.Node
	for _, a := range client.Actions() {
		switch a.GetVerb() {
		case "update":
			out = append(out, a.(clienttesting.UpdateAction).GetObject().(*corev1.Node))
		case "list", "watch":
		default:
			t.Fatalf("unexpected action %v", a)
		}
	}
	return out
}

func TestAllocateAfterRecovery(t *testing.T) {
	c, client, _ := newTest(t, "10.244.0.0/16", node("n1", "10.244.0.0/24"), node("n2", ""))
	if err := c.sync(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if u := updates(t, client); len(u) != 0 {
		t.Fatalf("node with a CIDR was written: %v", u)
	}
	if err := c.sync(context.Background(), "n2"); err != nil {
		t.Fatal(err)
	}
	u := updates(t, client)
	if len(u) != 1 || u[0].Name != "n2" || u[0].Spec.PodCIDR != "10.244.1.0/24" ||
		len(u[0].Spec.PodCIDRs) != 1 || u[0].Spec.PodCIDRs[0] != "10.244.1.0/24" {
		t.Fatalf("want n2 updated with 10.244.1.0/24, got %+v", u)
	}
}

func TestReleasedWhenNodeGoes(t *testing.T) {
	c, client, _ := newTest(t, "10.244.0.0/24", node("n1", "10.244.0.0/24"))
	if !c.set.used[0] {
		t.Fatal("recovered range not marked used")
	}
	if err := client.CoreV1().Nodes().Delete(context.Background(), "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.nodeLister.Get("n1"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("delete not seen by the informer")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.sync(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if len(c.set.used) != 0 || len(c.allocated) != 0 {
		t.Fatalf("range not released: %v %v", c.set.used, c.allocated)
	}
}

func TestExhausted(t *testing.T) {
	c, client, rec := newTest(t, "10.244.0.0/24", node("n1", "10.244.0.0/24"), node("n2", ""))
	if err := c.sync(context.Background(), "n2"); err == nil {
		t.Fatal("want an error when the cluster CIDR is exhausted")
	}
	if u := updates(t, client); len(u) != 0 {
		t.Fatalf("unexpected writes %v", u)
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, "CIDRNotAvailable") {
			t.Fatalf("event %q", e)
		}
	default:
		t.Fatal("no CIDRNotAvailable event")
	}
}

func TestDisabledWithoutClusterCIDR(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Run(ctx, 1) // returns at once
}
