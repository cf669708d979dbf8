package certificates

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func request(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func csr(t *testing.T) *certificatesv1.CertificateSigningRequest {
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-1"},
		Spec: certificatesv1.CertificateSigningRequestSpec{Request: request(t), SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}},
	}
}

func TestValidate(t *testing.T) {
	if errs := CSRStrategy.Validate(csr(t)); len(errs) != 0 {
		t.Fatalf("valid request: %v", errs)
	}
	for name, tc := range map[string]struct {
		mutate func(*certificatesv1.CertificateSigningRequest)
		field  string
	}{
		"no request":      {func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Request = []byte("nope") }, "spec.request"},
		"no signer":       {func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = "" }, "spec.signerName"},
		"bad signer":      {func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = "no-slash" }, "spec.signerName"},
		"no usages":       {func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Usages = nil }, "spec.usages"},
		"unknown usage":   {func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Usages = []certificatesv1.KeyUsage{"fly"} }, "spec.usages[0]"},
		"short duration":  {func(c *certificatesv1.CertificateSigningRequest) { c.Spec.ExpirationSeconds = ptr.To[int32](60) }, "spec.expirationSeconds"},
		"approved+denied": {func(c *certificatesv1.CertificateSigningRequest) { c.Status.Conditions = conds("Approved", "Denied") }, "status.conditions"},
		"bad certificate": {func(c *certificatesv1.CertificateSigningRequest) { c.Status.Certificate = []byte("junk") }, "status.certificate"},
	} {
		c := csr(t)
		tc.mutate(c)
		errs := CSRStrategy.Validate(c)
		if len(errs) == 0 || errs[0].Field != tc.field {
			t.Errorf("%s: %v, want an error on %s", name, errs, tc.field)
		}
	}
}

func conds(types ...string) []certificatesv1.CertificateSigningRequestCondition {
	var out []certificatesv1.CertificateSigningRequestCondition
	for _, ty := range types {
		out = append(out, certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.RequestConditionType(ty), Status: corev1.ConditionTrue})
	}
	return out
}

// Each writer changes only its part: the approval subresource the Approved/Denied
// conditions, the status subresource the rest, the resource itself nothing of the status.
func TestPrepareForUpdate(t *testing.T) {
	old := csr(t)
	old.Status.Conditions = conds("Failed")

	upd := old.DeepCopy()
	upd.Status.Conditions = conds("Approved")
	upd.Status.Certificate = []byte("sneaky")
	prepareForUpdate("approval", upd, old)
	if got := CSRStrategy.Row(upd)[5]; got != "Approved,Failed" || upd.Status.Certificate != nil {
		t.Errorf("approval: condition %v, certificate %q", got, upd.Status.Certificate)
	}

	approved := old.DeepCopy()
	approved.Status.Conditions = conds("Approved")
	upd = approved.DeepCopy()
	upd.Status.Conditions = nil // a status writer cannot drop the approval
	prepareForUpdate("status", upd, approved)
	if !hasCondition(upd, certificatesv1.CertificateApproved) {
		t.Error("status update removed the Approved condition")
	}

	upd = approved.DeepCopy()
	upd.Status.Conditions = nil
	prepareForUpdate("", upd, approved)
	if !hasCondition(upd, certificatesv1.CertificateApproved) {
		t.Error("main resource update changed the status")
	}

	// Removing an approval or changing an issued certificate is invalid.
	withCert := approved.DeepCopy()
	withCert.Status.Conditions = nil
	if errs := CSRStrategy.ValidateUpdate(withCert, approved); len(errs) == 0 {
		t.Error("removing Approved was accepted")
	}
}
