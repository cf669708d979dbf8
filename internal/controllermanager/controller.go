// Package controllermanager runs nanokube's controllers (one package each under
// internal/controller) against the API server through client-go, with leader election on a
// Lease so that only one controller manager acts at a time.
package controllermanager

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/nanokube/nanokube/internal/apiserver/satoken"
	"github.com/nanokube/nanokube/internal/pki"
)

// Context is what every controller is built from. Informers are shared: controllers ask for
// the informers they need before the manager starts the factory.
type Context struct {
	Client    kubernetes.Interface
	Metadata  metadata.Interface // for the garbage collector's metadata-only informers
	Informers informers.SharedInformerFactory
	Recorder  func(component string) record.EventRecorder
	Log       *slog.Logger
	// ClusterCIDR is the pod network that node IPAM cuts pod CIDRs from (zero: no IPAM).
	ClusterCIDR netip.Prefix
	// NodeCIDRMaskSize is the prefix length of each node's pod CIDR (default 24).
	NodeCIDRMaskSize int
	// NodeMonitorGracePeriod is how long a node may stay silent before it is marked Unknown
	// (default 40s); tests shorten it.
	NodeMonitorGracePeriod time.Duration
	// CronJobClockSpeed runs the CronJob controller's clock this many times faster than
	// real time (0 or 1: real time); tests use it instead of waiting for minutes.
	CronJobClockSpeed float64
	// RESTConfig is the manager's client configuration, for clients of other API groups
	// (the resource metrics API).
	RESTConfig *rest.Config
	// HorizontalPodAutoscalerSyncPeriod is how often each autoscaler is evaluated (0: 15s).
	HorizontalPodAutoscalerSyncPeriod time.Duration
	// SigningCA issues the certificates of approved requests (nil: no csrsigning);
	// SigningDuration caps their lifetime.
	SigningCA       *pki.CA
	SigningDuration time.Duration
	// RootCA is the PEM CA bundle published into every namespace as kube-root-ca.crt
	// (nil: not published).
	RootCA []byte
	// ServiceAccountTokenSigner signs the legacy tokens of service-account token Secrets
	// (nil: no --service-account-private-key-file, the tokens controller does not run).
	ServiceAccountTokenSigner *satoken.Signer
}

// Controller is one control loop.
type Controller interface {
	// Run runs workers until ctx is done. It must return once ctx is done.
	Run(ctx context.Context, workers int)
}

// Constructor builds a controller; it registers its informer handlers before returning.
type Constructor func(cc Context) (Controller, error)
