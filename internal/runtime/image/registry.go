package image

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/yaml"
)

// RegistryConfig is the --registry-config file: mirrors tried before a registry's own endpoint,
// and per-host settings. YAML or JSON:
//
//	mirrors:
//	  docker.io:
//	    endpoints: ["http://127.0.0.1:5000"]
//	    noFallback: true   # never the registry itself (air-gapped nodes, tests)
//	hosts:
//	  "127.0.0.1:5000":
//	    plainHTTP: true
//	    insecureSkipVerify: false
//	    username: u
//	    password: p
type RegistryConfig struct {
	Mirrors map[string]Mirror     `json:"mirrors,omitempty"`
	Hosts   map[string]HostConfig `json:"hosts,omitempty"`
}

// Mirror lists endpoints ("http://host:port" or "host:port", https unless said) for a registry.
type Mirror struct {
	Endpoints []string `json:"endpoints"`
	// NoFallback keeps pulls to the mirrors: the registry itself is never asked, so a
	// reference the mirrors lack fails instead of reaching out (air-gapped nodes, tests).
	NoFallback bool `json:"noFallback,omitempty"`
}

// HostConfig holds settings for one registry host.
type HostConfig struct {
	PlainHTTP          bool   `json:"plainHTTP,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
	Username           string `json:"username,omitempty"`
	Password           string `json:"password,omitempty"`
}

// LoadRegistryConfig reads path; an empty path gives the zero config.
func LoadRegistryConfig(path string) (RegistryConfig, error) {
	var c RegistryConfig
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("registry config: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("registry config %s: %w", path, err)
	}
	return c, nil
}

// endpoint is one place to fetch a reference from.
type endpoint struct {
	ref       name.Reference
	transport http.RoundTripper
	auth      authn.Authenticator
}

// endpoints returns where to fetch ref from: the mirrors first, then the registry itself.
// reqAuth, the CRI request's credentials, applies to the registry itself.
func (c RegistryConfig) endpoints(ref name.Reference, reqAuth authn.Authenticator) ([]endpoint, error) {
	reg := ref.Context().RegistryStr()
	regKey := reg
	if reg == name.DefaultRegistry {
		regKey = "docker.io"
	}
	var out []endpoint
	m, ok := c.Mirrors[regKey]
	if !ok {
		m = c.Mirrors[reg]
	}
	for _, ep := range m.Endpoints {
		host, plain := strings.TrimPrefix(ep, "http://"), strings.HasPrefix(ep, "http://")
		host = strings.TrimSuffix(strings.TrimPrefix(host, "https://"), "/")
		hc := c.Hosts[host]
		opts := []name.Option{}
		if plain || hc.PlainHTTP {
			opts = append(opts, name.Insecure)
		}
		mref, err := rehost(ref, host, opts...)
		if err != nil {
			return nil, fmt.Errorf("mirror %q for %s: %w", ep, regKey, err)
		}
		out = append(out, endpoint{ref: mref, transport: c.transport(hc), auth: hc.authenticator(nil)})
	}
	if m.NoFallback && len(out) > 0 {
		return out, nil
	}
	hc := c.Hosts[regKey]
	self := ref
	if hc.PlainHTTP {
		var err error
		if self, err = rehost(ref, reg, name.Insecure); err != nil {
			return nil, err
		}
	}
	out = append(out, endpoint{ref: self, transport: c.transport(hc), auth: hc.authenticator(reqAuth)})
	return out, nil
}

func rehost(ref name.Reference, host string, opts ...name.Option) (name.Reference, error) {
	repo := ref.Context().RepositoryStr()
	switch t := ref.(type) {
	case name.Digest:
		return name.NewDigest(host+"/"+repo+"@"+t.DigestStr(), opts...)
	case name.Tag:
		return name.NewTag(host+"/"+repo+":"+t.TagStr(), opts...)
	}
	return nil, fmt.Errorf("unsupported reference %T", ref)
}

func (c RegistryConfig) transport(hc HostConfig) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if hc.InsecureSkipVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // operator's explicit choice
	}
	return t
}

func (hc HostConfig) authenticator(req authn.Authenticator) authn.Authenticator {
	if req != nil {
		return req
	}
	if hc.Username != "" {
		return &authn.Basic{Username: hc.Username, Password: hc.Password}
	}
	return authn.Anonymous
}
