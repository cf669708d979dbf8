package csrsigning

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/pki"
)

func approved(t *testing.T, name, cn string, ips []string, signer string, usages ...certificatesv1.KeyUsage) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, _ := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: signer, Usages: usages, ExpirationSeconds: ptr.To[int32](3600)},
		Status: certificatesv1.CertificateSigningRequestStatus{Conditions: []certificatesv1.CertificateSigningRequestCondition{
			{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}},
	}
}

func TestSign(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds, ca, sa := certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth, certificatesv1.UsageServerAuth
	good := approved(t, "client", "system:node:n1", nil, certificatesv1.KubeAPIServerClientKubeletSignerName, ds, ca)
	serving := approved(t, "serving", "system:node:n1", []string{"10.0.0.1"}, certificatesv1.KubeletServingSignerName, ds, sa)
	misfit := approved(t, "misfit", "alice", nil, certificatesv1.KubeAPIServerClientKubeletSignerName, ds, ca)
	pending := approved(t, "pending", "system:node:n1", nil, certificatesv1.KubeAPIServerClientKubeletSignerName, ds, ca)
	pending.Status.Conditions = nil
	other := approved(t, "other", "system:node:n1", nil, "example.com/signer", ds, ca)
	client := fake.NewClientset(good, serving, misfit, pending, other)
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: f, CA: b.CA})
	if err != nil {
		t.Fatal(err)
	}
	idx := f.Certificates().V1().CertificateSigningRequests().Informer().GetIndexer()
	for _, o := range []*certificatesv1.CertificateSigningRequest{good, serving, misfit, pending, other} {
		_ = idx.Add(o)
		if err := c.sync(context.Background(), o.Name); err != nil {
			t.Fatalf("%s: %v", o.Name, err)
		}
	}
	get := func(name string) *certificatesv1.CertificateSigningRequest {
		got, _ := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), name, metav1.GetOptions{})
		return got
	}
	for name, usage := range map[string]x509.ExtKeyUsage{"client": x509.ExtKeyUsageClientAuth, "serving": x509.ExtKeyUsageServerAuth} {
		block, _ := pem.Decode(get(name).Status.Certificate)
		if block == nil {
			t.Fatalf("%s: no certificate issued", name)
		}
		cert, _ := x509.ParseCertificate(block.Bytes)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: b.CAPool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if life := cert.NotAfter.Sub(time.Now()); life > time.Hour {
			t.Errorf("%s: lives %v, asked for 1h", name, life)
		}
	}
	if m := get("misfit"); len(m.Status.Certificate) > 0 || m.Status.Conditions[len(m.Status.Conditions)-1].Reason != "SignerValidationFailure" {
		t.Errorf("misfit: %+v", m.Status)
	}
	if len(get("pending").Status.Certificate) > 0 || len(get("other").Status.Certificate) > 0 {
		t.Error("signed a pending request or another signer's")
	}
}
