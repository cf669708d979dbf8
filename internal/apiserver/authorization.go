package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/apiserver/authz"
	"github.com/nanokube/nanokube/internal/pki"
)

// Authorization modes of Config.Authorization, named as kube-apiserver's
// --authorization-mode values.
const (
	AuthorizationRBAC        = "RBAC"
	AuthorizationAlwaysAllow = "AlwaysAllow"
	AuthorizationNode        = "Node"
)

var (
	rolesGVR               = rbacv1.SchemeGroupVersion.WithResource("roles")
	clusterRolesGVR        = rbacv1.SchemeGroupVersion.WithResource("clusterroles")
	roleBindingsGVR        = rbacv1.SchemeGroupVersion.WithResource("rolebindings")
	clusterRoleBindingsGVR = rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings")
)

// newAuthorizer builds the configured authorizers, in the order given, behind the
// system:masters short cut.
func (s *Server) newAuthorizer() error {
	modes, err := ParseAuthorizationModes(s.cfg.Authorization)
	if err != nil {
		return err
	}
	var chain authz.Union
	for _, mode := range modes {
		switch mode {
		case AuthorizationAlwaysAllow:
			chain = append(chain, authz.AlwaysAllow{})
		case AuthorizationNode:
			az, err := s.newNodeAuthorizer()
			if err != nil {
				return err
			}
			chain = append(chain, az)
		case AuthorizationRBAC:
			for _, gvr := range []schema.GroupVersionResource{rolesGVR, clusterRolesGVR, roleBindingsGVR, clusterRoleBindingsGVR} {
				if s.resources[gvr] == nil {
					return fmt.Errorf("authorization mode RBAC needs the resource %s, which is not served", gvr.GroupResource())
				}
			}
			s.rbac = authz.NewRBAC(cachedRBAC{s})
			chain = append(chain, s.rbac)
		}
	}
	if len(chain) == 1 {
		s.authorizer = authz.Privileged{Next: chain[0]}
	} else {
		s.authorizer = authz.Privileged{Next: chain}
	}
	return nil
}

// cachedRBAC feeds the RBAC authorizer from the watch caches of the four RBAC resources.
type cachedRBAC struct{ s *Server }

// Version sums the caches' revisions: each only grows, so the sum moves with any change.
func (c cachedRBAC) Version() int64 {
	var v int64
	for _, gvr := range []schema.GroupVersionResource{rolesGVR, clusterRolesGVR, roleBindingsGVR, clusterRoleBindingsGVR} {
		v += c.s.resources[gvr].cache.Revision()
	}
	return v
}

func (c cachedRBAC) Load(ctx context.Context) (authz.Objects, error) {
	var o authz.Objects
	list := func(gvr schema.GroupVersionResource, add func(runtime.Object)) error {
		rs := c.s.resources[gvr]
		items, _, err := rs.cacheList(ctx, rs.prefix, 0, nil)
		for _, it := range items {
			add(it)
		}
		return err
	}
	err := list(rolesGVR, func(x runtime.Object) { o.Roles = append(o.Roles, x.(*rbacv1.Role)) })
	if err == nil {
		err = list(clusterRolesGVR, func(x runtime.Object) { o.ClusterRoles = append(o.ClusterRoles, x.(*rbacv1.ClusterRole)) })
	}
	if err == nil {
		err = list(roleBindingsGVR, func(x runtime.Object) { o.RoleBindings = append(o.RoleBindings, x.(*rbacv1.RoleBinding)) })
	}
	if err == nil {
		err = list(clusterRoleBindingsGVR, func(x runtime.Object) {
			o.ClusterRoleBindings = append(o.ClusterRoleBindings, x.(*rbacv1.ClusterRoleBinding))
		})
	}
	return o, err
}

// userFromContext returns the authenticated user; ok is false for requests that carry none
// (public endpoints, and the API server's own writes at start).
func userFromContext(ctx context.Context) (pki.UserInfo, bool) {
	u, ok := ctx.Value(userKey{}).(pki.UserInfo)
	return u, ok
}

