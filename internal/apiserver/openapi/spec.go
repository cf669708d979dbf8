package openapi

import (
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// Spec holds the OpenAPI documents of a set of resources and serves them. Safe for concurrent
// use. The documents are built on first use (or by Build) and serialized on the first
// request for each, so that New costs start-up next to nothing.
type Spec struct {
	resources []*registry.Resource
	// models maps each served kind and list kind to a sample object of its Go type.
	models map[schema.GroupVersionKind]interface{}
	// names maps each served kind and list kind to its definition name.
	names map[schema.GroupVersionKind]string

	once sync.Once
	err  error
	docs *documents
}

type documents struct {
	v2 *spec.Swagger
	v3 map[string]*spec3.OpenAPI // by group-version path: "api/v1", "apis/apps/v1"
	// gvPaths are the keys of v3 in the order resources were given.
	gvPaths []string
	mux     *http.ServeMux
}

// New checks that every resource's Kind and ListKind (Kind+"List" when empty) is a type of
// k8s.io/api known to client-go's scheme, and that no resource is given twice, and returns a Spec that describes resources. It does
// not build the documents: call Build for that, or let the first request do it. resources
// must not be changed afterwards.
func New(resources []*registry.Resource) (*Spec, error) {
	scheme := clientgoscheme.Scheme
	s := &Spec{
		resources: resources,
		models:    map[schema.GroupVersionKind]interface{}{},
		names:     map[schema.GroupVersionKind]string{},
	}
	seen := map[schema.GroupVersionResource]bool{}
	for _, r := range resources {
		if r == nil {
			return nil, fmt.Errorf("openapi: nil resource")
		}
		if seen[r.GroupVersionResource()] {
			return nil, fmt.Errorf("openapi: resource %s given twice", r.GroupVersionResource())
		}
		seen[r.GroupVersionResource()] = true
		for _, kind := range []string{r.Kind, listKind(r)} {
			gvk := r.GroupVersion.WithKind(kind)
			t, ok := scheme.AllKnownTypes()[gvk]
			if !ok {
				return nil, fmt.Errorf("openapi: resource %s: kind %s is not in the scheme", r.GroupVersionResource(), gvk)
			}
			model := reflect.New(t).Interface()
			s.models[gvk] = model
			s.names[gvk] = util.GetCanonicalTypeName(model)
		}
	}
	return s, nil
}

func listKind(r *registry.Resource) string {
	if r.ListKind != "" {
		return r.ListKind
	}
	return r.Kind + "List"
}

// Build builds the documents, once; later calls return the first call's result. It takes
// about 50 ms and 30 MB of short-lived allocations for the resources of a full control
// plane. An error means a served type lacks a generated definition (see
// hack/update-openapi.sh): ServeHTTP then answers 500 and UnknownFields reports nothing.
func (s *Spec) Build() error {
	s.once.Do(func() { s.docs, s.err = s.build() })
	return s.err
}

func (s *Spec) build() (*documents, error) {
	gvkExtensions := definitionNames(clientgoscheme.Scheme)
	d := &documents{v3: map[string]*spec3.OpenAPI{}}

	// Routes, grouped by group-version in the order resources were given.
	byGV := map[string]*routeContainer{}
	for _, r := range s.resources {
		p := gvPath(r.GroupVersion)
		c, ok := byGV[p]
		if !ok {
			c = &routeContainer{root: "/" + p}
			byGV[p] = c
			d.gvPaths = append(d.gvPaths, p)
		}
		m := models{object: s.models[r.GroupVersionKind()], list: s.models[r.GroupVersion.WithKind(listKind(r))]}
		c.routes = append(c.routes, routesFor(r, m)...)
	}

	getDefinitionName := func(name string) (string, spec.Extensions) {
		if gvks, ok := gvkExtensions[name]; ok {
			return name, spec.Extensions{extGVK: gvks}
		}
		return name, nil
	}
	info := &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: kubeVersion}}

	// v2: one document for everything. The builders write into the definitions' extension
	// maps, so each document kind gets its own copy of the generated definitions.
	v2Defs := GetOpenAPIDefinitions(func(name string) spec.Ref {
		return spec.MustCreateRef("#/definitions/" + common.EscapeJsonPointer(name))
	})
	var all []common.RouteContainer
	for _, p := range d.gvPaths {
		all = append(all, byGV[p])
	}
	v2, err := builder.BuildOpenAPISpecFromRoutes(all, &common.Config{
		Info:                           info,
		GetDefinitions:                 func(common.ReferenceCallback) map[string]common.OpenAPIDefinition { return v2Defs },
		GetDefinitionName:              getDefinitionName,
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		CommonResponses: map[int]spec.Response{http.StatusUnauthorized: {
			ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}},
		SecurityDefinitions: &spec.SecurityDefinitions{"BearerToken": &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication"}}},
		DefaultSecurity: []map[string][]string{{"BearerToken": {}}},
	})
	if err != nil {
		return nil, fmt.Errorf("openapi: building v2 document: %w", err)
	}
	d.v2 = v2

	// v3: one document per group-version, holding only the schemas its paths use.
	v3Defs := GetOpenAPIDefinitions(func(name string) spec.Ref {
		return spec.MustCreateRef("#/components/schemas/" + common.EscapeJsonPointer(name))
	})
	for _, p := range d.gvPaths {
		doc, err := builder3.BuildOpenAPISpecFromRoutes([]common.RouteContainer{byGV[p]}, &common.OpenAPIV3Config{
			Info:                           info,
			Definitions:                    v3Defs,
			GetDefinitionName:              getDefinitionName,
			GetOperationIDAndTagsFromRoute: operationIDAndTags,
			CommonResponses: map[int]*spec3.Response{http.StatusUnauthorized: {
				ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}}},
			SecuritySchemes: spec3.SecuritySchemes{"BearerToken": &spec3.SecurityScheme{SecuritySchemeProps: spec3.SecuritySchemeProps{
				Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication"}}},
			DefaultSecurity: []map[string][]string{{"BearerToken": {}}},
		})
		if err != nil {
			return nil, fmt.Errorf("openapi: building v3 document %s: %w", p, err)
		}
		d.v3[p] = doc
	}

	// kube-openapi's handlers serialize lazily and cache the bytes, ETags and hashes.
	v2Service := handler.NewOpenAPIService(d.v2)
	v3Service := handler3.NewOpenAPIService()
	for _, p := range d.gvPaths {
		v3Service.UpdateGroupVersion(p, d.v3[p])
	}
	d.mux = http.NewServeMux()
	v2Service.RegisterOpenAPIVersionedService("/openapi/v2", d.mux)
	d.mux.HandleFunc("/openapi/v3", v3Service.HandleDiscovery)
	d.mux.HandleFunc("/openapi/v3/", func(w http.ResponseWriter, r *http.Request) {
		// handler3 answers an empty 200 for a group-version it does not know.
		if _, ok := d.v3[strings.TrimPrefix(r.URL.Path, "/openapi/v3/")]; !ok {
			http.NotFound(w, r)
			return
		}
		v3Service.HandleGroupVersion(w, r)
	})
	return d, nil
}

// kubeVersion is the info.version of the documents: the Kubernetes release of the k8s.io/api
// types they describe.
const kubeVersion = "v1.37.2"

// definitionNames returns, for every model name of a type in scheme, the value of its
// x-kubernetes-group-version-kind extension: the sorted list of its external kinds, as
// kube-apiserver's definition namer builds it.
func definitionNames(scheme *runtime.Scheme) map[string][]interface{} {
	byName := map[string][]schema.GroupVersionKind{}
	for gvk, t := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		name := util.GetCanonicalTypeName(reflect.New(t).Interface())
		byName[name] = append(byName[name], gvk)
	}
	ext := make(map[string][]interface{}, len(byName))
	for name, gvks := range byName {
		sort.Slice(gvks, func(i, j int) bool {
			a, b := gvks[i], gvks[j]
			if a.Group != b.Group {
				return a.Group < b.Group
			}
			if a.Version != b.Version {
				return a.Version < b.Version
			}
			return a.Kind < b.Kind
		})
		list := make([]interface{}, len(gvks))
		for i, gvk := range gvks {
			list[i] = gvkExtension(gvk)
		}
		ext[name] = list
	}
	return ext
}

// ServeHTTP answers GET and HEAD for /openapi/v2 (JSON, or protobuf when the Accept header
// asks for application/com.github.proto-openapi.spec.v2@v1.0+protobuf, gzip when asked),
// /openapi/v3 (the index of group-version documents, each URL carrying its document's hash)
// and /openapi/v3/<group-version path> (JSON, or protobuf for
// application/com.github.proto-openapi.spec.v3@v1.0+protobuf; an ETag; immutable caching
// when the hash query parameter matches, a redirect to the current hash when it does not).
// Other paths under /openapi/ are 404.
func (s *Spec) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := s.Build(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.docs.mux.ServeHTTP(w, r)
}

// V2 returns the v2 document. The caller must not modify it.
func (s *Spec) V2() (*spec.Swagger, error) {
	if err := s.Build(); err != nil {
		return nil, err
	}
	return s.docs.v2, nil
}

// V3 returns the v3 document of a group-version path ("api/v1", "apis/apps/v1"), nil if no
// resource is served there. The caller must not modify it.
func (s *Spec) V3(gvPath string) (*spec3.OpenAPI, error) {
	if err := s.Build(); err != nil {
		return nil, err
	}
	return s.docs.v3[gvPath], nil
}

// GroupVersionPaths returns the group-version paths that have a v3 document, in the order
// their first resource was given to New.
func (s *Spec) GroupVersionPaths() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range s.resources {
		if p := gvPath(r.GroupVersion); !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Schema returns the v2 definition of a served kind or list kind; its references point into
// the v2 document's definitions. The caller must not modify it.
func (s *Spec) Schema(gvk schema.GroupVersionKind) (*spec.Schema, bool) {
	name, ok := s.names[gvk]
	if !ok || s.Build() != nil {
		return nil, false
	}
	def, ok := s.docs.v2.Definitions[name]
	if !ok {
		return nil, false
	}
	return &def, true
}
