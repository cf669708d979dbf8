package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/nanokube/nanokube/internal/audit"
	"github.com/nanokube/nanokube/internal/pki"
)

// recordedEvents reads back the events of a real audit log file.
type recordedEvents struct {
	t      *testing.T
	path   string
	events []*auditv1.Event
}

func (r *recordedEvents) stages() string {
	r.t.Helper()
	data, err := os.ReadFile(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	r.events = nil
	var s []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		ev := &auditv1.Event{}
		if err := json.Unmarshal([]byte(line), ev); err != nil {
			r.t.Fatalf("%q: %v", line, err)
		}
		r.events = append(r.events, ev)
		s = append(s, string(ev.Stage))
	}
	return strings.Join(s, ",")
}

func auditServer(t *testing.T, policy string) (*Server, *recordedEvents) {
	t.Helper()
	p, err := audit.ParsePolicy([]byte("apiVersion: audit.k8s.io/v1\nkind: Policy\n" + policy))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordedEvents{t: t, path: filepath.Join(t.TempDir(), "audit.log")}
	l, err := audit.OpenLog(audit.LogOptions{Path: rec.path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &Server{cfg: Config{AuditPolicy: p, AuditLog: l}, codecs: newCodecs(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}, rec
}

func asUser(r *http.Request) *http.Request {
	return r.WithContext(withUser(r.Context(), pki.UserInfo{Name: "alice"}))
}

func TestAuditPanicStage(t *testing.T) {
	s, rec := auditServer(t, "rules:\n- level: Metadata\n")
	h := s.recoverPanics(s.auditRequests(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, asUser(httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/default/pods/p", nil)))
	if w.Code != http.StatusInternalServerError || w.Header().Get("Audit-Id") == "" {
		t.Fatalf("response %d, Audit-Id %q", w.Code, w.Header().Get("Audit-Id"))
	}
	if got := rec.stages(); got != "RequestReceived,Panic" {
		t.Fatalf("stages %s", got)
	}
	ev := rec.events[1]
	if ev.ResponseStatus.Code != 500 || !strings.Contains(ev.ResponseStatus.Message, "boom") || ev.AuditID != rec.events[0].AuditID {
		t.Fatalf("panic event %+v", ev.ResponseStatus)
	}
}

func TestAuditRequestObjectsAndManagedFields(t *testing.T) {
	s, rec := auditServer(t, "rules:\n- level: RequestResponse\n  omitManagedFields: true\n  omitStages: [RequestReceived]\n")
	body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","managedFields":[{"manager":"x"}]},"data":{"k":"v"}}`
	h := s.auditRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(b)
	}))
	r := asUser(httptest.NewRequest(http.MethodPost, "/api/v1/namespaces/default/configmaps", strings.NewReader(body)))
	r.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got := rec.stages(); got != "ResponseComplete" {
		t.Fatalf("stages %s", got)
	}
	ev := rec.events[0]
	want := `{"apiVersion":"v1","data":{"k":"v"},"kind":"ConfigMap","metadata":{"name":"c"}}`
	if string(ev.RequestObject.Raw) != want || string(ev.ResponseObject.Raw) != want {
		t.Fatalf("objects:\n%s\n%s", ev.RequestObject.Raw, ev.ResponseObject.Raw)
	}
	if ev.ObjectRef.Name != "c" || ev.ObjectRef.Namespace != "default" || ev.Verb != "create" || ev.ResponseStatus.Code != 201 {
		t.Fatalf("event %+v %+v", ev.ObjectRef, ev.ResponseStatus)
	}
}

// An exec's connection is hijacked: ResponseStarted is its 101, then ResponseComplete.
func TestAuditHijackedConnection(t *testing.T) {
	s, rec := auditServer(t, "rules:\n- level: Request\n")
	h := s.auditRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		rw.Flush()
		conn.Close()
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, asUser(r)) }))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if line, _ := bufio.NewReader(conn).ReadString('\n'); !strings.Contains(line, "101") {
		t.Fatalf("response %q", line)
	}
	// ResponseComplete is written once the handler returns, after the client saw the 101.
	if err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return rec.stages() == "RequestReceived,ResponseStarted,ResponseComplete", nil
	}); err != nil {
		t.Fatalf("stages %s", rec.stages())
	}
	if rec.events[1].ResponseStatus.Code != http.StatusSwitchingProtocols || rec.events[1].ObjectRef.Subresource != "exec" {
		t.Fatalf("started event %+v %+v", rec.events[1].ResponseStatus, rec.events[1].ObjectRef)
	}
}
