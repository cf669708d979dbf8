// Package audit decides what kube-apiserver's audit log records (an audit.k8s.io/v1 Policy
// file) and writes the events (JSON lines of audit.k8s.io/v1 Event) to a file or stdout.
//
// The API server's audit middleware asks Policy.Evaluate for the level of each request and
// builds the events; this package has no HTTP of its own. Policy is immutable once loaded
// and safe for concurrent use; so is Log.
package audit

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/yaml"
)

// Policy is a loaded audit policy.
type Policy struct {
	p auditv1.Policy
}

// Attributes are what a policy rule matches a request on.
type Attributes struct {
	User   string
	Groups []string
	Verb   string // get list watch create ... for resource requests; the lower-case method otherwise
	// ResourceRequest is false for non-resource paths (/healthz, /api, /version, ...).
	ResourceRequest bool
	APIGroup        string
	Resource        string
	Subresource     string
	Namespace       string
	Name            string
	Path            string
}

// Decision is what the policy says about one request.
type Decision struct {
	Level auditv1.Level
	// OmitStages are the stages not to record (policy's and rule's).
	OmitStages []auditv1.Stage
	// OmitManagedFields drops metadata.managedFields from request and response objects.
	OmitManagedFields bool
}

// Omits reports whether events of stage are left out.
func (d Decision) Omits(stage auditv1.Stage) bool { return slices.Contains(d.OmitStages, stage) }

// LoadPolicyFile reads and validates a Policy file; errors name the file and the field.
func LoadPolicyFile(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit policy: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("audit policy %s: %w", path, err)
	}
	return p, nil
}

var validStages = []auditv1.Stage{auditv1.StageRequestReceived, auditv1.StageResponseStarted, auditv1.StageResponseComplete, auditv1.StagePanic}

// ParsePolicy validates a Policy document (YAML or JSON).
func ParsePolicy(data []byte) (*Policy, error) {
	var p auditv1.Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, err
	}
	if p.Kind != "Policy" {
		return nil, fmt.Errorf("kind: %q, want Policy", p.Kind)
	}
	if p.APIVersion != auditv1.SchemeGroupVersion.String() {
		return nil, fmt.Errorf("apiVersion: %q, want %s", p.APIVersion, auditv1.SchemeGroupVersion)
	}
	var errs []error
	errs = append(errs, validateStages("omitStages", p.OmitStages)...)
	if len(p.Rules) == 0 {
		errs = append(errs, errors.New("rules: a policy needs at least one rule"))
	}
	for i, r := range p.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		switch r.Level {
		case auditv1.LevelNone, auditv1.LevelMetadata, auditv1.LevelRequest, auditv1.LevelRequestResponse:
		default:
			errs = append(errs, fmt.Errorf("%s.level: %q, want None, Metadata, Request or RequestResponse", f, r.Level))
		}
		errs = append(errs, validateStages(f+".omitStages", r.OmitStages)...)
		if len(r.NonResourceURLs) > 0 && (len(r.Resources) > 0 || len(r.Namespaces) > 0) {
			errs = append(errs, fmt.Errorf("%s: nonResourceURLs cannot be combined with resources or namespaces", f))
		}
		for j, u := range r.NonResourceURLs {
			if u != "*" && (!strings.HasPrefix(u, "/") || strings.Contains(strings.TrimSuffix(u, "*"), "*")) {
				errs = append(errs, fmt.Errorf("%s.nonResourceURLs[%d]: %q must start with / and may only end in *", f, j, u))
			}
		}
		for j, gr := range r.Resources {
			for k, res := range gr.Resources {
				if res == "" || strings.Count(res, "/") > 1 {
					errs = append(errs, fmt.Errorf("%s.resources[%d].resources[%d]: %q is not a resource (pods, pods/log, */log, pods/*, *)", f, j, k, res))
				}
			}
			if len(gr.ResourceNames) > 0 && len(gr.Resources) == 0 {
				errs = append(errs, fmt.Errorf("%s.resources[%d].resourceNames: needs resources", f, j))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Policy{p: p}, nil
}

func validateStages(field string, stages []auditv1.Stage) []error {
	var errs []error
	for i, s := range stages {
		if !slices.Contains(validStages, s) {
			errs = append(errs, fmt.Errorf("%s[%d]: %q, want RequestReceived, ResponseStarted, ResponseComplete or Panic", field, i, s))
		}
	}
	return errs
}

// Evaluate returns the decision of the first rule that matches a; None when no rule does.
func (p *Policy) Evaluate(a Attributes) Decision {
	for _, r := range p.p.Rules {
		if !ruleMatches(&r, a) {
			continue
		}
		d := Decision{Level: r.Level, OmitManagedFields: p.p.OmitManagedFields}
		if r.OmitManagedFields != nil {
			d.OmitManagedFields = *r.OmitManagedFields
		}
		d.OmitStages = append(append(d.OmitStages, p.p.OmitStages...), r.OmitStages...)
		return d
	}
	return Decision{Level: auditv1.LevelNone}
}

func ruleMatches(r *auditv1.PolicyRule, a Attributes) bool {
	if len(r.Users) > 0 && !slices.Contains(r.Users, a.User) {
		return false
	}
	if len(r.UserGroups) > 0 && !slices.ContainsFunc(a.Groups, func(g string) bool { return slices.Contains(r.UserGroups, g) }) {
		return false
	}
	if len(r.Verbs) > 0 && !slices.Contains(r.Verbs, a.Verb) {
		return false
	}
	if a.ResourceRequest {
		if len(r.NonResourceURLs) > 0 {
			return false
		}
		if len(r.Namespaces) > 0 && !slices.Contains(r.Namespaces, a.Namespace) {
			return false
		}
		return len(r.Resources) == 0 || resourceMatches(r.Resources, a)
	}
	if len(r.Namespaces) > 0 || len(r.Resources) > 0 {
		return false
	}
	return len(r.NonResourceURLs) == 0 || slices.ContainsFunc(r.NonResourceURLs, func(u string) bool {
		if prefix, ok := strings.CutSuffix(u, "*"); ok {
			return strings.HasPrefix(a.Path, prefix)
		}
		return u == a.Path
	})
}

// resourceMatches follows kube-apiserver: "pods" matches the resource only, "pods/log" one
// subresource, "*/log" that subresource of every resource, "pods/*" the resource and all
// its subresources, "*" everything in the group.
func resourceMatches(grs []auditv1.GroupResources, a Attributes) bool {
	combined := a.Resource
	if a.Subresource != "" {
		combined += "/" + a.Subresource
	}
	for _, gr := range grs {
		if gr.Group != a.APIGroup {
			continue
		}
		if len(gr.Resources) == 0 {
			return true
		}
		if len(gr.ResourceNames) > 0 && !slices.Contains(gr.ResourceNames, a.Name) {
			continue
		}
		for _, res := range gr.Resources {
			switch {
			case res == combined || res == "*":
				return true
			case a.Subresource != "" && res == "*/"+a.Subresource:
				return true
			case strings.HasSuffix(res, "/*") && a.Resource == strings.TrimSuffix(res, "/*"):
				return true
			}
		}
	}
	return false
}

// Ordinal orders levels: None < Metadata < Request < RequestResponse.
func Ordinal(l auditv1.Level) int {
	switch l {
	case auditv1.LevelMetadata:
		return 1
	case auditv1.LevelRequest:
		return 2
	case auditv1.LevelRequestResponse:
		return 3
	}
	return 0
}
