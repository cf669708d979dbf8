package apiserver

import (
	"context"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/authz"
	"github.com/nanokube/nanokube/internal/pki"
)

// The review APIs (authorization.k8s.io SubjectAccessReviews and rules reviews,
// authentication.k8s.io SelfSubjectReview) are create-only and never stored: each answer is
// computed from the request and the authorizer, as in kube-apiserver.

const (
	authorizationPrefix  = "/apis/authorization.k8s.io/v1/"
	authenticationPrefix = "/apis/authentication.k8s.io/v1/"
)

// reviewGroupVersions lists the review resources for discovery.
func reviewGroupVersions() []extraGroupVersion {
	create := []string{"create"}
	return []extraGroupVersion{
		{gv: authorizationv1.SchemeGroupVersion, resources: []metav1.APIResource{
			{Name: "localsubjectaccessreviews", SingularName: "localsubjectaccessreview", Namespaced: true, Kind: "LocalSubjectAccessReview", Verbs: create},
			{Name: "selfsubjectaccessreviews", SingularName: "selfsubjectaccessreview", Kind: "SelfSubjectAccessReview", Verbs: create},
			{Name: "selfsubjectrulesreviews", SingularName: "selfsubjectrulesreview", Kind: "SelfSubjectRulesReview", Verbs: create},
			{Name: "subjectaccessreviews", SingularName: "subjectaccessreview", Kind: "SubjectAccessReview", Verbs: create},
		}},
		{gv: authenticationv1.SchemeGroupVersion, resources: []metav1.APIResource{
			{Name: "selfsubjectreviews", SingularName: "selfsubjectreview", Kind: "SelfSubjectReview", Verbs: create},
			{Name: "tokenreviews", SingularName: "tokenreview", Kind: "TokenReview", Verbs: create},
		}},
	}
}

// serveReview answers POSTs of the review kinds; anything else under these group-versions
// goes to the generic handler (discovery, or resources registered there).
func (s *Server) serveReview(w http.ResponseWriter, r *http.Request) {
	req, ok := parseRequest(r)
	kind := ""
	if ok && req.name == "" && req.subresource == "" {
		switch req.gv.WithResource(req.resource) {
		case authorizationv1.SchemeGroupVersion.WithResource("selfsubjectaccessreviews"):
			kind = "SelfSubjectAccessReview"
		case authorizationv1.SchemeGroupVersion.WithResource("subjectaccessreviews"):
			kind = "SubjectAccessReview"
		case authorizationv1.SchemeGroupVersion.WithResource("localsubjectaccessreviews"):
			kind = "LocalSubjectAccessReview"
		case authorizationv1.SchemeGroupVersion.WithResource("selfsubjectrulesreviews"):
			kind = "SelfSubjectRulesReview"
		case authenticationv1.SchemeGroupVersion.WithResource("selfsubjectreviews"):
			kind = "SelfSubjectReview"
		case authenticationv1.SchemeGroupVersion.WithResource("tokenreviews"):
			kind = "TokenReview"
		}
	}
	if kind == "" {
		s.serveResource(w, r)
		return
	}
	namespaced := kind == "LocalSubjectAccessReview"
	gr := schema.GroupResource{Group: req.gv.Group, Resource: req.resource}
	if namespaced != (req.namespace != "") {
		s.codecs.writeError(w, r, notFoundPath(), schema.GroupResource{}, "")
		return
	}
	setRequestInfo(r, req)
	if req.verb != "create" {
		s.codecs.writeError(w, r, apierrors.NewMethodNotSupported(gr, req.verb), gr, "")
		return
	}
	out, err := s.codecs.negotiate(r.Header.Get("Accept"))
	if err != nil {
		s.codecs.writeError(w, r, err, gr, "")
		return
	}
	data, err := readBody(r)
	if err != nil {
		s.codecs.writeError(w, r, err, gr, "")
		return
	}
	obj, err := s.decodeObject(w, r, data, req.gv.WithKind(kind))
	if err != nil {
		s.codecs.writeError(w, r, err, gr, "")
		return
	}
	user, _ := userFromContext(r.Context())
	result, err := s.review(r.Context(), user, req.namespace, obj)
	if err != nil {
		s.codecs.writeError(w, r, err, gr, "")
		return
	}
	writeObject(w, out, http.StatusCreated, result)
}

