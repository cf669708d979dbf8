package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/keyutil"

	"github.com/nanokube/nanokube/internal/pki"
)

// JoinConfig says how a node joins a cluster.
type JoinConfig struct {
	// Server is the API server's URL, https://HOST:PORT.
	Server string
	// Token is the join token (the server's DATA_DIR/node-token); needed only the first time,
	// before the data dir holds the node's own credentials.
	Token string
	// DataDir keeps the node's credentials: DataDir/pki and DataDir/kubelet.kubeconfig.
	DataDir  string
	NodeName string
	// NodeIPs are the kubelet serving certificate's IP SANs (the node's name is its DNS SAN).
	NodeIPs []string
	// Timeout bounds the wait for the certificates to be issued (0: two minutes).
	Timeout time.Duration
	Log     *slog.Logger
}

// Credentials are what a joined node runs with.
type Credentials struct {
	RESTConfig  *rest.Config // the node's client certificate, system:node:<name>
	KubeletCert tls.Certificate
	ClientCA    *x509.CertPool // the cluster CA: verifies the API server and kubelet clients
	Kubeconfig  string
}

// Join returns the node's credentials: those already in the data dir, or, the first time,
// new ones obtained with the join token. The token authenticates the agent once, as the
// bootstrap user its Secret names; the agent pins the cluster CA by the hash the token
// carries, asks for a client certificate (CN system:node:<name>) with a
// CertificateSigningRequest, then, as the node, for its kubelet serving certificate. The
// server's controllers approve and sign both. Nothing is written to the data dir unless both
// are issued.
func Join(ctx context.Context, cfg JoinConfig) (*Credentials, error) {
	cfg = withDefaults(cfg)
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want https://HOST:PORT", cfg.Server)
	}
	paths := credentialPaths(cfg.DataDir)
	if creds, err := loadCredentials(cfg, paths); err == nil {
		return creds, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, fmt.Errorf("%s holds no node credentials yet: give --token (the server's node-token file)", cfg.DataDir)
	}
	tok, err := pki.ParseJoinToken(cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("--token: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	ca, err := fetchCA(ctx, u.Host, tok.CAHash)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	cfg.Log.Info("joining the cluster", "server", cfg.Server, "node", cfg.NodeName)
	bootstrap := &rest.Config{Host: cfg.Server, BearerToken: tok.Bearer(), TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}
	clientCertPEM, clientKeyPEM, err := requestCertificate(ctx, bootstrap, certificatesv1.KubeAPIServerClientKubeletSignerName,
		&x509.CertificateRequest{Subject: nodeSubject(cfg.NodeName)}, certificatesv1.UsageClientAuth)
	if err != nil {
		if apierrors.IsUnauthorized(err) {
			return nil, errors.New("the server refused the join token (wrong, expired or revoked): take the current one from the server's node-token file")
		}
		return nil, fmt.Errorf("node client certificate: %w", err)
	}
	asNode := &rest.Config{Host: cfg.Server, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, CertData: clientCertPEM, KeyData: clientKeyPEM}}
	tmpl := &x509.CertificateRequest{Subject: nodeSubject(cfg.NodeName), DNSNames: []string{cfg.NodeName}}
	for _, ip := range cfg.NodeIPs {
		if p := net.ParseIP(ip); p != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, p)
		}
	}
	servingCertPEM, servingKeyPEM, err := requestCertificate(ctx, asNode, certificatesv1.KubeletServingSignerName, tmpl, certificatesv1.UsageServerAuth)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	if err := os.MkdirAll(paths.dir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{paths.ca, caPEM, 0o644},
		{paths.clientKey, clientKeyPEM, 0o600}, {paths.client, clientCertPEM, 0o644},
		{paths.servingKey, servingKeyPEM, 0o600}, {paths.serving, servingCertPEM, 0o644},
	} {
		if err := pki.WriteFileAtomic(f.path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	if err := pki.WriteKubeconfig(paths.kubeconfig, cfg.Server, caPEM,
		pki.Credentials{ClientCertPEM: clientCertPEM, ClientKeyPEM: clientKeyPEM}); err != nil {
		return nil, err
	}
	cfg.Log.Info("joined: node credentials issued", "node", cfg.NodeName, "kubeconfig", paths.kubeconfig)
	return loadCredentials(cfg, paths)
}

func withDefaults(cfg JoinConfig) JoinConfig {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	return cfg
}

type credentialFiles struct {
	dir, ca, client, clientKey, serving, servingKey, kubeconfig string
}

func credentialPaths(dataDir string) credentialFiles {
	dir := filepath.Join(dataDir, "pki")
	return credentialFiles{dir: dir, ca: filepath.Join(dir, "ca.crt"),
		client: filepath.Join(dir, "kubelet-client.crt"), clientKey: filepath.Join(dir, "kubelet-client.key"),
		serving: filepath.Join(dir, "kubelet-serving.crt"), servingKey: filepath.Join(dir, "kubelet-serving.key"),
		kubeconfig: filepath.Join(dataDir, "kubelet.kubeconfig")}
}

// loadCredentials reads the node's credentials from the data dir; an os.ErrNotExist error
// means the node has not joined yet.
func loadCredentials(cfg JoinConfig, p credentialFiles) (*Credentials, error) {
	if _, err := os.Stat(p.kubeconfig); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(p.ca)
	if err != nil {
		return nil, fmt.Errorf("node credentials in %s are incomplete (%w): remove %s and join again with --token", cfg.DataDir, err, p.kubeconfig)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", p.ca)
	}
	client, err := tls.LoadX509KeyPair(p.client, p.clientKey)
	if err != nil {
		return nil, fmt.Errorf("node client certificate: %w", err)
	}
	if want := "system:node:" + cfg.NodeName; client.Leaf.Subject.CommonName != want {
		return nil, fmt.Errorf("%s belongs to node %q, not %q: use --node-name %s or another --data-dir",
			cfg.DataDir, strings.TrimPrefix(client.Leaf.Subject.CommonName, "system:node:"), cfg.NodeName,
			strings.TrimPrefix(client.Leaf.Subject.CommonName, "system:node:"))
	}
	if time.Now().After(client.Leaf.NotAfter) {
		return nil, fmt.Errorf("the node's client certificate expired at %s: remove %s and join again with --token",
			client.Leaf.NotAfter.Format(time.RFC3339), p.kubeconfig)
	}
	serving, err := tls.LoadX509KeyPair(p.serving, p.servingKey)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	rc := &rest.Config{Host: cfg.Server, TLSClientConfig: rest.TLSClientConfig{CAFile: p.ca, CertFile: p.client, KeyFile: p.clientKey}}
	return &Credentials{RESTConfig: rc, KubeletCert: serving, ClientCA: pool, Kubeconfig: p.kubeconfig}, nil
}

func nodeSubject(node string) pkix.Name {
	return pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}}
}

