package server

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/nanokube/nanokube/internal/apiserver"
	"github.com/nanokube/nanokube/internal/apiserver/authz"
	"github.com/nanokube/nanokube/internal/pki"
)

// The users the components of this process authenticate as, as kubeadm names them; each
// is bound to its role by the default policy (authz.DefaultClusterRoleBindings).
const (
	schedulerUser         = "system:kube-scheduler"
	controllerManagerUser = "system:kube-controller-manager"
	proxyUser             = "system:kube-proxy"
	dnsUser               = "system:kube-dns"
)

// componentKubeconfigs are the kubeconfigs of the components of this process, in DataDir.
type componentKubeconfigs struct {
	scheduler, controllerManager, kubelet, proxy, dns string
}

// componentIdentityTTL is how long a component's client certificate lives; it is issued
// again at every start.
const componentIdentityTTL = 365 * 24 * time.Hour

// writeComponentKubeconfigs gives the scheduler, the controller manager, this machine's
// kubelet (system:node:<name> in system:nodes, so that the Node authorizer and
// NodeRestriction hold it to its own node), its service proxy and the cluster DNS each a
// client certificate of the cluster CA and a kubeconfig, instead of the admin credentials.
func writeComponentKubeconfigs(dir, url string, bundle *pki.Bundle, nodeName string) (componentKubeconfigs, error) {
	k := componentKubeconfigs{
		scheduler:         filepath.Join(dir, "scheduler.kubeconfig"),
		controllerManager: filepath.Join(dir, "controller-manager.kubeconfig"),
		kubelet:           filepath.Join(dir, "kubelet.kubeconfig"),
		proxy:             filepath.Join(dir, "kube-proxy.kubeconfig"),
		dns:               filepath.Join(dir, "kube-dns.kubeconfig"),
	}
	for _, c := range []struct {
		path, user string
		groups     []string
	}{
		{k.scheduler, schedulerUser, nil},
		{k.controllerManager, controllerManagerUser, nil},
		{k.kubelet, authz.NodeUserPrefix + nodeName, []string{authz.NodesGroup}},
		{k.proxy, proxyUser, nil},
		{k.dns, dnsUser, nil},
	} {
		if c.path == k.kubelet && nodeName == "" {
			continue // no node on this machine
		}
		certPEM, keyPEM, err := pki.IssueClientCert(bundle.CA, c.user, c.groups, componentIdentityTTL)
		if err != nil {
			return k, fmt.Errorf("client certificate for %s: %w", c.user, err)
		}
		if err := pki.WriteKubeconfig(c.path, url, bundle.CA.CertPEM, pki.Credentials{ClientCertPEM: certPEM, ClientKeyPEM: keyPEM}); err != nil {
			return k, fmt.Errorf("kubeconfig for %s: %w", c.user, err)
		}
	}
	return k, nil
}

// controlPlaneLabel marks the server's own node, as kubeadm does. NodeRestriction forbids a
// kubelet to set node-role labels on itself, so the server sets it with its admin
// credentials once the node has registered.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

func labelControlPlaneNode(ctx context.Context, client kubernetes.Interface, node string) error {
	patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:""}}}`, controlPlaneLabel))
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "nanokube-server"})
		return err == nil, nil
	})
}

// warnNodesUnauthorized warns when --authorization-mode leaves nodes without rights: as in
// Kubernetes, the system:node role is bound to nobody and only the Node mode grants a node
// what its kubelet needs.
func warnNodesUnauthorized(cfg Config) {
	modes, _ := apiserver.ParseAuthorizationModes(cfg.AuthorizationMode)
	if !slices.Contains(modes, apiserver.AuthorizationNode) && !slices.Contains(modes, apiserver.AuthorizationAlwaysAllow) {
		cfg.Log.Warn("--authorization-mode has no Node mode: kubelets are refused unless the system:node ClusterRole is bound to them",
			"authorization-mode", cfg.AuthorizationMode)
	}
}
