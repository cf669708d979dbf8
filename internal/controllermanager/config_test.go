package controllermanager

import (
	"strings"
	"testing"
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
