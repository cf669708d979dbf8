package encryption

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/base64"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/storage/value"
	kaes "k8s.io/apiserver/pkg/storage/value/encrypt/aes"
	"k8s.io/apiserver/pkg/storage/value/encrypt/secretbox"
)

var (
	key1 = bytes.Repeat([]byte{1}, 32)
	key2 = bytes.Repeat([]byte{2}, 32)
	b64  = base64.StdEncoding.EncodeToString
)

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

func secretsConfig(providers string) string {
	return "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n" + providers
}

func aescbc(names ...string) string {
	s := "  - aescbc:\n      keys:\n"
	for _, n := range names {
		k := key1
		if n == "key2" {
			k = key2
		}
		s += "      - name: " + n + "\n        secret: " + b64(k) + "\n"
	}
	return s
}

var secrets = schema.GroupResource{Resource: "secrets"}

const etcdKey = "/registry/secrets/default/s"

func TestRoundTripAndFormat(t *testing.T) {
	for _, tc := range []struct {
		name, providers, prefix string
		overhead                func(n int) int // stored length for n bytes of data, after the prefix
	}{
		{"aescbc", aescbc("key1"), "k8s:enc:aescbc:v1:key1:", func(n int) int { return 16 + (n/16+1)*16 }},
		{"aesgcm", "  - aesgcm:\n      keys:\n      - name: g\n        secret: " + b64(key1[:16]) + "\n", "k8s:enc:aesgcm:v1:g:", func(n int) int { return 12 + n + 16 }},
		{"secretbox", "  - secretbox:\n      keys:\n      - name: sb\n        secret: " + b64(key1) + "\n", "k8s:enc:secretbox:v1:sb:", func(n int) int { return 24 + n + 16 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustParse(t, secretsConfig(tc.providers)).TransformerFor(secrets)
			for _, n := range []int{0, 1, 15, 16, 17, 1000} {
				data := bytes.Repeat([]byte("x"), n)
				stored, err := tr.TransformToStorage(data, etcdKey)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(stored, []byte(tc.prefix)) || len(stored)-len(tc.prefix) != tc.overhead(n) {
					t.Fatalf("%d bytes stored as %d bytes %q...", n, len(stored), stored[:min(len(stored), 30)])
				}
				got, stale, err := tr.TransformFromStorage(stored, etcdKey)
				if err != nil || stale || !bytes.Equal(got, data) {
					t.Fatalf("read back %q stale=%v err=%v", got, stale, err)
				}
				again, _ := tr.TransformToStorage(data, etcdKey)
				if bytes.Equal(again, stored) {
					t.Fatal("two encryptions are equal: the IV or nonce is not random")
				}
			}
		})
	}
}

// TestKubernetesCompatible checks the formats against kube-apiserver's own transformers
// both ways: what either writes, the other reads.
func TestKubernetesCompatible(t *testing.T) {
	ctx := context.Background()
	dataCtx := value.DefaultContext(etcdKey)
	block, err := aes.NewCipher(key1)
	if err != nil {
		t.Fatal(err)
	}
	var sbKey [32]byte
	copy(sbKey[:], key1)
	for _, tc := range []struct {
		name, providers string
		kube            value.Transformer
	}{
		{"aescbc", aescbc("key1"), value.NewPrefixTransformers(nil, value.PrefixTransformer{Prefix: []byte("k8s:enc:aescbc:v1:key1:"), Transformer: kaes.NewCBCTransformer(block)})},
		{"secretbox", "  - secretbox:\n      keys:\n      - name: key1\n        secret: " + b64(key1) + "\n",
			value.NewPrefixTransformers(nil, value.PrefixTransformer{Prefix: []byte("k8s:enc:secretbox:v1:key1:"), Transformer: secretbox.NewSecretboxTransformer(sbKey)})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours := mustParse(t, secretsConfig(tc.providers)).TransformerFor(secrets)
			data := []byte("k8s\x00 a protobuf Secret with password hunter2")
			stored, err := ours.TransformToStorage(data, etcdKey)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := tc.kube.TransformFromStorage(ctx, stored, dataCtx)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("kube-apiserver reads ours as %q, %v", got, err)
			}
			theirs, err := tc.kube.TransformToStorage(ctx, data, dataCtx)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err = ours.TransformFromStorage(theirs, etcdKey)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("we read kube-apiserver's as %q, %v", got, err)
			}
		})
	}
}

