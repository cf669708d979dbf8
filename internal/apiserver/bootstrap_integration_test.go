package apiserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/pki"
)

// Bootstrap tokens authenticate as system:bootstrap:<id> while their Secret is valid; a
// CertificateSigningRequest records its requester, and its approval and status are written
// through their own subresources.
func TestBootstrapTokensAndCSRs(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)

	// The server wrote a join token whose bootstrap token exists.
	data, err := os.ReadFile(filepath.Join(c.Dir, "node-token"))
	if err != nil {
		t.Fatal(err)
	}
	join, err := pki.ParseJoinToken(string(data))
	if err != nil {
		t.Fatal(err)
	}
	secret := func(id, sec string, extra map[string]string) {
		d := map[string]string{"token-id": id, "token-secret": sec, "usage-bootstrap-authentication": "true",
			"auth-extra-groups": "system:bootstrappers:test,not-a-bootstrap-group"}
		for k, v := range extra {
			d[k] = v
		}
		_, err := c.Client.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id}, Type: corev1.SecretTypeBootstrapToken, StringData: d}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	secret("aaaaaa", "0123456789abcdef", nil)
	secret("bbbbbb", "0123456789abcdef", map[string]string{"expiration": time.Now().Add(-time.Minute).Format(time.RFC3339)})
	secret("cccccc", "0123456789abcdef", map[string]string{"usage-bootstrap-authentication": "false"})
	as := func(token string) kubernetes.Interface {
		cfg := rest.AnonymousClientConfig(c.Config)
		cfg.BearerToken = token
		return kubernetes.NewForConfigOrDie(cfg)
	}
	// The authenticator reads the watch cache: wait for it to hold the new tokens.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := as("aaaaaa.0123456789abcdef").CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("the new bootstrap token never authenticated")
	}
	for _, bad := range []string{"aaaaaa.0123456789abcdee", "bbbbbb.0123456789abcdef", "cccccc.0123456789abcdef", "zzzzzz.0123456789abcdef"} {
		_, err := as(bad).CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if !apierrors.IsUnauthorized(err) {
			t.Errorf("token %s: %v, want 401", bad, err)
		}
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}}, key)
	for _, tok := range []string{"aaaaaa.0123456789abcdef", join.Bearer()} {
		_, err := as(tok).CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("token %s: %v", tok, err)
		}
	}
	csrs := as("aaaaaa.0123456789abcdef").CertificatesV1().CertificateSigningRequests()
	created, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName, Username: "forged", Groups: []string{"system:masters"},
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}},
		Status: certificatesv1.CertificateSigningRequestStatus{Certificate: []byte("forged")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.Username != "system:bootstrap:aaaaaa" || !slices.Contains(created.Spec.Groups, "system:bootstrappers:test") ||
		slices.Contains(created.Spec.Groups, "not-a-bootstrap-group") || slices.Contains(created.Spec.Groups, "system:masters") ||
		len(created.Status.Certificate) > 0 {
		t.Fatalf("requester %q %v, status %+v", created.Spec.Username, created.Spec.Groups, created.Status)
	}

	admin := c.Client.CertificatesV1().CertificateSigningRequests()
	// The approval subresource writes the Approved condition and nothing else.
	upd := created.DeepCopy()
	upd.Status.Conditions = append(upd.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test"})
	upd.Status.Certificate = []byte("not through approval")
	approved, err := admin.UpdateApproval(ctx, "n1", upd, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(approved.Status.Conditions) != 1 || approved.Status.Conditions[0].LastUpdateTime.IsZero() || len(approved.Status.Certificate) > 0 {
		t.Fatalf("after approval: %+v", approved.Status)
	}
	// Denying an approved request is invalid.
	deny := approved.DeepCopy()
	deny.Status.Conditions = append(deny.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue})
	if _, err := admin.UpdateApproval(ctx, "n1", deny, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("deny after approve: %v, want Invalid", err)
	}
	// The status subresource writes the certificate, but cannot drop the approval.
	b, err := pki.Ensure(filepath.Join(c.Dir, "pki"), pki.Options{ServiceCIDR: "10.96.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := x509.ParseCertificateRequest(der)
	certPEM, err := pki.SignCSR(b.CA, req, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, x509.KeyUsageDigitalSignature, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st := approved.DeepCopy()
	st.Status.Conditions = nil
	st.Status.Certificate = certPEM
	issued, err := admin.UpdateStatus(ctx, st, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(issued.Status.Certificate) != string(certPEM) || len(issued.Status.Conditions) != 1 {
		t.Fatalf("after status: %+v", issued.Status)
	}
	// Bad input: a request that is not a CSR.
	_, err = admin.Create(ctx, &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "junk"},
		Spec: certificatesv1.CertificateSigningRequestSpec{Request: []byte("junk"), SignerName: "example.com/x",
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth}}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("junk request: %v, want Invalid", err)
	}
}
