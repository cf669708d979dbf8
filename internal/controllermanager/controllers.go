package controllermanager

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/rest"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/clock"

	"github.com/nanokube/nanokube/internal/controller/clusterroleaggregation"
	"github.com/nanokube/nanokube/internal/controller/cronjob"
	"github.com/nanokube/nanokube/internal/controller/csrapproving"
	"github.com/nanokube/nanokube/internal/controller/csrsigning"
	"github.com/nanokube/nanokube/internal/controller/daemonset"
	"github.com/nanokube/nanokube/internal/controller/deployment"
	"github.com/nanokube/nanokube/internal/controller/endpoints"
	"github.com/nanokube/nanokube/internal/controller/endpointslice"
	"github.com/nanokube/nanokube/internal/controller/garbagecollector"
	"github.com/nanokube/nanokube/internal/controller/job"
	"github.com/nanokube/nanokube/internal/controller/localpath"
	"github.com/nanokube/nanokube/internal/controller/namespace"
	"github.com/nanokube/nanokube/internal/controller/nodeipam"
	"github.com/nanokube/nanokube/internal/controller/nodelifecycle"
	"github.com/nanokube/nanokube/internal/controller/podautoscaler"
	"github.com/nanokube/nanokube/internal/controller/podgc"
	"github.com/nanokube/nanokube/internal/controller/replicaset"
	"github.com/nanokube/nanokube/internal/controller/resourcequota"
	"github.com/nanokube/nanokube/internal/controller/rootcacert"
	"github.com/nanokube/nanokube/internal/controller/serviceaccount"
	"github.com/nanokube/nanokube/internal/controller/serviceaccounttoken"
	"github.com/nanokube/nanokube/internal/controller/statefulset"
)

