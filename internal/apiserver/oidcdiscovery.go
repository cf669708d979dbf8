package apiserver

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/nanokube/nanokube/internal/apiserver/satoken"
)

// OIDC discovery of the service-account issuer, as kube-apiserver serves it: the discovery
// document at /.well-known/openid-configuration and the public keys at /openid/v1/jwks, so
// that a system outside the cluster (a cloud's workload identity, Vault) can verify
// service-account tokens the standard way. Both are served only when the issuer is an https
// URL, and readable by whoever RBAC allows (system:service-account-issuer-discovery, bound to
// every service account by default).

const (
	oidcConfigPath = "/.well-known/openid-configuration"
	jwksPath       = "/openid/v1/jwks"
)

// oidcDiscovery holds what the two endpoints serve.
type oidcDiscovery struct {
	issuer  string
	jwksURI string // empty: https://<advertise address>:<port>/openid/v1/jwks
	algs    []string
	jwks    []byte
}

// buildOIDCDiscovery prepares discovery for the issuer and keys, or says why it cannot be
// served.
func buildOIDCDiscovery(issuer, jwksURI string, keys []crypto.PublicKey) (*oidcDiscovery, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("the service-account issuer %q is not an https URL", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("the service-account issuer %q has a query or fragment", issuer)
	}
	if jwksURI != "" {
		if j, err := url.Parse(jwksURI); err != nil || j.Scheme != "https" || j.Host == "" {
			return nil, fmt.Errorf("--service-account-jwks-uri %q is not an https URL", jwksURI)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no service-account keys")
	}
	set, err := satoken.PublicJWKS(keys)
	if err != nil {
		return nil, err
	}
	d := &oidcDiscovery{issuer: issuer, jwksURI: jwksURI}
	for _, k := range set.Keys {
		if !slices.Contains(d.algs, k.Alg) {
			d.algs = append(d.algs, k.Alg)
		}
	}
	slices.Sort(d.algs)
	if d.jwks, err = json.Marshal(set); err != nil {
		return nil, err
	}
	return d, nil
}

// newOIDCDiscovery sets up discovery for the configured issuer and the keys that verify its
// tokens; when it cannot be served it logs why, as kube-apiserver does, and serves none.
func (s *Server) newOIDCDiscovery() {
	d, err := buildOIDCDiscovery(s.cfg.ServiceAccountIssuer, s.cfg.ServiceAccountJWKSURI, s.serviceAccountPublicKeys())
	if err != nil {
		s.log.Info("service-account issuer discovery is not served", "reason", err)
		return
	}
	s.oidc = d
}

// serveOIDCConfig answers GET /.well-known/openid-configuration.
func (s *Server) serveOIDCConfig(w http.ResponseWriter, r *http.Request) {
	if !getOnly(w, r) {
		return
	}
	d := s.oidc
	jwksURI := d.jwksURI
	if jwksURI == "" {
		host := net.JoinHostPort(s.advertiseAddress(), strconv.Itoa(int(s.securePort())))
		jwksURI = (&url.URL{Scheme: "https", Host: host, Path: jwksPath}).String()
	}
	body, _ := json.Marshal(map[string]any{ // cannot fail for strings
		"issuer":                                d.issuer,
		"jwks_uri":                              jwksURI,
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": d.algs,
	})
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, "application/json", body)
}

// serveJWKS answers GET /openid/v1/jwks.
func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if !getOnly(w, r) {
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, "application/jwk-set+json", s.oidc.jwks)
}

func getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}
