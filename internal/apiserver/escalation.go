package apiserver

import (
	"context"
	"errors"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nanokube/nanokube/internal/apiserver/authz"
	"github.com/nanokube/nanokube/internal/pki"
)

// checkEscalation is kube-apiserver's RBAC escalation prevention for writes of roles and
// bindings: a user may only grant permissions they hold, unless they have the escalate verb
// on the role (for roles) or the bind verb on the referenced role (for bindings). old is
// nil on create. Writes without a user (the API server's own) and members of
// system:masters are never checked.
func (s *Server) checkEscalation(ctx context.Context, obj, old runtime.Object) error {
	u, ok := userFromContext(ctx)
	if !ok || slices.Contains(u.Groups, authz.MastersGroup) {
		return nil
	}
	switch o := obj.(type) {
	case *rbacv1.Role:
		if prev, ok := old.(*rbacv1.Role); ok && apiequality.Semantic.DeepEqual(prev.Rules, o.Rules) {
			return nil // metadata-only edits grant nothing new
		}
		return s.checkRoleRules(ctx, u, "roles", o.Namespace, o.Name, o.Rules)
	case *rbacv1.ClusterRole:
		prev, _ := old.(*rbacv1.ClusterRole)
		if prev == nil || !apiequality.Semantic.DeepEqual(prev.Rules, o.Rules) {
			if err := s.checkRoleRules(ctx, u, "clusterroles", "", o.Name, o.Rules); err != nil {
				return err
			}
		}
		// An aggregation rule can gather any permission: setting or changing one takes all.
		if o.AggregationRule != nil && len(o.AggregationRule.ClusterRoleSelectors) > 0 &&
			(prev == nil || !apiequality.Semantic.DeepEqual(prev.AggregationRule, o.AggregationRule)) {
			if s.escalateAllowed(ctx, u, "clusterroles", "", o.Name) {
				return nil
			}
			owner, _, _ := s.rulesFor(ctx, u, "")
			if ok, _ := authz.Covers(owner, authz.FullAuthority()); !ok {
				return apierrors.NewForbidden(rbacv1.Resource("clusterroles"), o.Name, errors.New("must have cluster-admin privileges to use the aggregationRule"))
			}
		}
		return nil
	case *rbacv1.RoleBinding:
		if prev, ok := old.(*rbacv1.RoleBinding); ok && prev.RoleRef == o.RoleRef && apiequality.Semantic.DeepEqual(prev.Subjects, o.Subjects) {
			return nil
		}
		return s.checkBinding(ctx, u, "rolebindings", o.Namespace, o.Name, o.RoleRef)
	case *rbacv1.ClusterRoleBinding:
		if prev, ok := old.(*rbacv1.ClusterRoleBinding); ok && prev.RoleRef == o.RoleRef && apiequality.Semantic.DeepEqual(prev.Subjects, o.Subjects) {
			return nil
		}
		return s.checkBinding(ctx, u, "clusterrolebindings", "", o.Name, o.RoleRef)
	}
	return nil
}

func (s *Server) escalateAllowed(ctx context.Context, u pki.UserInfo, resource, ns, name string) bool {
	return authz.Allowed(ctx, s.authorizer, authz.Attributes{User: u, Verb: "escalate", ResourceRequest: true,
		APIGroup: rbacv1.GroupName, Resource: resource, Namespace: ns, Name: name})
}

func (s *Server) rulesFor(ctx context.Context, u pki.UserInfo, ns string) ([]rbacv1.PolicyRule, bool, error) {
	if rr, ok := s.authorizer.(authz.RuleResolver); ok {
		return rr.RulesFor(ctx, u, ns)
	}
	return nil, true, nil
}

func (s *Server) checkRoleRules(ctx context.Context, u pki.UserInfo, resource, ns, name string, rules []rbacv1.PolicyRule) error {
	if s.escalateAllowed(ctx, u, resource, ns, name) {
		return nil
	}
	return s.confirmNoEscalation(ctx, u, resource, ns, name, rules)
}

func (s *Server) confirmNoEscalation(ctx context.Context, u pki.UserInfo, resource, ns, name string, rules []rbacv1.PolicyRule) error {
	owner, _, resErr := s.rulesFor(ctx, u, ns)
	if ok, missing := authz.Covers(owner, rules); !ok {
		return apierrors.NewForbidden(rbacv1.Resource(resource), name, authz.EscalationError(u.Name, u.Groups, missing, resErr))
	}
	return nil
}

func (s *Server) checkBinding(ctx context.Context, u pki.UserInfo, resource, ns, name string, ref rbacv1.RoleRef) error {
	bind := authz.Attributes{User: u, Verb: "bind", ResourceRequest: true, APIGroup: ref.APIGroup, Namespace: ns, Name: ref.Name}
	switch ref.Kind {
	case "ClusterRole":
		bind.Resource = "clusterroles"
	case "Role":
		bind.Resource = "roles"
	}
	if bind.Resource != "" && authz.Allowed(ctx, s.authorizer, bind) {
		return nil
	}
	if s.rbac == nil {
		return apierrors.NewForbidden(rbacv1.Resource(resource), name, errors.New("the authorizer cannot resolve role references"))
	}
	rules, err := s.rbac.RoleRefRules(ctx, ref, ns)
	if err != nil {
		return err
	}
	return s.confirmNoEscalation(ctx, u, resource, ns, name, rules)
}
