package controllermanager

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nanokube/nanokube/internal/apiserver/satoken"
)

func TestControllerSelection(t *testing.T) {
	for _, tc := range []struct {
		controllers []string
		name        string
		want        bool
	}{
		{nil, "replicaset-controller", true},
		{[]string{"*"}, "garbagecollector", true},
		{[]string{"*", "-deployment"}, "deployment-controller", false},
		{[]string{"*", "-deployment-controller"}, "deployment", false},
		{[]string{"replicaset"}, "replicaset-controller", true},
		{[]string{"replicaset"}, "deployment-controller", false},
		{[]string{"-replicaset", "*"}, "replicaset-controller", false},
	} {
		cfg := Config{RESTConfig: nil, Kubeconfig: "x", Controllers: tc.controllers}
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
		if got := cfg.Enabled(tc.name); got != tc.want {
			t.Errorf("--controllers=%v: Enabled(%s) = %v, want %v", tc.controllers, tc.name, got, tc.want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	cfg := Config{Controllers: []string{"nosuch"}}
	err := cfg.validate()
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig is required") || !strings.Contains(err.Error(), `unknown controller "nosuch"`) {
		t.Fatalf("validate = %v", err)
	}
	for _, name := range KnownControllers() {
		if _, ok := constructors[canonicalName(name)]; !ok {
			t.Errorf("%s has no constructor", name)
		}
	}
	for alias, name := range aliases {
		if _, ok := constructors[name]; !ok {
			t.Errorf("alias %s names unknown %s", alias, name)
		}
	}
}

// Without --service-account-private-key-file the tokens controller is skipped, as
// kube-controller-manager skips it; with a key it is built.
func TestServiceAccountTokenControllerNeedsAKey(t *testing.T) {
	build := constructors["serviceaccount-token-controller"]
	client := fake.NewClientset()
	cc := Context{Client: client, Informers: informers.NewSharedInformerFactory(client, 0), Log: slog.New(slog.DiscardHandler)}
	if c, err := build(cc); c != nil || err != nil {
		t.Fatalf("without a key: %v, %v; want it skipped", c, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if cc.ServiceAccountTokenSigner, err = satoken.NewSigner(satoken.LegacyIssuer, key); err != nil {
		t.Fatal(err)
	}
	if c, err := build(cc); c == nil || err != nil {
		t.Fatalf("with a key: %v, %v", c, err)
	}
	if !(&Config{Controllers: []string{"*"}}).Enabled("serviceaccount-token") {
		t.Error("the tokens controller is not on by default")
	}
}
