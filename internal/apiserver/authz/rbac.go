package authz

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/nanokube/nanokube/internal/pki"
)

// Objects are the RBAC objects the authorizer works from. They are shared with their
// source: never modified here.
type Objects struct {
	Roles               []*rbacv1.Role
	ClusterRoles        []*rbacv1.ClusterRole
	RoleBindings        []*rbacv1.RoleBinding
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
}

// Source supplies the RBAC objects. Version must change whenever any of them changes
// (cache revisions only grow, so their sum will do); Load is called only then.
type Source interface {
	Version() int64
	Load(ctx context.Context) (Objects, error)
}

// RBAC is the RBAC authorizer.
type RBAC struct {
	src  Source
	mu   sync.Mutex // serialises rebuilds
	snap atomic.Pointer[index]
}

// NewRBAC returns an RBAC authorizer over src.
func NewRBAC(src Source) *RBAC { return &RBAC{src: src} }

// index is one immutable view of the policy, keyed for the request path.
type index struct {
	version      int64
	roles        map[string]*rbacv1.Role // namespace/name
	clusterRoles map[string]*rbacv1.ClusterRole
	// cluster maps a subject key ("User:bob", "Group:devs") to the ClusterRoleBindings that
	// name it; namespaced does the same per namespace for RoleBindings.
	cluster    map[string][]grant
	namespaced map[string]map[string][]grant
}

// grant is one binding of one subject; id is unique per binding, to visit each once.
type grant struct {
	id      int
	kind    string // ClusterRoleBinding or RoleBinding
	name    string
	ns      string
	roleRef rbacv1.RoleRef
	subject rbacv1.Subject
	// reason is the allow reason, made once at build time to keep decisions allocation-light.
	reason string
}

func newGrant(g grant) grant {
	g.reason = "RBAC: allowed by " + g.String()
	return g
}

// subjectKey is the index key of a binding subject: service accounts are users named
// system:serviceaccount:<ns>:<name>, as the authenticator names them.
func subjectKey(s rbacv1.Subject, bindingNS string) (string, bool) {
	switch s.Kind {
	case rbacv1.UserKind:
		return "User:" + s.Name, true
	case rbacv1.GroupKind:
		return "Group:" + s.Name, true
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNS
		}
		return "User:" + ServiceAccountPrefix + ns + ":" + s.Name, true
	}
	return "", false
}

func (r *RBAC) current(ctx context.Context) (*index, error) {
	v := r.src.Version()
	if ix := r.snap.Load(); ix != nil && ix.version == v {
		return ix, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v = r.src.Version()
	if ix := r.snap.Load(); ix != nil && ix.version == v {
		return ix, nil
	}
	objs, err := r.src.Load(ctx)
	if err != nil {
		return nil, err
	}
	ix := buildIndex(v, objs)
	r.snap.Store(ix)
	return ix, nil
}

func buildIndex(version int64, o Objects) *index {
	ix := &index{version: version, roles: make(map[string]*rbacv1.Role, len(o.Roles)),
		clusterRoles: make(map[string]*rbacv1.ClusterRole, len(o.ClusterRoles)),
		cluster:      map[string][]grant{}, namespaced: map[string]map[string][]grant{}}
	for _, x := range o.Roles {
		ix.roles[x.Namespace+"/"+x.Name] = x
	}
	for _, x := range o.ClusterRoles {
		ix.clusterRoles[x.Name] = x
	}
	id := 0
	for _, b := range o.ClusterRoleBindings {
		id++
		for _, s := range b.Subjects {
			if k, ok := subjectKey(s, ""); ok {
				ix.cluster[k] = append(ix.cluster[k], newGrant(grant{id: id, kind: "ClusterRoleBinding", name: b.Name, roleRef: b.RoleRef, subject: s}))
			}
		}
	}
	for _, b := range o.RoleBindings {
		id++
		m := ix.namespaced[b.Namespace]
		if m == nil {
			m = map[string][]grant{}
			ix.namespaced[b.Namespace] = m
		}
		for _, s := range b.Subjects {
			if k, ok := subjectKey(s, b.Namespace); ok {
				m[k] = append(m[k], newGrant(grant{id: id, kind: "RoleBinding", name: b.Name, ns: b.Namespace, roleRef: b.RoleRef, subject: s}))
			}
		}
	}
	return ix
}

// rules returns the rules a role reference grants in namespace ns.
func (ix *index) rules(ref rbacv1.RoleRef, ns string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "ClusterRole":
		if cr := ix.clusterRoles[ref.Name]; cr != nil {
			return cr.Rules, nil
		}
		return nil, apierrors.NewNotFound(rbacv1.Resource("clusterrole"), ref.Name)
	case "Role":
		if r := ix.roles[ns+"/"+ref.Name]; r != nil {
			return r.Rules, nil
		}
		return nil, apierrors.NewNotFound(rbacv1.Resource("role"), ref.Name)
	}
	return nil, fmt.Errorf("unsupported role reference kind: %q", ref.Kind)
}

