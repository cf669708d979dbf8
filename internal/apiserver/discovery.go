package apiserver

import (
	"encoding/json"
	"mime"
	"net/http"
	"sort"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// discovery answers /api, /apis and the per-group-version resource lists, in the legacy and
// the aggregated (apidiscovery.k8s.io/v2) forms. Everything is computed once at start.
type discovery struct {
	groups     []string // non-core groups, in serving order
	versions   map[string][]string
	resources  map[schema.GroupVersion]*metav1.APIResourceList
	aggregated map[bool][]byte // false: /api, true: /apis
	legacyAPI  []byte
	legacyAPIs []byte
	perGV      map[string][]byte // "/api/v1", "/apis/apps/v1"
	perGroup   map[string][]byte // "/apis/apps"
}

const aggregatedContentType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

var subresourceVerbs = map[string][]string{
	"status": {"get", "patch", "update"}, "approval": {"get", "patch", "update"}, "scale": {"get", "patch", "update"},
	"binding": {"create"}, "eviction": {"create"}, "log": {"get"},
	"exec": {"create", "get"}, "attach": {"create", "get"}, "portforward": {"create", "get"},
	"proxy":    {"create", "delete", "get", "head", "options", "patch", "put"},
	"finalize": {"update"}, "ephemeralcontainers": {"get", "patch", "update"}, "token": {"create"},
}

var subresourceKinds = map[string]schema.GroupVersionKind{
	"scale":    {Group: "autoscaling", Version: "v1", Kind: "Scale"},
	"binding":  {Version: "v1", Kind: "Binding"},
	"eviction": {Group: "policy", Version: "v1", Kind: "Eviction"},
	"log":      {Version: "v1", Kind: "Pod"},
	"token":    {Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"},
}

var resourceVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func newDiscovery(resources []*registry.Resource, extra ...extraGroupVersion) *discovery {
	d := &discovery{versions: map[string][]string{}, resources: map[schema.GroupVersion]*metav1.APIResourceList{},
		perGV: map[string][]byte{}, perGroup: map[string][]byte{}, aggregated: map[bool][]byte{}}
	aggGroups := map[string]*apidiscoveryv2.APIGroupDiscovery{}
	for _, r := range resources {
		gv := r.GroupVersion
		if _, ok := d.resources[gv]; !ok {
			d.resources[gv] = &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
			if gv.Group != "" && len(d.versions[gv.Group]) == 0 {
				d.groups = append(d.groups, gv.Group)
			}
			d.versions[gv.Group] = append(d.versions[gv.Group], gv.Version)
			g := aggGroups[gv.Group]
			if g == nil {
				g = &apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.Group}}
				aggGroups[gv.Group] = g
			}
			g.Versions = append(g.Versions, apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent})
		}
		list := d.resources[gv]
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.Resource, SingularName: r.SingularName, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: resourceVerbs, ShortNames: r.ShortNames, Categories: r.Categories,
		})
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		ar := apidiscoveryv2.APIResourceDiscovery{
			Resource: r.Resource, SingularResource: r.SingularName, Scope: scope, Verbs: resourceVerbs,
			ShortNames: r.ShortNames, Categories: r.Categories,
			ResponseKind: &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind},
		}
		for _, sub := range r.Subresources {
			kind := r.GroupVersionKind()
			if k, ok := subresourceKinds[sub]; ok {
				kind = k
			}
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.Resource + "/" + sub, Namespaced: r.Namespaced, Kind: kind.Kind, Group: kind.Group, Version: kind.Version, Verbs: subresourceVerbs[sub],
			})
			ar.Subresources = append(ar.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource: sub, Verbs: subresourceVerbs[sub],
				ResponseKind: &metav1.GroupVersionKind{Group: kind.Group, Version: kind.Version, Kind: kind.Kind},
			})
		}
		g := aggGroups[gv.Group]
		for i := range g.Versions {
			if g.Versions[i].Version == gv.Version {
				g.Versions[i].Resources = append(g.Versions[i].Resources, ar)
			}
		}
	}
	// Group-versions served by their own handlers (metrics.k8s.io) list their resources as is.
	for _, x := range extra {
		gv := x.gv
		if _, ok := d.resources[gv]; !ok {
			d.resources[gv] = &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
			if len(d.versions[gv.Group]) == 0 {
				d.groups = append(d.groups, gv.Group)
				aggGroups[gv.Group] = &apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.Group}}
			}
			d.versions[gv.Group] = append(d.versions[gv.Group], gv.Version)
			aggGroups[gv.Group].Versions = append(aggGroups[gv.Group].Versions, apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent})
		}
		d.resources[gv].APIResources = append(d.resources[gv].APIResources, x.resources...)
		g := aggGroups[gv.Group]
		for i := range g.Versions {
			if g.Versions[i].Version != gv.Version {
				continue
			}
			for _, r := range x.resources {
				scope := apidiscoveryv2.ScopeCluster
				if r.Namespaced {
					scope = apidiscoveryv2.ScopeNamespace
				}
				g.Versions[i].Resources = append(g.Versions[i].Resources, apidiscoveryv2.APIResourceDiscovery{
					Resource: r.Name, SingularResource: r.SingularName, Scope: scope, Verbs: r.Verbs, ShortNames: r.ShortNames,
					Categories: r.Categories, ResponseKind: &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind},
				})
			}
		}
	}
	sort.Strings(d.groups)
	for gv, list := range d.resources {
		sort.Slice(list.APIResources, func(i, j int) bool { return list.APIResources[i].Name < list.APIResources[j].Name })
		d.perGV[gvPath(gv)] = mustJSON(list)
	}
	apiVersions := &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: d.versions[""],
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: ""}}}
	d.legacyAPI = mustJSON(apiVersions)
	groupList := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range d.groups {
		group := apiGroup(g, d.versions[g])
		groupList.Groups = append(groupList.Groups, group)
		group.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		d.perGroup["/apis/"+g] = mustJSON(&group)
	}
	d.legacyAPIs = mustJSON(groupList)
	for _, apis := range []bool{false, true} {
		list := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
		if !apis {
			list.Items = append(list.Items, *aggGroups[""])
		} else {
			for _, g := range d.groups {
				list.Items = append(list.Items, *aggGroups[g])
			}
		}
		d.aggregated[apis] = mustJSON(list)
	}
	return d
}