// constructors is every controller the manager can run, by kube-controller-manager's name.
// Controller packages do not import this package (that would be an import cycle): each entry
// adapts a Context to the package's own New. A constructor may return (nil, nil) when its
// controller has nothing to do in this configuration; the manager then skips it.
var constructors = map[string]Constructor{
	"clusterrole-aggregation-controller": func(cc Context) (Controller, error) {
		return clusterroleaggregation.New(clusterroleaggregation.Config{Client: cc.Client, Informers: cc.Informers,
			Log: cc.Log.With("controller", "clusterrole-aggregation")})
	},
	"replicaset-controller": func(cc Context) (Controller, error) {
		return replicaset.New(cc.Client, cc.Informers.Core().V1().Pods(), cc.Informers.Apps().V1().ReplicaSets(),
			cc.Recorder("replicaset-controller"), cc.Log.With("controller", "replicaset"))
	},
	"deployment-controller": func(cc Context) (Controller, error) {
		return deployment.New(cc.Client, cc.Informers.Apps().V1().Deployments(), cc.Informers.Apps().V1().ReplicaSets(),
			cc.Informers.Core().V1().Pods(), cc.Recorder("deployment-controller"), cc.Log.With("controller", "deployment")), nil
	},
	"daemonset-controller": func(cc Context) (Controller, error) {
		return daemonset.New(daemonset.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("daemonset-controller"),
			Log: cc.Log.With("controller", "daemonset")})
	},
	"job-controller": func(cc Context) (Controller, error) {
		return job.New(job.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("job-controller"),
			Log: cc.Log.With("controller", "job")})
	},
	"ttl-after-finished-controller": func(cc Context) (Controller, error) {
		return job.NewTTLAfterFinished(job.Config{Client: cc.Client, Informers: cc.Informers,
			Log: cc.Log.With("controller", "ttl-after-finished")})
	},
	"cronjob-controller": func(cc Context) (Controller, error) {
		var clk clock.WithTicker // nil: the real clock
		if cc.CronJobClockSpeed > 0 && cc.CronJobClockSpeed != 1 {
			clk = cronjob.NewScaledClock(cc.CronJobClockSpeed)
		}
		return cronjob.New(cronjob.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("cronjob-controller"),
			Log: cc.Log.With("controller", "cronjob"), Clock: clk})
	},
	"garbage-collector-controller": func(cc Context) (Controller, error) {
		return garbagecollector.New(cc.Metadata, cc.Client.Discovery(), cc.Log.With("controller", "garbage-collector")), nil
	},
	"namespace-controller": func(cc Context) (Controller, error) {
		return namespace.New(cc.Client, cc.Metadata, cc.Informers.Core().V1().Namespaces(), cc.Log.With("controller", "namespace")), nil
	},
	"node-lifecycle-controller": func(cc Context) (Controller, error) {
		return nodelifecycle.New(nodelifecycle.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("node-controller"),
			Log: cc.Log.With("controller", "node-lifecycle"), NodeMonitorGracePeriod: cc.NodeMonitorGracePeriod})
	},
	"node-ipam-controller": func(cc Context) (Controller, error) {
		if !cc.ClusterCIDR.IsValid() {
			return nil, nil // no --cluster-cidr: nodes get no pod CIDR, as in Kubernetes
		}
		return nodeipam.New(nodeipam.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("cidrAllocator"),
			Log: cc.Log.With("controller", "node-ipam"), ClusterCIDR: cc.ClusterCIDR, NodeCIDRMaskSize: cc.NodeCIDRMaskSize})
	},
	"endpoints-controller": func(cc Context) (Controller, error) {
		return endpoints.New(endpoints.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("endpoint-controller"),
			Log: cc.Log.With("controller", "endpoints")})
	},
	"endpointslice-controller": func(cc Context) (Controller, error) {
		return endpointslice.New(endpointslice.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("endpointslice-controller"),
			Log: cc.Log.With("controller", "endpointslice")})
	},
	"serviceaccount-controller": func(cc Context) (Controller, error) {
		return serviceaccount.New(serviceaccount.Config{Client: cc.Client, Informers: cc.Informers, Log: cc.Log.With("controller", "serviceaccount")})
	},
	"serviceaccount-token-controller": func(cc Context) (Controller, error) {
		if cc.ServiceAccountTokenSigner == nil {
			// As kube-controller-manager: without the key there is nothing to sign with.
			cc.Log.Info("serviceaccount-token-controller not started: no --service-account-private-key-file")
			return nil, nil
		}
		return serviceaccounttoken.New(serviceaccounttoken.Config{Client: cc.Client, Informers: cc.Informers,
			Signer: cc.ServiceAccountTokenSigner, RootCA: cc.RootCA, Log: cc.Log.With("controller", "serviceaccount-token")})
	},
	"root-ca-certificate-publisher-controller": func(cc Context) (Controller, error) {
		if len(cc.RootCA) == 0 {
			return nil, nil // no --root-ca-file: nothing to publish
		}
		return rootcacert.New(rootcacert.Config{Client: cc.Client, Informers: cc.Informers, RootCA: cc.RootCA, Log: cc.Log.With("controller", "root-ca-cert-publisher")})
	},
	"certificatesigningrequest-approving-controller": func(cc Context) (Controller, error) {
		return csrapproving.New(csrapproving.Config{Client: cc.Client, Informers: cc.Informers, Log: cc.Log.With("controller", "csrapproving")})
	},
	"certificatesigningrequest-signing-controller": func(cc Context) (Controller, error) {
		if cc.SigningCA == nil {
			return nil, nil // no --cluster-signing-cert-file: nothing to sign with, as in Kubernetes
		}
		return csrsigning.New(csrsigning.Config{Client: cc.Client, Informers: cc.Informers, CA: cc.SigningCA,
			Duration: cc.SigningDuration, Log: cc.Log.With("controller", "csrsigning")})
	},
	"local-path-provisioner": func(cc Context) (Controller, error) {
		return localpath.New(localpath.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("nanokube.io/local-path"),
			Log: cc.Log.With("controller", "local-path-provisioner")})
	},
	"statefulset-controller": func(cc Context) (Controller, error) {
		return statefulset.New(statefulset.Config{Client: cc.Client, Informers: cc.Informers, Recorder: cc.Recorder("statefulset-controller"),
			Log: cc.Log.With("controller", "statefulset")})
	},
	"horizontal-pod-autoscaler-controller": func(cc Context) (Controller, error) {
		if cc.RESTConfig == nil {
			return nil, nil // no client configuration for the metrics API: nothing to scale by
		}
		mc, err := metricsclient.NewForConfig(rest.CopyConfig(cc.RESTConfig))
		if err != nil {
			return nil, err
		}
		return podautoscaler.New(podautoscaler.Config{Client: cc.Client, Metrics: mc, Informers: cc.Informers,
			Recorder: cc.Recorder("horizontal-pod-autoscaler"), Log: cc.Log.With("controller", "horizontal-pod-autoscaler"),
			SyncPeriod: cc.HorizontalPodAutoscalerSyncPeriod})
	},
	"resourcequota-controller": func(cc Context) (Controller, error) {
		return resourcequota.New(resourcequota.Config{Client: cc.Client, Metadata: cc.Metadata, Informers: cc.Informers,
			Log: cc.Log.With("controller", "resourcequota")})
	},
	"pod-garbage-collector-controller": func(cc Context) (Controller, error) {
		return podgc.New(podgc.Config{Client: cc.Client, Informers: cc.Informers, Log: cc.Log.With("controller", "podgc")})
	},
}

// aliases are the older short names kube-controller-manager's --controllers still accepts.
var aliases = map[string]string{
	"replicaset":               "replicaset-controller",
	"deployment":               "deployment-controller",
	"daemonset":                "daemonset-controller",
	"job":                      "job-controller",
	"cronjob":                  "cronjob-controller",
	"ttl-after-finished":       "ttl-after-finished-controller",
	"garbagecollector":         "garbage-collector-controller",
	"namespace":                "namespace-controller",
	"nodelifecycle":            "node-lifecycle-controller",
	"nodeipam":                 "node-ipam-controller",
	"endpoint":                 "endpoints-controller",
	"endpointslice":            "endpointslice-controller",
	"serviceaccount":           "serviceaccount-controller",
	"serviceaccount-token":     "serviceaccount-token-controller",
	"root-ca-cert-publisher":   "root-ca-certificate-publisher-controller",
	"podgc":                    "pod-garbage-collector-controller",
	"resourcequota":            "resourcequota-controller",
	"horizontalpodautoscaling": "horizontal-pod-autoscaler-controller",
	"statefulset":              "statefulset-controller",
	"csrapproving":             "certificatesigningrequest-approving-controller",
	"csrsigning":               "certificatesigningrequest-signing-controller",
	"clusterroleaggregation":   "clusterrole-aggregation-controller",
}

// disabledByDefault lists controllers that "*" does not select.
var disabledByDefault = map[string]bool{}

func metav1ObjectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
