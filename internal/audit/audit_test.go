package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

const testPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:kube-proxy]
- level: None
  nonResourceURLs: [/healthz*, /version]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets]
- level: Request
  resources:
  - group: ""
    resources: [pods/log, pods/status]
  omitStages: [ResponseStarted]
- level: RequestResponse
  resources:
  - group: ""
    resources: [pods]
- level: Request
  userGroups: [system:nodes]
  verbs: [update, patch]
  namespaces: [kube-system]
- level: Metadata
  resources:
  - group: apps
    resources: [deployments]
    resourceNames: [web]
- level: Request
  resources:
  - group: batch
    resources: ["*/status"]
- level: Request
  resources:
  - group: batch
    resources: ["cronjobs/*"]
- level: Metadata
  resources:
  - group: rbac.authorization.k8s.io
- level: Metadata
  omitManagedFields: true
  nonResourceURLs: [/apis*]
`

func TestPolicyEvaluate(t *testing.T) {
	p, err := ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	res := func(verb, group, resource, sub, ns, name string) Attributes {
		return Attributes{User: "alice", Groups: []string{"devs"}, Verb: verb, ResourceRequest: true,
			APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	for _, tc := range []struct {
		name string
		a    Attributes
		want auditv1.Level
	}{
		{"user None wins first", Attributes{User: "system:kube-proxy", Verb: "get", ResourceRequest: true, Resource: "secrets"}, auditv1.LevelNone},
		{"nonResource prefix", Attributes{User: "alice", Verb: "get", Path: "/healthz/ready"}, auditv1.LevelNone},
		{"nonResource exact", Attributes{User: "alice", Verb: "get", Path: "/version"}, auditv1.LevelNone},
		{"nonResource exact only", Attributes{User: "alice", Verb: "get", Path: "/versionx"}, auditv1.LevelNone},
		{"nonResource rules skip resources", res("get", "", "secrets", "", "default", "s"), auditv1.LevelMetadata},
		{"secrets", res("list", "", "secrets", "", "", ""), auditv1.LevelMetadata},
		{"pods/log subresource", res("get", "", "pods", "log", "default", "p"), auditv1.LevelRequest},
		{"pods does not match subresources", res("create", "", "pods", "exec", "default", "p"), auditv1.LevelNone},
		{"pods", res("create", "", "pods", "", "default", "p"), auditv1.LevelRequestResponse},
		{"group, verb and namespace", Attributes{User: "system:node:n1", Groups: []string{"system:nodes"}, Verb: "patch", ResourceRequest: true, Resource: "configmaps", Namespace: "kube-system"}, auditv1.LevelRequest},
		{"wrong namespace", Attributes{User: "system:node:n1", Groups: []string{"system:nodes"}, Verb: "patch", ResourceRequest: true, Resource: "configmaps", Namespace: "default"}, auditv1.LevelNone},
		{"wrong verb", Attributes{User: "system:node:n1", Groups: []string{"system:nodes"}, Verb: "get", ResourceRequest: true, Resource: "configmaps", Namespace: "kube-system"}, auditv1.LevelNone},
		{"resourceNames", res("get", "apps", "deployments", "", "default", "web"), auditv1.LevelMetadata},
		{"other name", res("get", "apps", "deployments", "", "default", "db"), auditv1.LevelNone},
		{"group mismatch", res("get", "extensions", "deployments", "", "default", "web"), auditv1.LevelNone},
		{"*/status", res("update", "batch", "jobs", "status", "default", "j"), auditv1.LevelRequest},
		{"cronjobs/* covers the resource", res("get", "batch", "cronjobs", "", "default", "c"), auditv1.LevelRequest},
		{"whole group", res("get", "rbac.authorization.k8s.io", "roles", "", "default", "r"), auditv1.LevelMetadata},
		{"nonResource wildcard", Attributes{User: "alice", Verb: "get", Path: "/apis/apps/v1"}, auditv1.LevelMetadata},
		{"no rule", res("get", "", "configmaps", "", "default", "c"), auditv1.LevelNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Evaluate(tc.a).Level; got != tc.want {
				t.Fatalf("level %s, want %s", got, tc.want)
			}
		})
	}
	d := p.Evaluate(res("get", "", "pods", "log", "default", "p"))
	if !d.Omits(auditv1.StageRequestReceived) || !d.Omits(auditv1.StageResponseStarted) || d.Omits(auditv1.StageResponseComplete) {
		t.Fatalf("omitted stages %v", d.OmitStages)
	}
	if d := p.Evaluate(Attributes{User: "alice", Verb: "get", Path: "/apis"}); !d.OmitManagedFields {
		t.Fatal("rule omitManagedFields ignored")
	}
}

func TestBadPolicy(t *testing.T) {
	head := "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"kind", "apiVersion: audit.k8s.io/v1\nkind: Pod\n", "kind"},
		{"apiVersion", "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n", "apiVersion"},
		{"no rules", head, "rules: a policy needs at least one rule"},
		{"level", head + "rules:\n- level: Everything\n", `rules[0].level: "Everything"`},
		{"stage", head + "rules:\n- level: None\n  omitStages: [Started]\n", `rules[0].omitStages[0]: "Started"`},
		{"policy stage", head + "omitStages: [Done]\nrules:\n- level: None\n", `omitStages[0]: "Done"`},
		{"url", head + "rules:\n- level: None\n  nonResourceURLs: [healthz]\n", "rules[0].nonResourceURLs[0]"},
		{"url star", head + "rules:\n- level: None\n  nonResourceURLs: [/a*b]\n", "rules[0].nonResourceURLs[0]"},
		{"mixed", head + "rules:\n- level: None\n  nonResourceURLs: [/a]\n  namespaces: [x]\n", "rules[0]: nonResourceURLs cannot be combined"},
		{"unknown field", head + "rules:\n- level: None\n  user: [x]\n", `unknown field "user"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(path, []byte(head+"rules: []\n"), 0o600)
	if _, err := LoadPolicyFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("file error %v does not name the file", err)
	}
}

func TestLogWritesLinesAndRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := OpenLog(LogOptions{Path: path, MaxSizeMB: 1, MaxBackups: 2})
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	big := strings.Repeat("x", 300<<10) // four events per megabyte file
	for i := 0; i < 20; i++ {
		ev := &auditv1.Event{AuditID: "id", Stage: auditv1.StageResponseComplete, RequestURI: big}
		if err := l.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	backups, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	if len(backups) != 2 {
		t.Fatalf("backups %v, want the 2 newest", backups)
	}
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.AuditID != "id" {
			t.Fatalf("line %d: %v", n, err)
		}
		n++
	}
	if st, _ := os.Stat(path); n == 0 || st.Size() > 1<<20 {
		t.Fatalf("%d events, %d bytes in the current file", n, st.Size())
	}
}
