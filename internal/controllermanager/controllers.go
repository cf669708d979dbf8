package controllermanager

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nanokube/nanokube/internal/controller/deployment"
	"github.com/nanokube/nanokube/internal/controller/garbagecollector"
	"github.com/nanokube/nanokube/internal/controller/namespace"
	"github.com/nanokube/nanokube/internal/controller/replicaset"
)

// constructors is every controller the manager can run, by its kube-controller-manager name.
// Controller packages do not import this package (that would be an import cycle): each entry
// adapts a Context to the package's own New.
var constructors = map[string]Constructor{
	"replicaset": func(cc Context) (Controller, error) {
		return replicaset.New(cc.Client, cc.Informers.Core().V1().Pods(), cc.Informers.Apps().V1().ReplicaSets(),
			cc.Recorder("replicaset-controller"), cc.Log.With("controller", "replicaset")), nil
	},
	"deployment": func(cc Context) (Controller, error) {
		return deployment.New(cc.Client, cc.Informers.Apps().V1().Deployments(), cc.Informers.Apps().V1().ReplicaSets(),
			cc.Informers.Core().V1().Pods(), cc.Recorder("deployment-controller"), cc.Log.With("controller", "deployment")), nil
	},
	"garbage-collector": func(cc Context) (Controller, error) {
		return garbagecollector.New(cc.Metadata, cc.Client.Discovery(), cc.Log.With("controller", "garbage-collector")), nil
	},
	"namespace": func(cc Context) (Controller, error) {
		return namespace.New(cc.Client, cc.Metadata, cc.Informers.Core().V1().Namespaces(), cc.Log.With("controller", "namespace")), nil
	},
}

// disabledByDefault lists controllers that "*" does not select.
var disabledByDefault = map[string]bool{}

func metav1ObjectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
