// Package csrapproving approves the certificate requests of nodes, as kube-controller-manager's
// csrapproving controller does, so that `nanokube agent --token` can join without a person
// running `kubectl certificate approve`:
//
//   - a kubelet client certificate (signer kubernetes.io/kube-apiserver-client-kubelet,
//     subject CN "system:node:<name>", O "system:nodes", client usages, no SANs) asked for by
//     a bootstrap token's user (group system:bootstrappers) or by that node itself (renewal);
//   - a kubelet serving certificate (signer kubernetes.io/kubelet-serving, same subject,
//     server usages, DNS or IP SANs only) asked for by that node itself. Kubernetes leaves
//     these to an operator; nanokube issues them because its agents join unattended.
//
// A bootstrap request for the name of a node that is alive (its Lease still current) is
// denied with reason NodeNameInUse: two machines must not share one node's identity.
// Anything else is left pending for an operator. Approval is a condition written through
// the approval subresource; signing is csrsigning's job.
package csrapproving

import (
	"context"
	"crypto/x509"
	"encoding/pem"
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
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/nanokube/nanokube/internal/controller/worker"
)

const (
	nodeUserPrefix = "system:node:"
	nodesGroup     = "system:nodes"
	bootstrappers  = "system:bootstrappers"
	leaseNamespace = "kube-node-lease"
)

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Log       *slog.Logger // nil: discard
}

// Controller approves node certificate requests.
type Controller struct {
	client kubernetes.Interface
	csrs   certlisters.CertificateSigningRequestLister
	nodes  corelisters.NodeLister
	leases coordlisters.LeaseLister
	pool   worker.Pool
	now    func() time.Time
}

// New builds the controller and registers its informer handlers.
func New(cfg Config) (*Controller, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	csrInf := cfg.Informers.Certificates().V1().CertificateSigningRequests()
	nodeInf := cfg.Informers.Core().V1().Nodes()
	leaseInf := cfg.Informers.Coordination().V1().Leases()
	c := &Controller{client: cfg.Client, csrs: csrInf.Lister(), nodes: nodeInf.Lister(), leases: leaseInf.Lister(), now: time.Now}
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "csrapproving"})
	c.pool = worker.Pool{Queue: queue, Sync: c.sync, Log: cfg.Log, Name: "csr",
		Synced: []cache.InformerSynced{csrInf.Informer().HasSynced, nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced}}
	enqueue := func(obj interface{}) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := csrInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
	}); err != nil {
		return nil, err
	}
	// Node and lease informers are read only as listers.
	return c, nil
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
	if decided(csr) || len(csr.Status.Certificate) > 0 {
		return nil
	}
	d := c.decide(csr)
	if d.condition == "" {
		return nil
	}
	csr = csr.DeepCopy()
	now := metav1.NewTime(c.now())
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: d.condition, Status: corev1.ConditionTrue, Reason: d.reason, Message: d.message,
		LastUpdateTime: now, LastTransitionTime: now,
	})
	_, err = c.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

type decision struct {
	condition       certificatesv1.RequestConditionType // "" leaves the request pending
	reason, message string
}

// decide is the approval policy; it reads only the request and the listers.
func (c *Controller) decide(csr *certificatesv1.CertificateSigningRequest) decision {
	req, err := parse(csr.Spec.Request)
	if err != nil {
		return decision{}
	}
	node, ok := nodeSubject(req)
	if !ok {
		return decision{}
	}
	self := csr.Spec.Username == req.Subject.CommonName
	switch csr.Spec.SignerName {
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		if !clientRequest(req, csr.Spec.Usages) {
			return decision{}
		}
		if self {
			return decision{certificatesv1.CertificateApproved, "AutoApproved", "Auto approving self kubelet client certificate."}
		}
		if !slices.Contains(csr.Spec.Groups, bootstrappers) {
			return decision{}
		}
		if renewed, alive := c.nodeAlive(node); alive {
			return decision{certificatesv1.CertificateDenied, "NodeNameInUse", fmt.Sprintf(
				"node %q is registered and alive (its lease was renewed at %s): another machine already uses this name; join with another --node-name, or delete the node first",
				node, renewed.Format(time.RFC3339))}
		}
		return decision{certificatesv1.CertificateApproved, "AutoApproved", "Auto approving kubelet client certificate for a bootstrap token."}
	case certificatesv1.KubeletServingSignerName:
		if self && servingRequest(req, csr.Spec.Usages) {
			return decision{certificatesv1.CertificateApproved, "AutoApproved", "Auto approving kubelet serving certificate requested by the node itself."}
		}
	}
	return decision{}
}

// nodeAlive reports whether node exists and its Lease is current, and when it was renewed.
func (c *Controller) nodeAlive(node string) (time.Time, bool) {
	if _, err := c.nodes.Get(node); err != nil {
		return time.Time{}, false
	}
	lease, err := c.leases.Leases(leaseNamespace).Get(node)
	if err != nil || lease.Spec.RenewTime == nil {
		return time.Time{}, false
	}
	d := 40 * time.Second
	if s := lease.Spec.LeaseDurationSeconds; s != nil {
		d = time.Duration(*s) * time.Second
	}
	renewed := lease.Spec.RenewTime.Time
	return renewed, c.now().Before(renewed.Add(d))
}

func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			return true
		}
	}
	return false
}

func parse(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("no CERTIFICATE REQUEST PEM block")
	}
	return x509.ParseCertificateRequest(block.Bytes)
}

// nodeSubject returns the node a request names: CN system:node:<name>, O exactly system:nodes.
func nodeSubject(req *x509.CertificateRequest) (string, bool) {
	name, ok := strings.CutPrefix(req.Subject.CommonName, nodeUserPrefix)
	if !ok || name == "" || !slices.Equal(req.Subject.Organization, []string{nodesGroup}) {
		return "", false
	}
	return name, len(req.EmailAddresses) == 0 && len(req.URIs) == 0
}

func clientRequest(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) bool {
	return len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 &&
		usagesWithin(usages, certificatesv1.UsageClientAuth)
}

func servingRequest(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) bool {
	return len(req.DNSNames)+len(req.IPAddresses) > 0 && usagesWithin(usages, certificatesv1.UsageServerAuth)
}

// usagesWithin reports whether usages hold need and otherwise only digital signature and key
// encipherment, the shapes Kubernetes accepts for node certificates.
func usagesWithin(usages []certificatesv1.KeyUsage, need certificatesv1.KeyUsage) bool {
	has := false
	for _, u := range usages {
		switch u {
		case need:
			has = true
		case certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment:
		default:
			return false
		}
	}
	return has
}
