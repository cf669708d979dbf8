package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"
)

func TestJoinToken(t *testing.T) {
	b, err := Ensure(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := NewBootstrapToken()
	if err != nil {
		t.Fatal(err)
	}
	tok := JoinToken{CAHash: CAHash(b.CA.Cert), ID: id, Secret: secret}
	got, err := ParseJoinToken(" " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, tok)
	}
	if got.Bearer() != id+"."+secret {
		t.Errorf("bearer %q", got.Bearer())
	}
	for _, bad := range []string{"", "abcdef.0123456789abcdef", "nk1:zz:abcdef.0123456789abcdef",
		"nk1:" + tok.CAHash + ":ABCDEF.0123456789abcdef", "nk2:" + tok.CAHash + ":" + id + "." + secret} {
		if _, err := ParseJoinToken(bad); err == nil {
			t.Errorf("ParseJoinToken(%q) accepted", bad)
		}
	}
	// The serving chain ends with the CA, which is how an agent finds what it pins.
	if n := len(b.Serving.Certificate); n != 2 {
		t.Fatalf("serving chain has %d certificates, want leaf and CA", n)
	}
	if ca, _ := x509.ParseCertificate(b.Serving.Certificate[1]); CAHash(ca) != tok.CAHash {
		t.Error("the chain's last certificate is not the CA")
	}
}

func TestSignCSR(t *testing.T) {
	b, err := Ensure(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}},
		DNSNames:    []string{"n1"},
		IPAddresses: []net.IP{net.ParseIP("10.0.0.5")},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := x509.ParseCertificateRequest(der)
	certPEM, err := SignCSR(b.CA, req, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, x509.KeyUsageDigitalSignature, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: b.CAPool, DNSName: "10.0.0.5"}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if cert.IsCA || cert.Subject.CommonName != "system:node:n1" || time.Until(cert.NotAfter) > time.Hour {
		t.Errorf("certificate: CA=%v CN=%q notAfter=%v", cert.IsCA, cert.Subject.CommonName, cert.NotAfter)
	}
	// A request whose signature does not match its key is refused.
	req.Signature[len(req.Signature)-1] ^= 0xff
	if _, err := SignCSR(b.CA, req, nil, 0, time.Hour); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("tampered request: %v", err)
	}
}
