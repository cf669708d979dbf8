package authz

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/nanokube/nanokube/internal/pki"
)

// NodeUserPrefix starts the user name of a node: system:node:<node name>.
const NodeUserPrefix = "system:node:"

// NodeLeaseNamespace holds the nodes' heartbeat Leases.
const NodeLeaseNamespace = "kube-node-lease"

// NodeIdentity returns the node a user speaks for: isNode when the user is in the group
// system:nodes, name empty when its user name does not name a node, as Kubernetes' default
// node identifier decides.
func NodeIdentity(u pki.UserInfo) (name string, isNode bool) {
	inGroup := false
	for _, g := range u.Groups {
		if g == NodesGroup {
			inGroup = true
			break
		}
	}
	if !inGroup {
		return "", false
	}
	name, _ = strings.CutPrefix(u.Name, NodeUserPrefix)
	if name == u.Name {
		return "", true
	}
	return name, true
}

// Node is Kubernetes' Node authorizer (authorization mode "Node"). For a node it decides
// reads of secrets, config maps, persistent volume claims and volumes, and service account
// tokens by the pods bound to that node (Graph); Leases by the node's name; and everything
// else by the static node rules (NodeRules). What it does not allow it leaves to the next
// authorizer (NoOpinion, with the reason Kubernetes gives), so an administrator can still
// grant a node more through RBAC. Requests of other users get NoOpinion.
type Node struct {
	Graph *NodeGraph
	// Fresh, when set, waits briefly until Graph has applied the latest writes. A request the
	// graph would refuse is checked again after it, so that a kubelet reading a secret of a
	// pod it has just seen bound is not refused because the graph trails the watch cache.
	Fresh func(ctx context.Context)
	rules []rbacv1.PolicyRule
}

// NewNode returns the Node authorizer over g.
func NewNode(g *NodeGraph, fresh func(ctx context.Context)) *Node {
	return &Node{Graph: g, Fresh: fresh, rules: NodeRules()}
}

// Authorize implements Authorizer.
func (n *Node) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	node, isNode := NodeIdentity(a.User)
	if !isNode {
		return NoOpinion, "", nil
	}
	if node == "" {
		return NoOpinion, fmt.Sprintf("unknown node for user %q", a.User.Name), nil
	}
	if a.ResourceRequest {
		switch {
		case a.APIGroup == "" && a.Resource == "secrets":
			return n.readNamespaced(ctx, node, SecretKind, a)
		case a.APIGroup == "" && a.Resource == "configmaps":
			return n.readNamespaced(ctx, node, ConfigMapKind, a)
		case a.APIGroup == "" && a.Resource == "persistentvolumeclaims":
			if a.Subresource == "status" {
				return n.statusUpdate(ctx, node, a)
			}
			return n.get(ctx, node, a, func() bool { return n.Graph.HasPath(node, PersistentVolumeClaimKind, a.Namespace, a.Name) })
		case a.APIGroup == "" && a.Resource == "persistentvolumes":
			return n.get(ctx, node, a, func() bool { return n.Graph.HasPVPath(node, a.Name) })
		case a.APIGroup == "" && a.Resource == "serviceaccounts":
			return n.serviceAccount(ctx, node, a)
		case a.APIGroup == "coordination.k8s.io" && a.Resource == "leases":
			return n.lease(node, a)
		}
	}
	for i := range n.rules {
		if RuleAllows(a, &n.rules[i]) {
			return Allow, "", nil
		}
	}
	return NoOpinion, "", nil
}

// RulesFor implements RuleResolver: a node's static rules. The graph's grants are per
// object and not listed, so the answer is incomplete, as Kubernetes says of it too.
func (n *Node) RulesFor(_ context.Context, u pki.UserInfo, _ string) ([]rbacv1.PolicyRule, bool, error) {
	if name, isNode := NodeIdentity(u); !isNode || name == "" {
		return nil, false, nil
	}
	var out []rbacv1.PolicyRule
	for _, r := range n.rules {
		if !nodeGraphResource(r) {
			out = append(out, r)
		}
	}
	return out, true, nil
}

// nodeGraphResource reports a rule the graph, not the static rules, decides.
func nodeGraphResource(r rbacv1.PolicyRule) bool {
	for _, res := range r.Resources {
		switch res {
		case "secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes", "persistentvolumeclaims/status",
			"serviceaccounts/token":
			return true
		}
	}
	return false
}