// authorize answers requests the user may not make with 403, after applying impersonation
// headers. Requests without a user are the public endpoints authenticate let through.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := userFromContext(r.Context())
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if hasImpersonation(r.Header) {
			imp, err := s.impersonate(r.Context(), u, r.Header)
			if err != nil {
				s.codecs.writeError(w, r, err, schema.GroupResource{}, "")
				return
			}
			u = imp
			auditImpersonated(r.Context(), u)
			r = r.WithContext(context.WithValue(r.Context(), userKey{}, u)) // as given: groups already settled
		}
		a := requestAttributes(r, u)
		if err := s.authorizeAttributes(r.Context(), a); err != nil {
			s.codecs.writeError(w, r, err, schema.GroupResource{}, "")
			return
		}
		// kubectl opens exec, attach and port-forward WebSockets with a GET: they need create
		// as well, as in Kubernetes, so get alone cannot run commands in a pod.
		if a.ResourceRequest && a.Verb == "get" && a.Resource == "pods" &&
			(a.Subresource == "exec" || a.Subresource == "attach" || a.Subresource == "portforward") {
			a.Verb = "create"
			if err := s.authorizeAttributes(r.Context(), a); err != nil {
				s.codecs.writeError(w, r, err, schema.GroupResource{}, "")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authorizeAttributes returns nil when a is allowed and the 403 Status otherwise.
func (s *Server) authorizeAttributes(ctx context.Context, a authz.Attributes) error {
	d, reason, err := s.authorizer.Authorize(ctx, a)
	if err != nil {
		s.log.Warn("authorization failed", "user", a.User.Name, "verb", a.Verb, "resource", a.Resource, "path", a.Path, "err", err)
		if reason == "" {
			reason = err.Error()
		}
	}
	allowed := err == nil && d == authz.Allow
	auditAuthorization(ctx, allowed, reason)
	if allowed {
		return nil
	}
	return authz.Forbidden(a, reason)
}

// requestAttributes are the authorization attributes of r, as kube-apiserver's RequestInfo
// derives them.
func requestAttributes(r *http.Request, u pki.UserInfo) authz.Attributes {
	req, ok := parseRequest(r)
	if !ok {
		return authz.Attributes{User: u, Verb: strings.ToLower(r.Method), Path: r.URL.Path}
	}
	a := authz.Attributes{User: u, ResourceRequest: true, Verb: req.verb, APIGroup: req.gv.Group, APIVersion: req.gv.Version,
		Resource: req.resource, Subresource: req.subresource, Namespace: req.namespace, Name: req.name}
	// A namespace is its own namespace: a RoleBinding in it may grant reading it.
	if a.Resource == "namespaces" && a.Namespace == "" && a.Name != "" {
		a.Namespace = a.Name
	}
	// Lists and watches of one object by name are authorized for that name, so that rules
	// with resourceNames cover `kubectl get -w <name>`.
	if a.Name == "" && (a.Verb == "list" || a.Verb == "watch") {
		if sel, err := fields.ParseSelector(r.URL.Query().Get("fieldSelector")); err == nil {
			if name, ok := sel.RequiresExactMatch("metadata.name"); ok {
				a.Name = name
			}
		}
	}
	return a
}

const (
	impersonateUser        = "Impersonate-User"
	impersonateGroup       = "Impersonate-Group"
	impersonateUID         = "Impersonate-Uid"
	impersonateExtraPrefix = "Impersonate-Extra-"
)

func hasImpersonation(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, "Impersonate-") {
			return true
		}
	}
	return false
}

// impersonate returns the user the request acts as, once the requester was authorized to
// impersonate each part of it (verb impersonate on users, groups, serviceaccounts, uids and
// userextras), as kube-apiserver's impersonation filter does.
func (s *Server) impersonate(ctx context.Context, requester pki.UserInfo, h http.Header) (pki.UserInfo, error) {
	name := h.Get(impersonateUser)
	if name == "" {
		return pki.UserInfo{}, apierrors.NewBadRequest("requested impersonation without impersonating a user")
	}
	var checks []authz.Attributes
	out := pki.UserInfo{Name: name}
	if rest, ok := strings.CutPrefix(name, authz.ServiceAccountPrefix); ok {
		ns, sa, found := strings.Cut(rest, ":")
		if !found || ns == "" || sa == "" {
			return pki.UserInfo{}, apierrors.NewBadRequest(fmt.Sprintf("invalid service account user name %q", name))
		}
		checks = append(checks, authz.Attributes{Verb: "impersonate", ResourceRequest: true, Resource: "serviceaccounts", Namespace: ns, Name: sa})
		out.Groups = append(out.Groups, authz.ServiceAccountsGroup, authz.ServiceAccountsGroup+":"+ns)
	} else {
		checks = append(checks, authz.Attributes{Verb: "impersonate", ResourceRequest: true, Resource: "users", Name: name})
	}
	for _, g := range h.Values(impersonateGroup) {
		checks = append(checks, authz.Attributes{Verb: "impersonate", ResourceRequest: true, Resource: "groups", Name: g})
		if !slices.Contains(out.Groups, g) {
			out.Groups = append(out.Groups, g)
		}
	}
	if uid := h.Get(impersonateUID); uid != "" {
		checks = append(checks, authz.Attributes{Verb: "impersonate", ResourceRequest: true, APIGroup: "authentication.k8s.io", Resource: "uids", Name: uid})
		out.UID = uid
	}
	for k, vs := range h {
		if key, ok := strings.CutPrefix(k, impersonateExtraPrefix); ok {
			key = strings.ToLower(key)
			if unescaped, err := url.PathUnescape(key); err == nil {
				key = unescaped
			}
			for _, v := range vs {
				checks = append(checks, authz.Attributes{Verb: "impersonate", ResourceRequest: true, APIGroup: "authentication.k8s.io",
					Resource: "userextras", Subresource: key, Name: v})
				if out.Extra == nil {
					out.Extra = map[string][]string{}
				}
				out.Extra[key] = append(out.Extra[key], v)
			}
		}
	}
	for _, a := range checks {
		a.User = requester
		if err := s.authorizeAttributes(ctx, a); err != nil {
			return pki.UserInfo{}, err
		}
	}
	if name != "system:anonymous" {
		out = authz.WithAuthenticated(out)
	}
	return out, nil
}