// review computes the status of one review object.
func (s *Server) review(ctx context.Context, requester pki.UserInfo, namespace string, obj runtime.Object) (runtime.Object, error) {
	switch o := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		if err := validateAccessSpec("SelfSubjectAccessReview", o.Name, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes, false); err != nil {
			return nil, err
		}
		o.Status = s.accessStatus(ctx, requester, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes)
		o.TypeMeta = metav1.TypeMeta{Kind: "SelfSubjectAccessReview", APIVersion: authorizationv1.SchemeGroupVersion.String()}
		return o, nil
	case *authorizationv1.SubjectAccessReview:
		if err := validateAccessSpec("SubjectAccessReview", o.Name, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes, false); err != nil {
			return nil, err
		}
		if o.Spec.User == "" && len(o.Spec.Groups) == 0 {
			return nil, apierrors.NewInvalid(authorizationv1.SchemeGroupVersion.WithKind("SubjectAccessReview").GroupKind(), o.Name,
				field.ErrorList{field.Invalid(field.NewPath("spec", "user"), o.Spec.User, "at least one of user or group must be specified")})
		}
		o.Status = s.accessStatus(ctx, pki.UserInfo{Name: o.Spec.User, UID: o.Spec.UID, Groups: o.Spec.Groups}, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes)
		o.TypeMeta = metav1.TypeMeta{Kind: "SubjectAccessReview", APIVersion: authorizationv1.SchemeGroupVersion.String()}
		return o, nil
	case *authorizationv1.LocalSubjectAccessReview:
		if err := validateAccessSpec("LocalSubjectAccessReview", o.Name, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes, true); err != nil {
			return nil, err
		}
		if o.Spec.User == "" && len(o.Spec.Groups) == 0 {
			return nil, apierrors.NewInvalid(authorizationv1.SchemeGroupVersion.WithKind("LocalSubjectAccessReview").GroupKind(), o.Name,
				field.ErrorList{field.Invalid(field.NewPath("spec", "user"), o.Spec.User, "at least one of user or group must be specified")})
		}
		if o.Namespace != "" && o.Namespace != namespace {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		o.Namespace = namespace
		if o.Spec.ResourceAttributes.Namespace != namespace {
			return nil, apierrors.NewBadRequest("spec.resourceAttributes.namespace must match namespace: " + namespace)
		}
		o.Status = s.accessStatus(ctx, pki.UserInfo{Name: o.Spec.User, UID: o.Spec.UID, Groups: o.Spec.Groups}, o.Spec.ResourceAttributes, nil)
		o.TypeMeta = metav1.TypeMeta{Kind: "LocalSubjectAccessReview", APIVersion: authorizationv1.SchemeGroupVersion.String()}
		return o, nil
	case *authorizationv1.SelfSubjectRulesReview:
		if o.Spec.Namespace == "" {
			return nil, apierrors.NewInvalid(authorizationv1.SchemeGroupVersion.WithKind("SelfSubjectRulesReview").GroupKind(), o.Name,
				field.ErrorList{field.Required(field.NewPath("spec", "namespace"), "")})
		}
		rules, incomplete, err := s.rulesFor(ctx, requester, o.Spec.Namespace)
		o.Status = rulesStatus(rules, incomplete, err)
		o.TypeMeta = metav1.TypeMeta{Kind: "SelfSubjectRulesReview", APIVersion: authorizationv1.SchemeGroupVersion.String()}
		return o, nil
	case *authenticationv1.TokenReview:
		return s.tokenReview(ctx, o)
	case *authenticationv1.SelfSubjectReview:
		o.Status.UserInfo = authenticationv1.UserInfo{Username: requester.Name, UID: requester.UID, Groups: requester.Groups}
		if len(requester.Extra) > 0 {
			o.Status.UserInfo.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range requester.Extra {
				o.Status.UserInfo.Extra[k] = v
			}
		}
		o.TypeMeta = metav1.TypeMeta{Kind: "SelfSubjectReview", APIVersion: authenticationv1.SchemeGroupVersion.String()}
		return o, nil
	}
	return nil, apierrors.NewBadRequest("not a review object")
}

// validateAccessSpec is Kubernetes' check that exactly one kind of attributes is given
// (local reviews take resource attributes only).
func validateAccessSpec(kind, name string, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes, local bool) error {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	switch {
	case local && nonRes != nil:
		errs = append(errs, field.Invalid(sp.Child("nonResourceAttributes"), nonRes, "disallowed on this kind of request"))
	case res == nil && nonRes == nil:
		errs = append(errs, field.Required(sp.Child("resourceAttributes"), "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
	case res != nil && nonRes != nil:
		errs = append(errs, field.Invalid(sp.Child("nonResourceAttributes"), nonRes, "cannot be specified in combination with resourceAttributes"))
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(authorizationv1.SchemeGroupVersion.WithKind(kind).GroupKind(), name, errs)
}

// accessStatus asks the authorizer about one set of attributes.
func (s *Server) accessStatus(ctx context.Context, u pki.UserInfo, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) authorizationv1.SubjectAccessReviewStatus {
	a := authz.Attributes{User: u}
	if res != nil {
		a.ResourceRequest = true
		a.Verb, a.APIGroup, a.APIVersion, a.Resource = res.Verb, res.Group, res.Version, res.Resource
		a.Subresource, a.Namespace, a.Name = res.Subresource, res.Namespace, res.Name
	} else {
		a.Verb, a.Path = nonRes.Verb, nonRes.Path
	}
	d, reason, err := s.authorizer.Authorize(ctx, a)
	st := authorizationv1.SubjectAccessReviewStatus{Allowed: err == nil && d == authz.Allow, Denied: d == authz.Deny, Reason: reason}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}

// rulesStatus turns policy rules into a SelfSubjectRulesReview status.
func rulesStatus(rules []rbacv1.PolicyRule, incomplete bool, err error) authorizationv1.SubjectRulesReviewStatus {
	st := authorizationv1.SubjectRulesReviewStatus{Incomplete: incomplete,
		ResourceRules: []authorizationv1.ResourceRule{}, NonResourceRules: []authorizationv1.NonResourceRule{}}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			st.NonResourceRules = append(st.NonResourceRules, authorizationv1.NonResourceRule{Verbs: r.Verbs, NonResourceURLs: r.NonResourceURLs})
			continue
		}
		st.ResourceRules = append(st.ResourceRules, authorizationv1.ResourceRule{Verbs: r.Verbs, APIGroups: r.APIGroups,
			Resources: r.Resources, ResourceNames: r.ResourceNames})
	}
	return st
}
