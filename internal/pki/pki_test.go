package pki_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nanokube/nanokube/internal/pki"
)

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestEnsureCreatesLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	b, err := pki.Ensure(dir, pki.Options{ServiceCIDR: "10.96.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		dir:          0o700 | os.ModeDir,
		b.CAKeyFile:  0o600,
		b.CACertFile: 0o644, b.ServingKeyFile: 0o600, b.ServingCertFile: 0o644,
		b.AdminKeyFile: 0o600, b.AdminCertFile: 0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 6 {
		t.Errorf("dir holds %d entries, want 6 (no temporary files left behind)", len(entries))
	}
	ca := b.CA.Cert
	if ca.Subject.CommonName != pki.CACommonName || !ca.IsCA {
		t.Errorf("CA subject %v, IsCA %v", ca.Subject, ca.IsCA)
	}
	if years := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("CA valid for %.1f years, want 10", years)
	}
	if !bytes.Equal(readFile(t, b.CACertFile), b.CA.CertPEM) {
		t.Error("Bundle.CA.CertPEM differs from ca.crt")
	}
}

func TestEnsureCertificates(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{
		ServiceCIDR: "10.96.0.0/12",
		ExtraSANs:   []string{"api.example.com", "192.0.2.10", "2001:db8::1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	serving := b.Serving.Leaf
	for _, name := range []string{
		"localhost", "127.0.0.1", "::1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "10.96.0.1", host, "api.example.com", "192.0.2.10", "2001:db8::1",
	} {
		t.Run("serving/"+name, func(t *testing.T) {
			_, err := serving.Verify(x509.VerifyOptions{
				DNSName: name, Roots: b.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := serving.VerifyHostname("kubernetes.evil.com"); err == nil {
		t.Error("serving cert accepts a name it was not issued for")
	}

	admin := parseCert(t, b.Admin.ClientCertPEM)
	if _, err := admin.Verify(x509.VerifyOptions{Roots: b.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin cert: %v", err)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: b.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("admin cert is valid for server auth")
	}
	u := pki.UserFromCertificate(admin)
	if u.Name != pki.AdminUser || !slices.Equal(u.Groups, []string{pki.MastersGroup}) {
		t.Errorf("admin user = %+v", u)
	}
}

// TestEnsureReuse runs Ensure, changes something, runs it again and checks
// which files were kept.
func TestEnsureReuse(t *testing.T) {
	opts := pki.Options{ServiceCIDR: "10.96.0.0/12"}
	tests := []struct {
		name                   string
		damage                 func(t *testing.T, b *pki.Bundle)
		opts                   pki.Options
		keepServing, keepAdmin bool
	}{
		{name: "unchanged", opts: opts, keepServing: true, keepAdmin: true},
		{name: "SAN already present", opts: pki.Options{ServiceCIDR: "10.96.0.0/16", ExtraSANs: []string{"LOCALHOST"}},
			keepServing: true, keepAdmin: true},
		{name: "new extra SAN", opts: pki.Options{ServiceCIDR: "10.96.0.0/12", ExtraSANs: []string{"node1.example.com"}},
			keepAdmin: true},
		{name: "new service CIDR", opts: pki.Options{ServiceCIDR: "10.43.0.0/16"}, keepAdmin: true},
		{name: "serving key lost", opts: opts, keepAdmin: true,
			damage: func(t *testing.T, b *pki.Bundle) { os.Remove(b.ServingKeyFile) }},
		{name: "admin cert corrupt", opts: opts, keepServing: true,
			damage: func(t *testing.T, b *pki.Bundle) { os.WriteFile(b.AdminCertFile, []byte("junk"), 0o644) }},
		{name: "admin cert from another CA", opts: opts, keepServing: true,
			damage: func(t *testing.T, b *pki.Bundle) {
				other, err := pki.Ensure(t.TempDir(), pki.Options{})
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(b.AdminCertFile, readFile(t, other.AdminCertFile), 0o644)
				os.WriteFile(b.AdminKeyFile, readFile(t, other.AdminKeyFile), 0o600)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := pki.Ensure(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			ca, serving, admin := readFile(t, first.CACertFile), readFile(t, first.ServingCertFile), readFile(t, first.AdminCertFile)
			if tt.damage != nil {
				tt.damage(t, first)
			}
			second, err := pki.Ensure(dir, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, second.CACertFile), ca) || !bytes.Equal(second.CA.CertPEM, ca) {
				t.Error("CA was regenerated")
			}
			if got := bytes.Equal(readFile(t, second.ServingCertFile), serving); got != tt.keepServing {
				t.Errorf("serving cert kept = %v, want %v", got, tt.keepServing)
			}
			if got := bytes.Equal(readFile(t, second.AdminCertFile), admin); got != tt.keepAdmin {
				t.Errorf("admin cert kept = %v, want %v", got, tt.keepAdmin)
			}
			if _, err := second.Serving.Leaf.Verify(x509.VerifyOptions{Roots: second.CAPool}); err != nil {
				t.Errorf("serving cert after second Ensure: %v", err)
			}
		})
	}
}

func TestEnsureErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		opts  pki.Options
	}{
		{name: "bad service CIDR", opts: pki.Options{ServiceCIDR: "10.96.0.0"}},
		{name: "service CIDR too small", opts: pki.Options{ServiceCIDR: "10.96.0.1/32"}},
		{name: "CA key missing", setup: func(t *testing.T, dir string) {
			b, err := pki.Ensure(dir, pki.Options{})
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(b.CAKeyFile)
		}},
		{name: "CA not a CA", setup: func(t *testing.T, dir string) {
			b, err := pki.Ensure(dir, pki.Options{})
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(b.CACertFile, readFile(t, b.AdminCertFile), 0o644)
			os.WriteFile(b.CAKeyFile, readFile(t, b.AdminKeyFile), 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			if _, err := pki.Ensure(dir, tt.opts); err == nil {
				t.Fatal("Ensure succeeded")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		issue   func() ([]byte, []byte, error)
		usage   x509.ExtKeyUsage
		wantCN  string
		wantOrg []string
		dns     string
		ttl     time.Duration
	}{
		{name: "node client", usage: x509.ExtKeyUsageClientAuth, wantCN: "system:node:n1", wantOrg: []string{"system:nodes"}, ttl: 24 * time.Hour,
			issue: func() ([]byte, []byte, error) {
				return pki.IssueClientCert(b.CA, "system:node:n1", []string{"system:nodes"}, 24*time.Hour)
			}},
		{name: "kubelet serving", usage: x509.ExtKeyUsageServerAuth, wantCN: "n1", dns: "n1.example.com", ttl: time.Hour,
			issue: func() ([]byte, []byte, error) {
				return pki.IssueServingCert(b.CA, "n1", []string{"n1.example.com", "192.0.2.7"}, time.Hour)
			}},
		{name: "capped at CA expiry", usage: x509.ExtKeyUsageClientAuth, wantCN: "long", ttl: 0,
			issue: func() ([]byte, []byte, error) { return pki.IssueClientCert(b.CA, "long", nil, 100*365*24*time.Hour) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := tt.issue()
			if err != nil {
				t.Fatal(err)
			}
			if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
				t.Fatalf("key PEM %q", keyPEM)
			}
			cert := parseCert(t, certPEM)
			if _, err := cert.Verify(x509.VerifyOptions{DNSName: tt.dns, Roots: b.CAPool, KeyUsages: []x509.ExtKeyUsage{tt.usage}}); err != nil {
				t.Error(err)
			}
			if cert.Subject.CommonName != tt.wantCN || !slices.Equal(cert.Subject.Organization, tt.wantOrg) {
				t.Errorf("subject %v", cert.Subject)
			}
			wantEnd := b.CA.Cert.NotAfter
			if tt.ttl > 0 {
				wantEnd = time.Now().Add(tt.ttl)
			}
			if d := cert.NotAfter.Sub(wantEnd); d < -time.Minute || d > time.Minute {
				t.Errorf("NotAfter %v, want about %v", cert.NotAfter, wantEnd)
			}
		})
	}
}