// requestCertificate makes a key, asks for a certificate for it through a
// CertificateSigningRequest and waits until it is issued, denied or failed.
func requestCertificate(ctx context.Context, rc *rest.Config, signer string, tmpl *x509.CertificateRequest, usage certificatesv1.KeyUsage) (certPEM, keyPEM []byte, err error) {
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csrPEM, err := certutil.MakeCSRFromTemplate(key, tmpl)
	if err != nil {
		return nil, nil, err
	}
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, usage}
	name, uid, err := csr.RequestCertificateWithContext(ctx, client, csrPEM, "", signer, nil, usages, key)
	if err != nil {
		// RequestCertificate formats the error; find the API status underneath again.
		if _, err2 := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{Limit: 1}); apierrors.IsUnauthorized(err2) {
			return nil, nil, err2
		}
		return nil, nil, err
	}
	certPEM, err = csr.WaitForCertificate(ctx, client, name, uid)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("certificate request %s was not approved and signed in time; see `kubectl get csr %s` on the server", name, name)
		}
		return nil, nil, fmt.Errorf("certificate request %s: %w", name, err)
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	return certPEM, keyPEM, err
}

// fetchCA finds the cluster CA among the certificates the server presents, by the hash the
// join token carries, and checks that the server's certificate is one the CA issued.
func fetchCA(ctx context.Context, host, caHash string) (*x509.Certificate, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} // verified below, against the pinned CA
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the API server at %s: %w (is `nanokube server` running there, and is --server right?)", host, err)
	}
	defer conn.Close()
	state := conn.(*tls.Conn).ConnectionState()
	for _, c := range state.PeerCertificates {
		if !c.IsCA || pki.CAHash(c) != caHash {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(c)
		hostname, _, _ := net.SplitHostPort(host)
		if _, err := state.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: hostname}); err != nil {
			return nil, fmt.Errorf("the API server's certificate does not cover %s: %w (add it with the server's --tls-san)", hostname, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("the server at %s does not present the CA the join token names: wrong token, or another cluster's server", host)
}

// RenewClientCertificate keeps the node's client certificate fresh: once less than a fifth
// of its lifetime is left, it asks for a new one with a CertificateSigningRequest made with
// the current certificate (the server approves a node renewing its own), and replaces the
// files client-go reads, which reloads them. It returns when ctx is done; failures are
// logged and retried.
func RenewClientCertificate(ctx context.Context, cfg JoinConfig, creds *Credentials) {
	cfg = withDefaults(cfg)
	paths := credentialPaths(cfg.DataDir)
	for {
		wait := time.Minute
		if cert, err := tls.LoadX509KeyPair(paths.client, paths.clientKey); err == nil {
			life := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore)
			wait = time.Until(cert.Leaf.NotAfter.Add(-life / 5))
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(wait, time.Hour)):
				continue // re-read: the files may have changed meanwhile
			}
		}
		if err := renewClientCertificate(ctx, cfg, creds, paths); err != nil {
			cfg.Log.Warn("renewing the node's client certificate failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Minute):
			}
		}
	}
}

func renewClientCertificate(ctx context.Context, cfg JoinConfig, creds *Credentials, paths credentialFiles) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	rc := rest.CopyConfig(creds.RESTConfig)
	certPEM, keyPEM, err := requestCertificate(ctx, rc, certificatesv1.KubeAPIServerClientKubeletSignerName,
		&x509.CertificateRequest{Subject: nodeSubject(cfg.NodeName)}, certificatesv1.UsageClientAuth)
	if err != nil {
		return err
	}
	// The key first: a reader that sees the new certificate also finds its key.
	if err := pki.WriteFileAtomic(paths.clientKey, keyPEM, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(paths.client, certPEM, 0o644); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(paths.ca)
	if err != nil {
		return err
	}
	if err := pki.WriteKubeconfig(paths.kubeconfig, cfg.Server, caPEM, pki.Credentials{ClientCertPEM: certPEM, ClientKeyPEM: keyPEM}); err != nil {
		return err
	}
	cfg.Log.Info("renewed the node's client certificate", "node", cfg.NodeName)
	return nil
}
