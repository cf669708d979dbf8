package pki

import (
	"errors"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Credentials identify a client: either a client certificate and key, or a
// bearer token.
type Credentials struct {
	ClientCertPEM, ClientKeyPEM []byte
	Token                       string
}

// kubeconfigName names the single cluster, user and context in the
// kubeconfigs we write.
const kubeconfigName = "nanokube"

// WriteKubeconfig writes a kubeconfig for serverURL, trusting caPEM and
// authenticating as user, with all data embedded. The file is mode 0600 and
// replaced atomically.
func WriteKubeconfig(path, serverURL string, caPEM []byte, user Credentials) error {
	hasCert := len(user.ClientCertPEM) > 0 || len(user.ClientKeyPEM) > 0
	switch {
	case hasCert && user.Token != "":
		return errors.New("kubeconfig: credentials hold both a client certificate and a token")
	case hasCert && (len(user.ClientCertPEM) == 0 || len(user.ClientKeyPEM) == 0):
		return errors.New("kubeconfig: client certificate and key must be given together")
	case !hasCert && user.Token == "":
		return errors.New("kubeconfig: credentials hold neither a client certificate nor a token")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[kubeconfigName] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[kubeconfigName] = &clientcmdapi.AuthInfo{
		ClientCertificateData: user.ClientCertPEM,
		ClientKeyData:         user.ClientKeyPEM,
		Token:                 user.Token,
	}
	cfg.Contexts[kubeconfigName] = &clientcmdapi.Context{Cluster: kubeconfigName, AuthInfo: kubeconfigName, Namespace: "default"}
	cfg.CurrentContext = kubeconfigName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return WriteFileAtomic(path, data, 0o600)
}
