// Package encryption reads a kube-apiserver EncryptionConfiguration file and turns it into
// storage.Transformers that encrypt the values of the configured resources in etcd.
//
// The stored formats are Kubernetes' own, so data written by nanokube can be read by a
// kube-apiserver with the same file and the other way round:
//
//	aescbc:    "k8s:enc:aescbc:v1:<key name>:" + 16-byte random IV + AES-CBC(data, PKCS#7 padding)
//	aesgcm:    "k8s:enc:aesgcm:v1:<key name>:" + 12-byte random nonce + AES-GCM(data), the etcd key as additional data
//	secretbox: "k8s:enc:secretbox:v1:<key name>:" + 24-byte random nonce + secretbox.Seal(data)
//	identity:  the data as it is, no prefix
//
// The first provider of a resource's list encrypts every write; every provider is tried on
// reads, chosen by the value's prefix. A value read with any but the first provider (or key)
// is reported stale, so an update rewrites it with the current key even if the object did
// not change: that is how `kubectl get secrets -A -o json | kubectl replace -f -` rotates keys.
package encryption

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/nanokube/nanokube/internal/storage"
)

// The file's types. k8s.io/apiserver/pkg/apis/apiserver/v1 holds the same structs, but that
// package also carries the authentication and tracing configuration types, which pull in
// k8s.io/component-base's feature gates and metrics (and with them OpenTelemetry): small local
// structs decoded strictly by sigs.k8s.io/yaml cost far less.
type fileConfig struct {
	Kind       string          `json:"kind"`
	APIVersion string          `json:"apiVersion"`
	Resources  []resourcesRule `json:"resources"`
}

type resourcesRule struct {
	Resources []string         `json:"resources"`
	Providers []providerConfig `json:"providers"`
}

type providerConfig struct {
	AESGCM    *keysConfig `json:"aesgcm,omitempty"`
	AESCBC    *keysConfig `json:"aescbc,omitempty"`
	Secretbox *keysConfig `json:"secretbox,omitempty"`
	Identity  *struct{}   `json:"identity,omitempty"`
	// KMS is recognised only to reject it with a clear message.
	KMS map[string]any `json:"kms,omitempty"`
}

type keysConfig struct {
	Keys []keyConfig `json:"keys"`
}

type keyConfig struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// Config is a loaded EncryptionConfiguration.
type Config struct {
	rules []rule
}

type rule struct {
	resources   []string // as written: "secrets", "deployments.apps", "*.apps", "*.", "*.*"
	transformer *transformer
}

// LoadFile reads and validates an EncryptionConfiguration file. Errors name the file and
// the offending field.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption provider config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("encryption provider config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse validates an EncryptionConfiguration document.
func Parse(data []byte) (*Config, error) {
	if err := checkProviderNames(data); err != nil {
		return nil, err
	}
	var fc fileConfig
	if err := yaml.UnmarshalStrict(data, &fc); err != nil {
		return nil, err
	}
	if fc.Kind != "EncryptionConfiguration" {
		return nil, fmt.Errorf("kind: %q, want EncryptionConfiguration", fc.Kind)
	}
	if fc.APIVersion != "apiserver.config.k8s.io/v1" {
		return nil, fmt.Errorf("apiVersion: %q, want apiserver.config.k8s.io/v1", fc.APIVersion)
	}
	if len(fc.Resources) == 0 {
		return nil, errors.New("resources: at least one rule is required")
	}
	cfg := &Config{}
	seen := map[string]string{}
	var errs []error
	for i, r := range fc.Resources {
		field := fmt.Sprintf("resources[%d]", i)
		if len(r.Resources) == 0 {
			errs = append(errs, fmt.Errorf("%s.resources: at least one resource is required", field))
		}
		for j, name := range r.Resources {
			f := fmt.Sprintf("%s.resources[%d]", field, j)
			if err := validResource(name); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f, err))
				continue
			}
			if prev, ok := seen[name]; ok {
				errs = append(errs, fmt.Errorf("%s: %q is already listed in %s", f, name, prev))
			}
			seen[name] = f
		}
		t, err := newTransformer(field+".providers", r.Providers)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg.rules = append(cfg.rules, rule{resources: r.Resources, transformer: t})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

