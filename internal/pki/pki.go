package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Well-known names baked into the generated material.
const (
	CACommonName = "nanokube-ca"
	AdminUser    = "kubernetes-admin"
	MastersGroup = "system:masters"
)

const (
	caTTL   = 10 * 365 * 24 * time.Hour
	leafTTL = 365 * 24 * time.Hour
	// Backdating tolerates clocks that lag the issuer's.
	backdate = time.Hour
)

// Options select what Ensure puts in the serving certificate.
type Options struct {
	// ServiceCIDR is the service cluster IP range, e.g. "10.96.0.0/12". Its
	// first address, the ClusterIP of the kubernetes service, becomes a SAN.
	// Empty means none.
	ServiceCIDR string
	// ExtraSANs are further IP addresses or DNS names for the serving cert.
	ExtraSANs []string
}

// CA is a certificate authority able to issue certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// Bundle is the material Ensure found or created.
type Bundle struct {
	Dir                             string
	CACertFile, CAKeyFile           string
	ServingCertFile, ServingKeyFile string
	AdminCertFile, AdminKeyFile     string

	CA      *CA
	CAPool  *x509.CertPool // holds only the CA; use it to verify clients
	Serving tls.Certificate
	Admin   Credentials // the admin client certificate, ready for WriteKubeconfig
}

// Ensure creates the cluster PKI in dir, or loads and reuses what is already
// there. See the package documentation for the layout and reuse rules.
func Ensure(dir string, opts Options) (*Bundle, error) {
	sans, err := servingSANs(opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	b := &Bundle{
		Dir:        dir,
		CACertFile: path("ca.crt"), CAKeyFile: path("ca.key"),
		ServingCertFile: path("apiserver.crt"), ServingKeyFile: path("apiserver.key"),
		AdminCertFile: path("admin.crt"), AdminKeyFile: path("admin.key"),
	}
	if b.CA, err = ensureCA(b.CACertFile, b.CAKeyFile); err != nil {
		return nil, err
	}
	b.CAPool = x509.NewCertPool()
	b.CAPool.AddCert(b.CA.Cert)

	certPEM, keyPEM, err := ensureLeaf(b.CAPool, b.ServingCertFile, b.ServingKeyFile, x509.ExtKeyUsageServerAuth, sans,
		func() ([]byte, []byte, error) { return IssueServingCert(b.CA, "kube-apiserver", sans, leafTTL) })
	if err != nil {
		return nil, err
	}
	if b.Serving, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, err
	}
	// The chain ends with the CA itself so that a joining agent, which holds only the CA's
	// hash (JoinToken), can find the CA in the handshake and pin it.
	b.Serving.Certificate = append(b.Serving.Certificate, b.CA.Cert.Raw)
	certPEM, keyPEM, err = ensureLeaf(b.CAPool, b.AdminCertFile, b.AdminKeyFile, x509.ExtKeyUsageClientAuth, nil,
		func() ([]byte, []byte, error) {
			return IssueClientCert(b.CA, AdminUser, []string{MastersGroup}, leafTTL)
		})
	if err != nil {
		return nil, err
	}
	b.Admin = Credentials{ClientCertPEM: certPEM, ClientKeyPEM: keyPEM}
	return b, nil
}

// IssueClientCert issues a client-auth certificate whose subject is the user
// cn in groups orgs, the form UserFromCertificate reads back.
func IssueClientCert(ca *CA, cn string, orgs []string, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	return issue(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: orgs},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ttl)
}

// IssueServingCert issues a server-auth certificate for sans, each an IP
// address or a DNS name.
func IssueServingCert(ca *CA, cn string, sans []string, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	dns, ips := splitSANs(sans)
	return issue(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dns,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ttl)
}

// issue completes tmpl with a fresh key, serial and validity (never beyond the
// CA's own) and signs it.
func issue(ca *CA, tmpl *x509.Certificate, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	now := time.Now()
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(ttl)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	return sign(tmpl, ca.Cert, ca.Key)
}

func newCA() (certPEM, keyPEM []byte, err error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: CACommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return sign(tmpl, nil, nil)
}

// sign creates a key for tmpl and signs it with parentKey, or self-signs it
// when parent is nil.
func sign(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)); err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func ensureCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	var keyPEM []byte
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if certPEM, keyPEM, err = newCA(); err != nil {
			return nil, err
		}
		if err := writePair(certFile, keyFile, certPEM, keyPEM); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return nil, fmt.Errorf("CA certificate exists but its key does not load: %w", err)
		}
	}
	return parseCA(certFile, certPEM, keyPEM)
}

// LoadCA reads an existing CA certificate and key, for signing (the controller manager's
// --cluster-signing-cert-file and --cluster-signing-key-file).
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	return parseCA(certFile, certPEM, keyPEM)
}

func parseCA(certFile string, certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", certFile, err)
	}
	if !pair.Leaf.IsCA {
		return nil, fmt.Errorf("load CA from %s: not a CA certificate", certFile)
	}
	return &CA{Cert: pair.Leaf, Key: pair.PrivateKey.(crypto.Signer), CertPEM: certPEM}, nil
}

// ensureLeaf returns the pair stored in certFile/keyFile if it is still good
// for usage and sans under roots, and otherwise issues and stores a new one.
func ensureLeaf(roots *x509.CertPool, certFile, keyFile string, usage x509.ExtKeyUsage, sans []string,
	issue func() ([]byte, []byte, error)) (certPEM, keyPEM []byte, err error) {
	certPEM, certErr := os.ReadFile(certFile)
	keyPEM, keyErr := os.ReadFile(keyFile)
	if certErr == nil && keyErr == nil && leafValid(certPEM, keyPEM, roots, usage, sans) {
		return certPEM, keyPEM, nil
	}
	if certPEM, keyPEM, err = issue(); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, writePair(certFile, keyFile, certPEM, keyPEM)
}

func leafValid(certPEM, keyPEM []byte, roots *x509.CertPool, usage x509.ExtKeyUsage, sans []string) bool {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false
	}
	leaf := pair.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return false
	}
	dns, ips := splitSANs(sans)
	for _, name := range dns {
		if !slices.Contains(leaf.DNSNames, name) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// writePair writes the key first: a crash in between leaves a certificate
// that does not match its key, which Ensure reissues, rather than a stale key.
func writePair(certFile, keyFile string, certPEM, keyPEM []byte) error {
	if err := WriteFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(certFile, certPEM, 0o644)
}

func servingSANs(opts Options) ([]string, error) {
	sans := []string{"localhost", "127.0.0.1", "::1",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if opts.ServiceCIDR != "" {
		prefix, err := netip.ParsePrefix(opts.ServiceCIDR)
		if err != nil {
			return nil, fmt.Errorf("service CIDR: %w", err)
		}
		first := prefix.Masked().Addr().Next()
		if !first.IsValid() || !prefix.Contains(first) {
			return nil, fmt.Errorf("service CIDR %s has no usable address", opts.ServiceCIDR)
		}
		sans = append(sans, first.String())
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		sans = append(sans, host)
	}
	for _, s := range opts.ExtraSANs {
		if s = strings.TrimSpace(s); s != "" {
			sans = append(sans, s)
		}
	}
	for i, s := range sans {
		if net.ParseIP(s) == nil {
			sans[i] = strings.ToLower(s)
		}
	}
	slices.Sort(sans)
	return slices.Compact(sans), nil
}

func splitSANs(sans []string) (dns []string, ips []net.IP) {
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, s)
		}
	}
	return dns, ips
}

// WriteFileAtomic replaces path with data so readers never see a partial
// file. The temporary file is created 0600, so secrets are never exposed.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), mode)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
