package openapi

import (
	"net/http"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/common"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// The routes below describe, for kube-openapi's builders, the endpoints the API server's
// generic handlers serve for a registry.Resource, in the shape kube-apiserver's endpoint
// installer gives them: the same paths, operation IDs, parameters, content types and the
// x-kubernetes-action and x-kubernetes-group-version-kind extensions clients look for.

const (
	extGVK    = "x-kubernetes-group-version-kind"
	extAction = "x-kubernetes-action"
)

var (
	objectMediaTypes = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	listMediaTypes   = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
		"application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"}
	patchMediaTypes = []string{"application/json-patch+json", "application/merge-patch+json",
		"application/strategic-merge-patch+json", "application/apply-patch+yaml"}
	anyMediaType  = []string{"*/*"}
	textMediaType = []string{"text/plain", "application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
)

// param is a common.Parameter.
type param struct {
	name, desc, dataType string
	kind                 common.ParameterKind
	required             bool
}

func (p *param) Name() string               { return p.name }
func (p *param) Description() string        { return p.desc }
func (p *param) Required() bool             { return p.required }
func (p *param) Kind() common.ParameterKind { return p.kind }
func (p *param) DataType() string           { return p.dataType }
func (p *param) AllowMultiple() bool        { return false }
func query(name, dataType, desc string) *param {
	return &param{name: name, desc: desc, dataType: dataType, kind: common.QueryParameterKind}
}

var (
	paramPretty = query("pretty", "string", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).")
	paramDryRun = query("dryRun", "string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed")
	// fieldValidation is what kubectl looks for on PATCH operations to decide that the server
	// validates fields itself (and then skips its client-side validation).
	paramFieldValidation    = query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.")
	paramFieldManagerCreate = query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.")
	paramFieldManagerPatch  = query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).")
	paramForce              = query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.")

	listParams = []*param{
		query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored."),
		query("continue", "string", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize."),
		query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
		query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
		query("limit", "integer", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results."),
		query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
		query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
		query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event  will be sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of objects, and be marked with `\"k8s.io/initial-events-end\": \"true\"` annotation."),
		query("timeoutSeconds", "integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
		query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
	}
	deleteParams = []*param{
		paramDryRun,
		query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately."),
		query("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean", "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it"),
		query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both."),
		query("propagationPolicy", "string", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground."),
	}
	logParams = []*param{
		query("container", "string", "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
		query("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
		query("insecureSkipTLSVerifyBackend", "boolean", "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to."),
		query("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating the log output. This may not display a complete final line of logging, and may return slightly more or slightly less than the specified limit."),
		query("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
		query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs. If this value precedes the time a pod was started, only logs since the pod start will be returned. If this value is in the future, no logs will be returned. Only one of sinceSeconds or sinceTime may be specified."),
		query("stream", "string", "Specify which container log stream to return to the client. Acceptable values are \"All\", \"Stdout\" and \"Stderr\". If not specified, \"All\" is used, and both stdout and stderr are returned interleaved."),
		query("tailLines", "integer", "If set, the number of lines from the end of the logs to show. If not specified, logs are shown from the creation of the container or sinceSeconds or sinceTime. Note that when \"TailLines\" is specified, \"Stream\" can only be set to nil or \"All\"."),
		query("timestamps", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false."),
	}
	execParams = []*param{
		query("command", "string", "Command is the remote command to execute. argv array. Not executed within a shell."),
		query("container", "string", "Container in which to execute the command. Defaults to only container if there is only one container in the pod."),
		query("stderr", "boolean", "Redirect the standard error stream of the pod for this call."),
		query("stdin", "boolean", "Redirect the standard input stream of the pod for this call. Defaults to false."),
		query("stdout", "boolean", "Redirect the standard output stream of the pod for this call."),
		query("tty", "boolean", "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false."),
	}
	attachParams = []*param{
		query("container", "string", "The container in which to execute the command. Defaults to only container if there is only one container in the pod."),
		query("stderr", "boolean", "Stderr if true indicates that stderr is to be redirected for the attach call. Defaults to true."),
		query("stdin", "boolean", "Stdin if true, redirects the standard input stream of the pod for this call. Defaults to false."),
		query("stdout", "boolean", "Stdout if true indicates that stdout is to be redirected for the attach call. Defaults to true."),
		query("tty", "boolean", "TTY if true indicates that a tty will be allocated for the attach call. This is passed through the container runtime so the tty is allocated on the worker node by the container runtime. Defaults to false."),
	}
	portForwardParams = []*param{
		query("ports", "integer", "List of ports to forward Required when using WebSockets"),
	}
	proxyParams = []*param{
		query("path", "string", "Path is the URL path to use for the current proxy request to pod."),
	}
)

// response is a common.StatusCodeResponse.
type response struct {
	code    int
	message string
	model   interface{}
}

func (r response) Code() int          { return r.code }
func (r response) Message() string    { return r.message }
func (r response) Model() interface{} { return r.model }

// route is a common.Route.
type route struct {
	method, path, operationID, description string
	params                                 []common.Parameter
	consumes, produces                     []string
	metadata                               map[string]interface{}
	body                                   interface{}
	responses                              []common.StatusCodeResponse
}

func (r *route) Method() string                                   { return r.method }
func (r *route) Path() string                                     { return r.path }
func (r *route) OperationName() string                            { return r.operationID }
func (r *route) Parameters() []common.Parameter                   { return r.params }
func (r *route) Description() string                              { return r.description }
func (r *route) Consumes() []string                               { return r.consumes }
func (r *route) Produces() []string                               { return r.produces }
func (r *route) Metadata() map[string]interface{}                 { return r.metadata }
func (r *route) RequestPayloadSample() interface{}                { return r.body }
func (r *route) ResponsePayloadSample() interface{}               { return nil }
func (r *route) StatusCodeResponses() []common.StatusCodeResponse { return r.responses }

// routeContainer is a common.RouteContainer: all routes of one group-version.
type routeContainer struct {
	root   string
	routes []common.Route
}

func (c *routeContainer) RootPath() string                   { return c.root }
func (c *routeContainer) PathParameters() []common.Parameter { return nil }
func (c *routeContainer) Routes() []common.Route             { return c.routes }

// gvPath is the path prefix of a group-version: "api/v1" or "apis/apps/v1".
func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// camel splits s on '.', '-' and '/' and upper-cases each part's first letter.
func camel(s string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '/' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// gvName is kube-apiserver's operation-ID infix for a group-version: "CoreV1", "AppsV1",
// "RbacAuthorizationV1".
func gvName(gv schema.GroupVersion) string {
	g := strings.TrimSuffix(gv.Group, ".k8s.io")
	if g == "" {
		g = "core"
	}
	return camel(g) + camel(gv.Version)
}

// gvTag is kube-apiserver's operation tag: "core_v1", "rbacAuthorization_v1".
func gvTag(gv schema.GroupVersion) string {
	n := camel(strings.TrimSuffix(gv.Group, ".k8s.io"))
	if n == "" {
		n = "Core"
	}
	return strings.ToLower(n[:1]) + n[1:] + "_" + gv.Version
}

func gvkExtension(gvk schema.GroupVersionKind) map[string]interface{} {
	return map[string]interface{}{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}
}

// models are sample objects of the types a resource's routes carry, for the builders.
type models struct {
	object, list interface{}
}

// subresourceKinds are the subresources whose body is not the parent's kind.
var subresourceKinds = map[string]struct {
	gvk   schema.GroupVersionKind
	model interface{}
}{
	"scale":    {autoscalingv1.SchemeGroupVersion.WithKind("Scale"), &autoscalingv1.Scale{}},
	"binding":  {corev1.SchemeGroupVersion.WithKind("Binding"), &corev1.Binding{}},
	"eviction": {policyv1.SchemeGroupVersion.WithKind("Eviction"), &policyv1.Eviction{}},
}

// connectSubresources are streamed subresources: their operations take options as query
// parameters and answer a stream (x-kubernetes-action "connect").
var connectSubresources = map[string]struct {
	optionsKind string
	params      []*param
	methods     []string
}{
	"exec":        {"PodExecOptions", execParams, []string{http.MethodGet, http.MethodPost}},
	"attach":      {"PodAttachOptions", attachParams, []string{http.MethodGet, http.MethodPost}},
	"portforward": {"PodPortForwardOptions", portForwardParams, []string{http.MethodGet, http.MethodPost}},
	"proxy": {"", proxyParams, []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodPatch,
		http.MethodDelete, http.MethodHead, http.MethodOptions}},
}

// routesFor returns the routes of one resource.
func routesFor(r *registry.Resource, m models) []common.Route {
	gv := r.GroupVersion
	gvk := r.GroupVersionKind()
	prefix := "/" + gvPath(gv)
	kind := r.Kind
	namespaced := ""
	collection := prefix + "/" + r.Resource
	var scopeParams []common.Parameter
	if r.Namespaced {
		namespaced = "Namespaced"
		collection = prefix + "/namespaces/{namespace}/" + r.Resource
		scopeParams = append(scopeParams, &param{name: "namespace", desc: "object name and auth scope, such as for teams and projects",
			dataType: "string", kind: common.PathParameterKind, required: true})
	}
	item := collection + "/{name}"
	nameParam := &param{name: "name", desc: "name of the " + kind, dataType: "string", kind: common.PathParameterKind, required: true}
	gvn := gvName(gv)
	plural := r.Resource

	var routes []common.Route
	add := func(method, p, verb, action, op, desc string, ext schema.GroupVersionKind, params []common.Parameter,
		consumes, produces []string, body interface{}, responses ...common.StatusCodeResponse) {
		routes = append(routes, &route{
			method: method, path: p, operationID: verb + gvn + op, description: desc,
			params: params, consumes: consumes, produces: produces, body: body, responses: responses,
			metadata: map[string]interface{}{extGVK: gvkExtension(ext), extAction: action},
		})
	}
	with := func(base []common.Parameter, ps ...*param) []common.Parameter {
		out := append([]common.Parameter{}, base...)
		for _, p := range ps {
			out = append(out, p)
		}
		return out
	}
	ok := func(model interface{}) common.StatusCodeResponse { return response{http.StatusOK, "OK", model} }
	created := func(model interface{}) common.StatusCodeResponse {
		return response{http.StatusCreated, "Created", model}
	}
	accepted := func(model interface{}) common.StatusCodeResponse {
		return response{http.StatusAccepted, "Accepted", model}
	}
	body := &param{name: "body", kind: common.BodyParameterKind, required: true}
	optionalBody := &param{name: "body", kind: common.BodyParameterKind}

	nsKind := namespaced + kind
	itemParams := with(scopeParams, nameParam)

	// Collection.
	add(http.MethodGet, collection, "list", "list", nsKind, "list or watch objects of kind "+kind, gvk,
		with(scopeParams, append([]*param{paramPretty}, listParams...)...), anyMediaType, listMediaTypes, nil, ok(m.list))
	add(http.MethodPost, collection, "create", "post", nsKind, "create "+article(kind)+" "+kind, gvk,
		with(scopeParams, body, paramPretty, paramDryRun, paramFieldManagerCreate, paramFieldValidation),
		anyMediaType, objectMediaTypes, m.object, ok(m.object), created(m.object), accepted(m.object))
	add(http.MethodDelete, collection, "delete", "deletecollection", "Collection"+nsKind, "delete collection of "+kind, gvk,
		with(scopeParams, append(append([]*param{optionalBody, paramPretty}, deleteParams...), listParams...)...),
		anyMediaType, objectMediaTypes, &metav1.DeleteOptions{}, ok(&metav1.Status{}))
	if r.Namespaced {
		add(http.MethodGet, prefix+"/"+plural, "list", "list", kind+"ForAllNamespaces", "list or watch objects of kind "+kind, gvk,
			with(nil, append([]*param{paramPretty}, listParams...)...), anyMediaType, listMediaTypes, nil, ok(m.list))
	}

	// Item.
	add(http.MethodGet, item, "read", "get", nsKind, "read the specified "+kind, gvk,
		with(itemParams, paramPretty), anyMediaType, objectMediaTypes, nil, ok(m.object))
	add(http.MethodPut, item, "replace", "put", nsKind, "replace the specified "+kind, gvk,
		with(itemParams, body, paramPretty, paramDryRun, paramFieldManagerCreate, paramFieldValidation),
		anyMediaType, objectMediaTypes, m.object, ok(m.object), created(m.object))
	add(http.MethodPatch, item, "patch", "patch", nsKind, "partially update the specified "+kind, gvk,
		with(itemParams, body, paramPretty, paramDryRun, paramFieldManagerPatch, paramFieldValidation, paramForce),
		patchMediaTypes, objectMediaTypes, &metav1.Patch{}, ok(m.object), created(m.object))
	add(http.MethodDelete, item, "delete", "delete", nsKind, "delete "+article(kind)+" "+kind, gvk,
		with(itemParams, append([]*param{optionalBody, paramPretty}, deleteParams...)...),
		anyMediaType, objectMediaTypes, &metav1.DeleteOptions{}, ok(&metav1.Status{}), accepted(&metav1.Status{}))

	// Subresources.
	for _, sub := range r.Subresources {
		p := item + "/" + sub
		op := nsKind + camel(sub)
		if c, isConnect := connectSubresources[sub]; isConnect {
			optionsKind := c.optionsKind
			if optionsKind == "" {
				optionsKind = kind + "ProxyOptions"
			}
			ext := corev1.SchemeGroupVersion.WithKind(optionsKind)
			for _, method := range c.methods {
				verb := "connect"
				add(method, p, verb, "connect", camel(strings.ToLower(method))+op, "connect "+method+" requests to "+sub+" of "+kind,
					ext, with(itemParams, c.params...), anyMediaType, anyMediaType, nil, ok(""))
			}
			if sub == "proxy" {
				for _, method := range c.methods {
					add(method, p+"/{path}", "connect", "connect", camel(strings.ToLower(method))+op+"WithPath",
						"connect "+method+" requests to "+sub+" of "+kind, ext,
						with(itemParams, &param{name: "path", desc: "path to the resource", dataType: "string",
							kind: common.PathParameterKind, required: true}, proxyParams[0]),
						anyMediaType, anyMediaType, nil, ok(""))
				}
			}
			continue
		}
		switch sub {
		case "log":
			add(http.MethodGet, p, "read", "get", op, "read log of the specified "+kind, gvk,
				with(itemParams, append([]*param{paramPretty}, logParams...)...), anyMediaType, textMediaType, nil, ok(""))
			continue
		case "binding", "eviction":
			s := subresourceKinds[sub]
			add(http.MethodPost, p, "create", "post", op, "create "+sub+" of "+article(kind)+" "+kind, s.gvk,
				with(itemParams, body, paramPretty, paramDryRun, paramFieldManagerCreate, paramFieldValidation),
				anyMediaType, objectMediaTypes, s.model, ok(s.model), created(s.model), accepted(s.model))
			continue
		}
		// status, scale and any other subresource that reads and writes one object; finalize
		// (namespaces) is write-only.
		subGVK, model := gvk, m.object
		if s, special := subresourceKinds[sub]; special {
			subGVK, model = s.gvk, s.model
		}
		put := func() {
			add(http.MethodPut, p, "replace", "put", op, "replace "+sub+" of the specified "+kind, subGVK,
				with(itemParams, body, paramPretty, paramDryRun, paramFieldManagerCreate, paramFieldValidation),
				anyMediaType, objectMediaTypes, model, ok(model), created(model))
		}
		if sub == "finalize" {
			put()
			continue
		}
		add(http.MethodGet, p, "read", "get", op, "read "+sub+" of the specified "+kind, subGVK,
			with(itemParams, paramPretty), anyMediaType, objectMediaTypes, nil, ok(model))
		put()
		add(http.MethodPatch, p, "patch", "patch", op, "partially update "+sub+" of the specified "+kind, subGVK,
			with(itemParams, body, paramPretty, paramDryRun, paramFieldManagerPatch, paramFieldValidation, paramForce),
			patchMediaTypes, objectMediaTypes, &metav1.Patch{}, ok(model), created(model))
	}
	return routes
}

func article(kind string) string {
	if kind != "" && strings.ContainsRune("AEIOU", rune(kind[0])) {
		return "an"
	}
	return "a"
}

// operationIDAndTags gives each operation kube-apiserver's tag for its group-version.
func operationIDAndTags(r common.Route) (string, []string, error) {
	segs := strings.Split(strings.TrimPrefix(r.Path(), "/"), "/")
	var gv schema.GroupVersion
	if segs[0] == "api" {
		gv = schema.GroupVersion{Version: segs[1]}
	} else {
		gv = schema.GroupVersion{Group: segs[1], Version: segs[2]}
	}
	return r.OperationName(), []string{gvTag(gv)}, nil
}
