package server

import (
	"context"
	"strings"
	"testing"
)

// An unknown authorization mode fails the start with the flag's name, before anything runs.
func TestUnknownAuthorizationMode(t *testing.T) {
	err := Run(context.Background(), Config{DataDir: t.TempDir(), AuthorizationMode: "Node,Webhook"}, nil)
	want := `--authorization-mode "Webhook" is not a valid mode`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error containing %s", err, want)
	}
}
