package csrapproving

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
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func csrFor(t *testing.T, cn string, orgs []string, ips []string, signer string, user string, groups []string, usages ...certificatesv1.KeyUsage) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: orgs}}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-x"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), SignerName: signer,
			Username: user, Groups: groups, Usages: usages,
		},
	}
}

func TestDecide(t *testing.T) {
	now := time.Now()
	client := fake.NewClientset()
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: f})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return now }
	// node-live renewed its lease just now; node-dead's lease ran out.
	for name, renewed := range map[string]time.Time{"node-live": now.Add(-5 * time.Second), "node-dead": now.Add(-time.Minute)} {
		_ = f.Core().V1().Nodes().Informer().GetIndexer().Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
		_ = f.Coordination().V1().Leases().Informer().GetIndexer().Add(&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-node-lease", Name: name},
			Spec:       coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renewed}, LeaseDurationSeconds: ptr.To[int32](40)}})
	}
	client_ := certificatesv1.KubeAPIServerClientKubeletSignerName
	serving := certificatesv1.KubeletServingSignerName
	ds, ca, sa := certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth, certificatesv1.UsageServerAuth
	boot := []string{"system:bootstrappers", "system:bootstrappers:nanokube:default-node-token"}
	nodes := []string{"system:nodes"}
	for _, tc := range []struct {
		name string
		csr  *certificatesv1.CertificateSigningRequest
		want certificatesv1.RequestConditionType
	}{
		{"bootstrap client", csrFor(t, "system:node:n1", nodes, nil, client_, "system:bootstrap:abc", boot, ds, ca), certificatesv1.CertificateApproved},
		{"renewal by the node", csrFor(t, "system:node:n1", nodes, nil, client_, "system:node:n1", nodes, ds, ca), certificatesv1.CertificateApproved},
		{"another node's client", csrFor(t, "system:node:n2", nodes, nil, client_, "system:node:n1", nodes, ds, ca), ""},
		{"plain user", csrFor(t, "system:node:n1", nodes, nil, client_, "alice", nil, ds, ca), ""},
		{"wrong org", csrFor(t, "system:node:n1", []string{"system:masters"}, nil, client_, "system:bootstrap:abc", boot, ds, ca), ""},
		{"client with SANs", csrFor(t, "system:node:n1", nodes, []string{"10.0.0.1"}, client_, "system:bootstrap:abc", boot, ds, ca), ""},
		{"client asking server auth", csrFor(t, "system:node:n1", nodes, nil, client_, "system:bootstrap:abc", boot, ds, sa), ""},
		{"live node's name", csrFor(t, "system:node:node-live", nodes, nil, client_, "system:bootstrap:abc", boot, ds, ca), certificatesv1.CertificateDenied},
		{"dead node's name", csrFor(t, "system:node:node-dead", nodes, nil, client_, "system:bootstrap:abc", boot, ds, ca), certificatesv1.CertificateApproved},
		{"serving by the node", csrFor(t, "system:node:n1", nodes, []string{"10.0.0.1"}, serving, "system:node:n1", nodes, ds, sa), certificatesv1.CertificateApproved},
		{"serving by a bootstrapper", csrFor(t, "system:node:n1", nodes, []string{"10.0.0.1"}, serving, "system:bootstrap:abc", boot, ds, sa), ""},
		{"serving without SANs", csrFor(t, "system:node:n1", nodes, nil, serving, "system:node:n1", nodes, ds, sa), ""},
	} {
		if got := c.decide(tc.csr).condition; got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// An approval is written through the approval subresource, once.
func TestSyncApproves(t *testing.T) {
	csr := csrFor(t, "system:node:n1", []string{"system:nodes"}, nil, certificatesv1.KubeAPIServerClientKubeletSignerName,
		"system:bootstrap:abc", []string{"system:bootstrappers"}, certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth)
	client := fake.NewClientset(csr)
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: f})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Certificates().V1().CertificateSigningRequests().Informer().GetIndexer().Add(csr)
	if err := c.sync(context.Background(), csr.Name); err != nil {
		t.Fatal(err)
	}
	acts := client.Actions()
	if len(acts) != 1 || acts[0].GetVerb() != "update" || acts[0].GetSubresource() != "approval" {
		t.Fatalf("actions %v, want one update of approval", acts)
	}
	got, _ := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), csr.Name, metav1.GetOptions{})
	_ = f.Certificates().V1().CertificateSigningRequests().Informer().GetIndexer().Update(got)
	client.ClearActions()
	if err := c.sync(context.Background(), csr.Name); err != nil || len(client.Actions()) != 0 {
		t.Errorf("second sync: %v, actions %v", err, client.Actions())
	}
}