// visit calls fn with the rules of every binding of u that applies in namespace ns
// (ClusterRoleBindings first), each binding once, until fn returns false. Role resolution
// errors are passed with a nil rule list.
func (ix *index) visit(u pki.UserInfo, ns string, fn func(g *grant, rules []rbacv1.PolicyRule, err error) bool) {
	keys := make([]string, 0, 1+len(u.Groups))
	keys = append(keys, "User:"+u.Name)
	for _, g := range u.Groups {
		keys = append(keys, "Group:"+g)
	}
	var seen []int
	once := func(id int) bool {
		for _, s := range seen {
			if s == id {
				return false
			}
		}
		seen = append(seen, id)
		return true
	}
	scopes := []map[string][]grant{ix.cluster}
	if ns != "" {
		if m := ix.namespaced[ns]; m != nil {
			scopes = append(scopes, m)
		}
	}
	for _, scope := range scopes {
		for _, k := range keys {
			for i := range scope[k] {
				g := &scope[k][i]
				if !once(g.id) {
					continue
				}
				rules, err := ix.rules(g.roleRef, g.ns)
				if !fn(g, rules, err) {
					return
				}
			}
		}
	}
}

func (g *grant) String() string {
	name := g.name
	if g.kind == "RoleBinding" {
		name = g.name + "/" + g.ns
	}
	subject := fmt.Sprintf("%s %q", g.subject.Kind, g.subject.Name)
	if g.subject.Kind == rbacv1.ServiceAccountKind {
		ns := g.subject.Namespace
		if ns == "" {
			ns = g.ns
		}
		subject = fmt.Sprintf("%s %q", g.subject.Kind, g.subject.Name+"/"+ns)
	}
	return fmt.Sprintf("%s %q of %s %q to %s", g.kind, name, g.roleRef.Kind, g.roleRef.Name, subject)
}

// Authorize implements Authorizer: Allow when a rule of a binding of the user allows a,
// otherwise NoOpinion with the role resolution errors as the reason.
func (r *RBAC) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	ix, err := r.current(ctx)
	if err != nil {
		return NoOpinion, "", err
	}
	var allowedBy *grant
	var errs []error
	ix.visit(a.User, a.Namespace, func(g *grant, rules []rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err)
			return true
		}
		for i := range rules {
			if RuleAllows(a, &rules[i]) {
				allowedBy = g
				return false
			}
		}
		return true
	})
	if allowedBy != nil {
		return Allow, allowedBy.reason, nil
	}
	if len(errs) > 0 {
		return NoOpinion, fmt.Sprintf("RBAC: %v", utilerrors.NewAggregate(errs)), nil
	}
	return NoOpinion, "", nil
}

// RulesFor implements RuleResolver.
func (r *RBAC) RulesFor(ctx context.Context, u pki.UserInfo, ns string) ([]rbacv1.PolicyRule, bool, error) {
	ix, err := r.current(ctx)
	if err != nil {
		return nil, true, err
	}
	var out []rbacv1.PolicyRule
	var errs []error
	ix.visit(u, ns, func(_ *grant, rules []rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, rules...)
		return true
	})
	return out, len(errs) > 0, utilerrors.NewAggregate(errs)
}

// RoleRefRules returns the rules a binding in namespace ns to ref would grant.
func (r *RBAC) RoleRefRules(ctx context.Context, ref rbacv1.RoleRef, ns string) ([]rbacv1.PolicyRule, error) {
	ix, err := r.current(ctx)
	if err != nil {
		return nil, err
	}
	return ix.rules(ref, ns)
}
