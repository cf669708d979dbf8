package pki_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/internal/pki"
)

// TestWriteKubeconfig writes kubeconfigs, loads them with clientcmd and uses
// the resulting rest.Config against a TLS server built from the same Bundle,
// which identifies the caller by client certificate or bearer token.
func TestWriteKubeconfig(t *testing.T) {
	dir := t.TempDir()
	b, err := pki.Ensure(filepath.Join(dir, "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "tokens.csv")
	token, err := pki.EnsureTokenFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := pki.LoadTokenFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if certs := r.TLS.PeerCertificates; len(certs) > 0 {
			fmt.Fprintf(w, "cert:%s", pki.UserFromCertificate(certs[0]).Name)
			return
		}
		if u, ok := tokens.Authenticate(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")); ok {
			fmt.Fprintf(w, "token:%s", u.Name)
			return
		}
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{b.Serving}, ClientCAs: b.CAPool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		creds   pki.Credentials
		want    string
		wantErr bool
	}{
		{name: "client certificate", creds: b.Admin, want: "cert:" + pki.AdminUser},
		{name: "token", creds: pki.Credentials{Token: token}, want: "token:" + pki.AdminUser},
		{name: "both", creds: pki.Credentials{ClientCertPEM: b.Admin.ClientCertPEM, ClientKeyPEM: b.Admin.ClientKeyPEM, Token: token}, wantErr: true},
		{name: "cert without key", creds: pki.Credentials{ClientCertPEM: b.Admin.ClientCertPEM}, wantErr: true},
		{name: "nothing", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "kubeconfig")
			err := pki.WriteKubeconfig(path, srv.URL, b.CA.CertPEM, tt.creds)
			if tt.wantErr {
				if err == nil {
					t.Fatal("WriteKubeconfig succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
				t.Fatalf("stat: %v, %v", fi.Mode(), err)
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", path)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != srv.URL || cfg.BearerToken != tt.creds.Token || string(cfg.CertData) != string(tt.creds.ClientCertPEM) {
				t.Errorf("rest.Config host %q token %q certData %d bytes", cfg.Host, cfg.BearerToken, len(cfg.CertData))
			}
			client, err := rest.HTTPClientFor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tt.want {
				t.Errorf("server saw %q (HTTP %d), want %q", body, resp.StatusCode, tt.want)
			}
		})
	}
}
