package apiserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/server"
)

// The secret data every test looks for in etcd's raw values.
const plainMarker = "hunter2-plaintext-marker"

func writeEncryptionConfig(t *testing.T, path string, providers ...string) {
	t.Helper()
	doc := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n" + strings.Join(providers, "")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

func aescbcProvider(keys ...string) string {
	s := "  - aescbc:\n      keys:\n"
	for _, k := range keys {
		s += "      - name: " + k + "\n        secret: " + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(k[len(k)-1:]), 32)) + "\n"
	}
	return s
}

const identityProvider = "  - identity: {}\n"

func rawEtcd(t *testing.T, c *apitest.Cluster) *clientv3.Client {
	t.Helper()
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{"unix://" + filepath.Join(c.Dir, "etcd", "client.sock")}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ec.Close() })
	return ec
}

func rawValue(t *testing.T, ctx context.Context, c *apitest.Cluster, key string) []byte {
	t.Helper()
	resp, err := rawEtcd(t, c).Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("%s: %d keys in etcd", key, len(resp.Kvs))
	}
	return resp.Kvs[0].Value
}

func assertEncrypted(t *testing.T, ctx context.Context, c *apitest.Cluster, key, prefix string) {
	t.Helper()
	v := rawValue(t, ctx, c, key)
	if !bytes.HasPrefix(v, []byte(prefix)) {
		t.Fatalf("%s in etcd starts %q, want %q", key, v[:min(len(v), len(prefix))], prefix)
	}
	if bytes.Contains(v, []byte(plainMarker)) {
		t.Fatalf("%s in etcd holds the secret data in plain text", key)
	}
}

func testSecret(name string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"password": []byte(plainMarker)}}
}

func getSecretData(t *testing.T, ctx context.Context, c *apitest.Cluster, name string) {
	t.Helper()
	s, err := c.Client.CoreV1().Secrets("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	if string(s.Data["password"]) != plainMarker {
		t.Fatalf("secret %s reads back as %q", name, s.Data["password"])
	}
}

