package apiserver_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/server"
)

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [quiet-user]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets]
- level: RequestResponse
  resources:
  - group: ""
    resources: [pods]
`

// readAudit returns the events of the log about namespace ns.
func readAudit(t *testing.T, path, ns string) []auditv1.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditv1.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if ev.Kind != "Event" || ev.APIVersion != "audit.k8s.io/v1" || ev.AuditID == "" || ev.StageTimestamp.IsZero() || ev.RequestReceivedTimestamp.IsZero() {
			t.Fatalf("incomplete event %s", sc.Text())
		}
		if ev.ObjectRef != nil && ev.ObjectRef.Namespace == ns {
			out = append(out, ev)
		}
	}
	return out
}

// summary is the part of an event the test asserts exactly.
func summary(ev auditv1.Event) string {
	code := int32(0)
	if ev.ResponseStatus != nil {
		code = ev.ResponseStatus.Code
	}
	r := ev.ObjectRef
	return fmt.Sprintf("%s %s %s %s %s/%s %d req=%v resp=%v", ev.Stage, ev.Level, ev.User.Username, ev.Verb, r.Resource, r.Name, code,
		ev.RequestObject != nil, ev.ResponseObject != nil)
}

func TestAuditLog(t *testing.T) {
	dir := t.TempDir()
	policy, logPath := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "audit", "audit.log")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	c := apitest.Start(t, apitest.Options{AuditPolicyFile: policy, AuditLogPath: logPath})
	ctx := ctxT(t)
	const ns = "audit"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	admin := c.Client

	// Secrets at Metadata: recorded without their data, even on create (a protobuf body).
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, testSecret("s1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Secrets(ns).Get(ctx, "missing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
	// Pods at RequestResponse.
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, testPod("p1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// kubectl's request: JSON, its own user agent; the Audit-Id header names the event.
	kubectl(t, c, "kubectl get pod -n "+ns+" p1 -o name")
	tr, err := rest.TransportFor(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Get(c.Config.Host + "/api/v1/namespaces/" + ns + "/pods/p1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	auditID := resp.Header.Get("Audit-Id")
	if resp.StatusCode != 200 || auditID == "" {
		t.Fatalf("GET: %d, Audit-Id %q", resp.StatusCode, auditID)
	}
	// A user the policy silences, and a user RBAC denies.
	if _, err := userClient(t, c, "quiet-user", "system:masters").CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := userClient(t, c, "bob").CoreV1().Secrets(ns).Get(ctx, "s1", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("bob: %v", err)
	}
	// Credentials that do not authenticate: recorded without a user.
	bad, err := http.NewRequest(http.MethodGet, c.Config.Host+"/api/v1/namespaces/"+ns+"/pods", nil)
	if err != nil {
		t.Fatal(err)
	}
	bad.Header.Set("Authorization", "Bearer not-a-token")
	anon, err := rest.TransportFor(rest.AnonymousClientConfig(c.Config))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := (&http.Client{Transport: anon}).Do(bad); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// A watch is long-running: ResponseStarted when it starts, ResponseComplete when it ends.
	w, err := admin.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptr.To[int64](1)})
	if err != nil {
		t.Fatal(err)
	}
	for range w.ResultChan() {
	}

	var events []auditv1.Event
	eventually(t, "the watch's ResponseComplete event", func() bool {
		events = readAudit(t, logPath, ns)
		return len(events) > 0 && events[len(events)-1].Verb == "watch" && events[len(events)-1].Stage == auditv1.StageResponseComplete
	})
	adminName := events[0].User.Username
	var got []string
	for _, ev := range events {
		got = append(got, summary(ev))
	}
	want := []string{
		"ResponseComplete Metadata " + adminName + " create secrets/s1 201 req=false resp=false",
		"ResponseComplete Metadata " + adminName + " get secrets/missing 404 req=false resp=false",
		"ResponseComplete RequestResponse " + adminName + " create pods/p1 201 req=true resp=true",
		"ResponseComplete RequestResponse " + adminName + " get pods/p1 200 req=false resp=true",
		"ResponseComplete RequestResponse " + adminName + " get pods/p1 200 req=false resp=true",
		"ResponseComplete Metadata bob get secrets/s1 403 req=false resp=false",
		"ResponseComplete RequestResponse  list pods/ 401 req=false resp=true",
		"ResponseStarted RequestResponse " + adminName + " watch pods/ 200 req=false resp=false",
		"ResponseComplete RequestResponse " + adminName + " watch pods/ 200 req=false resp=false",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Details of the events.
	if !slices.Contains(events[0].User.Groups, "system:masters") || events[0].ObjectRef.APIVersion != "v1" || events[0].ObjectRef.APIGroup != "" ||
		events[0].RequestURI != "/api/v1/namespaces/audit/secrets" || len(events[0].SourceIPs) == 0 || events[0].SourceIPs[0] != "127.0.0.1" ||
		events[0].Annotations["authorization.k8s.io/decision"] != "allow" {
		t.Errorf("secret create event: %+v", events[0])
	}
	if st := events[1].ResponseStatus; st.Status != metav1.StatusFailure || st.Reason != metav1.StatusReasonNotFound || st.Message != `secrets "missing" not found` {
		t.Errorf("404 status %+v", st)
	}
	var reqPod, respPod corev1.Pod
	if err := json.Unmarshal(events[2].RequestObject.Raw, &reqPod); err != nil || reqPod.Name != "p1" || reqPod.Spec.Containers[0].Image != "busybox" {
		t.Errorf("pod create requestObject %s: %v", events[2].RequestObject.Raw, err)
	}
	if err := json.Unmarshal(events[2].ResponseObject.Raw, &respPod); err != nil || respPod.UID == "" || respPod.Kind != "Pod" {
		t.Errorf("pod create responseObject %s: %v", events[2].ResponseObject.Raw, err)
	}
	if !strings.HasPrefix(events[3].UserAgent, "kubectl/") {
		t.Errorf("kubectl's user agent %q", events[3].UserAgent)
	}
	if string(events[4].AuditID) != auditID {
		t.Errorf("event of the raw GET has auditID %s, the response said %s", events[4].AuditID, auditID)
	}
	if d := events[5]; d.Annotations["authorization.k8s.io/decision"] != "forbid" || d.ResponseStatus.Reason != metav1.StatusReasonForbidden {
		t.Errorf("denied request: %+v %+v", d.Annotations, d.ResponseStatus)
	}
	if d := events[6]; d.User.Username != "" || len(d.User.Groups) != 0 || d.ResponseStatus.Reason != metav1.StatusReasonUnauthorized {
		t.Errorf("failed authentication: %+v %+v", d.User, d.ResponseStatus)
	}
	if events[7].AuditID != events[8].AuditID || events[7].ResponseObject != nil {
		t.Errorf("watch events %+v / %+v", events[7], events[8])
	}

	// No secret data anywhere in the log, in plain text or base64.
	raw, _ := os.ReadFile(logPath)
	if strings.Contains(string(raw), plainMarker) || strings.Contains(string(raw), base64.StdEncoding.EncodeToString([]byte(plainMarker))) {
		t.Fatal("the audit log holds secret data")
	}
	if strings.Contains(string(raw), `"quiet-user"`) {
		t.Fatal("the None rule's user was audited")
	}
	if strings.Contains(string(raw), `"RequestReceived"`) {
		t.Fatal("omitted stage RequestReceived was written")
	}
}

func TestAuditBadPolicyWritesNothing(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir, logPath := filepath.Join(dir, "data"), filepath.Join(dir, "audit.log")
	err := server.Run(ctxT(t), server.Config{DataDir: dataDir, BindAddress: "127.0.0.1", DisableAgent: true,
		AuditPolicyFile: policy, AuditLogPath: logPath}, func(server.Ready) { t.Error("started") })
	if err == nil || !strings.Contains(err.Error(), policy) || !strings.Contains(err.Error(), `rules[0].level: "Loud"`) {
		t.Fatalf("error %v, want one naming %s and rules[0].level", err, policy)
	}
	for _, p := range []string{dataDir, logPath} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s was created: %v", p, err)
		}
	}
}