func TestReadsAndStaleness(t *testing.T) {
	old := mustParse(t, secretsConfig(aescbc("key1"))).TransformerFor(secrets)
	plain := []byte("plain")
	v1, _ := old.TransformToStorage(plain, etcdKey)

	// Rotation step 1: key2 added second; key1 still writes. Step 2: key2 first; key1 data stale.
	both := mustParse(t, secretsConfig(aescbc("key1", "key2"))).TransformerFor(secrets)
	if _, stale, err := both.TransformFromStorage(v1, etcdKey); err != nil || stale {
		t.Fatalf("key1 first: stale=%v err=%v", stale, err)
	}
	rotated := mustParse(t, secretsConfig(aescbc("key2", "key1"))).TransformerFor(secrets)
	if got, stale, err := rotated.TransformFromStorage(v1, etcdKey); err != nil || !stale || string(got) != "plain" {
		t.Fatalf("key2 first: %q stale=%v err=%v", got, stale, err)
	}
	v2, _ := rotated.TransformToStorage(plain, etcdKey)
	if !bytes.HasPrefix(v2, []byte("k8s:enc:aescbc:v1:key2:")) {
		t.Fatalf("rotated write %q", v2[:24])
	}

	// key1 removed: its data no longer reads, with the reason.
	only2 := mustParse(t, secretsConfig(aescbc("key2"))).TransformerFor(secrets)
	if _, _, err := only2.TransformFromStorage(v1, etcdKey); err == nil || !strings.Contains(err.Error(), "aescbc:v1:key1") {
		t.Fatalf("key1 data without key1: %v", err)
	}
	// Unencrypted data reads only with identity among the providers.
	if _, _, err := only2.TransformFromStorage(plain, etcdKey); err == nil || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("plain data without identity: %v", err)
	}
	withIdentity := mustParse(t, secretsConfig(aescbc("key2")+"  - identity: {}\n")).TransformerFor(secrets)
	if got, stale, err := withIdentity.TransformFromStorage(plain, etcdKey); err != nil || !stale || string(got) != "plain" {
		t.Fatalf("plain data with identity last: %q stale=%v err=%v", got, stale, err)
	}
	// identity first writes plain data and still reads encrypted values (decrypting away).
	identityFirst := mustParse(t, secretsConfig("  - identity: {}\n"+aescbc("key2"))).TransformerFor(secrets)
	if got, _ := identityFirst.TransformToStorage(plain, etcdKey); !bytes.Equal(got, plain) {
		t.Fatalf("identity write %q", got)
	}
	if got, stale, err := identityFirst.TransformFromStorage(v2, etcdKey); err != nil || !stale || string(got) != "plain" {
		t.Fatalf("identity first reads key2 data: %q stale=%v err=%v", got, stale, err)
	}
	// A wrong key with the right name: the padding check fails, never garbage.
	wrong := mustParse(t, strings.Replace(secretsConfig(aescbc("key2")), b64(key2), b64(key1), 1)).TransformerFor(secrets)
	if got, _, err := wrong.TransformFromStorage(v2, etcdKey); err == nil {
		// One in 256 wrong keys yields valid-looking one-byte padding: aescbc is not
		// authenticated, exactly as in Kubernetes. The data must at least differ.
		if bytes.Equal(got, plain) {
			t.Fatal("a wrong key decrypted the data")
		}
	}
}

func TestResourceMatching(t *testing.T) {
	c := mustParse(t, `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets, deployments.apps]
  providers: [{secretbox: {keys: [{name: a, secret: `+b64(key1)+`}]}}]
- resources: ["*.batch"]
  providers: [{aescbc: {keys: [{name: b, secret: `+b64(key1)+`}]}}]
- resources: ["*."]
  providers: [{aesgcm: {keys: [{name: c, secret: `+b64(key1)+`}]}}]
`)
	for gr, want := range map[schema.GroupResource]string{
		{Resource: "secrets"}:                    "secretbox",
		{Group: "apps", Resource: "deployments"}: "secretbox",
		{Group: "batch", Resource: "jobs"}:       "aescbc",
		{Resource: "configmaps"}:                 "aesgcm",
		{Group: "apps", Resource: "replicasets"}: "",
	} {
		tr := c.TransformerFor(gr)
		got := ""
		if tr != nil {
			out, _ := tr.TransformToStorage([]byte("x"), "/k")
			got = strings.Split(string(out), ":")[2]
		}
		if got != want {
			t.Errorf("%s: %q, want %q", gr, got, want)
		}
	}
	var none *Config
	if none.TransformerFor(secrets) != nil {
		t.Error("a nil config transforms")
	}
}

func TestBadConfig(t *testing.T) {
	head := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"kind", "apiVersion: apiserver.config.k8s.io/v1\nkind: Foo\nresources: []\n", "kind"},
		{"apiVersion", "apiVersion: v1\nkind: EncryptionConfiguration\n", "apiVersion"},
		{"no resources", head, "resources: at least one rule"},
		{"no providers", head + "resources:\n- resources: [secrets]\n  providers: []\n", "resources[0].providers: at least one provider"},
		{"unknown provider", head + "resources:\n- resources: [secrets]\n  providers:\n  - aesxyz: {}\n", `resources[0].providers[0]: unknown provider "aesxyz"`},
		{"kms", head + "resources:\n- resources: [secrets]\n  providers:\n  - kms: {name: x}\n", "resources[0].providers[0].kms: the kms provider is not supported"},
		{"two types", head + "resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n    aescbc: {keys: [{name: a, secret: " + b64(key1) + "}]}\n", "exactly one provider type"},
		{"short key", head + "resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: a, secret: " + b64(key1[:10]) + "}]}\n", "resources[0].providers[0].aescbc.keys[0].secret: the key is 10 bytes"},
		{"secretbox 16", head + "resources:\n- resources: [secrets]\n  providers:\n  - secretbox: {keys: [{name: a, secret: " + b64(key1[:16]) + "}]}\n", "secretbox.keys[0].secret: the key is 16 bytes, want 32"},
		{"bad base64", head + "resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: a, secret: '!!notbase64'}]}\n", "aescbc.keys[0].secret: not valid base64"},
		{"no keys", head + "resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: []}\n", "aescbc.keys: at least one key"},
		{"no key name", head + "resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{secret: " + b64(key1) + "}]}\n", "keys[0].name: a key name is required"},
		{"duplicate key", head + "resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: a, secret: " + b64(key1) + "}, {name: a, secret: " + b64(key2) + "}]}\n", "keys[1].name: \"a\" is already used"},
		{"duplicate resource", head + "resources:\n- resources: [secrets]\n  providers: [{identity: {}}]\n- resources: [secrets]\n  providers: [{identity: {}}]\n", "resources[1].resources[0]: \"secrets\" is already listed in resources[0].resources[0]"},
		{"bad resource", head + "resources:\n- resources: [Secrets]\n  providers: [{identity: {}}]\n", "resources[0].resources[0]"},
		{"not yaml", "{{{", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadFileNamesTheFile(t *testing.T) {
	path := t.TempDir() + "/enc.yaml"
	if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing file: %v", err)
	}
}
