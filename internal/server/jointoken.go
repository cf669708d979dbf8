package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nanokube/nanokube/internal/pki"
)

// nodeBootstrapGroup is the extra group of the node join token's user; the default RBAC
// policy lets system:bootstrappers ask for node client certificates.
const nodeBootstrapGroup = "system:bootstrappers:nanokube:default-node-token"

// ensureJoinToken makes sure DataDir/node-token holds a join token whose bootstrap token
// exists as a kube-system Secret (kubeadm's format, read by the API server's bootstrap token
// authenticator), and returns the token. A token still backed by its Secret is kept, so
// agents given it keep working across restarts; deleting the Secret revokes it, and the next
// start writes a new one.
func ensureJoinToken(ctx context.Context, client kubernetes.Interface, dir string, ca *pki.CA) (string, error) {
	path := filepath.Join(dir, "node-token")
	secrets := client.CoreV1().Secrets("kube-system")
	if data, err := os.ReadFile(path); err == nil {
		tok, err := pki.ParseJoinToken(string(data))
		if err == nil && tok.CAHash == pki.CAHash(ca.Cert) {
			sec, err := secrets.Get(ctx, "bootstrap-token-"+tok.ID, metav1.GetOptions{})
			if err == nil && string(sec.Data["token-secret"]) == tok.Secret {
				return tok.String(), nil
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return "", fmt.Errorf("bootstrap token secret: %w", err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id, secret, err := pki.NewBootstrapToken()
	if err != nil {
		return "", err
	}
	tok := pki.JoinToken{CAHash: pki.CAHash(ca.Cert), ID: id, Secret: secret}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "bootstrap-token-" + tok.ID},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"description":                    "nanokube node join token (" + path + ")",
			"token-id":                       tok.ID,
			"token-secret":                   tok.Secret,
			"usage-bootstrap-authentication": "true",
			"auth-extra-groups":              nodeBootstrapGroup,
		},
	}
	if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("bootstrap token secret: %w", err)
	}
	if err := pki.WriteFileAtomic(path, []byte(tok.String()+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok.String(), nil
}