func kubectl(t *testing.T, c *apitest.Cluster, script string) string {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatalf("kubectl is needed: %v", err)
	}
	cmd := exec.Command("sh", "-ec", script)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubecfg, "KUBECACHEDIR="+filepath.Join(t.TempDir(), "cache"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

func TestSecretsEncryptedAtRest(t *testing.T) {
	encFile := filepath.Join(t.TempDir(), "encryption.yaml")
	writeEncryptionConfig(t, encFile, aescbcProvider("key1"), identityProvider)
	c := apitest.Start(t, apitest.Options{EncryptionProviderConfig: encFile})
	ctx := ctxT(t)
	secrets := c.Client.CoreV1().Secrets("default")

	w, err := secrets.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := secrets.Create(ctx, testSecret("s1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	assertEncrypted(t, ctx, c, "/registry/secrets/default/s1", "k8s:enc:aescbc:v1:key1:")
	// Only the configured resources are encrypted.
	if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"},
		Data: map[string]string{"v": plainMarker}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := rawValue(t, ctx, c, "/registry/configmaps/default/cm"); !bytes.Contains(v, []byte(plainMarker)) {
		t.Fatalf("a ConfigMap was transformed: %q", v)
	}

	// Every read path decrypts: get (etcd), list from etcd, list from the watch cache, watch.
	getSecretData(t, ctx, c, "s1")
	for _, rv := range []string{"", "0"} {
		l, err := secrets.List(ctx, metav1.ListOptions{ResourceVersion: rv})
		if err != nil || len(l.Items) != 1 || string(l.Items[0].Data["password"]) != plainMarker {
			t.Fatalf("list rv=%q: %v %+v", rv, err, l)
		}
	}
	select {
	case ev := <-w.ResultChan():
		if s, ok := ev.Object.(*corev1.Secret); ev.Type != watch.Added || !ok || string(s.Data["password"]) != plainMarker {
			t.Fatalf("watch event %s %#v", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("no watch event")
	}
	// kubectl reads through the same paths.
	if out := kubectl(t, c, "kubectl get secret s1 -o jsonpath='{.data.password}' | base64 -d"); out != plainMarker {
		t.Fatalf("kubectl sees %q", out)
	}

	// A value no configured key can decrypt is an Internal error naming the key and the
	// reason, never garbage.
	if _, err := rawEtcd(t, c).Put(ctx, "/registry/secrets/default/foreign", "k8s:enc:aescbc:v1:key9:"+strings.Repeat("x", 32)); err != nil {
		t.Fatal(err)
	}
	_, err = secrets.Get(ctx, "foreign", metav1.GetOptions{})
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "/registry/secrets/default/foreign") || !strings.Contains(err.Error(), "aescbc:v1:key9") {
		t.Fatalf("undecryptable value: %v", err)
	}
	if _, err := rawEtcd(t, c).Delete(ctx, "/registry/secrets/default/foreign"); err != nil {
		t.Fatal(err)
	}
}

func TestEncryptionKeyRotation(t *testing.T) {
	encFile := filepath.Join(t.TempDir(), "encryption.yaml")
	writeEncryptionConfig(t, encFile, aescbcProvider("key1"))
	opts := apitest.Options{EncryptionProviderConfig: encFile}
	c := apitest.Start(t, opts)
	ctx := ctxT(t)
	secrets := c.Client.CoreV1().Secrets("default")
	for _, name := range []string{"s1", "s2"} {
		if _, err := secrets.Create(ctx, testSecret(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// s2 is then updated by this client, so that a later update of it that changes nothing is
	// a true no-op for the field manager too.
	s2, err := secrets.Get(ctx, "s2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2.Labels = map[string]string{"touched": "yes"}
	if s2, err = secrets.Update(ctx, s2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if same, err := secrets.Update(ctx, s2, metav1.UpdateOptions{}); err != nil || same.ResourceVersion != s2.ResourceVersion {
		t.Fatalf("a no-op update with the current key wrote: %v rv %s -> %s", err, s2.ResourceVersion, same.ResourceVersion)
	}

	// Step 1: add key2 second, restart: key1 still writes, everything reads.
	writeEncryptionConfig(t, encFile, aescbcProvider("key1", "key2"))
	c.RestartWith(opts)
	secrets = c.Client.CoreV1().Secrets("default")
	getSecretData(t, ctx, c, "s1")
	// Step 2: key2 first, restart: old data still reads (under key1), new writes use key2.
	writeEncryptionConfig(t, encFile, aescbcProvider("key2", "key1"))
	c.RestartWith(opts)
	secrets = c.Client.CoreV1().Secrets("default")
	getSecretData(t, ctx, c, "s1")
	assertEncrypted(t, ctx, c, "/registry/secrets/default/s1", "k8s:enc:aescbc:v1:key1:")
	if _, err := secrets.Create(ctx, testSecret("s3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	assertEncrypted(t, ctx, c, "/registry/secrets/default/s3", "k8s:enc:aescbc:v1:key2:")

	// An update that changes nothing still rewrites a value under an old key.
	s2, err = secrets.Get(ctx, "s2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := secrets.Update(ctx, s2, metav1.UpdateOptions{})
	if err != nil || again.ResourceVersion == s2.ResourceVersion {
		t.Fatalf("no-op update of a stale value: %v, rv %s -> %s", err, s2.ResourceVersion, again.ResourceVersion)
	}
	assertEncrypted(t, ctx, c, "/registry/secrets/default/s2", "k8s:enc:aescbc:v1:key2:")

	// Step 3: rewrite every Secret, the Kubernetes way.
	kubectl(t, c, "kubectl get secrets -A -o json | kubectl replace -f -")
	for _, name := range []string{"s1", "s2", "s3"} {
		assertEncrypted(t, ctx, c, "/registry/secrets/default/"+name, "k8s:enc:aescbc:v1:key2:")
	}
	// Step 4: key1 removed; everything still reads.
	writeEncryptionConfig(t, encFile, aescbcProvider("key2"))
	c.RestartWith(opts)
	for _, name := range []string{"s1", "s2", "s3"} {
		getSecretData(t, ctx, c, name)
	}
}

func TestEncryptionSecretboxAndIdentityFirst(t *testing.T) {
	encFile := filepath.Join(t.TempDir(), "encryption.yaml")
	sb := "  - secretbox:\n      keys:\n      - name: sb1\n        secret: " + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "\n"
	writeEncryptionConfig(t, encFile, sb)
	opts := apitest.Options{EncryptionProviderConfig: encFile}
	c := apitest.Start(t, opts)
	ctx := ctxT(t)
	if _, err := c.Client.CoreV1().Secrets("default").Create(ctx, testSecret("s1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	assertEncrypted(t, ctx, c, "/registry/secrets/default/s1", "k8s:enc:secretbox:v1:sb1:")
	getSecretData(t, ctx, c, "s1")

	// identity first: encrypted values still read, and a rewrite decrypts them (turning
	// encryption off the Kubernetes way).
	writeEncryptionConfig(t, encFile, identityProvider, sb)
	c.RestartWith(opts)
	getSecretData(t, ctx, c, "s1")
	assertEncrypted(t, ctx, c, "/registry/secrets/default/s1", "k8s:enc:secretbox:v1:sb1:")
	kubectl(t, c, "kubectl get secrets -A -o json | kubectl replace -f -")
	if v := rawValue(t, ctx, c, "/registry/secrets/default/s1"); !bytes.Contains(v, []byte(plainMarker)) || bytes.HasPrefix(v, []byte("k8s:enc:")) {
		t.Fatalf("after the rewrite with identity first: %q", v)
	}
}

func TestEncryptionBadConfigWritesNothing(t *testing.T) {
	dir := t.TempDir()
	encFile := filepath.Join(dir, "encryption.yaml")
	for _, tc := range []struct{ doc, want string }{
		{"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - rot13: {}\n",
			`resources[0].providers[0]: unknown provider "rot13"`},
		{"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: k, secret: c2hvcnQ=}]}\n",
			"resources[0].providers[0].aescbc.keys[0].secret: the key is 5 bytes"},
		{"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: []\n",
			"resources[0].providers: at least one provider"},
	} {
		if err := os.WriteFile(encFile, []byte(tc.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		dataDir := filepath.Join(dir, "data")
		err := server.Run(context.Background(), server.Config{DataDir: dataDir, BindAddress: "127.0.0.1", SecurePort: 0,
			EncryptionProviderConfig: encFile, DisableAgent: true}, func(server.Ready) { t.Error("started") })
		if err == nil || !strings.Contains(err.Error(), encFile) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("error %v, want one naming %s and %q", err, encFile, tc.want)
		}
		if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
			t.Fatalf("the data directory was created: %v", err)
		}
	}
}
