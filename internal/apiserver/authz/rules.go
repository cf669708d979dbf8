package authz

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// RuleAllows reports whether rule grants the request a, with Kubernetes' matching: "*"
// matches any verb, group, resource or URL; "*/scale" matches the scale subresource of any
// resource; resourceNames, when set, must hold the request's name; a non-resource URL
// ending in "*" matches every path under its prefix.
func RuleAllows(a Attributes, rule *rbacv1.PolicyRule) bool {
	if !verbMatches(rule, a.Verb) {
		return false
	}
	if !a.ResourceRequest {
		return nonResourceURLMatches(rule, a.Path)
	}
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	return apiGroupMatches(rule, a.APIGroup) && resourceMatches(rule, resource, a.Subresource) && resourceNameMatches(rule, a.Name)
}

func verbMatches(rule *rbacv1.PolicyRule, verb string) bool {
	for _, v := range rule.Verbs {
		if v == rbacv1.VerbAll || v == verb {
			return true
		}
	}
	return false
}

func apiGroupMatches(rule *rbacv1.PolicyRule, group string) bool {
	for _, g := range rule.APIGroups {
		if g == rbacv1.APIGroupAll || g == group {
			return true
		}
	}
	return false
}

func resourceMatches(rule *rbacv1.PolicyRule, combined, subresource string) bool {
	for _, r := range rule.Resources {
		switch {
		case r == rbacv1.ResourceAll, r == combined:
			return true
		case subresource != "" && strings.HasPrefix(r, "*/") && r[2:] == subresource:
			return true
		}
	}
	return false
}

func resourceNameMatches(rule *rbacv1.PolicyRule, name string) bool {
	if len(rule.ResourceNames) == 0 {
		return true
	}
	return slices.Contains(rule.ResourceNames, name)
}

func nonResourceURLMatches(rule *rbacv1.PolicyRule, path string) bool {
	for _, u := range rule.NonResourceURLs {
		switch {
		case u == rbacv1.NonResourceAll, u == path:
			return true
		case strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimRight(u, "*")):
			return true
		}
	}
	return false
}

// fullAuthority is what cluster-admin holds.
func fullAuthority() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
		{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}},
	}
}

// FullAuthority returns cluster-admin's rules: creating an aggregated ClusterRole needs them.
func FullAuthority() []rbacv1.PolicyRule { return fullAuthority() }

// Covers reports whether owner holds every permission of servant, and the missing
// permissions broken down to one verb, group, resource (and name) each.
func Covers(owner, servant []rbacv1.PolicyRule) (bool, []rbacv1.PolicyRule) {
	var missing []rbacv1.PolicyRule
	for _, s := range servant {
		for _, atom := range breakdown(s) {
			covered := false
			for i := range owner {
				if ruleCovers(&owner[i], &atom) {
					covered = true
					break
				}
			}
			if !covered {
				missing = append(missing, atom)
			}
		}
	}
	return len(missing) == 0, missing
}

// breakdown splits a rule into rules of one verb, group, resource and name each.
func breakdown(r rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, g := range r.APIGroups {
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				if len(r.ResourceNames) == 0 {
					out = append(out, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, Verbs: []string{v}})
					continue
				}
				for _, n := range r.ResourceNames {
					out = append(out, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, ResourceNames: []string{n}, Verbs: []string{v}})
				}
			}
		}
	}
	for _, u := range r.NonResourceURLs {
		for _, v := range r.Verbs {
			out = append(out, rbacv1.PolicyRule{NonResourceURLs: []string{u}, Verbs: []string{v}})
		}
	}
	return out
}

func ruleCovers(owner, servant *rbacv1.PolicyRule) bool {
	return coversAll(owner.Verbs, servant.Verbs, rbacv1.VerbAll) &&
		coversAll(owner.APIGroups, servant.APIGroups, rbacv1.APIGroupAll) &&
		resourcesCover(owner.Resources, servant.Resources) &&
		nonResourceURLsCover(owner.NonResourceURLs, servant.NonResourceURLs) &&
		namesCover(owner.ResourceNames, servant.ResourceNames)
}

func coversAll(owner, servant []string, star string) bool {
	if slices.Contains(owner, star) {
		return true
	}
	for _, s := range servant {
		if !slices.Contains(owner, s) {
			return false
		}
	}
	return true
}

func resourcesCover(owner, servant []string) bool {
	if slices.Contains(owner, rbacv1.ResourceAll) {
		return true
	}
	for _, s := range servant {
		if slices.Contains(owner, s) {
			continue
		}
		// "*/scale" in owner covers "deployments/scale".
		if i := strings.Index(s, "/"); i >= 0 && slices.Contains(owner, "*"+s[i:]) {
			continue
		}
		return false
	}
	return true
}

func nonResourceURLsCover(owner, servant []string) bool {
	for _, s := range servant {
		ok := false
		for _, o := range owner {
			if o == s || o == "*" || (strings.HasSuffix(o, "*") && strings.HasPrefix(s, strings.TrimRight(o, "*"))) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func namesCover(owner, servant []string) bool {
	if len(owner) == 0 {
		return true
	}
	if len(servant) == 0 {
		return false
	}
	for _, s := range servant {
		if !slices.Contains(owner, s) {
			return false
		}
	}
	return true
}

// CompactRules merges rules that differ only in their verbs (one group, one resource, no
// names), as kube-apiserver does before listing missing permissions.
func CompactRules(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	type key struct{ group, resource string }
	merged := map[key]int{}
	var out []rbacv1.PolicyRule
	for _, r := range rules {
		simple := len(r.APIGroups) == 1 && len(r.Resources) == 1 && len(r.ResourceNames) == 0 && len(r.NonResourceURLs) == 0
		if !simple {
			out = append(out, *r.DeepCopy())
			continue
		}
		k := key{r.APIGroups[0], r.Resources[0]}
		if i, ok := merged[k]; ok {
			for _, v := range r.Verbs {
				if !slices.Contains(out[i].Verbs, v) {
					out[i].Verbs = append(out[i].Verbs, v)
				}
			}
			continue
		}
		merged[k] = len(out)
		out = append(out, *r.DeepCopy())
	}
	return out
}

// CompactString is kube-apiserver's short form of a rule in escalation messages:
// {APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}.
func CompactString(r rbacv1.PolicyRule) string {
	var parts []string
	add := func(name string, v []string) {
		if len(v) > 0 {
			parts = append(parts, fmt.Sprintf("%s:%q", name, v))
		}
	}
	add("APIGroups", r.APIGroups)
	add("Resources", r.Resources)
	add("NonResourceURLs", r.NonResourceURLs)
	add("ResourceNames", r.ResourceNames)
	add("Verbs", r.Verbs)
	return "{" + strings.Join(parts, ", ") + "}"
}

// EscalationError is kube-apiserver's message for a user who grants what they do not hold.
func EscalationError(userName string, groups []string, missing []rbacv1.PolicyRule, resolutionErr error) error {
	descs := map[string]bool{}
	for _, m := range CompactRules(missing) {
		descs[CompactString(m)] = true
	}
	list := make([]string, 0, len(descs))
	for d := range descs {
		list = append(list, d)
	}
	sort.Strings(list)
	if groups == nil {
		groups = []string{}
	}
	msg := fmt.Sprintf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s", userName, groups, strings.Join(list, "\n"))
	if resolutionErr != nil {
		msg += fmt.Sprintf("; resolution errors: %v", []error{resolutionErr})
	}
	return fmt.Errorf("%s", msg)
}