// related asks has, and once more after the graph caught up if it said no.
func (n *Node) related(ctx context.Context, node string, has func() bool) (Decision, string, error) {
	if has() {
		return Allow, "", nil
	}
	if n.Fresh != nil {
		n.Fresh(ctx)
		if has() {
			return Allow, "", nil
		}
	}
	return NoOpinion, fmt.Sprintf("no relationship found between node '%s' and this object", node), nil
}

func (n *Node) readNamespaced(ctx context.Context, node string, kind ObjectKind, a Attributes) (Decision, string, error) {
	switch a.Verb {
	case "get", "list", "watch": // list and watch only of one object by name (metadata.name)
	default:
		return NoOpinion, "can only read resources of this type", nil
	}
	if a.Subresource != "" {
		return NoOpinion, "cannot read subresource", nil
	}
	if a.Namespace == "" {
		return NoOpinion, "can only read namespaced object of this type", nil
	}
	if a.Name == "" {
		return NoOpinion, "No Object name found", nil
	}
	return n.related(ctx, node, func() bool { return n.Graph.HasPath(node, kind, a.Namespace, a.Name) })
}

func (n *Node) get(ctx context.Context, node string, a Attributes, has func() bool) (Decision, string, error) {
	if a.Verb != "get" {
		return NoOpinion, "can only get individual resources of this type", nil
	}
	if a.Subresource != "" {
		return NoOpinion, "cannot get subresource", nil
	}
	if a.Name == "" {
		return NoOpinion, "No Object name found", nil
	}
	return n.related(ctx, node, has)
}

func (n *Node) statusUpdate(ctx context.Context, node string, a Attributes) (Decision, string, error) {
	switch a.Verb {
	case "update", "patch", "get":
	default:
		return NoOpinion, "can only get, update, or patch the status of this type", nil
	}
	if a.Name == "" {
		return NoOpinion, "No Object name found", nil
	}
	return n.related(ctx, node, func() bool { return n.Graph.HasPath(node, PersistentVolumeClaimKind, a.Namespace, a.Name) })
}

// serviceAccount allows creating a token for, and (a nanokube addition) reading, a service
// account that a pod bound to the node runs as.
func (n *Node) serviceAccount(ctx context.Context, node string, a Attributes) (Decision, string, error) {
	switch {
	case a.Subresource == "token" && a.Verb == "create" && a.Name != "":
	case a.Subresource == "" && a.Verb == "get" && a.Name != "":
	case a.Subresource == "token" || a.Verb == "create":
		if a.Verb != "create" || a.Name == "" {
			return NoOpinion, "can only create tokens for individual service accounts", nil
		}
		return NoOpinion, "can only create token subresource of serviceaccount", nil
	default:
		return NoOpinion, "can only get individual service accounts or create their tokens", nil
	}
	return n.related(ctx, node, func() bool { return n.Graph.HasPath(node, ServiceAccountKind, a.Namespace, a.Name) })
}

func (n *Node) lease(node string, a Attributes) (Decision, string, error) {
	switch a.Verb {
	case "get", "create", "update", "patch", "delete":
	default:
		return NoOpinion, "can only get, create, update, patch, or delete a node lease", nil
	}
	if a.Namespace != NodeLeaseNamespace {
		return NoOpinion, fmt.Sprintf("can only access leases in the %q system namespace", NodeLeaseNamespace), nil
	}
	if a.Verb != "create" && a.Name != node {
		return NoOpinion, "can only access node lease with the same name as the requesting node", nil
	}
	return Allow, "", nil
}

// Union asks each authorizer in turn; the first Allow or Deny decides, as kube-apiserver
// chains its --authorization-mode list. Reasons of NoOpinion answers are joined.
type Union []Authorizer

// Authorize implements Authorizer.
func (u Union) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	var reasons []string
	var errs []error
	for _, az := range u {
		d, reason, err := az.Authorize(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
		if d == Allow || d == Deny {
			return d, reason, err
		}
	}
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("%v", errs)
	}
	return NoOpinion, strings.Join(reasons, "\n"), err
}

// RulesFor implements RuleResolver: the union of what each authorizer can list.
func (u Union) RulesFor(ctx context.Context, user pki.UserInfo, ns string) ([]rbacv1.PolicyRule, bool, error) {
	var out []rbacv1.PolicyRule
	incomplete := false
	var firstErr error
	for _, az := range u {
		r, ok := az.(RuleResolver)
		if !ok {
			incomplete = true
			continue
		}
		rules, inc, err := r.RulesFor(ctx, user, ns)
		out = append(out, rules...)
		incomplete = incomplete || inc
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return out, incomplete, firstErr
}
