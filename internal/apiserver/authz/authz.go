package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/pki"
)

// Well-known groups and users.
const (
	MastersGroup         = "system:masters"
	AuthenticatedGroup   = "system:authenticated"
	UnauthenticatedGroup = "system:unauthenticated"
	NodesGroup           = "system:nodes"
	BootstrappersGroup   = "system:bootstrappers"
	ServiceAccountPrefix = "system:serviceaccount:"
	ServiceAccountsGroup = "system:serviceaccounts"
)

// Attributes describe one request to authorize, as kube-apiserver's RequestInfo does.
type Attributes struct {
	User pki.UserInfo
	// Verb is get, list, watch, create, update, patch, delete, deletecollection (resource
	// requests), a lower-case HTTP method (non-resource requests), or a special verb such as
	// impersonate, bind or escalate.
	Verb            string
	ResourceRequest bool
	APIGroup        string
	APIVersion      string
	Resource        string
	Subresource     string
	Namespace       string
	Name            string
	// Path is the URL path of a non-resource request.
	Path string
}

// Decision is an authorizer's answer.
type Decision int

const (
	// NoOpinion lets the next authorizer decide; at the end of the chain it denies.
	NoOpinion Decision = iota
	Allow
	Deny
)

// Authorizer decides whether a request is allowed. reason explains the decision (for
// SubjectAccessReview status and forbidden messages); err reports a failure to evaluate,
// which never allows a request.
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (Decision, string, error)
}

// RuleResolver lists what a user may do in a namespace, for SelfSubjectRulesReview and the
// escalation checks. Errors are non-fatal: rules holds what could be resolved.
type RuleResolver interface {
	RulesFor(ctx context.Context, user pki.UserInfo, namespace string) (rules []rbacv1.PolicyRule, incomplete bool, err error)
}

// AlwaysAllow allows every request.
type AlwaysAllow struct{}

// Authorize implements Authorizer.
func (AlwaysAllow) Authorize(context.Context, Attributes) (Decision, string, error) {
	return Allow, "", nil
}

// RulesFor implements RuleResolver: everything.
func (AlwaysAllow) RulesFor(context.Context, pki.UserInfo, string) ([]rbacv1.PolicyRule, bool, error) {
	return fullAuthority(), false, nil
}

// Privileged allows members of system:masters before asking Next, as kube-apiserver puts
// its privileged-group authorizer ahead of every configured mode.
type Privileged struct{ Next Authorizer }

// Authorize implements Authorizer.
func (p Privileged) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	if slices.Contains(a.User.Groups, MastersGroup) {
		return Allow, "", nil
	}
	return p.Next.Authorize(ctx, a)
}

// RulesFor implements RuleResolver by asking Next, when it can say.
func (p Privileged) RulesFor(ctx context.Context, u pki.UserInfo, ns string) ([]rbacv1.PolicyRule, bool, error) {
	if slices.Contains(u.Groups, MastersGroup) {
		return fullAuthority(), false, nil
	}
	if r, ok := p.Next.(RuleResolver); ok {
		return r.RulesFor(ctx, u, ns)
	}
	return nil, true, nil
}

// Allowed is true when the authorizer allows a; errors count as denials.
func Allowed(ctx context.Context, az Authorizer, a Attributes) bool {
	d, _, err := az.Authorize(ctx, a)
	return err == nil && d == Allow
}

// ForbiddenMessage is kube-apiserver's denial message for a.
func ForbiddenMessage(a Attributes) string {
	if !a.ResourceRequest {
		return fmt.Sprintf("User %q cannot %s path %q", a.User.Name, a.Verb, a.Path)
	}
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	if a.Namespace != "" {
		return fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", a.User.Name, a.Verb, resource, a.APIGroup, a.Namespace)
	}
	return fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", a.User.Name, a.Verb, resource, a.APIGroup)
}

// htmlSanitizer keeps error messages from looking like HTML, as kube-apiserver does.
var htmlSanitizer = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;")

// Forbidden is the 403 Status kube-apiserver answers a denied request with.
func Forbidden(a Attributes, reason string) *apierrors.StatusError {
	msg := htmlSanitizer.Replace(ForbiddenMessage(a))
	if reason != "" {
		msg += ": " + reason
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}, a.Name, errors.New(msg))
}

// WithAuthenticated returns u with the group system:authenticated, which every
// authenticated user carries in Kubernetes.
func WithAuthenticated(u pki.UserInfo) pki.UserInfo {
	if slices.Contains(u.Groups, AuthenticatedGroup) {
		return u
	}
	u.Groups = append(slices.Clone(u.Groups), AuthenticatedGroup)
	return u
}
