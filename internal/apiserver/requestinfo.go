package apiserver

import (
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// request is a parsed resource request:
// /api/v1[/namespaces/<ns>]/<resource>[/<name>[/<subresource>]] or the same under /apis/<g>/<v>.
type request struct {
	verb        string // get list watch create update patch delete deletecollection
	gv          schema.GroupVersion
	resource    string
	namespace   string
	name        string
	subresource string
	res         *registry.Resource
}

// parseRequest splits a resource path. ok is false for paths that are not resource requests.
func parseRequest(r *http.Request) (req request, ok bool) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		req.gv = schema.GroupVersion{Version: parts[1]}
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		req.gv = schema.GroupVersion{Group: parts[1], Version: parts[2]}
		parts = parts[3:]
	default:
		return req, false
	}
	watchPath := false
	if parts[0] == "watch" { // the deprecated /watch/ prefix
		watchPath = true
		parts = parts[1:]
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		// /namespaces/<ns>/<resource>... unless it is /namespaces/<name>/<subresource> of the
		// namespace itself (status, finalize).
		if len(parts) == 3 && (parts[2] == "status" || parts[2] == "finalize") {
			req.resource, req.name, req.subresource = "namespaces", parts[1], parts[2]
			parts = nil
		} else {
			req.namespace = parts[1]
			parts = parts[2:]
		}
	}
	if parts != nil {
		// proxy subresources carry a path of their own: nodes/<n>/proxy/stats/summary.
		if len(parts) > 3 && parts[2] == "proxy" {
			parts = parts[:3]
		}
		if len(parts) == 0 || len(parts) > 3 {
			return req, false
		}
		req.resource = parts[0]
		if len(parts) > 1 {
			req.name = parts[1]
		}
		if len(parts) > 2 {
			req.subresource = parts[2]
		}
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case req.name != "" && !watchPath && !isTrue(q.Get("watch")):
			req.verb = "get"
		case watchPath || isTrue(q.Get("watch")):
			req.verb = "watch"
		default:
			req.verb = "list"
		}
	case http.MethodPost:
		req.verb = "create"
	case http.MethodPut:
		req.verb = "update"
	case http.MethodPatch:
		req.verb = "patch"
	case http.MethodDelete:
		req.verb = "delete"
		if req.name == "" {
			req.verb = "deletecollection"
		}
	default:
		req.verb = strings.ToLower(r.Method)
	}
	return req, true
}

func isTrue(s string) bool { return s == "true" || s == "1" }
