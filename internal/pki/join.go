package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"
)

// A JoinToken is what `nanokube agent --token` takes: a bootstrap token (kubeadm's
// "<id>.<secret>", which authenticates the agent once) and the SHA-256 of the cluster CA's
// certificate, which lets the agent trust the server before it holds any credential. Its
// text form is "nk1:<ca-hash-hex>:<id>.<secret>".
type JoinToken struct {
	CAHash string // hex SHA-256 of the CA certificate's DER
	ID     string // [a-z0-9]{6}
	Secret string // [a-z0-9]{16}
}

const joinTokenPrefix = "nk1"

var bootstrapTokenRE = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// ParseBootstrapToken splits a bootstrap token "<id>.<secret>".
func ParseBootstrapToken(s string) (id, secret string, ok bool) {
	m := bootstrapTokenRE.FindStringSubmatch(s)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// ParseJoinToken reads the text form of a join token.
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 || parts[0] != joinTokenPrefix {
		return JoinToken{}, errors.New(`a join token has the form "nk1:<ca-hash>:<id>.<secret>"; copy it from the server's data dir (node-token)`)
	}
	if b, err := hex.DecodeString(parts[1]); err != nil || len(b) != sha256.Size {
		return JoinToken{}, errors.New("the join token's CA hash is not a hex SHA-256; copy the token again from the server's node-token file")
	}
	id, secret, ok := ParseBootstrapToken(parts[2])
	if !ok {
		return JoinToken{}, errors.New(`the join token's credential is not "<6 chars>.<16 chars>" of [a-z0-9]; copy the token again from the server's node-token file`)
	}
	return JoinToken{CAHash: strings.ToLower(parts[1]), ID: id, Secret: secret}, nil
}

// String is the token's text form.
func (t JoinToken) String() string {
	return fmt.Sprintf("%s:%s:%s.%s", joinTokenPrefix, t.CAHash, t.ID, t.Secret)
}

// Bearer is the bootstrap token the agent presents to the API server.
func (t JoinToken) Bearer() string { return t.ID + "." + t.Secret }

// CAHash is the hex SHA-256 of a certificate's DER, the pin a join token carries.
func CAHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// NewBootstrapToken returns a fresh random bootstrap token id and secret.
func NewBootstrapToken() (id, secret string, err error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	pick := func(n int) (string, error) {
		b := make([]byte, n)
		for i := range b {
			k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
			if err != nil {
				return "", err
			}
			b[i] = alphabet[k.Int64()]
		}
		return string(b), nil
	}
	if id, err = pick(6); err != nil {
		return "", "", err
	}
	secret, err = pick(16)
	return id, secret, err
}

// SignCSR issues a certificate for a verified certificate request: the request's subject,
// DNS names and IP addresses, the given extended key usages, valid for ttl (never beyond the
// CA's own validity). The caller decides whether the request deserves a certificate.
func SignCSR(ca *CA, req *x509.CertificateRequest, usages []x509.ExtKeyUsage, keyUsage x509.KeyUsage, ttl time.Duration) ([]byte, error) {
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      req.Subject,
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPAddresses,
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(ttl),
		KeyUsage:     keyUsage,
		ExtKeyUsage:  usages,
		// A leaf: never usable to sign other certificates.
		BasicConstraintsValid: true,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