var providerNames = []string{"aescbc", "aesgcm", "secretbox", "identity", "kms"}

// checkProviderNames names the field of an unknown provider, which a strict decode reports
// without its place in the file.
func checkProviderNames(data []byte) error {
	var doc struct {
		Resources []struct {
			Providers []map[string]any `json:"providers"`
		} `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	var errs []error
	for i, r := range doc.Resources {
		for j, p := range r.Providers {
			for name := range p {
				if !slices.Contains(providerNames, name) {
					errs = append(errs, fmt.Errorf("resources[%d].providers[%d]: unknown provider %q (want aescbc, aesgcm, secretbox or identity)", i, j, name))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func validResource(name string) error {
	if name == "" || name != strings.ToLower(name) || strings.ContainsAny(name, "/ ") {
		return fmt.Errorf("%q is not a lower-case resource name (secrets, deployments.apps, *.apps, *.*)", name)
	}
	if strings.Count(name, "*") > 2 || (strings.Contains(name, "*") && !strings.HasPrefix(name, "*.")) {
		return fmt.Errorf("%q: a wildcard must be *.<group>, *. (the core group) or *.*", name)
	}
	return nil
}

// TransformerFor returns the transformer of a resource, or nil if its values are stored as
// they are. The first rule that names the resource decides, as in kube-apiserver: "secrets"
// (core group), "deployments.apps", "*.apps" (every resource of a group), "*." (every core
// resource) and "*.*" (everything).
func (c *Config) TransformerFor(gr schema.GroupResource) storage.Transformer {
	if c == nil {
		return nil
	}
	full := gr.Resource
	if gr.Group != "" {
		full += "." + gr.Group
	}
	for _, r := range c.rules {
		for _, name := range r.resources {
			if name == full || name == "*.*" || name == "*."+gr.Group {
				return r.transformer
			}
		}
	}
	return nil
}

// newTransformer validates one rule's providers and builds its transformer.
func newTransformer(field string, providers []providerConfig) (*transformer, error) {
	if len(providers) == 0 {
		return nil, fmt.Errorf("%s: at least one provider is required", field)
	}
	t := &transformer{}
	var errs []error
	for i, p := range providers {
		f := fmt.Sprintf("%s[%d]", field, i)
		set := 0
		for _, b := range []bool{p.AESGCM != nil, p.AESCBC != nil, p.Secretbox != nil, p.Identity != nil, p.KMS != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			errs = append(errs, fmt.Errorf("%s: exactly one provider type (aescbc, aesgcm, secretbox, identity) must be given, found %d", f, set))
			continue
		}
		switch {
		case p.Identity != nil:
			t.add(identity{}, "")
		case p.KMS != nil:
			errs = append(errs, fmt.Errorf("%s.kms: the kms provider is not supported; use aescbc, aesgcm or secretbox", f))
		case p.AESCBC != nil:
			errs = append(errs, addKeys(t, f+".aescbc", "aescbc", p.AESCBC, []int{16, 24, 32}, newAESCBC))
		case p.AESGCM != nil:
			errs = append(errs, addKeys(t, f+".aesgcm", "aesgcm", p.AESGCM, []int{16, 24, 32}, newAESGCM))
		case p.Secretbox != nil:
			errs = append(errs, addKeys(t, f+".secretbox", "secretbox", p.Secretbox, []int{32}, newSecretbox))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func addKeys(t *transformer, field, kind string, kc *keysConfig, sizes []int, mk func([]byte) (cipherer, error)) error {
	if len(kc.Keys) == 0 {
		return fmt.Errorf("%s.keys: at least one key is required", field)
	}
	var errs []error
	names := map[string]bool{}
	for i, k := range kc.Keys {
		f := fmt.Sprintf("%s.keys[%d]", field, i)
		switch {
		case k.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: a key name is required", f))
			continue
		case strings.Contains(k.Name, ":"):
			errs = append(errs, fmt.Errorf("%s.name: %q must not contain ':'", f, k.Name))
			continue
		case names[k.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is already used by another key of this provider", f, k.Name))
			continue
		}
		names[k.Name] = true
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.secret: not valid base64: %v", f, err))
			continue
		}
		if !sizeOK(len(secret), sizes) {
			errs = append(errs, fmt.Errorf("%s.secret: the key is %d bytes, want %s", f, len(secret), sizeList(sizes)))
			continue
		}
		c, err := mk(secret)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.secret: %v", f, err))
			continue
		}
		t.add(c, "k8s:enc:"+kind+":v1:"+k.Name+":")
	}
	return errors.Join(errs...)
}

func sizeOK(n int, sizes []int) bool {
	for _, s := range sizes {
		if n == s {
			return true
		}
	}
	return false
}

func sizeList(sizes []int) string {
	s := make([]string, len(sizes))
	for i, n := range sizes {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ") + " bytes (before base64)"
}

// encPrefix starts every encrypted value, whatever the provider.
var encPrefix = []byte("k8s:enc:")

// transformer is one rule's providers, in order.
type transformer struct {
	providers []provider
}

type provider struct {
	prefix []byte // "k8s:enc:aescbc:v1:key1:"; empty for identity
	c      cipherer
}

// cipherer encrypts and decrypts, with the etcd key as additional data where the cipher
// authenticates it (aesgcm).
type cipherer interface {
	seal(data []byte, key string) ([]byte, error)
	open(ciphertext []byte, key string) ([]byte, error)
}

func (t *transformer) add(c cipherer, prefix string) {
	t.providers = append(t.providers, provider{prefix: []byte(prefix), c: c})
}

// TransformToStorage encrypts with the first provider (its first key).
func (t *transformer) TransformToStorage(data []byte, key string) ([]byte, error) {
	p := t.providers[0]
	sealed, err := p.c.seal(data, key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(p.prefix)+len(sealed))
	return append(append(out, p.prefix...), sealed...), nil
}

// TransformFromStorage decrypts with the provider whose prefix the value carries; a value
// without the k8s:enc: prefix is read as it is only if identity is one of the providers.
func (t *transformer) TransformFromStorage(value []byte, key string) ([]byte, bool, error) {
	encrypted := bytes.HasPrefix(value, encPrefix)
	for i, p := range t.providers {
		if len(p.prefix) == 0 {
			if encrypted {
				continue
			}
			return value, i != 0, nil
		}
		if !bytes.HasPrefix(value, p.prefix) {
			continue
		}
		data, err := p.c.open(value[len(p.prefix):], key)
		if err != nil {
			return nil, false, fmt.Errorf("decrypting with %s: %w", strings.TrimSuffix(string(p.prefix[len(encPrefix):]), ":"), err)
		}
		return data, i != 0, nil
	}
	if encrypted {
		return nil, false, fmt.Errorf("no configured provider can read data encrypted with %s", describePrefix(value))
	}
	return nil, false, errors.New("the data is not encrypted and identity is not among the configured providers")
}

// describePrefix names the provider and key of an encrypted value ("aescbc:v1:key9").
func describePrefix(value []byte) string {
	rest := value[len(encPrefix):]
	parts := bytes.SplitN(rest, []byte(":"), 4)
	if len(parts) < 4 {
		return "an unknown provider"
	}
	return string(bytes.Join(parts[:3], []byte(":")))
}

type identity struct{}

func (identity) seal(data []byte, _ string) ([]byte, error)  { return data, nil }
func (identity) open(value []byte, _ string) ([]byte, error) { return value, nil }
