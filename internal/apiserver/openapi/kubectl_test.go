package openapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// kubectlServer is just enough of an API server for kubectl's explain and validation: legacy
// discovery, the OpenAPI documents, and pod creation that rejects unknown fields the way
// kube-apiserver does under fieldValidation=Strict.
type kubectlServer struct {
	*httptest.Server
	mu      sync.Mutex
	creates []string // query strings of pod creations
}

func newKubectlServer(t *testing.T, s *Spec) *kubectlServer {
	t.Helper()
	ks := &kubectlServer{}
	reply := func(w http.ResponseWriter, code int, v interface{}) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	verbs := metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	mux := http.NewServeMux()
	mux.Handle("/openapi/", s)
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]string{"major": "1", "minor": "37", "gitVersion": "v1.37.2"})
	})
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: "127.0.0.1"}}})
	})
	mux.HandleFunc("/apis", func(w http.ResponseWriter, r *http.Request) {
		gv := metav1.GroupVersionForDiscovery{GroupVersion: "apps/v1", Version: "v1"}
		reply(w, 200, &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups: []metav1.APIGroup{{Name: "apps", Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}}})
	})
	mux.HandleFunc("/api/v1", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "v1",
			APIResources: []metav1.APIResource{
				{Name: "pods", SingularName: "pod", Namespaced: true, Kind: "Pod", Verbs: verbs, ShortNames: []string{"po"}},
				{Name: "namespaces", SingularName: "namespace", Kind: "Namespace", Verbs: verbs, ShortNames: []string{"ns"}},
				{Name: "configmaps", SingularName: "configmap", Namespaced: true, Kind: "ConfigMap", Verbs: verbs, ShortNames: []string{"cm"}},
			}})
	})
	mux.HandleFunc("/apis/apps/v1", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "apps/v1",
			APIResources: []metav1.APIResource{{Name: "deployments", SingularName: "deployment", Namespaced: true, Kind: "Deployment", Verbs: verbs}}})
	})
	mux.HandleFunc("POST /api/v1/namespaces/default/pods", func(w http.ResponseWriter, r *http.Request) {
		ks.mu.Lock()
		ks.creates = append(ks.creates, r.URL.RawQuery)
		ks.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		var obj map[string]interface{}
		if err := yaml.Unmarshal(body, &obj); err != nil {
			reply(w, 400, &metav1.Status{Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonBadRequest, Code: 400})
			return
		}
		if r.URL.Query().Get("fieldValidation") == "Strict" {
			if unknown := s.UnknownFields(podGVK, obj); len(unknown) > 0 {
				msg := "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"" +
					strings.Join(unknown, "\", unknown field \"") + "\""
				reply(w, 400, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
					Status: metav1.StatusFailure, Message: msg, Reason: metav1.StatusReasonBadRequest, Code: 400})
				return
			}
		}
		reply(w, 201, obj)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 404, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: 404, Message: "not found"})
	})
	ks.Server = httptest.NewServer(mux)
	t.Cleanup(ks.Close)
	return ks
}

// TestKubectl drives the real kubectl against the documents: explain (OpenAPI v3), server-side
// strict field validation detected from the v3 fieldValidation parameter, and client-side
// validation of a v1 List (which kubectl validates itself, against the v2 protobuf document).
func TestKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	if testing.Short() {
		t.Skip("runs kubectl")
	}
	s, err := New(testResources())
	if err != nil {
		t.Fatal(err)
	}
	srv := newKubectlServer(t, s)
	dir := t.TempDir()
	run := func(stdin string, args ...string) (string, error) {
		args = append([]string{"--server", srv.URL, "--cache-dir", filepath.Join(dir, "cache")}, args...)
		cmd := exec.Command(kubectl, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG="+filepath.Join(dir, "kubeconfig"))
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("explain", func(t *testing.T) {
		out, err := run("", "explain", "pods.spec.containers")
		if err != nil {
			t.Fatalf("kubectl explain: %v\n%s", err, out)
		}
		for _, want := range []string{"KIND:       Pod", "FIELD: containers <[]Container>",
			"List of containers belonging to the pod.", "image\t<string>"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl explain output lacks %q:\n%s", want, out)
			}
		}
		out, err = run("", "explain", "pods.spec.containers", "--output=plaintext-openapiv2")
		if err != nil || !strings.Contains(out, "List of containers belonging to the pod.") {
			t.Errorf("kubectl explain from the v2 document: %v\n%s", err, out)
		}
		out, err = run("", "explain", "deployments.spec.strategy.rollingUpdate.maxSurge")
		if err != nil || !strings.Contains(out, "FIELD: maxSurge <IntOrString>") {
			t.Errorf("kubectl explain maxSurge: %v\n%s", err, out)
		}
	})

	t.Run("server-side strict validation", func(t *testing.T) {
		pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  foo: 1\n  containers: [{name: c, image: busybox}]\n"
		out, err := run(pod, "create", "--validate=strict", "-f", "-")
		if err == nil || !strings.Contains(out, `strict decoding error: unknown field "spec.foo"`) {
			t.Errorf("kubectl create of a pod with spec.foo: %v\n%s", err, out)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.creates) != 1 || !strings.Contains(srv.creates[0], "fieldValidation=Strict") {
			t.Errorf("pod creations = %q, want one with fieldValidation=Strict", srv.creates)
		}
	})

	t.Run("client-side validation", func(t *testing.T) {
		list := "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec:\n    containers: [{name: c, image: busybox, bogus: 1}]\n"
		out, err := run(list, "create", "--dry-run=client", "-o", "name", "--validate=strict", "-f", "-")
		if err == nil || !strings.Contains(out, `unknown field "bogus"`) {
			t.Errorf("kubectl create of a List holding a pod with an unknown field: %v\n%s", err, out)
		}
		good := strings.Replace(list, ", bogus: 1", "", 1)
		out, err = run(good, "create", "--dry-run=client", "-o", "name", "--validate=strict", "-f", "-")
		if err != nil || strings.TrimSpace(out) != "pod/p" {
			t.Errorf("kubectl create of a valid List: %v\n%s", err, out)
		}
	})
}
