// Package rootcacert is kube-controller-manager's root-ca-cert-publisher: it keeps a
// ConfigMap kube-root-ca.crt holding the cluster CA (key ca.crt) in every namespace, so that
// the token volume ServiceAccount admission projects into pods can include the CA a client in
// the pod verifies the API server with. A changed or deleted ConfigMap is put back; terminating
// namespaces are left alone.
//
// It watches namespaces through the shared informers and only the ConfigMaps of that name
// through an informer of its own, started by Run.
package rootcacert
