package resourcemetrics

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func testNode(name, addr string, ready bool, annotations map[string]string) *corev1.Node {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "ignored"}, {Type: corev1.NodeInternalIP, Address: host}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(p)}}}}
}

func TestScrape(t *testing.T) {
	var calls atomic.Int32
	kubelet := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/stats/summary" || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(summary(cstat{at: 0, nanoCores: ptr.To[uint64](3e8), memory: ptr.To[uint64](5 << 20)}, nil))
	}))
	kubelet.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	kubelet.StartTLS()
	defer kubelet.Close()
	addr := strings.TrimPrefix(kubelet.URL, "https://")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	var logs bytes.Buffer
	m, err := New(Config{
		Source: fakeSource{nodes: []*corev1.Node{
			testNode("good", addr, true, nil),
			testNode("notready", addr, false, nil),
			testNode("hollow", addr, true, map[string]string{hollowAnnotation: "true"}),
			testNode("dead", deadAddr, true, nil),
			{ObjectMeta: metav1.ObjectMeta{Name: "noendpoint"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}},
		}},
		ClientCert: &kubelet.TLS.Certificates[0], Timeout: 5 * time.Second,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m.Scrape(context.Background())
	}
	if u, ok := m.Store().Node("good"); !ok || u.NanoCores != 3e8 || u.MemoryBytes != 5<<20 {
		t.Fatalf("good node = %+v, %v", u, ok)
	}
	for _, n := range []string{"notready", "hollow", "dead", "noendpoint"} {
		if _, ok := m.Store().Node(n); ok {
			t.Errorf("node %s has metrics", n)
		}
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("the kubelet was called %d times, want once per scrape of the one ready node", got)
	}
	if n := strings.Count(logs.String(), `node=dead`); n != 1 {
		t.Errorf("the dead node was logged %d times at info level and above, want once:\n%s", n, logs.String())
	}
	if _, err := New(Config{}); err == nil {
		t.Error("a config without a source was accepted")
	}
}