func apiGroup(name string, versions []string) metav1.APIGroup {
	g := metav1.APIGroup{Name: name}
	for _, v := range versions {
		g.Versions = append(g.Versions, metav1.GroupVersionForDiscovery{GroupVersion: name + "/" + v, Version: v})
	}
	g.PreferredVersion = g.Versions[0]
	return g
}

func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "/api/" + gv.Version
	}
	return "/apis/" + gv.Group + "/" + gv.Version
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only on a programming error: these are plain API types
	}
	return b
}

// wantsAggregated reports whether the Accept header asks for aggregated discovery first.
func wantsAggregated(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "application/json" && params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && params["as"] == "APIGroupDiscoveryList" {
			return true
		}
		if mt == "application/json" && params["as"] == "" {
			return false
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

func (d *discovery) serveAPI(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r.Header.Get("Accept")) {
		w.Header().Set("Vary", "Accept")
		writeJSON(w, aggregatedContentType, d.aggregated[false])
		return
	}
	writeJSON(w, "application/json", d.legacyAPI)
}

func (d *discovery) serveAPIs(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r.Header.Get("Accept")) {
		w.Header().Set("Vary", "Accept")
		writeJSON(w, aggregatedContentType, d.aggregated[true])
		return
	}
	writeJSON(w, "application/json", d.legacyAPIs)
}

// serveGroupOrVersion answers /api/v1, /apis/<group> and /apis/<group>/<version>.
func (d *discovery) serveGroupOrVersion(w http.ResponseWriter, r *http.Request, c *codecs) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	if body, ok := d.perGV[p]; ok {
		writeJSON(w, "application/json", body)
		return
	}
	if body, ok := d.perGroup[p]; ok {
		writeJSON(w, "application/json", body)
		return
	}
	c.writeError(w, r, notFoundPath(), schema.GroupResource{}, "")
}
