// Package certificates describes certificates.k8s.io/v1 certificatesigningrequests: the
// requests nodes (and users) make for certificates of the cluster CA. The API server fills
// in who asked (spec.username, groups, uid, extra); the approval subresource carries only
// the Approved and Denied conditions, the status subresource everything else (the issued
// certificate, Failed), as in Kubernetes.
package certificates

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// Resources returns the certificates.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{GroupVersion: certificatesv1.SchemeGroupVersion, Resource: "certificatesigningrequests", Kind: "CertificateSigningRequest",
			ListKind: "CertificateSigningRequestList", SingularName: "certificatesigningrequest", ShortNames: []string{"csr"},
			Subresources: []string{"status", "approval"}, Strategy: CSRStrategy},
	}
}

// CSRStrategy is the strategy of certificatesigningrequests.
var CSRStrategy = registry.Strategy{
	PrepareForCreate: func(obj runtime.Object) {
		obj.(*certificatesv1.CertificateSigningRequest).Status = certificatesv1.CertificateSigningRequestStatus{}
	},
	PrepareForUpdate: prepareForUpdate,
	Validate: func(obj runtime.Object) field.ErrorList {
		return validateCSR(obj.(*certificatesv1.CertificateSigningRequest))
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		csr, o := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
		errs := validateCSR(csr)
		if !apiequality.Semantic.DeepEqual(csr.Spec, o.Spec) {
			errs = append(errs, field.Invalid(field.NewPath("spec"), "", "field is immutable"))
		}
		for _, t := range []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied} {
			if hasCondition(o, t) && !hasCondition(csr, t) {
				errs = append(errs, field.Forbidden(field.NewPath("status", "conditions"), fmt.Sprintf("updates may not remove a condition of type %q", t)))
			}
		}
		if len(o.Status.Certificate) > 0 && string(o.Status.Certificate) != string(csr.Status.Certificate) {
			errs = append(errs, field.Forbidden(field.NewPath("status", "certificate"), "updates may not modify existing certificate content"))
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		registry.AgeColumn,
		{Name: "SignerName", Type: "string", Description: "Requested signer for the request"},
		{Name: "Requestor", Type: "string", Description: "Name of the user which made this request"},
		{Name: "RequestedDuration", Type: "string", Description: "Requested duration of the issued certificate"},
		{Name: "Condition", Type: "string", Description: "State of this request"},
	},
	Row: func(obj runtime.Object) []interface{} {
		csr := obj.(*certificatesv1.CertificateSigningRequest)
		duration := "<none>"
		if s := csr.Spec.ExpirationSeconds; s != nil {
			duration = (time.Duration(*s) * time.Second).String()
		}
		return []interface{}{csr.Name, registry.Age(csr.CreationTimestamp), csr.Spec.SignerName, csr.Spec.Username, duration, conditionSummary(csr)}
	},
	Fields: func(obj runtime.Object) fields.Set {
		return fields.Set{"spec.signerName": obj.(*certificatesv1.CertificateSigningRequest).Spec.SignerName}
	},
}

// prepareForUpdate keeps each writer to its part: the approval subresource writes only the
// Approved and Denied conditions, the status subresource everything but those, and the main
// resource no status at all.
func prepareForUpdate(sub string, obj, old runtime.Object) {
	csr, o := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	isApproval := func(c certificatesv1.CertificateSigningRequestCondition) bool {
		return c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied
	}
	switch sub {
	case "approval":
		conds := keep(o.Status.Conditions, func(c certificatesv1.CertificateSigningRequestCondition) bool { return !isApproval(c) })
		conds = append(conds, keep(csr.Status.Conditions, isApproval)...)
		csr.Status = *o.Status.DeepCopy()
		csr.Status.Conditions = conds
	case "status":
		conds := keep(csr.Status.Conditions, func(c certificatesv1.CertificateSigningRequestCondition) bool { return !isApproval(c) })
		csr.Status.Conditions = append(keep(o.Status.Conditions, isApproval), conds...)
	default:
		csr.Status = *o.Status.DeepCopy()
	}
	for i := range csr.Status.Conditions {
		c := &csr.Status.Conditions[i]
		if c.Status == "" {
			c.Status = corev1.ConditionTrue
		}
		if c.LastUpdateTime.IsZero() {
			c.LastUpdateTime = metav1.Now()
		}
		if c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = c.LastUpdateTime
		}
	}
}

func keep(conds []certificatesv1.CertificateSigningRequestCondition, f func(certificatesv1.CertificateSigningRequestCondition) bool) []certificatesv1.CertificateSigningRequestCondition {
	var out []certificatesv1.CertificateSigningRequestCondition
	for _, c := range conds {
		if f(c) {
			out = append(out, *c.DeepCopy())
		}
	}
	return out
}

func hasCondition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// conditionSummary is kubectl's CONDITION column: "Approved,Issued", "Pending", ...
func conditionSummary(csr *certificatesv1.CertificateSigningRequest) string {
	var parts []string
	for _, t := range []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed} {
		if hasCondition(csr, t) {
			parts = append(parts, string(t))
		}
	}
	if len(csr.Status.Certificate) > 0 {
		parts = append(parts, "Issued")
	}
	if len(parts) == 0 {
		return "Pending"
	}
	return strings.Join(parts, ",")
}

