// Package csrsigning issues the certificates of approved requests with the cluster CA, as
// kube-controller-manager's csrsigning controller does with --cluster-signing-cert-file and
// --cluster-signing-key-file. It signs for three built-in signers:
//
//   - kubernetes.io/kube-apiserver-client-kubelet: CN system:node:<name>, O system:nodes,
//     client usages only;
//   - kubernetes.io/kubelet-serving: the same subject, server usages, DNS/IP SANs only;
//   - kubernetes.io/kube-apiserver-client: any client certificate (an approver decided).
//
// A request that does not fit its signer gets a Failed condition (SignerValidationFailure)
// instead of a certificate; requests for other signers are left to their signers. The
// certificate's lifetime is spec.expirationSeconds (at least 10 minutes) capped by the
// configured duration.
package csrsigning

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/nanokube/nanokube/internal/controller/worker"
	"github.com/nanokube/nanokube/internal/pki"
)

// DefaultDuration is kube-controller-manager's --cluster-signing-duration default.
const DefaultDuration = 365 * 24 * time.Hour

const minDuration = 10 * time.Minute

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	CA        *pki.CA
	// Duration caps the lifetime of issued certificates (0: DefaultDuration).
	Duration time.Duration
	Log      *slog.Logger // nil: discard
}

// Controller signs approved certificate requests.
type Controller struct {
	client   kubernetes.Interface
	csrs     certlisters.CertificateSigningRequestLister
	ca       *pki.CA
	duration time.Duration
	pool     worker.Pool
	log      *slog.Logger
}

// New builds the controller and registers its informer handler.
func New(cfg Config) (*Controller, error) {
	if cfg.CA == nil {
		return nil, errors.New("csrsigning: no signing CA")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultDuration
	}
	inf := cfg.Informers.Certificates().V1().CertificateSigningRequests()
	c := &Controller{client: cfg.Client, csrs: inf.Lister(), ca: cfg.CA, duration: cfg.Duration, log: cfg.Log}
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "csrsigning"})
	c.pool = worker.Pool{Queue: queue, Sync: c.sync, Log: cfg.Log, Name: "csr", Synced: []cache.InformerSynced{inf.Informer().HasSynced}}
	enqueue := func(obj interface{}) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
	})
	return c, err
}

// Run runs workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) { c.pool.Run(ctx, workers) }

func (c *Controller) sync(ctx context.Context, key string) error {
	csr, err := c.csrs.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(csr.Status.Certificate) > 0 || !has(csr, certificatesv1.CertificateApproved) ||
		has(csr, certificatesv1.CertificateDenied) || has(csr, certificatesv1.CertificateFailed) {
		return nil
	}
	switch csr.Spec.SignerName {
	case certificatesv1.KubeAPIServerClientKubeletSignerName, certificatesv1.KubeletServingSignerName, certificatesv1.KubeAPIServerClientSignerName:
	default:
		return nil
	}
	csr = csr.DeepCopy()
	certPEM, err := c.sign(csr)
	if err != nil {
		now := metav1.Now()
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue, Reason: "SignerValidationFailure",
			Message: err.Error(), LastUpdateTime: now, LastTransitionTime: now})
	} else {
		csr.Status.Certificate = certPEM
	}
	_, err = c.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// sign checks the request against its signer's rules and issues the certificate.
func (c *Controller) sign(csr *certificatesv1.CertificateSigningRequest) ([]byte, error) {
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("spec.request holds no CERTIFICATE REQUEST PEM block")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("spec.request: %w", err)
	}
	var ext []x509.ExtKeyUsage
	var ku x509.KeyUsage
	for _, u := range csr.Spec.Usages {
		switch u {
		case certificatesv1.UsageClientAuth:
			ext = append(ext, x509.ExtKeyUsageClientAuth)
		case certificatesv1.UsageServerAuth:
			ext = append(ext, x509.ExtKeyUsageServerAuth)
		case certificatesv1.UsageDigitalSignature:
			ku |= x509.KeyUsageDigitalSignature
		case certificatesv1.UsageKeyEncipherment:
			ku |= x509.KeyUsageKeyEncipherment
		default:
			return nil, fmt.Errorf("usage %q is not allowed for signer %s", u, csr.Spec.SignerName)
		}
	}
	switch csr.Spec.SignerName {
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		if err := nodeSubject(req); err != nil {
			return nil, err
		}
		if !slices.Equal(ext, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(req.DNSNames)+len(req.IPAddresses) > 0 {
			return nil, errors.New("a kubelet client certificate has the client auth usage and no SANs")
		}
	case certificatesv1.KubeletServingSignerName:
		if err := nodeSubject(req); err != nil {
			return nil, err
		}
		if !slices.Equal(ext, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || len(req.DNSNames)+len(req.IPAddresses) == 0 {
			return nil, errors.New("a kubelet serving certificate has the server auth usage and at least one DNS or IP SAN")
		}
	case certificatesv1.KubeAPIServerClientSignerName:
		if !slices.Equal(ext, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			return nil, errors.New("a kube-apiserver client certificate has the client auth usage only")
		}
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return nil, errors.New("email and URI SANs are not allowed")
	}
	ttl := c.duration
	if s := csr.Spec.ExpirationSeconds; s != nil {
		ttl = min(ttl, max(time.Duration(*s)*time.Second, minDuration))
	}
	return pki.SignCSR(c.ca, req, ext, ku, ttl)
}

func nodeSubject(req *x509.CertificateRequest) error {
	if !strings.HasPrefix(req.Subject.CommonName, "system:node:") || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return errors.New(`the subject must be CN "system:node:<name>", O "system:nodes"`)
	}
	return nil
}

func has(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