var knownUsages = sets.New(
	certificatesv1.UsageSigning, certificatesv1.UsageDigitalSignature, certificatesv1.UsageContentCommitment,
	certificatesv1.UsageKeyEncipherment, certificatesv1.UsageKeyAgreement, certificatesv1.UsageDataEncipherment,
	certificatesv1.UsageCertSign, certificatesv1.UsageCRLSign, certificatesv1.UsageEncipherOnly,
	certificatesv1.UsageDecipherOnly, certificatesv1.UsageAny, certificatesv1.UsageServerAuth,
	certificatesv1.UsageClientAuth, certificatesv1.UsageCodeSigning, certificatesv1.UsageEmailProtection,
	certificatesv1.UsageSMIME, certificatesv1.UsageIPsecEndSystem, certificatesv1.UsageIPsecTunnel,
	certificatesv1.UsageIPsecUser, certificatesv1.UsageTimestamping, certificatesv1.UsageOCSPSigning,
	certificatesv1.UsageMicrosoftSGC, certificatesv1.UsageNetscapeSGC,
)

func validateCSR(csr *certificatesv1.CertificateSigningRequest) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if _, err := ParseRequest(csr.Spec.Request); err != nil {
		errs = append(errs, field.Invalid(spec.Child("request"), "<request>", err.Error()))
	}
	errs = append(errs, validateSignerName(spec.Child("signerName"), csr.Spec.SignerName)...)
	if len(csr.Spec.Usages) == 0 {
		errs = append(errs, field.Required(spec.Child("usages"), ""))
	}
	seen := sets.New[certificatesv1.KeyUsage]()
	for i, u := range csr.Spec.Usages {
		if !knownUsages.Has(u) {
			errs = append(errs, field.NotSupported(spec.Child("usages").Index(i), u, sets.List(knownUsages)))
		}
		if seen.Has(u) {
			errs = append(errs, field.Duplicate(spec.Child("usages").Index(i), u))
		}
		seen.Insert(u)
	}
	if s := csr.Spec.ExpirationSeconds; s != nil && *s < 600 {
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), *s, "may not specify a duration less than 600 seconds (10 minutes)"))
	}
	conds := field.NewPath("status", "conditions")
	seenTypes := sets.New[certificatesv1.RequestConditionType]()
	for i, c := range csr.Status.Conditions {
		if c.Type == "" {
			errs = append(errs, field.Required(conds.Index(i).Child("type"), ""))
		}
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			if c.Status != corev1.ConditionTrue {
				errs = append(errs, field.NotSupported(conds.Index(i).Child("status"), c.Status, []corev1.ConditionStatus{corev1.ConditionTrue}))
			}
			if seenTypes.Has(c.Type) {
				errs = append(errs, field.Duplicate(conds.Index(i).Child("type"), c.Type))
			}
		}
		seenTypes.Insert(c.Type)
	}
	if hasCondition(csr, certificatesv1.CertificateApproved) && hasCondition(csr, certificatesv1.CertificateDenied) {
		errs = append(errs, field.Invalid(conds, csr.Status.Conditions, "Approved and Denied conditions are mutually exclusive"))
	}
	if len(csr.Status.Certificate) > 0 {
		if hasCondition(csr, certificatesv1.CertificateDenied) || hasCondition(csr, certificatesv1.CertificateFailed) {
			errs = append(errs, field.Invalid(field.NewPath("status", "certificate"), "<certificate data>", "certificate cannot be set on a Denied or Failed request"))
		}
		if err := validateCertificate(csr.Status.Certificate); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("status", "certificate"), "<certificate data>", err.Error()))
		}
	}
	return errs
}

// validateSignerName checks the "<domain>/<path>" form signer names take.
func validateSignerName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	domain, path, ok := strings.Cut(name, "/")
	if !ok || path == "" {
		return field.ErrorList{field.Invalid(p, name, "must be a fully qualified domain and path of the form 'example.com/signer-name'")}
	}
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsDNS1123Subdomain(domain) {
		errs = append(errs, field.Invalid(p, name, "the domain part "+msg))
	}
	if len(name) > 571 {
		errs = append(errs, field.TooLong(p, name, 571))
	}
	return errs
}

// ParseRequest decodes a PEM "CERTIFICATE REQUEST" and checks its signature.
func ParseRequest(pemBytes []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("PEM block type must be CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, err
	}
	return req, nil
}

func validateCertificate(data []byte) error {
	n := 0
	for rest := data; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(strings.TrimSpace(string(rest))) > 0 {
				return errors.New("only CERTIFICATE PEM blocks are allowed")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("only CERTIFICATE PEM blocks are allowed, found %q", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return err
		}
	}
	if n == 0 {
		return errors.New("must contain at least one CERTIFICATE PEM block")
	}
	return nil
}
